//! Storage for the hub: one [`Store`] with the same behaviour on SQLite (the embedded
//! default, WAL mode, in the data folder) and PostgreSQL (for operators with many
//! homes). Both go through sqlx's `Any` driver with portable SQL; the schema has one
//! migration folder per backend. Writes are plain sqlx transactions on both; on
//! SQLite a commit counts once a shared fsync has covered it (`durable`).
//!
//! Every query that reads an owner's data takes the owner's id and filters by it:
//! scoping is part of each method's signature, not left to callers.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod accounts;
mod audit;
mod credentials;
mod deliveries;
mod devices;
mod doors;
mod durable;
mod events;
mod expectations;
pub mod fleet;
mod homes;
mod media;
mod migrate;
mod push;
mod sql;
mod system_alerts;
pub mod testing;
mod wifi;

pub use access::{GuestGrantRow, NewGuestGrant, SessionRow};
pub use accounts::{ApiKeyRow, Role, UserRow};
pub use audit::{
    AuditDraft, AuditRow, CheckpointRow, EntryClaim, JobOutcome, JournalJob, NewDeviceEvent,
};
pub use credentials::ChallengeUse;
pub use deliveries::DeliveryRow;
pub use devices::{DeviceRow, GapRow, SeqSpaceName};
pub use doors::{DoorChange, DoorRow, MerchantRow, OpeningRow};
pub use events::{AlertRow, DeviceEventRow, NewAlert, NewTimelineRow, TimelineRow};
pub use expectations::ExpectationRow;
pub use homes::{HomeRow, NewHome, NewPairing, PairingRow};
pub use media::{MediaFrameRow, RecordingRow, WebhookDeliveryRow, WebhookEndpointRow};
pub use push::PushSubscriptionRow;
pub use system_alerts::{NewSystemAlert, SystemAlertRow};
pub use wifi::WifiAttackRow;

use crate::durable::Durably;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::sync::Once;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists: {0}")]
    Conflict(String),
    /// sqlx's own words (transparent: a caller's context is not followed by the same
    /// message twice).
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database could not be reached at all (no connection within the limit).
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("unsupported database url (use sqlite:// or postgres://)")]
    BadUrl,
    /// A commit could not be confirmed on disk (see `durable`).
    #[error("not durable: {0}")]
    NotDurable(String),
    /// The operation needs another database backend.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The hub's database.
///
/// Reads and writes go through different connections. On SQLite all writes share one
/// connection: SQLite allows one writer at a time anyway, and several writing
/// connections would meet in its busy handler, which sleeps in steps of up to 100 ms
/// instead of waking the next writer when the lock frees (it was most of the unlock
/// decision's tail latency, see docs/performance.md). Writers queue for it in order
/// (`durable::Writer`), while readers (WAL) never wait for them. On PostgreSQL reads
/// and writes share one pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    writer: durable::Writer,
    backend: Backend,
    /// The audit chain's head as this process last committed it, so an append need
    /// not read it back first. Only a guess: the sequence number is the primary key,
    /// so if another process appended meanwhile the insert conflicts, the guess is
    /// dropped and the append retried on the head read from the database.
    audit_head: std::sync::Arc<std::sync::Mutex<Option<audit::Head>>>,
    /// PostgreSQL: the URL, for connections of their own (`fleet::Listener`).
    pg_url: Option<std::sync::Arc<str>>,
    /// PostgreSQL: the schema, naming this database's fleet channels.
    channel_ns: std::sync::Arc<str>,
}

static DRIVERS: Once = Once::new();

/// How long a first connection to PostgreSQL may take before the start gives up.
const CONNECT_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The write-ahead log of the SQLite database the pool writes to: its main file, as
/// SQLite resolved it, plus `-wal`.
async fn sqlite_wal_path(pool: &AnyPool) -> Result<std::path::PathBuf> {
    let rows = sqlx::query("PRAGMA database_list").fetch_all(pool).await?;
    for r in rows {
        let name: String = r.try_get(1)?;
        let file: String = r.try_get(2)?;
        if name == "main" && !file.is_empty() {
            return Ok(std::path::PathBuf::from(format!("{file}-wal")));
        }
    }
    // An in-memory or temporary database has no file to make durable.
    Err(StoreError::BadUrl)
}

