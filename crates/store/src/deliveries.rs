//! Deliveries: created by a dispatcher for a home and a courier.

use crate::durable::Durably;
use crate::homes::HomeRow;
use crate::{flag, opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliveryRow {
    pub id: String,
    pub home_id: String,
    pub courier_id: String,
    pub dispatcher_id: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub parcel_ref: String,
    pub placement: String,
    pub state: String,
    pub compromised: bool,
    pub approved: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The door the courier may use.
    pub door_id: Option<String>,
    pub delivered_ms: Option<i64>,
    pub camera_lost_ms: Option<i64>,
    pub ended_ms: Option<i64>,
}

const COLS: &str = "d.id AS id, d.home_id AS home_id, d.courier_id AS courier_id, d.dispatcher_id AS dispatcher_id, \
    d.window_start_ms AS window_start_ms, d.window_end_ms AS window_end_ms, d.parcel_ref AS parcel_ref, d.placement AS placement, \
    d.state AS state, d.compromised AS compromised, d.approved AS approved, d.created_ms AS created_ms, d.updated_ms AS updated_ms, \
    d.door_id AS door_id, d.delivered_ms AS delivered_ms, d.camera_lost_ms AS camera_lost_ms, d.ended_ms AS ended_ms";

fn delivery(r: &AnyRow) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        courier_id: r.try_get("courier_id")?,
        dispatcher_id: r.try_get("dispatcher_id")?,
        window_start_ms: r.try_get("window_start_ms")?,
        window_end_ms: r.try_get("window_end_ms")?,
        parcel_ref: r.try_get("parcel_ref")?,
        placement: r.try_get("placement")?,
        state: r.try_get("state")?,
        compromised: flag(r, "compromised")?,
        approved: flag(r, "approved")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
        door_id: r.try_get::<Option<String>, _>("door_id")?,
        delivered_ms: opt_i64(r, "delivered_ms")?,
        camera_lost_ms: opt_i64(r, "camera_lost_ms")?,
        ended_ms: opt_i64(r, "ended_ms")?,
    })
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn create_delivery(
        &self,
        home_id: &str,
        courier_id: &str,
        dispatcher_id: &str,
        window_start_ms: i64,
        window_end_ms: i64,
        parcel_ref: &str,
        placement: &str,
        door_id: &str,
        now: i64,
    ) -> Result<DeliveryRow> {
        let id = crate::new_id();
        sqlx::query(
            "INSERT INTO deliveries (id, home_id, courier_id, dispatcher_id, window_start_ms, window_end_ms, parcel_ref, placement, state, created_ms, updated_ms, door_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9, $9, $10)",
        )
        .bind(&id)
        .bind(home_id)
        .bind(courier_id)
        .bind(dispatcher_id)
        .bind(window_start_ms)
        .bind(window_end_ms)
        .bind(parcel_ref)
        .bind(placement)
        .bind(now)
        .bind(door_id)
        .execute_durably(&self.writer)
        .await?;
        self.delivery_any(&id).await
    }

    pub async fn delivery_any(&self, id: &str) -> Result<DeliveryRow> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM deliveries d WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        delivery(&row)
    }

    /// A delivery and its home, in one read (an entry request needs both).
    pub async fn delivery_with_home(&self, id: &str) -> Result<(DeliveryRow, HomeRow)> {
        let row = sqlx::query(&format!(
            "SELECT {COLS}, {} FROM deliveries d JOIN homes h ON h.id = d.home_id WHERE d.id = $1",
            crate::homes::HOME_COLS_AS_H
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok((delivery(&row)?, crate::homes::home_prefixed(&row, "h_")?))
    }

    /// Deliveries of an owner's homes.
    pub async fn owner_deliveries(&self, owner_id: &str, limit: i64) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM deliveries d JOIN homes h ON h.id = d.home_id WHERE h.owner_id = $1 ORDER BY d.window_start_ms DESC, d.id LIMIT $2"
        ))
        .bind(owner_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    pub async fn courier_deliveries(
        &self,
        courier_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM deliveries d WHERE d.courier_id = $1 AND d.window_end_ms >= $2 AND d.window_start_ms <= $3 ORDER BY d.window_start_ms, d.id"
        ))
        .bind(courier_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    pub async fn dispatcher_deliveries(
        &self,
        dispatcher_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM deliveries d WHERE d.dispatcher_id = $1 ORDER BY d.created_ms DESC, d.id LIMIT $2"))
            .bind(dispatcher_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery).collect()
    }

    /// Move a delivery from state `from` to `to` at `now`, with the timestamp the new
    /// state records and its access session updated in the same commit. Returns false
    /// (and writes nothing) if the delivery is no longer in `from`: of two racing
    /// transitions exactly one happens, so its effects happen once.
    pub async fn transition_delivery(
        &self,
        id: &str,
        from: &str,
        to: &str,
        now: i64,
    ) -> Result<Option<DeliveryRow>> {
        self.transition_delivery_if(id, from, to, now, || true)
            .await
    }

    /// [`Store::transition_delivery`], only if `still()` holds once the write
    /// connection is held: a transition decided on what was true then, that waited
    /// for the database, is written only if it is still true (false: nothing written,
    /// `None`).
    pub async fn transition_delivery_if(
        &self,
        id: &str,
        from: &str,
        to: &str,
        now: i64,
        still: impl FnOnce() -> bool + Send,
    ) -> Result<Option<DeliveryRow>> {
        let stamp = match to {
            "delivered" => ", delivered_ms = $1",
            "camera_lost" => ", camera_lost_ms = $1, compromised = 1",
            "completed" | "ended_after_camera_loss" | "ended_unverified" | "expired" => {
                ", ended_ms = $1"
            }
            _ => "",
        };
        let session = match to {
            "delivered" => {
                Some("UPDATE access_sessions SET delivered_ms = $1 WHERE delivery_id = $2 AND delivered_ms IS NULL")
            }
            "camera_lost" => {
                Some("UPDATE access_sessions SET compromised_ms = $1 WHERE delivery_id = $2 AND compromised_ms IS NULL")
            }
            "completed" | "ended_after_camera_loss" | "ended_unverified" => {
                Some("UPDATE access_sessions SET closed_ms = $1 WHERE delivery_id = $2 AND closed_ms IS NULL")
            }
            _ => None,
        };
        let mut tx = self.writer.begin().await?;
        if !still() {
            tx.rollback().await?;
            return Ok(None);
        }
        let r = sqlx::query(&format!(
            "UPDATE deliveries SET state = $2, updated_ms = $1{stamp} WHERE id = $3 AND state = $4"
        ))
        .bind(now)
        .bind(to)
        .bind(id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        if let Some(sql) = session {
            sqlx::query(sql)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(&format!("SELECT {COLS} FROM deliveries d WHERE d.id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(delivery(&row)?))
    }

    /// Deliveries in any of `states` (the hub's watch list), at most `limit`.
    pub async fn deliveries_in_states(
        &self,
        states: &[&str],
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let list = states
            .iter()
            .filter(|s| s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM deliveries d WHERE d.state IN ({list}) ORDER BY d.window_end_ms, d.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// Scheduled deliveries whose window ended before `now`, oldest first.
    pub async fn scheduled_past_window(&self, now: i64, limit: i64) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM deliveries d WHERE d.state = 'scheduled' AND d.window_end_ms < $1 ORDER BY d.window_end_ms, d.id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// Deliveries of a home whose access session is open.
    pub async fn active_deliveries_of_home(&self, home_id: &str) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM deliveries d WHERE d.home_id = $1 AND d.state IN ('inside', 'delivered', 'camera_lost') ORDER BY d.updated_ms, d.id"))
            .bind(home_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery).collect()
    }

    /// Deliveries through a door whose access session is open.
    pub async fn active_deliveries_of_door(&self, door_id: &str) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM deliveries d WHERE d.door_id = $1 AND d.state IN ('inside', 'delivered', 'camera_lost') ORDER BY d.updated_ms, d.id"))
            .bind(door_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery).collect()
    }
}
