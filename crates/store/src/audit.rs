//! The audit log table: append-only rows forming a hash chain (see
//! `threshold_core::audit`), and signed checkpoints of the chain head.

use crate::events::NewTimelineRow;
use crate::{Result, Store, StoreError};
use sqlx::Row;
use threshold_core::audit::AuditEntry;

pub type AuditRow = AuditEntry;

/// An audit entry to append; the store gives it its place in the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditDraft {
    pub time_ms: i64,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub detail: String,
}

/// Records to write together, and what must hold for them to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalJob {
    pub claim: Option<EntryClaim>,
    pub audit: Vec<AuditDraft>,
    pub timeline: Vec<NewTimelineRow>,
}

/// Let a courier in: the delivery moves from `scheduled` to `inside`, its access
/// session opens and its recording starts. Of several concurrent claims on one
/// delivery exactly one succeeds.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryClaim {
    pub delivery_id: String,
    pub home_id: String,
    pub grant_ref: String,
    pub now_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// The job's audit entries, as appended.
    Written(Vec<AuditEntry>),
    /// The claim did not hold (the delivery had left `scheduled`); nothing written.
    ClaimLost,
}

async fn claim_entry(conn: &mut sqlx::AnyConnection, c: &EntryClaim) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE deliveries SET state = 'inside', updated_ms = $1 WHERE id = $2 AND state = 'scheduled'",
    )
    .bind(c.now_ms)
    .bind(&c.delivery_id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    crate::access::insert_session(
        &mut *conn,
        &c.home_id,
        &c.grant_ref,
        Some(&c.delivery_id),
        c.now_ms,
        None,
    )
    .await?;
    crate::media::insert_recording(conn, &c.delivery_id, &c.home_id, c.now_ms).await?;
    Ok(true)
}

/// Insert one chained entry; false if its sequence number is taken (another writer).
async fn insert_audit(conn: &mut sqlx::AnyConnection, e: &AuditEntry) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO audit_log (seq, time_ms, kind, actor, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (seq) DO NOTHING",
    )
    .bind(e.seq as i64)
    .bind(e.time_ms)
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.subject)
    .bind(&e.detail)
    .bind(hex::encode(e.prev_hash))
    .bind(hex::encode(e.hash))
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
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
        let any_audit = jobs.iter().any(|j| !j.audit.is_empty());
        'attempt: for _ in 0..50 {
            let mut tx = self.writer.begin().await?;
            let mut head = if any_audit {
                audit_head_in(&mut tx).await?
            } else {
                None
            };
            let mut outcomes = Vec::with_capacity(jobs.len());
            for job in jobs {
                if let Some(c) = &job.claim {
                    if !claim_entry(&mut tx, c).await? {
                        outcomes.push(JobOutcome::ClaimLost);
                        continue;
                    }
                }
                let mut written = Vec::with_capacity(job.audit.len());
                for d in &job.audit {
                    let e =
                        AuditEntry::next(head, d.time_ms, &d.kind, &d.actor, &d.subject, &d.detail);
                    if !insert_audit(&mut tx, &e).await? {
                        tx.rollback().await?;
                        continue 'attempt;
                    }
                    head = Some((e.seq, e.hash));
                    written.push(e);
                }
                for t in &job.timeline {
                    crate::events::insert_timeline(&mut tx, t).await?;
                }
                outcomes.push(JobOutcome::Written(written));
            }
            tx.commit().await?;
            return Ok(outcomes);
        }
        Err(StoreError::Conflict("audit log head kept moving".into()))
    }

    pub async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        let mut conn = self.pool.acquire().await?;
        audit_head_in(&mut conn).await
    }

    /// Entries with `seq > after`, in order, at most `limit`.
    pub async fn audit_page(&self, after: u64, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, time_ms, kind, actor, subject, detail, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                Ok(AuditEntry {
                    seq: seq as u64,
                    time_ms: r.try_get("time_ms")?,
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                    prev_hash: hash32(&r.try_get::<String, _>("prev_hash")?)?,
                    hash: hash32(&r.try_get::<String, _>("hash")?)?,
                })
            })
            .collect()
    }

    pub async fn add_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        sqlx::query("INSERT INTO audit_checkpoints (seq, hash, time_ms, hub_key, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING")
            .bind(c.seq)
            .bind(&c.hash)
            .bind(c.time_ms)
            .bind(&c.hub_key)
            .bind(&c.signature)
            .execute(&self.writer)
            .await?;
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

    /// For tests of tamper detection only: overwrite an entry's detail in place.
    pub async fn tamper_audit_detail_for_tests(&self, seq: u64, detail: &str) -> Result<()> {
        sqlx::query("UPDATE audit_log SET detail = $1 WHERE seq = $2")
            .bind(detail)
            .bind(seq as i64)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
