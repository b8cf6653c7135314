//! Schema migrations, embedded in the binary, one folder per backend, applied with
//! sqlx's migrator (which records what ran and refuses edited migrations).

use crate::{Backend, Result, Store};
use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "media",
        include_str!("../migrations/sqlite/0002_media.sql"),
    ),
    (
        3,
        "access",
        include_str!("../migrations/sqlite/0003_access.sql"),
    ),
    (
        4,
        "wifi",
        include_str!("../migrations/sqlite/0004_wifi.sql"),
    ),
    (
        5,
        "doors",
        include_str!("../migrations/sqlite/0005_doors.sql"),
    ),
    (
        6,
        "time_zone",
        include_str!("../migrations/sqlite/0006_time_zone.sql"),
    ),
    (
        7,
        "user_disabled",
        include_str!("../migrations/sqlite/0007_user_disabled.sql"),
    ),
    (
        8,
        "system_alerts",
        include_str!("../migrations/sqlite/0008_system_alerts.sql"),
    ),
    (
        9,
        "fleet",
        include_str!("../migrations/sqlite/0009_fleet.sql"),
    ),
    (
        10,
        "webhook_event_types",
        include_str!("../migrations/sqlite/0010_webhook_event_types.sql"),
    ),
    (
        11,
        "home_address",
        include_str!("../migrations/sqlite/0011_home_address.sql"),
    ),
    (
        12,
        "expectations",
        include_str!("../migrations/sqlite/0012_expectations.sql"),
    ),
    (
        13,
        "audit_home",
        include_str!("../migrations/sqlite/0013_audit_home.sql"),
    ),
    (
        14,
        "credential_challenges",
        include_str!("../migrations/sqlite/0014_credential_challenges.sql"),
    ),
    (
        15,
        "deliveries_door",
        include_str!("../migrations/sqlite/0015_deliveries_door.sql"),
    ),
    (
        16,
        "manual_sessions_open",
        include_str!("../migrations/sqlite/0016_manual_sessions_open.sql"),
    ),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "media",
        include_str!("../migrations/postgres/0002_media.sql"),
    ),
    (
        3,
        "access",
        include_str!("../migrations/postgres/0003_access.sql"),
    ),
    (
        4,
        "wifi",
        include_str!("../migrations/postgres/0004_wifi.sql"),
    ),
    (
        5,
        "doors",
        include_str!("../migrations/postgres/0005_doors.sql"),
    ),
    (
        6,
        "time_zone",
        include_str!("../migrations/postgres/0006_time_zone.sql"),
    ),
    (
        7,
        "user_disabled",
        include_str!("../migrations/postgres/0007_user_disabled.sql"),
    ),
    (
        8,
        "system_alerts",
        include_str!("../migrations/postgres/0008_system_alerts.sql"),
    ),
    (
        9,
        "fleet",
        include_str!("../migrations/postgres/0009_fleet.sql"),
    ),
    (
        10,
        "webhook_event_types",
        include_str!("../migrations/postgres/0010_webhook_event_types.sql"),
    ),
    (
        11,
        "home_address",
        include_str!("../migrations/postgres/0011_home_address.sql"),
    ),
    (
        12,
        "expectations",
        include_str!("../migrations/postgres/0012_expectations.sql"),
    ),
    (
        13,
        "audit_home",
        include_str!("../migrations/postgres/0013_audit_home.sql"),
    ),
    (
        14,
        "credential_challenges",
        include_str!("../migrations/postgres/0014_credential_challenges.sql"),
    ),
    (
        15,
        "deliveries_door",
        include_str!("../migrations/postgres/0015_deliveries_door.sql"),
    ),
    (
        16,
        "manual_sessions_open",
        include_str!("../migrations/postgres/0016_manual_sessions_open.sql"),
    ),
];

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, std::result::Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

pub(crate) async fn run(store: &Store) -> Result<()> {
    let source = match store.backend {
        Backend::Sqlite => Embedded(SQLITE),
        Backend::Postgres => Embedded(POSTGRES),
    };
    let migrator = Migrator::new(source).await?;
    let mut conn = store.writer.lease().await?;
    migrator.run(&mut *conn).await?;
    drop(conn);
    store.writer.durable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of a backend's migration folder, as (version, name).
    fn on_disk(backend: &str) -> Vec<(i64, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        // An unreadable folder lists nothing, and the comparison below fails.
        let mut v: Vec<(i64, String)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".sql")?;
                let (n, rest) = stem.split_once('_')?;
                Some((n.parse().ok()?, rest.to_owned()))
            })
            .collect();
        v.sort();
        v
    }

    fn listed(list: &[(i64, &str, &str)]) -> Vec<(i64, String)> {
        list.iter().map(|(n, d, _)| (*n, (*d).to_owned())).collect()
    }

    /// A migration written but not listed is never applied (0015 once was not): every
    /// file in each folder is in its list, in order, and the two backends agree.
    #[test]
    fn every_migration_file_is_applied_on_both_backends() {
        assert_eq!(listed(SQLITE), on_disk("sqlite"));
        assert_eq!(listed(POSTGRES), on_disk("postgres"));
        assert_eq!(listed(SQLITE), listed(POSTGRES));
    }
}
