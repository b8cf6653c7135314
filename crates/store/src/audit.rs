//! The audit log table: append-only rows forming a hash chain (see
//! `threshold_core::audit`), and signed checkpoints of the chain head.

use crate::durable::Durably;
use crate::events::NewTimelineRow;
use crate::{Result, Store, StoreError};
use sqlx::Row;
use threshold_core::audit::{AuditEntry, EntryHome};

pub type AuditRow = AuditEntry;

/// An audit entry to append; the store gives it its place in the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditDraft {
    pub time_ms: i64,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub detail: String,
    /// The home the entry belongs to (committed in its hash); `None`: hub-wide.
    pub home: Option<String>,
}

/// Records to write together, and what must hold for them to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalJob {
    /// Written only if this claim holds.
    pub claim: Option<EntryClaim>,
    /// A device's event record, stored first; the rest is written only if the
    /// record is new.
    pub event: Option<NewDeviceEvent>,
    pub audit: Vec<AuditDraft>,
    pub timeline: Vec<NewTimelineRow>,
}

/// A device's event record with what the hub's view of its log becomes: the event
/// high-water mark and, when `gaps` is given, the device's open gaps. Stored in one
/// commit, so after a crash the marks never claim a record the database lacks (a
/// record below the mark and outside the gaps counts as received).
#[derive(Clone, Debug, PartialEq)]
pub struct NewDeviceEvent {
    pub row: crate::DeviceEventRow,
    pub gaps: Option<Vec<crate::GapRow>>,
}

/// Let a courier in: the delivery moves from `scheduled` to `inside`, its access
/// session opens and its recording starts. Of several concurrent claims on one
/// delivery exactly one succeeds.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryClaim {
    pub delivery_id: String,
    /// The delivery's state the claim moves it from, and to (the state machine's
    /// step for a granted entry, `threshold_core::delivery`).
    pub from_state: &'static str,
    pub to_state: &'static str,
    pub home_id: String,
    pub door_id: String,
    pub grant_ref: String,
    pub now_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// The job's audit entries, as appended.
    Written(Vec<AuditEntry>),
    /// The claim did not hold (the delivery had left `scheduled`); nothing written.
    ClaimLost,
    /// The event record was already stored; nothing written.
    EventKnown,
}

/// A claim's writes: move the delivery out of `scheduled` (the claim holds only if
/// this changes the row), open its access session, start its recording.
async fn claim_entry(conn: &mut sqlx::AnyConnection, c: &EntryClaim) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE deliveries SET state = $1, updated_ms = $2 WHERE id = $3 AND state = $4",
    )
    .bind(c.to_state)
    .bind(c.now_ms)
    .bind(&c.delivery_id)
    .bind(c.from_state)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved != 1 {
        return Ok(false);
    }
    crate::access::insert_session(
        &mut *conn,
        &c.home_id,
        Some(&c.door_id),
        &c.grant_ref,
        Some(&c.delivery_id),
        c.now_ms,
        None,
    )
    .await?;
    crate::media::insert_recording(conn, &c.delivery_id, &c.home_id, c.now_ms).await?;
    Ok(true)
}

/// The last entry of the chain (sequence number and hash), if any.
pub(crate) type Head = Option<(u64, [u8; 32])>;

/// Chain `drafts` onto `head`, in order, moving `head` to the last of them.
pub(crate) fn chain_onto(head: &mut Head, drafts: &[AuditDraft]) -> Vec<AuditEntry> {
    drafts
        .iter()
        .map(|d| {
            let e = AuditEntry::next(
                *head,
                d.time_ms,
                &d.kind,
                &d.actor,
                &d.subject,
                &d.detail,
                d.home.as_deref(),
            );
            *head = Some((e.seq, e.hash));
            e
        })
        .collect()
}

/// Rows per multi-row INSERT: well under SQLite's and PostgreSQL's limits on bound
/// parameters (32 766 and 65 535) at ten per row.
const ROWS_PER_INSERT: usize = 1000;

/// Insert chained entries, a statement per thousand; false if any sequence number
/// is taken (another writer appended first: the caller rolls back and retries).
async fn insert_audit(conn: &mut sqlx::AnyConnection, entries: &[AuditEntry]) -> Result<bool> {
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO audit_log (seq, time_ms, kind, actor, subject, detail, prev_hash, hash, v, home_id) VALUES {} \
             ON CONFLICT (seq) DO NOTHING",
            crate::sql::values_placeholders(chunk.len(), 10)
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.seq as i64)
                .bind(e.time_ms)
                .bind(&e.kind)
                .bind(&e.actor)
                .bind(&e.subject)
                .bind(&e.detail)
                .bind(hex::encode(e.prev_hash))
                .bind(hex::encode(e.hash))
                .bind(if e.home.is_legacy() { 1i64 } else { 2i64 })
                .bind(e.home.id().map(str::to_owned));
        }
        if q.execute(&mut *conn).await?.rows_affected() != chunk.len() as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn audit_head_in(conn: &mut sqlx::AnyConnection) -> Result<Option<(u64, [u8; 32])>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(conn)
        .await?;
    match row {
        Some(r) => {
            let seq: i64 = r.try_get("seq")?;
            let hash: String = r.try_get("hash")?;
            Ok(Some((seq as u64, hash32(&hash)?)))
        }
        None => Ok(None),
    }
}

