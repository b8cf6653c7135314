//! The write side of the database, and when a write counts as durable.
//!
//! On SQLite every commit used to wait for its own fsync of the write-ahead log
//! (`synchronous = FULL`), holding the one writer connection meanwhile: at a few
//! hundred commits a second on this kind of disk the commits queued behind each
//! other's fsyncs, and an unlock decision waited for them. Instead the writer commits
//! with `synchronous = NORMAL` (SQLite writes the log but does not wait for the disk)
//! and every write then waits for an fsync of the log that *started after its commit*.
//! One fsync covers every commit made before it began, so concurrent writers share
//! one (group commit), and the writer connection is free for the next transaction
//! while the disk works. A caller hears "done" only once its commit is on disk, as
//! before. PostgreSQL flushes its own log with group commit; there this is a no-op.
//!
//! An fsync that fails leaves the store refusing every later write's durability
//! (an error to each caller): the kernel may have dropped the pages it could not
//! write, so nothing written since can be vouched for. Restarting the hub recovers
//! from what is on disk.
//!
//! SQLite's one writing connection is held outside any pool and passed from writer to
//! writer by a fair lock ([`Writer::lease`]). Transactions on it are begun and ended as
//! SQL text (`BEGIN IMMEDIATE` takes SQLite's write lock up front; the connection
//! lives in the lock, so sqlx's borrowing `Transaction` cannot hold it); a holder
//! that goes away inside a transaction (a cancelled request) has it rolled back at
//! once by its guard, and if that cannot run, by the next holder before anything else.

use crate::{Result, StoreError};
use sqlx::any::{AnyArguments, AnyQueryResult};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Transaction};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Writes and their durability.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    target: Target,
    wal: Option<Arc<WalSync>>,
}

#[derive(Clone, Debug)]
enum Target {
    /// PostgreSQL: a pool; the server orders concurrent writers and group-commits.
    Pool(AnyPool),
    /// SQLite: its one writing connection, passed from writer to writer by a fair
    /// lock. Not a pool of one: a pooled connection goes back by a spawned task, and
    /// on a busy runtime the next writer waited for that task to be scheduled (a
    /// third of the journal's time per batch, milliseconds at the tail).
    Single(Arc<tokio::sync::Mutex<Slot>>),
}

#[derive(Debug)]
struct Slot {
    /// `None` once closed.
    conn: Option<AnyConnection>,
    /// A transaction begun as SQL text may still be open: its holder was cancelled
    /// or its end failed. Its guard rolls it back at once ([`SlotGuard`]); failing
    /// that, the next holder does before anything else.
    open: bool,
}

impl Writer {
    /// A writer whose commits are durable on their own (PostgreSQL).
    pub(crate) fn self_syncing(pool: AnyPool) -> Self {
        Writer {
            target: Target::Pool(pool),
            wal: None,
        }
    }

    /// A SQLite writer committing with `synchronous = NORMAL` on `conn`, made durable
    /// by syncing the log file at `wal_path`.
    pub(crate) fn syncing_wal(conn: AnyConnection, wal_path: PathBuf) -> Self {
        Writer {
            target: Target::Single(Arc::new(tokio::sync::Mutex::new(Slot {
                conn: Some(conn),
                open: false,
            }))),
            wal: Some(Arc::new(WalSync::new(wal_path))),
        }
    }

    /// The writing connection, for as long as the lease is held.
    pub(crate) async fn lease(&self) -> Result<Lease> {
        match &self.target {
            Target::Pool(pool) => Ok(Lease(Held::Pooled(pool.acquire().await?))),
            Target::Single(slot) => {
                let mut guard = SlotGuard::new(slot.clone().lock_owned().await)?;
                if guard.slot().open {
                    // Usually already rolled back by the guard that left it (see
                    // `SlotGuard`); this is for when that could not run.
                    guard.end_abandoned().await?;
                }
                Ok(Lease(Held::Single(guard)))
            }
        }
    }

