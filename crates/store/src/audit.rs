//! The audit log table: append-only rows forming a hash chain (see
//! `threshold_core::audit`), and signed checkpoints of the chain head.

use crate::{Result, Store, StoreError};
use sqlx::Row;
use threshold_core::audit::AuditEntry;

pub type AuditRow = AuditEntry;

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
    /// Append an entry to the chain. Several hub processes may append at once: the
    /// sequence number is the primary key, so a loser of the race retries on the new
    /// head.
    pub async fn append_audit(
        &self,
        time_ms: i64,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: &str,
    ) -> Result<AuditEntry> {
        for _ in 0..50 {
            let head = self.audit_head().await?;
            let e = AuditEntry::next(head, time_ms, kind, actor, subject, detail);
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
            .execute(&self.pool)
            .await?;
            if r.rows_affected() == 1 {
                return Ok(e);
            }
        }
        Err(StoreError::Conflict("audit log head kept moving".into()))
    }

    pub async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
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
            .execute(&self.pool)
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
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