impl Store {
    /// Connect and bring the schema up to date. `url` is `sqlite://PATH` or
    /// `postgres://...`.
    pub async fn connect(url: &str) -> Result<Store> {
        Self::install_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl);
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                // The writer first: it creates the file and switches it to WAL. Its
                // one connection leaves the pool that configured it (see `durable`).
                let writer = Self::open_pool(url, backend, 1, true).await?;
                let wal = sqlite_wal_path(&writer).await?;
                let conn = writer.acquire().await?.detach();
                writer.close().await;
                (
                    Self::open_pool(url, backend, 4, false).await?,
                    durable::Writer::syncing_wal(conn, wal),
                )
            }
            Backend::Postgres => {
                Self::reach(url).await?;
                let pool = Self::open_pool(url, backend, 16, true).await?;
                (pool.clone(), durable::Writer::self_syncing(pool))
            }
        };
        let channel_ns: std::sync::Arc<str> = match backend {
            Backend::Postgres => {
                let schema: String = sqlx::query("SELECT current_schema()::TEXT")
                    .fetch_one(&pool)
                    .await?
                    .try_get(0)?;
                fleet::namespace(&schema).into()
            }
            Backend::Sqlite => "".into(),
        };
        let store = Store {
            pool,
            writer,
            backend,
            audit_head: Default::default(),
            pg_url: (backend == Backend::Postgres).then(|| url.into()),
            channel_ns,
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// One connection first, with a time limit, so that an unreachable server is
    /// said at once and plainly (the pool would retry for 30 s and then only say it
    /// timed out).
    async fn reach(url: &str) -> Result<()> {
        use sqlx::Connection;
        let target = url
            .split('@')
            .nth(1)
            .unwrap_or(url)
            .split(['/', '?'])
            .next()
            .unwrap_or("")
            .to_owned();
        match tokio::time::timeout(CONNECT_LIMIT, sqlx::AnyConnection::connect(url)).await {
            Ok(Ok(c)) => {
                let _ = c.close().await;
                Ok(())
            }
            Ok(Err(sqlx::Error::Io(e))) => Err(StoreError::Unreachable(format!(
                "PostgreSQL at {target}: {e}"
            ))),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Unreachable(format!(
                "PostgreSQL at {target}: no answer within {} s",
                CONNECT_LIMIT.as_secs()
            ))),
        }
    }

    async fn open_pool(url: &str, backend: Backend, max: u32, writer: bool) -> Result<AnyPool> {
        Ok(AnyPoolOptions::new()
            .max_connections(max)
            // SQLite: no ping before each use (a round trip to the connection's thread
            // per query; a file-backed connection does not go stale). PostgreSQL keeps
            // the ping, so connections broken by a server restart are replaced rather
            // than failing a request.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the single writer; a busy timeout
                        // turns writer contention into waiting, not errors.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        if writer {
                            // Commits do not wait for the disk themselves; each write
                            // waits for a shared fsync instead (see `durable`).
                            sqlx::query("PRAGMA synchronous = NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            // Checkpoints run beside the writer (see
                            // `Store::wal_checkpoint`), not inside a commit that some
                            // request is waiting for; this is only a backstop (~40 MB).
                            sqlx::query("PRAGMA wal_autocheckpoint = 10000")
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?)
    }

    /// A new, empty schema named `{tag}_{random id}` on the PostgreSQL server at
    /// `base`, and the URL that uses it (its `search_path`): runs of tests and
    /// benchmarks side by side on one database, without seeing each other.
    pub async fn new_schema(base: &str, tag: &str) -> Result<String> {
        use sqlx::Connection;
        Self::install_drivers();
        let mut conn = sqlx::AnyConnection::connect(base).await?;
        let schema = format!("{tag}_{}", crate::new_id());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
    }

    /// Register sqlx's SQLite and PostgreSQL drivers (idempotent).
    pub fn install_drivers() {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Copy the SQLite write-ahead log back into the database file (PASSIVE: without
    /// blocking the writer or readers). The hub calls this about once a second, so the
    /// checkpoint's writes and fsync happen here rather than in whichever commit
    /// crosses SQLite's automatic threshold. No-op on PostgreSQL.
    pub async fn wal_checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A named setting (hub-wide, not owner data).
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    /// Set a setting only if it is not set yet; returns the value in force.
    pub async fn setting_init(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute_durably(&self.writer)
        .await?;
        self.setting(name).await?.ok_or(StoreError::NotFound)
    }
}

/// Turn a unique-constraint violation into [`StoreError::Conflict`].
pub(crate) fn conflict(what: &str) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match &e {
        StoreError::Db(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => e,
    }
}

pub(crate) fn opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(crate) fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

/// A fresh random id: 16 random bytes, hex.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    // The OS random source failing is not recoverable; ids must not repeat.
    if getrandom_fill(&mut b).is_err() {
        tracing::error!("operating system random source failed");
        std::process::abort();
    }
    hex::encode(b)
}

fn getrandom_fill(b: &mut [u8]) -> std::result::Result<(), getrandom::Error> {
    getrandom::getrandom(b)
}