    /// Run one statement in its own transaction; returns once it is durable.
    pub(crate) async fn execute<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<AnyQueryResult> {
        let r = self.execute_unsynced(q).await?;
        self.durable().await?;
        Ok(r)
    }

    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        let tx = match self.lease().await?.0 {
            Held::Pooled(conn) => TxInner::Pooled(Transaction::begin(conn, None).await?),
            Held::Single(mut guard) => {
                guard.slot().open = true;
                sqlx::query("BEGIN IMMEDIATE").execute(guard.conn()).await?;
                TxInner::Single(guard)
            }
        };
        Ok(WriteTx {
            tx,
            writer: self.clone(),
        })
    }

    /// Run one statement in its own transaction without waiting for the disk: not to
    /// be acted on before a later [`Writer::durable`] returns.
    pub(crate) async fn execute_unsynced<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<AnyQueryResult> {
        let mut lease = self.lease().await?;
        Ok(q.execute(&mut *lease).await?)
    }

    /// Wait until everything committed so far is on disk.
    pub(crate) async fn durable(&self) -> Result<()> {
        match &self.wal {
            Some(w) => w.sync().await,
            None => Ok(()),
        }
    }

    pub(crate) async fn close(&self) {
        match &self.target {
            Target::Pool(pool) => pool.close().await,
            Target::Single(slot) => {
                if let Some(conn) = slot.lock().await.conn.take() {
                    let _ = conn.close().await;
                }
            }
        }
    }
}

/// SQLite's writing connection, held. Dropped inside a transaction begun as text (a
/// holder cancelled, or its `COMMIT` failed), it rolls that back at once on a task of
/// its own, still holding the connection: an abandoned transaction must not keep
/// SQLite's write lock from other processes until this one writes again.
struct SlotGuard(Option<tokio::sync::OwnedMutexGuard<Slot>>);

impl SlotGuard {
    /// Fails if the writer is closed.
    fn new(guard: tokio::sync::OwnedMutexGuard<Slot>) -> Result<Self> {
        if guard.conn.is_none() {
            return Err(StoreError::Db(sqlx::Error::PoolClosed));
        }
        Ok(SlotGuard(Some(guard)))
    }

    fn slot(&mut self) -> &mut Slot {
        // Taken only in `drop`.
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!())
    }

    fn conn(&mut self) -> &mut AnyConnection {
        // Checked in `new`, and `Writer::close` needs the lock this guard holds.
        self.slot().conn.as_mut().unwrap_or_else(|| unreachable!())
    }

    fn conn_ref(&self) -> &AnyConnection {
        let slot = self.0.as_deref().unwrap_or_else(|| unreachable!());
        slot.conn.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Roll back a transaction that may still be open. "No transaction is active"
    /// (it had ended after all, or never begun) is success; any other failure leaves
    /// it marked open and is an error, so no write lands in it unseen.
    async fn end_abandoned(&mut self) -> Result<()> {
        if sqlx::query("ROLLBACK").execute(self.conn()).await.is_ok() {
            tracing::warn!("rolled back a write transaction its holder abandoned");
        } else {
            // Either none was open (it had ended, or never begun) or the rollback
            // failed. sqlx's `Any` driver passes on neither SQLite's result code nor
            // the connection's autocommit state, so ask by behaviour: `BEGIN`
            // succeeds only with no transaction open.
            sqlx::query("BEGIN").execute(self.conn()).await?;
            sqlx::query("ROLLBACK").execute(self.conn()).await?;
        }
        self.slot().open = false;
        Ok(())
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let Some(guard) = self.0.take() else { return };
        if !guard.open {
            return;
        }
        // Without a runtime the next `Writer::lease` rolls it back instead.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // The bare guard goes into the task, and becomes a `SlotGuard` only once
            // the task runs. A runtime shutting down cancels each task as it is
            // spawned: cancelled, a `SlotGuard` would be dropped here again and spawn
            // again, without end, until the stack overflowed (the benchmark's error
            // exit). Dropped bare, it leaves the transaction marked open for the next
            // `Writer::lease`.
            rt.spawn(async move {
                let mut left = SlotGuard(Some(guard));
                if let Err(e) = left.end_abandoned().await {
                    tracing::error!(error = %e, "could not roll back an abandoned write transaction");
                    // Still marked open: the next `Writer::lease` tries again before
                    // anything else. Released without this drop, which would try again
                    // at once, in a loop, holding the writer.
                    drop(left.0.take());
                }
            });
        }
    }
}

