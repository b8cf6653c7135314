//! Wi-Fi attack evidence (law 7) and the queries that tie it to camera outages: the
//! liveness history of a device (from the timeline) and the alerts raised in a time
//! window, which the hub annotates with the attack that explains them.

use crate::durable::Durably;
use crate::{flag, opt_i64, AlertRow, Result, Store, StoreError, TimelineRow};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One attack reported by a device (merged over its `ongoing` and final reports).
#[derive(Clone, Debug, PartialEq)]
pub struct WifiAttackRow {
    pub id: String,
    pub home_id: String,
    /// The reporting device (camera or Wi-Fi sensor).
    pub device_id: String,
    /// Event-log seq of the newest report merged into this row.
    pub seq: i64,
    /// `link` (wpa_supplicant events) or `monitor` (802.11 capture).
    pub source: String,
    /// The detector's kind (`deauth`, `disassoc`, `both`, `deauth_attack`,
    /// `jamming_suspected`).
    pub kind: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub ongoing: bool,
    /// The newest report, JSON, as the device sent it.
    pub detail: String,
    /// The camera whose outage this attack explains, if one overlapped.
    pub camera_id: Option<String>,
    pub outage_from_ms: Option<i64>,
    /// `None` while the outage was still going on when last checked.
    pub outage_to_ms: Option<i64>,
    pub delivery_id: Option<String>,
    /// The `wifi_attack` alert raised for it.
    pub alert_id: Option<String>,
    /// The `wifi_attack` timeline entry.
    pub timeline_id: Option<String>,
    /// JSON array of the outage alerts (`camera_lost_during_delivery`, `device_offline`)
    /// that now carry this attack as their explanation.
    pub explained_alert_ids: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const COLS: &str = "id, home_id, device_id, seq, source, kind, start_ms, end_ms, ongoing, detail, camera_id, \
    outage_from_ms, outage_to_ms, delivery_id, alert_id, timeline_id, explained_alert_ids, created_ms, updated_ms";

fn attack(r: &AnyRow) -> Result<WifiAttackRow> {
    Ok(WifiAttackRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        device_id: r.try_get("device_id")?,
        seq: r.try_get("seq")?,
        source: r.try_get("source")?,
        kind: r.try_get("kind")?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        ongoing: flag(r, "ongoing")?,
        detail: r.try_get("detail")?,
        camera_id: r.try_get::<Option<String>, _>("camera_id")?,
        outage_from_ms: opt_i64(r, "outage_from_ms")?,
        outage_to_ms: opt_i64(r, "outage_to_ms")?,
        delivery_id: r.try_get::<Option<String>, _>("delivery_id")?,
        alert_id: r.try_get::<Option<String>, _>("alert_id")?,
        timeline_id: r.try_get::<Option<String>, _>("timeline_id")?,
        explained_alert_ids: r.try_get("explained_alert_ids")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

const ALERT_COLS: &str =
    "id, home_id, device_id, delivery_id, severity, kind, message, evidence, created_ms, acked_ms";

impl Store {
    /// The attack a device reported with this kind and start, if stored.
    pub async fn wifi_attack_by_key(
        &self,
        device_id: &str,
        kind: &str,
        start_ms: i64,
    ) -> Result<Option<WifiAttackRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM wifi_attacks WHERE device_id = $1 AND kind = $2 AND start_ms = $3"
        ))
        .bind(device_id)
        .bind(kind)
        .bind(start_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(attack).transpose()
    }

    /// Store a new attack. Returns false if (device, kind, start) is already stored.
    pub async fn insert_wifi_attack(&self, a: &WifiAttackRow) -> Result<bool> {
        let r = sqlx::query(&format!(
            "INSERT INTO wifi_attacks ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
             ON CONFLICT (device_id, kind, start_ms) DO NOTHING"
        ))
        .bind(&a.id)
        .bind(&a.home_id)
        .bind(&a.device_id)
        .bind(a.seq)
        .bind(&a.source)
        .bind(&a.kind)
        .bind(a.start_ms)
        .bind(a.end_ms)
        .bind(i64::from(a.ongoing))
        .bind(&a.detail)
        .bind(&a.camera_id)
        .bind(a.outage_from_ms)
        .bind(a.outage_to_ms)
        .bind(&a.delivery_id)
        .bind(&a.alert_id)
        .bind(&a.timeline_id)
        .bind(&a.explained_alert_ids)
        .bind(a.created_ms)
        .bind(a.updated_ms)
        .execute_durably(&self.writer)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replace everything but the identity of a stored attack.
    pub async fn update_wifi_attack(&self, a: &WifiAttackRow) -> Result<()> {
        let r = sqlx::query(
            "UPDATE wifi_attacks SET seq = $1, source = $2, end_ms = $3, ongoing = $4, detail = $5, camera_id = $6, \
             outage_from_ms = $7, outage_to_ms = $8, delivery_id = $9, alert_id = $10, timeline_id = $11, \
             explained_alert_ids = $12, updated_ms = $13 WHERE id = $14",
        )
        .bind(a.seq)
        .bind(&a.source)
        .bind(a.end_ms)
        .bind(i64::from(a.ongoing))
        .bind(&a.detail)
        .bind(&a.camera_id)
        .bind(a.outage_from_ms)
        .bind(a.outage_to_ms)
        .bind(&a.delivery_id)
        .bind(&a.alert_id)
        .bind(&a.timeline_id)
        .bind(&a.explained_alert_ids)
        .bind(a.updated_ms)
        .bind(&a.id)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// An owner's attacks in one home, newest first.
    pub async fn wifi_attacks(
        &self,
        owner_id: &str,
        home_id: &str,
        limit: i64,
    ) -> Result<Vec<WifiAttackRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM wifi_attacks w JOIN homes h ON h.id = w.home_id \
             WHERE w.home_id = $1 AND h.owner_id = $2 ORDER BY w.start_ms DESC, w.id LIMIT $3",
            COLS.split(", ")
                .map(|c| format!("w.{c} AS {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(home_id)
        .bind(owner_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attack).collect()
    }

    /// Attacks in a home that started at or after `since_ms` (hub-internal), oldest
    /// first (at most 100).
    /// Each home with an attack that started at or after `since_ms`, with the newest
    /// such start.
    pub async fn wifi_attack_homes_since(&self, since_ms: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT home_id, MAX(start_ms) AS newest FROM wifi_attacks WHERE start_ms >= $1 GROUP BY home_id",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("home_id")?, r.try_get("newest")?)))
            .collect()
    }

    pub async fn home_wifi_attacks_since(
        &self,
        home_id: &str,
        since_ms: i64,
    ) -> Result<Vec<WifiAttackRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM wifi_attacks WHERE home_id = $1 AND start_ms >= $2 ORDER BY start_ms, id LIMIT 100"
        ))
        .bind(home_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attack).collect()
    }

    /// A device's timeline entries of one kind (e.g. `liveness`) in `[from_ms, to_ms]`,
    /// oldest first (at most 1000).
    pub async fn device_timeline_between(
        &self,
        home_id: &str,
        device_id: &str,
        kind: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<TimelineRow>> {
        let rows = sqlx::query(
            "SELECT id, home_id, device_id, delivery_id, time_ms, kind, detail FROM timeline \
             WHERE home_id = $1 AND device_id = $2 AND kind = $3 AND time_ms >= $4 AND time_ms <= $5 \
             ORDER BY time_ms, id LIMIT 1000",
        )
        .bind(home_id)
        .bind(device_id)
        .bind(kind)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::events::timeline).collect()
    }

    /// Alerts of a home created in `[from_ms, to_ms]`, oldest first (at most 500).
    pub async fn home_alerts_between(
        &self,
        home_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE home_id = $1 AND created_ms >= $2 AND created_ms <= $3 \
             ORDER BY created_ms, id LIMIT 500"
        ))
        .bind(home_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::events::alert).collect()
    }

    /// One alert by id (hub-internal: not owner-scoped).
    pub async fn alert_any(&self, id: &str) -> Result<AlertRow> {
        let row = sqlx::query(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        crate::events::alert(&row)
    }

    /// Rewrite an alert's message and evidence (the hub explains an alert after the
    /// fact, e.g. a camera outage that turned out to be a Wi-Fi attack).
    pub async fn amend_alert(&self, id: &str, message: &str, evidence: &str) -> Result<()> {
        let r = sqlx::query("UPDATE alerts SET message = $1, evidence = $2 WHERE id = $3")
            .bind(message)
            .bind(evidence)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Rewrite a timeline entry's detail.
    pub async fn set_timeline_detail(&self, id: &str, detail: &str) -> Result<()> {
        let r = sqlx::query("UPDATE timeline SET detail = $1 WHERE id = $2")
            .bind(detail)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
