//! Enrolled devices, their sequence high-water marks and recorded gaps.

use crate::durable::Durably;
use crate::{opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRow {
    pub id: String,
    pub home_id: String,
    pub owner_id: String,
    pub kind: String,
    pub name: String,
    pub public_key: String,
    pub mqtt_password_hash: String,
    pub enrolled_ms: i64,
    pub revoked_ms: Option<i64>,
    pub transport_hwm: i64,
    pub event_hwm: i64,
    pub frame_hwm: i64,
    pub last_state: Option<String>,
    pub last_seen_ms: Option<i64>,
    /// The device clock's offset from the hub's when the replay mark was last saved.
    pub clock_offset_ms: Option<i64>,
}

/// Which record log a gap belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqSpaceName {
    Events,
    Frames,
}

impl SeqSpaceName {
    pub fn as_str(self) -> &'static str {
        match self {
            SeqSpaceName::Events => "events",
            SeqSpaceName::Frames => "frames",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GapRow {
    pub from_seq: i64,
    pub to_seq: i64,
    pub opened_ms: i64,
}

const DEVICE_COLS: &str = "d.id AS id, d.home_id AS home_id, h.owner_id AS owner_id, d.kind AS kind, d.name AS name, \
    d.public_key AS public_key, d.mqtt_password_hash AS mqtt_password_hash, d.enrolled_ms AS enrolled_ms, \
    d.revoked_ms AS revoked_ms, d.transport_hwm AS transport_hwm, d.event_hwm AS event_hwm, d.frame_hwm AS frame_hwm, \
    d.last_state AS last_state, d.last_seen_ms AS last_seen_ms, d.clock_offset_ms AS clock_offset_ms";

fn device(r: &AnyRow) -> Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        owner_id: r.try_get("owner_id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        public_key: r.try_get("public_key")?,
        mqtt_password_hash: r.try_get("mqtt_password_hash")?,
        enrolled_ms: r.try_get("enrolled_ms")?,
        revoked_ms: opt_i64(r, "revoked_ms")?,
        transport_hwm: r.try_get("transport_hwm")?,
        event_hwm: r.try_get("event_hwm")?,
        frame_hwm: r.try_get("frame_hwm")?,
        last_state: r.try_get::<Option<String>, _>("last_state")?,
        last_seen_ms: opt_i64(r, "last_seen_ms")?,
        clock_offset_ms: opt_i64(r, "clock_offset_ms")?,
    })
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn enrol_device(
        &self,
        id: &str,
        home_id: &str,
        kind: &str,
        name: &str,
        public_key: &str,
        mqtt_password_hash: &str,
        now: i64,
    ) -> Result<DeviceRow> {
        sqlx::query(
            "INSERT INTO devices (id, home_id, kind, name, public_key, mqtt_password_hash, enrolled_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(home_id)
        .bind(kind)
        .bind(name)
        .bind(public_key)
        .bind(mqtt_password_hash)
        .bind(now)
        .execute_durably(&self.writer)
        .await
        .map_err(crate::conflict("device"))?;
        self.device_any(id).await
    }

    /// A device by id for the hub's own use (the gateway), whatever its owner.
    pub async fn device_any(&self, id: &str) -> Result<DeviceRow> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN homes h ON h.id = d.home_id WHERE d.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        device(&row)
    }

    pub async fn device(&self, owner_id: &str, id: &str) -> Result<DeviceRow> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN homes h ON h.id = d.home_id WHERE d.id = $1 AND h.owner_id = $2"
        ))
        .bind(id)
        .bind(owner_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        device(&row)
    }

    pub async fn devices_of_home(&self, owner_id: &str, home_id: &str) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN homes h ON h.id = d.home_id WHERE d.home_id = $1 AND h.owner_id = $2 ORDER BY d.enrolled_ms, d.id"
        ))
        .bind(home_id)
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device).collect()
    }

    /// Every device, for loading the gateway's caches at start.
    pub async fn all_devices(&self) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN homes h ON h.id = d.home_id ORDER BY d.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device).collect()
    }

    pub async fn revoke_device(&self, owner_id: &str, id: &str, now: i64) -> Result<()> {
        let r = sqlx::query(
            "UPDATE devices SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL AND home_id IN (SELECT id FROM homes WHERE owner_id = $3)",
        )
        .bind(now)
        .bind(id)
        .bind(owner_id)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Raise the persisted transport high-water mark (never lowers it).
    pub async fn raise_transport_hwm(&self, id: &str, seq: i64, last_seen_ms: i64) -> Result<()> {
        sqlx::query("UPDATE devices SET transport_hwm = $1, last_seen_ms = $2 WHERE id = $3 AND transport_hwm < $1")
            .bind(seq)
            .bind(last_seen_ms)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn set_last_state(&self, id: &str, state_json: &str) -> Result<()> {
        sqlx::query("UPDATE devices SET last_state = $1 WHERE id = $2")
            .bind(state_json)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn gaps(&self, id: &str, space: SeqSpaceName) -> Result<Vec<GapRow>> {
        let rows = sqlx::query("SELECT from_seq, to_seq, opened_ms FROM device_gaps WHERE device_id = $1 AND space = $2 ORDER BY from_seq")
            .bind(id)
            .bind(space.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GapRow {
                    from_seq: r.try_get("from_seq")?,
                    to_seq: r.try_get("to_seq")?,
                    opened_ms: r.try_get("opened_ms")?,
                })
            })
            .collect()
    }

    /// Raise many devices' transport high-water marks in one transaction (one commit,
    /// one sync) instead of one per device: at thousands of devices the per-device
    /// commits would monopolise SQLite's single writer.
    pub async fn raise_transport_hwms(
        &self,
        marks: &[(String, i64, Option<i64>)],
        last_seen_ms: i64,
    ) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        // A statement per 100 devices, not one per device: at thousands of devices a
        // flush otherwise holds SQLite's single writer for tens of milliseconds (each
        // statement is a round trip to the connection's thread).
        let mut tx = self.writer.begin().await?;
        for chunk in marks.chunks(100) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = 3 * i + 2;
                    format!("(${}, ${}, ${})", b, b + 1, b + 2)
                })
                .collect();
            // The offset travels as text so that NULL and numbers share a column type
            // on both backends.
            let sql = format!(
                "UPDATE devices SET transport_hwm = v.column2, last_seen_ms = $1, \
                 clock_offset_ms = COALESCE(CAST(v.column3 AS BIGINT), devices.clock_offset_ms) \
                 FROM (VALUES {}) AS v WHERE devices.id = v.column1 AND devices.transport_hwm < v.column2",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(last_seen_ms);
            for (id, seq, offset) in chunk {
                q = q.bind(id).bind(*seq).bind(offset.map(|o| o.to_string()));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replace a device's recorded gaps in one space with `gaps` (atomically).
    pub async fn set_gaps(&self, id: &str, space: SeqSpaceName, gaps: &[GapRow]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        replace_gaps(&mut tx, id, space, gaps).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Replace a device's open gaps in one sequence space.
pub(crate) async fn replace_gaps(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    space: SeqSpaceName,
    gaps: &[GapRow],
) -> Result<()> {
    sqlx::query("DELETE FROM device_gaps WHERE device_id = $1 AND space = $2")
        .bind(id)
        .bind(space.as_str())
        .execute(&mut *conn)
        .await?;
    for g in gaps {
        sqlx::query("INSERT INTO device_gaps (device_id, space, from_seq, to_seq, opened_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(space.as_str())
            .bind(g.from_seq)
            .bind(g.to_seq)
            .bind(g.opened_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
