//! Delivery recordings, stored camera frames, and owners' webhook endpoints with their
//! delivery log. Owner-facing reads take the owner's id and filter by it.

use crate::durable::Durably;
use crate::{opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A delivery's recording: frames of the home's cameras captured between `started_ms`
/// and `ends_ms` (open while `ends_ms` is `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingRow {
    pub delivery_id: String,
    pub home_id: String,
    pub started_ms: i64,
    pub ends_ms: Option<i64>,
}

/// One stored frame (its JPEG lives on disk at `path`, relative to the media folder).
#[derive(Clone, Debug, PartialEq)]
pub struct MediaFrameRow {
    pub device_id: String,
    pub seq: i64,
    pub home_id: String,
    pub delivery_id: String,
    pub capture_ms: i64,
    pub received_ms: i64,
    /// Arrived as backlog after an outage, not live.
    pub recovered: bool,
    pub path: String,
    pub sha256: String,
    pub bytes: i64,
}

/// The endpoint columns [`endpoint`] reads, then the rest of the query.
macro_rules! select_endpoints {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner_id, url, secret, description, created_ms, event_types FROM webhook_endpoints ",
            $rest
        )
    };
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEndpointRow {
    pub id: String,
    pub owner_id: String,
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: String,
    pub description: String,
    pub created_ms: i64,
    /// The event types it receives, comma-separated; empty: all.
    pub event_types: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookDeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

fn recording(r: &AnyRow) -> Result<RecordingRow> {
    Ok(RecordingRow {
        delivery_id: r.try_get("delivery_id")?,
        home_id: r.try_get("home_id")?,
        started_ms: r.try_get("started_ms")?,
        ends_ms: opt_i64(r, "ends_ms")?,
    })
}

fn frame(r: &AnyRow) -> Result<MediaFrameRow> {
    Ok(MediaFrameRow {
        device_id: r.try_get("device_id")?,
        seq: r.try_get("seq")?,
        home_id: r.try_get("home_id")?,
        delivery_id: r.try_get("delivery_id")?,
        capture_ms: r.try_get("capture_ms")?,
        received_ms: r.try_get("received_ms")?,
        recovered: crate::flag(r, "recovered")?,
        path: r.try_get("path")?,
        sha256: r.try_get("sha256")?,
        bytes: r.try_get("bytes")?,
    })
}

fn endpoint(r: &AnyRow) -> Result<WebhookEndpointRow> {
    Ok(WebhookEndpointRow {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        url: r.try_get("url")?,
        secret: r.try_get("secret")?,
        description: r.try_get("description")?,
        created_ms: r.try_get("created_ms")?,
        event_types: r.try_get("event_types")?,
    })
}

fn wh_delivery(r: &AnyRow) -> Result<WebhookDeliveryRow> {
    Ok(WebhookDeliveryRow {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        message_id: r.try_get("message_id")?,
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_ms: r.try_get("next_attempt_ms")?,
        last_status: opt_i64(r, "last_status")?,
        last_error: r.try_get::<Option<String>, _>("last_error")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

const FRAME_COLS: &str = "f.device_id AS device_id, f.seq AS seq, f.home_id AS home_id, f.delivery_id AS delivery_id, \
    f.capture_ms AS capture_ms, f.received_ms AS received_ms, f.recovered AS recovered, f.path AS path, f.sha256 AS sha256, f.bytes AS bytes";

impl Store {
    /// Open a delivery's recording (idempotent: a second call changes nothing).
    pub async fn start_recording(
        &self,
        delivery_id: &str,
        home_id: &str,
        started_ms: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_recording(&mut tx, delivery_id, home_id, started_ms).await?;
        tx.commit().await
    }

    /// Set the end of a recording that has none yet.
    pub async fn end_recording(&self, delivery_id: &str, ends_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE recordings SET ends_ms = $1 WHERE delivery_id = $2 AND ends_ms IS NULL",
        )
        .bind(ends_ms)
        .bind(delivery_id)
        .execute_durably(&self.writer)
        .await?;
        Ok(())
    }

    /// Open recordings whose delivery is gone or no longer in one of `open_states`,
    /// with whether that delivery lost its camera: one query per pass, however many
    /// recordings are open.
    pub async fn recordings_past_delivery(
        &self,
        open_states: &[&str],
    ) -> Result<Vec<(String, bool)>> {
        let marks: Vec<String> = (1..=open_states.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT r.delivery_id AS delivery_id, COALESCE(d.compromised, 0) AS compromised FROM recordings r LEFT JOIN deliveries d ON d.id = r.delivery_id \
             WHERE r.ends_ms IS NULL AND (d.id IS NULL OR d.state NOT IN ({}))",
            if marks.is_empty() { "''".to_owned() } else { marks.join(", ") }
        );
        let mut q = sqlx::query(&sql);
        for st in open_states {
            q = q.bind(*st);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("delivery_id")?,
                    r.try_get::<i64, _>("compromised")? != 0,
                ))
            })
            .collect()
    }

    /// Recordings still open, or ended after `ended_after_ms` (late backlog frames of
    /// those are still filed into them).
    pub async fn recent_recordings(&self, ended_after_ms: i64) -> Result<Vec<RecordingRow>> {
        let rows = sqlx::query(
            "SELECT delivery_id, home_id, started_ms, ends_ms FROM recordings WHERE ends_ms IS NULL OR ends_ms > $1",
        )
        .bind(ended_after_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording).collect()
    }

    /// A delivery's recording, if the delivery is at one of this owner's homes.
    pub async fn recording(&self, owner_id: &str, delivery_id: &str) -> Result<RecordingRow> {
        let row = sqlx::query(
            "SELECT r.delivery_id AS delivery_id, r.home_id AS home_id, r.started_ms AS started_ms, r.ends_ms AS ends_ms \
             FROM recordings r JOIN homes h ON h.id = r.home_id WHERE r.delivery_id = $1 AND h.owner_id = $2",
        )
        .bind(delivery_id)
        .bind(owner_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        recording(&row)
    }

    /// Store a frame's metadata. Returns false if this (device, seq) is already stored.
    pub async fn insert_media_frame(&self, f: &MediaFrameRow) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO media_frames (device_id, seq, home_id, delivery_id, capture_ms, received_ms, recovered, path, sha256, bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (device_id, seq) DO NOTHING",
        )
        .bind(&f.device_id)
        .bind(f.seq)
        .bind(&f.home_id)
        .bind(&f.delivery_id)
        .bind(f.capture_ms)
        .bind(f.received_ms)
        .bind(i64::from(f.recovered))
        .bind(&f.path)
        .bind(&f.sha256)
        .bind(f.bytes)
        .execute_durably(&self.writer)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Mark a camera's stored frames captured in `[from_ms, to_ms]` (device time) as
    /// recovered: the camera says its link was down then. Returns how many changed.
    pub async fn mark_media_recovered(
        &self,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE media_frames SET recovered = 1 WHERE device_id = $1 AND capture_ms >= $2 AND capture_ms <= $3 AND recovered = 0",
        )
        .bind(device_id)
        .bind(from_ms)
        .bind(to_ms)
        .execute_durably(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }

    /// Frames of one home captured in `[from_ms, to_ms]`, by device then sequence.
    /// Owner-scoped.
    pub async fn media_frames_between(
        &self,
        owner_id: &str,
        home_id: &str,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<MediaFrameRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {FRAME_COLS} FROM media_frames f JOIN homes h ON h.id = f.home_id \
             WHERE f.home_id = $1 AND h.owner_id = $2 AND f.capture_ms >= $3 AND f.capture_ms <= $4 \
             ORDER BY f.device_id, f.seq LIMIT $5"
        ))
        .bind(home_id)
        .bind(owner_id)
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(frame).collect()
    }

    /// One stored frame of a home. Owner-scoped.
    pub async fn media_frame(
        &self,
        owner_id: &str,
        home_id: &str,
        device_id: &str,
        seq: i64,
    ) -> Result<MediaFrameRow> {
        let row = sqlx::query(&format!(
            "SELECT {FRAME_COLS} FROM media_frames f JOIN homes h ON h.id = f.home_id \
             WHERE f.device_id = $1 AND f.seq = $2 AND f.home_id = $3 AND h.owner_id = $4"
        ))
        .bind(device_id)
        .bind(seq)
        .bind(home_id)
        .bind(owner_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        frame(&row)
    }

    /// Oldest stored frames first (retention).
    pub async fn oldest_media_frames(&self, limit: i64) -> Result<Vec<MediaFrameRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {FRAME_COLS} FROM media_frames f ORDER BY f.received_ms, f.device_id, f.seq LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(frame).collect()
    }

    /// Total bytes of stored frames.
    pub async fn media_total_bytes(&self) -> Result<i64> {
        let row =
            sqlx::query("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS n FROM media_frames")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    pub async fn delete_media_frame(&self, device_id: &str, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM media_frames WHERE device_id = $1 AND seq = $2")
            .bind(device_id)
            .bind(seq)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn create_webhook_endpoint(
        &self,
        owner_id: &str,
        url: &str,
        secret: &str,
        description: &str,
        event_types: &str,
        now: i64,
    ) -> Result<WebhookEndpointRow> {
        let id = crate::new_id();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, owner_id, url, secret, description, created_ms, event_types) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(owner_id)
        .bind(url)
        .bind(secret)
        .bind(description)
        .bind(now)
        .bind(event_types)
        .execute_durably(&self.writer)
        .await?;
        self.webhook_endpoint(owner_id, &id).await
    }

    pub async fn webhook_endpoint(&self, owner_id: &str, id: &str) -> Result<WebhookEndpointRow> {
        let row = sqlx::query(select_endpoints!("WHERE id = $1 AND owner_id = $2"))
            .bind(id)
            .bind(owner_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        endpoint(&row)
    }

    pub async fn webhook_endpoints(&self, owner_id: &str) -> Result<Vec<WebhookEndpointRow>> {
        let rows = sqlx::query(select_endpoints!(
            "WHERE owner_id = $1 ORDER BY created_ms, id"
        ))
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(endpoint).collect()
    }

    /// Every owner's endpoints (the hub keeps them in memory).
    pub async fn all_webhook_endpoints(&self) -> Result<Vec<WebhookEndpointRow>> {
        let rows = sqlx::query(select_endpoints!("ORDER BY owner_id, created_ms, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint).collect()
    }

    /// An endpoint by id alone (the dispatcher, which is not acting for an owner).
    pub async fn webhook_endpoint_any(&self, id: &str) -> Result<WebhookEndpointRow> {
        let row = sqlx::query(select_endpoints!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        endpoint(&row)
    }

    pub async fn delete_webhook_endpoint(&self, owner_id: &str, id: &str) -> Result<()> {
        // Explicit delete of the log first: SQLite needs foreign_keys on for CASCADE.
        let ep = self.webhook_endpoint(owner_id, id).await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(&ep.id)
            .execute_durably(&self.writer)
            .await?;
        sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND owner_id = $2")
            .bind(&ep.id)
            .bind(owner_id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn enqueue_webhook(
        &self,
        endpoint_id: &str,
        message_id: &str,
        event_type: &str,
        payload: &str,
        now: i64,
    ) -> Result<String> {
        let id = crate::new_id();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, message_id, event_type, payload, state, attempts, next_attempt_ms, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
        )
        .bind(&id)
        .bind(endpoint_id)
        .bind(message_id)
        .bind(event_type)
        .bind(payload)
        .bind(now)
        .execute_durably(&self.writer)
        .await?;
        Ok(id)
    }

    /// Claim up to `limit` pending deliveries whose next attempt is due: each is
    /// returned to one caller only, whichever hub process asks (the claim moves its
    /// next attempt to `claim_until`, so a claimer that dies mid-attempt is retried
    /// then). On PostgreSQL rows being claimed by another node are skipped, not waited
    /// for (`FOR UPDATE SKIP LOCKED`).
    pub async fn claim_due_webhooks(
        &self,
        now: i64,
        claim_until: i64,
        limit: i64,
    ) -> Result<Vec<WebhookDeliveryRow>> {
        let lock = match self.backend {
            crate::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let mut lease = self.writer.lease().await?;
        let rows = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET next_attempt_ms = $1, updated_ms = $2 \
             WHERE state = 'pending' AND next_attempt_ms <= $2 AND id IN \
             (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_ms <= $2 \
              ORDER BY next_attempt_ms LIMIT $3 {lock}) RETURNING *"
        ))
        .bind(claim_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *lease)
        .await?;
        drop(lease);
        self.writer.durable().await?;
        rows.iter().map(wh_delivery).collect()
    }

    /// Pending deliveries whose next attempt is due.
    pub async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<WebhookDeliveryRow>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_ms <= $1 ORDER BY next_attempt_ms LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(wh_delivery).collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn record_webhook_attempt(
        &self,
        id: &str,
        state: &str,
        attempts: i64,
        next_attempt_ms: i64,
        status: Option<i64>,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_ms = $3, last_status = $4, last_error = $5, updated_ms = $6 WHERE id = $7",
        )
        .bind(state)
        .bind(attempts)
        .bind(next_attempt_ms)
        .bind(status)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute_durably(&self.writer)
        .await?;
        Ok(())
    }

    /// An endpoint's delivery log, newest first. Owner-scoped.
    pub async fn webhook_deliveries(
        &self,
        owner_id: &str,
        endpoint_id: &str,
        limit: i64,
    ) -> Result<Vec<WebhookDeliveryRow>> {
        let ep = self.webhook_endpoint(owner_id, endpoint_id).await?;
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY created_ms DESC, id LIMIT $2",
        )
        .bind(&ep.id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(wh_delivery).collect()
    }
}

/// Open a delivery's recording (idempotent: a second start keeps the first).
pub(crate) async fn insert_recording(
    conn: &mut sqlx::AnyConnection,
    delivery_id: &str,
    home_id: &str,
    started_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO recordings (delivery_id, home_id, started_ms) VALUES ($1, $2, $3) ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(delivery_id)
    .bind(home_id)
    .bind(started_ms)
    .execute(conn)
    .await?;
    Ok(())
}
