//! Device event records (signed, kept as received), the home timeline and alerts.

use crate::durable::Durably;
use crate::{opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
pub struct DeviceEventRow {
    pub device_id: String,
    pub seq: i64,
    pub device_time_ms: i64,
    pub received_ms: i64,
    pub event_type: String,
    pub detail: String,
    /// The signed message exactly as the device sent it.
    pub raw: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TimelineRow {
    pub id: String,
    pub home_id: String,
    pub device_id: Option<String>,
    pub delivery_id: Option<String>,
    pub time_ms: i64,
    pub kind: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertRow {
    pub id: String,
    pub home_id: String,
    pub device_id: Option<String>,
    pub delivery_id: Option<String>,
    pub severity: String,
    pub kind: String,
    pub message: String,
    pub evidence: String,
    pub created_ms: i64,
    pub acked_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct NewAlert<'a> {
    pub home_id: &'a str,
    pub device_id: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    pub severity: &'a str,
    pub kind: &'a str,
    pub message: &'a str,
    pub evidence: &'a str,
    /// What caused it, unique per cause (e.g. `camera_lost_during_delivery:<delivery>`):
    /// a second alert with the same key is not stored. None: no deduplication.
    pub cause_key: Option<&'a str>,
}

/// A timeline row, as every timeline query selects it.
pub(crate) fn timeline(r: &AnyRow) -> Result<TimelineRow> {
    Ok(TimelineRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        device_id: r.try_get::<Option<String>, _>("device_id")?,
        delivery_id: r.try_get::<Option<String>, _>("delivery_id")?,
        time_ms: r.try_get("time_ms")?,
        kind: r.try_get("kind")?,
        detail: r.try_get("detail")?,
    })
}

/// An alert row, as every alert query selects it.
pub(crate) fn alert(r: &AnyRow) -> Result<AlertRow> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        device_id: r.try_get::<Option<String>, _>("device_id")?,
        delivery_id: r.try_get::<Option<String>, _>("delivery_id")?,
        severity: r.try_get("severity")?,
        kind: r.try_get("kind")?,
        message: r.try_get("message")?,
        evidence: r.try_get("evidence")?,
        created_ms: r.try_get("created_ms")?,
        acked_ms: opt_i64(r, "acked_ms")?,
    })
}

const TIMELINE_COLS: &str = "t.id AS id, t.home_id AS home_id, t.device_id AS device_id, t.delivery_id AS delivery_id, t.time_ms AS time_ms, t.kind AS kind, t.detail AS detail";
const ALERT_COLS: &str = "a.id AS id, a.home_id AS home_id, a.device_id AS device_id, a.delivery_id AS delivery_id, a.severity AS severity, \
    a.kind AS kind, a.message AS message, a.evidence AS evidence, a.created_ms AS created_ms, a.acked_ms AS acked_ms";

/// Entries written in one commit share their instant; what happened first comes first
/// among them: a delivery's scheduling, an entry's decision, then the capability sent
/// for it, then the rest.
const CAUSAL_RANK: &str = "CASE t.kind WHEN 'delivery.scheduled' THEN 0 WHEN 'decision' THEN 1 WHEN 'unlock_sent' THEN 2 ELSE 3 END";

impl Store {
    /// Store a device's event record and its log's marks in one commit (see
    /// [`crate::NewDeviceEvent`]). Returns false if the record was already stored.
    /// The hub stores events through its journal, with their timeline row and audit
    /// entry; this is the same write on its own.
    pub async fn store_device_event(
        &self,
        e: &DeviceEventRow,
        gaps: Option<&[crate::GapRow]>,
    ) -> Result<bool> {
        let job = crate::JournalJob {
            claim: None,
            event: Some(crate::NewDeviceEvent {
                row: e.clone(),
                gaps: gaps.map(<[_]>::to_vec),
            }),
            audit: Vec::new(),
            timeline: Vec::new(),
        };
        Ok(matches!(
            self.write_journal(std::slice::from_ref(&job)).await?.pop(),
            Some(crate::JobOutcome::Written(_))
        ))
    }