/// The writing connection, held: see [`Writer::lease`].
pub(crate) struct Lease(Held);

enum Held {
    Pooled(PoolConnection<Any>),
    Single(SlotGuard),
}

impl Lease {
    /// As a holder does that begins a transaction as SQL text on the raw
    /// connection: from now on dropping the lease rolls back whatever is open
    /// (SQLite), or closes the connection (a pool).
    #[cfg(test)]
    fn begun(&mut self) {
        match &mut self.0 {
            Held::Pooled(c) => c.close_on_drop(),
            Held::Single(g) => g.slot().open = true,
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            Held::Pooled(c) => c,
            Held::Single(g) => g.conn_ref(),
        }
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            Held::Pooled(c) => c,
            Held::Single(g) => g.conn(),
        }
    }
}

/// `query.execute_durably(&writer)`: [`Writer::execute`] in the order a query reads.
pub(crate) trait Durably<'q> {
    async fn execute_durably(self, w: &Writer) -> Result<AnyQueryResult>;
}

impl<'q> Durably<'q> for sqlx::query::Query<'q, Any, AnyArguments<'q>> {
    async fn execute_durably(self, w: &Writer) -> Result<AnyQueryResult> {
        w.execute(self).await
    }
}

/// A write transaction; [`WriteTx::commit`] returns once the commit is durable.
/// Dropped without commit or rollback, it is rolled back (by sqlx on a pool; on
/// SQLite by its [`SlotGuard`]).
pub(crate) struct WriteTx {
    tx: TxInner,
    writer: Writer,
}

