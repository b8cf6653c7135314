//! Fresh, isolated stores for tests: a SQLite file in its own temporary folder, and a
//! PostgreSQL schema of its own on the server named by `THRESHOLD_TEST_DATABASE_URL`
//! (default: this machine's `postgres://postgres@127.0.0.1:5432/test`), so tests run in
//! parallel without seeing each other's rows.
//!
//! Without a reachable PostgreSQL the PostgreSQL half of a test is skipped with a note,
//! unless `THRESHOLD_REQUIRE_SERVICES=1`, under which it fails.

use crate::Store;
use std::path::PathBuf;

/// Deletes its folder when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        let p = std::env::temp_dir().join(format!("threshold-{tag}-{}", crate::new_id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn services_required() -> bool {
    std::env::var("THRESHOLD_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

pub fn postgres_base_url() -> String {
    std::env::var("THRESHOLD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The URL of a SQLite database file in `dir`, created on first connect.
pub fn sqlite_url(dir: &TempDir) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("threshold.db").display()
    )
}

/// A SQLite store in a new temporary folder.
pub async fn sqlite() -> Result<(Store, TempDir), Box<dyn std::error::Error>> {
    let dir = TempDir::new("db")?;
    Ok((Store::connect(&sqlite_url(&dir)).await?, dir))
}

/// The URL of a new, empty schema on the test PostgreSQL server, or `None` (after
/// printing why) when the server is unreachable and services are not required.
pub async fn postgres_url() -> Result<Option<String>, Box<dyn std::error::Error>> {
    use sqlx::Connection;
    crate::Store::install_drivers();
    let base = postgres_base_url();
    let conn = match sqlx::AnyConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) if !services_required() => {
            eprintln!("skipping PostgreSQL half: {base} unreachable ({e}); set THRESHOLD_REQUIRE_SERVICES=1 to fail instead");
            return Ok(None);
        }
        Err(e) => return Err(format!("PostgreSQL required but {base} unreachable: {e}").into()),
    };
    conn.close().await?;
    Ok(Some(crate::Store::new_schema(&base, "t").await?))
}

/// A home named "h" at (0, 0) with a 30 m geofence, for tests that need one to hang
/// rows on.
pub async fn home(s: &Store, owner_id: &str) -> crate::Result<crate::HomeRow> {
    s.create_home(
        crate::NewHome {
            owner_id,
            name: "h",
            lat: 0.0,
            lon: 0.0,
            geofence_m: 30.0,
            time_zone: None,
        },
        0,
    )
    .await
}

/// A PostgreSQL store in a schema of its own, or `None` when skipped.
pub async fn postgres() -> Result<Option<Store>, Box<dyn std::error::Error>> {
    match postgres_url().await? {
        Some(url) => Ok(Some(Store::connect(&url).await?)),
        None => Ok(None),
    }
}