/// For tests: sign a checkpoint (`seq`, `hash`, `time_ms`) → (hub key, signature), hex.
#[doc(hidden)]
pub type Resign<'a> = dyn Fn(u64, &[u8; 32], i64) -> (String, String) + Sync + 'a;

#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRow {
    pub seq: i64,
    pub hash: String,
    pub time_ms: i64,
    pub hub_key: String,
    pub signature: String,
}

fn hash32(s: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| StoreError::Conflict(format!("stored hash is not 32 bytes of hex: {s:?}")))?;
    Ok(out)
}

impl Store {
    /// Append one entry to the chain (see [`Store::append_journal`]).
    pub async fn append_audit(
        &self,
        time_ms: i64,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: &str,
    ) -> Result<AuditEntry> {
        let draft = AuditDraft {
            time_ms,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            detail: detail.to_owned(),
            home: None,
        };
        self.append_journal(std::slice::from_ref(&draft), &[])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Conflict("audit append wrote nothing".into()))
    }

    /// Append entries to the chain, in order, and add timeline rows, in one commit.
    pub async fn append_journal(
        &self,
        audit: &[AuditDraft],
        timeline: &[NewTimelineRow],
    ) -> Result<Vec<AuditEntry>> {
        let job = JournalJob {
            claim: None,
            event: None,
            audit: audit.to_vec(),
            timeline: timeline.to_vec(),
        };
        match self.write_journal(std::slice::from_ref(&job)).await?.pop() {
            Some(JobOutcome::Written(entries)) => Ok(entries),
            _ => Err(StoreError::Conflict("journal wrote nothing".into())),
        }
    }

    /// Write a group of jobs in one transaction, in order: one commit for all of them
    /// (the hub batches the writes of concurrent requests this way). A job with a
    /// claim is written only if its claim succeeds. Several hub processes may append
    /// at once: the audit sequence number is the primary key, so a loser of the race
    /// rolls back and retries on the new head.
    pub async fn write_journal(&self, jobs: &[JournalJob]) -> Result<Vec<JobOutcome>> {
        let outcomes = self.write_journal_unsynced(jobs).await?;
        self.sync().await?;
        Ok(outcomes)
    }

    /// [`Store::write_journal`] without waiting for the disk: committed, visible to
    /// readers, but not to be acted on (answered, acknowledged, sent) before
    /// [`Store::sync`] returns. Lets a writer prepare its next transaction while the
    /// disk confirms this one.
    pub async fn write_journal_unsynced(&self, jobs: &[JournalJob]) -> Result<Vec<JobOutcome>> {
        let any_audit = jobs.iter().any(|j| !j.audit.is_empty());
        for attempt in 0..50 {
            let mut tx = self.writer.begin().await?;
            // The head this process last committed, on a first attempt; after a
            // conflict, the one in the database.
            let cached = if attempt == 0 {
                self.cached_audit_head()
            } else {
                None
            };
            let mut head = match cached {
                Some(h) => h,
                None if any_audit => audit_head_in(&mut tx).await?,
                None => None,
            };
            let mut outcomes = Vec::with_capacity(jobs.len());
            let mut entries = Vec::new();
            let mut timeline = Vec::new();
            for job in jobs {
                if let Some(c) = &job.claim {
                    if !claim_entry(&mut tx, c).await? {
                        outcomes.push(JobOutcome::ClaimLost);
                        continue;
                    }
                }
                if let Some(ev) = &job.event {
                    if !crate::events::insert_device_event(&mut tx, ev).await? {
                        outcomes.push(JobOutcome::EventKnown);
                        continue;
                    }
                }
                let written = chain_onto(&mut head, &job.audit);
                entries.extend(written.iter().cloned());
                timeline.extend(job.timeline.iter());
                outcomes.push(JobOutcome::Written(written));
            }
            if !insert_audit(&mut tx, &entries).await? {
                tx.rollback().await?;
                self.set_cached_audit_head(None);
                continue;
            }
            crate::events::insert_timeline_rows(&mut tx, &timeline).await?;
            tx.commit_unsynced().await?;
            if any_audit || cached.is_some() {
                self.set_cached_audit_head(Some(head));
            }
            return Ok(outcomes);
        }
        Err(StoreError::Conflict("audit log head kept moving".into()))
    }

    /// Wait until every write committed so far is on disk.
    pub async fn sync(&self) -> Result<()> {
        self.writer.durable().await
    }

    fn cached_audit_head(&self) -> Option<Head> {
        self.audit_head.lock().ok().and_then(|h| *h)
    }

    fn set_cached_audit_head(&self, head: Option<Head>) {
        if let Ok(mut h) = self.audit_head.lock() {
            *h = head;
        }
    }

    pub async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        let mut conn = self.pool.acquire().await?;
        audit_head_in(&mut conn).await
    }

    /// Entries with `seq > after`, in order, at most `limit`.
    pub async fn audit_page(&self, after: u64, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, time_ms, kind, actor, subject, detail, prev_hash, hash, v, home_id FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                let v: i64 = r.try_get("v")?;
                let home = match (v, r.try_get::<Option<String>, _>("home_id")?) {
                    (1, _) => EntryHome::Legacy,
                    (2, None) => EntryHome::Hub,
                    (2, Some(h)) => EntryHome::Home(h),
                    (v, _) => {
                        return Err(StoreError::Conflict(format!(
                            "audit entry {seq}: unknown form {v}"
                        )))
                    }
                };
                Ok(AuditEntry {
                    seq: seq as u64,
                    time_ms: r.try_get("time_ms")?,
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                    home,
                    prev_hash: hash32(&r.try_get::<String, _>("prev_hash")?)?,
                    hash: hash32(&r.try_get::<String, _>("hash")?)?,
                })
            })
            .collect()
    }

    /// Store a signed checkpoint of the chain head, without waiting for the disk (see
    /// [`Store::write_journal_unsynced`]): the journal writes its checkpoints between
    /// a batch and that batch's sync, which covers both.
    pub async fn add_checkpoint_unsynced(&self, c: &CheckpointRow) -> Result<()> {
        let q = sqlx::query("INSERT INTO audit_checkpoints (seq, hash, time_ms, hub_key, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING")
            .bind(c.seq)
            .bind(&c.hash)
            .bind(c.time_ms)
            .bind(&c.hub_key)
            .bind(&c.signature);
        self.writer.execute_unsynced(q).await?;
        Ok(())
    }

    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        let rows = sqlx::query(
            "SELECT seq, hash, time_ms, hub_key, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckpointRow {
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                    time_ms: r.try_get("time_ms")?,
                    hub_key: r.try_get("hub_key")?,
                    signature: r.try_get("signature")?,
                })
            })
            .collect()
    }

    /// Whether a home of this id exists (whoever owns it).
    pub async fn home_exists(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT id FROM homes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// The newest v1 entry (written before entries committed to a home), if any.
    pub async fn last_legacy_audit_seq(&self) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT MAX(seq) AS m FROM audit_log WHERE v = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("m")?.map(|s| s as u64))
    }

    /// For tests of upgrades only: append v1 entries, as hubs wrote them before home
    /// commitments.
    #[doc(hidden)]
    pub async fn append_legacy_audit_for_tests(&self, drafts: &[AuditDraft]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let mut head = audit_head_in(&mut tx).await?;
        let entries: Vec<AuditEntry> = drafts
            .iter()
            .map(|d| {
                let e = AuditEntry::chained(
                    head,
                    d.time_ms,
                    &d.kind,
                    &d.actor,
                    &d.subject,
                    &d.detail,
                    EntryHome::Legacy,
                );
                head = Some((e.seq, e.hash));
                e
            })
            .collect();
        if !insert_audit(&mut tx, &entries).await? {
            return Err(StoreError::Conflict("audit log head moved".into()));
        }
        tx.commit_unsynced().await?;
        self.set_cached_audit_head(None);
        self.sync().await
    }

    /// For tests of a rewritten history only: change entry `seq`'s detail, chain every
    /// later entry anew on it, and replace every checkpoint with `sign(seq, hash,
    /// time_ms)` = (hub key, signature), as someone holding a key would.
    #[doc(hidden)]
    pub async fn rewrite_audit_for_tests(
        &self,
        seq: u64,
        detail: &str,
        sign: &Resign<'_>,
    ) -> Result<()> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.audit_page(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            all.extend(page);
        }
        let mut head: Head = None;
        let mut hashes = std::collections::HashMap::new();
        for e in &mut all {
            if e.seq == seq {
                e.detail = detail.to_owned();
            }
            *e = AuditEntry::chained(
                head,
                e.time_ms,
                &e.kind,
                &e.actor,
                &e.subject,
                &e.detail,
                e.home.clone(),
            );
            head = Some((e.seq, e.hash));
            hashes.insert(e.seq, e.hash);
        }
        let checkpoints = self.checkpoints().await?;
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM audit_log")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM audit_checkpoints")
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, &all).await?;
        for c in checkpoints {
            let Some(hash) = hashes.get(&(c.seq as u64)) else {
                continue;
            };
            let (key, sig) = sign(c.seq as u64, hash, c.time_ms);
            sqlx::query("INSERT INTO audit_checkpoints (seq, hash, time_ms, hub_key, signature) VALUES ($1, $2, $3, $4, $5)")
                .bind(c.seq)
                .bind(hex::encode(hash))
                .bind(c.time_ms)
                .bind(key)
                .bind(sig)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit_unsynced().await?;
        self.set_cached_audit_head(None);
        self.sync().await
    }

    /// For tests of tamper detection only: overwrite an entry's detail in place.
    pub async fn tamper_audit_detail_for_tests(&self, seq: u64, detail: &str) -> Result<()> {
        sqlx::query("UPDATE audit_log SET detail = $1 WHERE seq = $2")
            .bind(detail)
            .bind(seq as i64)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }
}