enum TxInner {
    Pooled(Transaction<'static, Any>),
    Single(SlotGuard),
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<()> {
        let writer = self.writer.clone();
        self.commit_unsynced().await?;
        writer.durable().await
    }

    /// Commit without waiting for the disk: the caller must wait for
    /// [`Writer::durable`] before acting on what it wrote.
    pub(crate) async fn commit_unsynced(self) -> Result<()> {
        self.end("COMMIT").await
    }

    pub(crate) async fn rollback(self) -> Result<()> {
        self.end("ROLLBACK").await
    }

    async fn end(self, sql: &'static str) -> Result<()> {
        match self.tx {
            TxInner::Pooled(tx) if sql == "COMMIT" => Ok(tx.commit().await?),
            TxInner::Pooled(tx) => Ok(tx.rollback().await?),
            TxInner::Single(mut g) => {
                // On failure the guard, dropped still marked open, rolls back.
                sqlx::query(sql).execute(g.conn()).await?;
                g.slot().open = false;
                Ok(())
            }
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &Self::Target {
        match &self.tx {
            TxInner::Pooled(tx) => tx,
            TxInner::Single(g) => g.conn_ref(),
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match &mut self.tx {
            TxInner::Pooled(tx) => tx,
            TxInner::Single(g) => g.conn(),
        }
    }
}

/// Shared fsyncs of a SQLite write-ahead log.
#[derive(Debug)]
pub(crate) struct WalSync {
    path: PathBuf,
    state: Mutex<SyncState>,
    status: watch::Sender<Synced>,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Tickets handed out: a ticket is covered by any fsync that starts after it.
    issued: u64,
    /// An fsync task is running (at most one).
    running: bool,
    /// The directory has been synced once (the log file's own entry in it).
    dir_synced: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Synced {
    /// Every ticket up to this one is on disk.
    upto: u64,
    /// Set by a failed fsync; from then on nothing is vouched for.
    failed: Option<String>,
}

impl WalSync {
    pub(crate) fn new(path: PathBuf) -> Self {
        WalSync {
            path,
            state: Mutex::new(SyncState::default()),
            status: watch::channel(Synced::default()).0,
        }
    }

    /// Wait for an fsync that starts after this call.
    pub(crate) async fn sync(self: &Arc<Self>) -> Result<()> {
        let mut rx = self.status.subscribe();
        let (ticket, start) = {
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            s.issued += 1;
            let start = !s.running;
            s.running = true;
            (s.issued, start)
        };
        if start {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.run());
        }
        let seen = rx
            .wait_for(|s| s.failed.is_some() || s.upto >= ticket)
            .await
            .map_err(|_| StoreError::NotDurable("the log syncer stopped".into()))?;
        match &seen.failed {
            Some(e) => Err(StoreError::NotDurable(format!(
                "could not sync the database log to disk: {e}"
            ))),
            None => Ok(()),
        }
    }

    /// The fsync loop: runs while tickets are outstanding, then ends.
    fn run(&self) {
        loop {
            let (target, sync_dir) = {
                let Ok(mut s) = self.state.lock() else {
                    // Fail the waiters rather than leave them waiting for nobody.
                    self.status
                        .send_modify(|s| s.failed = Some("the syncer's lock is poisoned".into()));
                    return;
                };
                let done = self.status.borrow().upto;
                if s.issued == done || self.status.borrow().failed.is_some() {
                    s.running = false;
                    return;
                }
                (s.issued, !s.dir_synced)
            };
            match self.fsync(sync_dir) {
                Ok(()) => {
                    if sync_dir {
                        if let Ok(mut s) = self.state.lock() {
                            s.dir_synced = true;
                        }
                    }
                    self.status.send_modify(|s| s.upto = s.upto.max(target));
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %self.path.display(), "fsync of the database log failed; refusing further writes");
                    self.status.send_modify(|s| s.failed = Some(e.to_string()));
                }
            }
        }
    }

    fn fsync(&self, sync_dir: bool) -> std::io::Result<()> {
        match std::fs::File::open(&self.path) {
            Ok(f) => f.sync_data()?,
            // No log file: no log frames to lose (SQLite removes it only after copying
            // everything into the database file and syncing that).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if sync_dir {
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

fn poisoned() -> StoreError {
    StoreError::NotDurable("the log syncer's lock is poisoned".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sqlx::Row;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// A task holding the writer inside a transaction, cancelled by its runtime
    /// shutting down: the rollback cannot run then (the shutdown cancels it as it is
    /// spawned), and the next writer, on another runtime, does it first. Before, each
    /// cancelled rollback spawned another until the stack overflowed.
    #[test]
    fn a_transaction_abandoned_as_the_runtime_shuts_down_is_rolled_back_by_the_next_writer() {
        let first = runtime();
        let (store, _dir) = first.block_on(crate::testing::sqlite()).unwrap();
        first
            .block_on(
                store
                    .writer
                    .execute(sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)")),
            )
            .unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let w = store.writer.clone();
        first.spawn(async move {
            let mut lease = w.lease().await.unwrap();
            lease.begun();
            sqlx::query("BEGIN IMMEDIATE; INSERT INTO t (k) VALUES (1)")
                .execute(&mut *lease)
                .await
                .unwrap();
            held_tx.send(()).unwrap();
            std::future::pending::<()>().await;
            drop(lease);
        });
        held_rx.recv().unwrap();
        drop(first);
        let second = runtime();
        second.block_on(async {
            store
                .writer
                .execute(sqlx::query("INSERT INTO t (k) VALUES (2)"))
                .await
                .unwrap();
            let rows = sqlx::query("SELECT k FROM t")
                .fetch_all(store.pool())
                .await
                .unwrap();
            let keys: Vec<i64> = rows.iter().map(|r| r.try_get(0).unwrap()).collect();
            assert_eq!(keys, [2], "the abandoned insert was rolled back");
        });
    }

    #[tokio::test]
    async fn a_transaction_left_open_is_rolled_back_before_the_next_write() {
        let (store, _dir) = crate::testing::sqlite().await.unwrap();
        let w = &store.writer;
        w.execute(sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
            .await
            .unwrap();
        // A transaction dropped without its end, as by a cancelled request.
        let mut tx = w.begin().await.unwrap();
        sqlx::query("INSERT INTO t (k) VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        drop(tx);
        // It was rolled back at once, not at the next write: another connection
        // (another process, say) gets SQLite's write lock without waiting for one.
        let mut other = store.pool().acquire().await.unwrap();
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut *other)
            .await
            .unwrap();
        let mut tries = 0;
        while sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .is_err()
        {
            tries += 1;
            assert!(tries < 500, "the abandoned transaction kept the write lock");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        sqlx::query("ROLLBACK").execute(&mut *other).await.unwrap();
        drop(other);
        // A transaction begun as text whose holder went away before its end.
        let mut lease = w.lease().await.unwrap();
        lease.begun();
        sqlx::query("BEGIN IMMEDIATE; INSERT INTO t (k) VALUES (2)")
            .execute(&mut *lease)
            .await
            .unwrap();
        drop(lease);
        // The next write is its own and committed; neither abandoned row is.
        w.execute(sqlx::query("INSERT INTO t (k) VALUES (3)"))
            .await
            .unwrap();
        let keys: Vec<(i64,)> = sqlx::query_as("SELECT k FROM t")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(keys, vec![(3,)]);
        // A lease marked as beginning a transaction that never began: the next
        // holder's rollback finds none, which is no error.
        let mut lease = w.lease().await.unwrap();
        lease.begun();
        drop(lease);
        w.execute(sqlx::query("INSERT INTO t (k) VALUES (6)"))
            .await
            .unwrap();
        // A transaction that ended by itself before its holder went away: the probe
        // finds none open and rolls back nothing committed.
        let mut lease = w.lease().await.unwrap();
        lease.begun();
        sqlx::query("BEGIN IMMEDIATE; INSERT INTO t (k) VALUES (4); COMMIT")
            .execute(&mut *lease)
            .await
            .unwrap();
        drop(lease);
        w.execute(sqlx::query("INSERT INTO t (k) VALUES (5)"))
            .await
            .unwrap();
        let n: (i64,) = sqlx::query_as("SELECT count(*) FROM t")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n.0, 4);
    }

    #[tokio::test]
    async fn concurrent_syncs_share_fsyncs_and_all_return() {
        let dir = std::env::temp_dir().join(format!("threshold-walsync-{}", crate::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db-wal");
        std::fs::write(&path, b"frames").unwrap();
        let w = Arc::new(WalSync::new(path));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move { w.sync().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let s = w.status.borrow().clone();
        assert_eq!(s.upto, 64, "every ticket covered");
        assert!(s.failed.is_none());
        assert!(w.state.lock().unwrap().dir_synced);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_missing_log_has_nothing_to_lose() {
        let w = Arc::new(WalSync::new(
            std::env::temp_dir().join(format!("threshold-nowal-{}", crate::new_id())),
        ));
        w.sync().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_that_write_and_every_later_one() {
        // A log path whose parent is a file: opening it fails with an error other
        // than "not found".
        let file = std::env::temp_dir().join(format!("threshold-notadir-{}", crate::new_id()));
        std::fs::write(&file, b"x").unwrap();
        let w = Arc::new(WalSync::new(file.join("db-wal")));
        assert!(w.sync().await.is_err());
        assert!(w.sync().await.is_err(), "poisoned for good");
        let _ = std::fs::remove_file(&file);
    }
}
