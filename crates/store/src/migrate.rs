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
