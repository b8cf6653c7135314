//! Alerts about the hub itself, not about a home: raised once per cause (the cause key
//! is unique, so two raises of one cause store one row), resolved when the cause ends.

use crate::durable::Durably;
use crate::{opt_i64, Result, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
pub struct SystemAlertRow {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub message: String,
    /// JSON: what the hub knew when it raised it.
    pub evidence: String,
    pub cause_key: String,
    pub raised_ms: i64,
    pub resolved_ms: Option<i64>,
}

/// What [`Store::raise_system_alert`] stores.
#[derive(Clone, Copy, Debug)]
pub struct NewSystemAlert<'a> {
    pub kind: &'a str,
    pub severity: &'a str,
    pub message: &'a str,
    pub evidence: &'a str,
    pub cause_key: &'a str,
}

const COLS: &str = "id, kind, severity, message, evidence, cause_key, raised_ms, resolved_ms";

fn row(r: &AnyRow) -> Result<SystemAlertRow> {
    Ok(SystemAlertRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        severity: r.try_get("severity")?,
        message: r.try_get("message")?,
        evidence: r.try_get("evidence")?,
        cause_key: r.try_get("cause_key")?,
        raised_ms: r.try_get("raised_ms")?,
        resolved_ms: opt_i64(r, "resolved_ms")?,
    })
}

impl Store {
    /// Store a system alert; `None` if one with the same cause key exists already.
    pub async fn raise_system_alert(
        &self,
        a: NewSystemAlert<'_>,
        now: i64,
    ) -> Result<Option<SystemAlertRow>> {
        let id = crate::new_id();
        let r = sqlx::query(
            "INSERT INTO system_alerts (id, kind, severity, message, evidence, cause_key, raised_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(a.kind)
        .bind(a.severity)
        .bind(a.message)
        .bind(a.evidence)
        .bind(a.cause_key)
        .bind(now)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(Some(SystemAlertRow {
            id,
            kind: a.kind.to_owned(),
            severity: a.severity.to_owned(),
            message: a.message.to_owned(),
            evidence: a.evidence.to_owned(),
            cause_key: a.cause_key.to_owned(),
            raised_ms: now,
            resolved_ms: None,
        }))
    }

    /// The cause has ended: mark its alert resolved (once). False if there was no
    /// unresolved alert for it.
    pub async fn resolve_system_alert(&self, cause_key: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE system_alerts SET resolved_ms = $1 WHERE cause_key = $2 AND resolved_ms IS NULL",
        )
        .bind(now)
        .bind(cause_key)
        .execute_durably(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The newest system alerts first.
    pub async fn system_alerts(&self, limit: i64) -> Result<Vec<SystemAlertRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM system_alerts ORDER BY raised_ms DESC, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }
}