    pub async fn device_events(
        &self,
        owner_id: &str,
        device_id: &str,
        limit: i64,
    ) -> Result<Vec<DeviceEventRow>> {
        let rows = sqlx::query(
            "SELECT e.device_id AS device_id, e.seq AS seq, e.device_time_ms AS device_time_ms, e.received_ms AS received_ms, \
             e.event_type AS event_type, e.detail AS detail, e.raw AS raw FROM device_events e \
             JOIN devices d ON d.id = e.device_id JOIN homes h ON h.id = d.home_id \
             WHERE e.device_id = $1 AND h.owner_id = $2 ORDER BY e.seq DESC LIMIT $3",
        )
        .bind(device_id)
        .bind(owner_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeviceEventRow {
                    device_id: r.try_get("device_id")?,
                    seq: r.try_get("seq")?,
                    device_time_ms: r.try_get("device_time_ms")?,
                    received_ms: r.try_get("received_ms")?,
                    event_type: r.try_get("event_type")?,
                    detail: r.try_get("detail")?,
                    raw: r.try_get("raw")?,
                })
            })
            .collect()
    }

    pub async fn add_timeline(
        &self,
        home_id: &str,
        device_id: Option<&str>,
        delivery_id: Option<&str>,
        time_ms: i64,
        kind: &str,
        detail: &str,
    ) -> Result<String> {
        let row = NewTimelineRow {
            home_id: home_id.to_owned(),
            device_id: device_id.map(str::to_owned),
            delivery_id: delivery_id.map(str::to_owned),
            time_ms,
            kind: kind.to_owned(),
            detail: detail.to_owned(),
        };
        let mut tx = self.writer.begin().await?;
        let id = insert_timeline_rows(&mut tx, &[&row]).await?.pop();
        tx.commit().await?;
        id.ok_or_else(|| StoreError::Conflict("timeline insert returned no id".into()))
    }

    /// Several timeline rows in one commit (one durable write for a batch of liveness
    /// changes); their ids in order.
    pub async fn add_timeline_rows(&self, rows: &[NewTimelineRow]) -> Result<Vec<String>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<&NewTimelineRow> = rows.iter().collect();
        let mut tx = self.writer.begin().await?;
        let ids = insert_timeline_rows(&mut tx, &refs).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// An owner's home's timeline, newest first (see `CAUSAL_RANK` for entries of one
    /// instant).
    pub async fn timeline(
        &self,
        owner_id: &str,
        home_id: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<TimelineRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TIMELINE_COLS} FROM timeline t JOIN homes h ON h.id = t.home_id \
             WHERE t.home_id = $1 AND h.owner_id = $2 AND t.time_ms >= $3 \
             ORDER BY t.time_ms DESC, {CAUSAL_RANK} DESC, t.id LIMIT $4"
        ))
        .bind(home_id)
        .bind(owner_id)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(timeline).collect()
    }

    /// What a door's devices (its lock or opener, its contact sensor: at most two) put
    /// on the home's timeline between `from_ms` and `to_ms`, oldest first: the door's
    /// own account of a delivery (closed, locked, commanded).
    pub async fn door_device_timeline(
        &self,
        home_id: &str,
        devices: (&str, &str),
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<TimelineRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TIMELINE_COLS} FROM timeline t WHERE t.home_id = $1 AND t.device_id IN ($2, $3) \
             AND t.time_ms >= $4 AND t.time_ms <= $5 ORDER BY t.time_ms, {CAUSAL_RANK}, t.id LIMIT 500"
        ))
        .bind(home_id)
        .bind(devices.0)
        .bind(devices.1)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(timeline).collect()
    }

    pub async fn delivery_timeline(&self, delivery_id: &str) -> Result<Vec<TimelineRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TIMELINE_COLS} FROM timeline t WHERE t.delivery_id = $1 ORDER BY t.time_ms, {CAUSAL_RANK}, t.id"
        ))
            .bind(delivery_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(timeline).collect()
    }

    /// Store an alert. With a cause key already used, nothing is stored and the answer
    /// is `None`: the alert was raised before (by this or another hub process).
    pub async fn create_alert(&self, a: NewAlert<'_>, now: i64) -> Result<Option<AlertRow>> {
        let id = crate::new_id();
        let r = sqlx::query(
            "INSERT INTO alerts (id, home_id, device_id, delivery_id, severity, kind, message, evidence, created_ms, cause_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(a.home_id)
        .bind(a.device_id)
        .bind(a.delivery_id)
        .bind(a.severity)
        .bind(a.kind)
        .bind(a.message)
        .bind(a.evidence)
        .bind(now)
        .bind(a.cause_key)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(Some(AlertRow {
            id,
            home_id: a.home_id.to_owned(),
            device_id: a.device_id.map(str::to_owned),
            delivery_id: a.delivery_id.map(str::to_owned),
            severity: a.severity.to_owned(),
            kind: a.kind.to_owned(),
            message: a.message.to_owned(),
            evidence: a.evidence.to_owned(),
            created_ms: now,
            acked_ms: None,
        }))
    }

    pub async fn alerts(&self, owner_id: &str, limit: i64) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLS} FROM alerts a JOIN homes h ON h.id = a.home_id WHERE h.owner_id = $1 ORDER BY a.created_ms DESC, a.id LIMIT $2"
        ))
        .bind(owner_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert).collect()
    }

    /// One of an owner's alerts.
    pub async fn alert(&self, owner_id: &str, alert_id: &str) -> Result<AlertRow> {
        let row = sqlx::query(&format!(
            "SELECT {ALERT_COLS} FROM alerts a JOIN homes h ON h.id = a.home_id WHERE h.owner_id = $1 AND a.id = $2"
        ))
        .bind(owner_id)
        .bind(alert_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        alert(&row)
    }

    pub async fn ack_alert(&self, owner_id: &str, alert_id: &str, now: i64) -> Result<()> {
        let r = sqlx::query(
            "UPDATE alerts SET acked_ms = $1 WHERE id = $2 AND acked_ms IS NULL AND home_id IN (SELECT id FROM homes WHERE owner_id = $3)",
        )
        .bind(now)
        .bind(alert_id)
        .bind(owner_id)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// A timeline row to add (its id is made on insert).
#[derive(Clone, Debug, PartialEq)]
pub struct NewTimelineRow {
    pub home_id: String,
    pub device_id: Option<String>,
    pub delivery_id: Option<String>,
    pub time_ms: i64,
    pub kind: String,
    pub detail: String,
}

/// Insert a device's event record and raise its marks; false if it was already there.
pub(crate) async fn insert_device_event(
    conn: &mut sqlx::AnyConnection,
    ev: &crate::NewDeviceEvent,
) -> Result<bool> {
    let e = &ev.row;
    let stored = sqlx::query(
        "INSERT INTO device_events (device_id, seq, device_time_ms, received_ms, event_type, detail, raw) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, seq) DO NOTHING",
    )
    .bind(&e.device_id)
    .bind(e.seq)
    .bind(e.device_time_ms)
    .bind(e.received_ms)
    .bind(&e.event_type)
    .bind(&e.detail)
    .bind(e.raw.as_slice())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if stored != 1 {
        return Ok(false);
    }
    if let Some(gaps) = &ev.gaps {
        crate::devices::replace_gaps(&mut *conn, &e.device_id, crate::SeqSpaceName::Events, gaps)
            .await?;
    }
    sqlx::query("UPDATE devices SET event_hwm = $1 WHERE id = $2 AND event_hwm < $1")
        .bind(e.seq)
        .bind(&e.device_id)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// Insert timeline rows, a statement per thousand; returns their ids, in order.
pub(crate) async fn insert_timeline_rows(
    conn: &mut sqlx::AnyConnection,
    rows: &[&NewTimelineRow],
) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(1000) {
        let sql = format!(
            "INSERT INTO timeline (id, home_id, device_id, delivery_id, time_ms, kind, detail) VALUES {}",
            crate::sql::values_placeholders(chunk.len(), 7)
        );
        let mut q = sqlx::query(&sql);
        for t in chunk {
            let id = crate::new_id();
            q = q
                .bind(id.clone())
                .bind(&t.home_id)
                .bind(&t.device_id)
                .bind(&t.delivery_id)
                .bind(t.time_ms)
                .bind(&t.kind)
                .bind(&t.detail);
            ids.push(id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(ids)
}
