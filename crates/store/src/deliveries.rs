//! Deliveries: created by a dispatcher for a home and a courier.

use crate::durable::Durably;
use crate::homes::HomeRow;
use crate::{flag, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
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
}

const COLS: &str = "d.id AS id, d.home_id AS home_id, d.courier_id AS courier_id, d.dispatcher_id AS dispatcher_id, \
    d.window_start_ms AS window_start_ms, d.window_end_ms AS window_end_ms, d.parcel_ref AS parcel_ref, d.placement AS placement, \
    d.state AS state, d.compromised AS compromised, d.approved AS approved, d.created_ms AS created_ms, d.updated_ms AS updated_ms";

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
        now: i64,
    ) -> Result<DeliveryRow> {
        let id = crate::new_id();
        sqlx::query(
            "INSERT INTO deliveries (id, home_id, courier_id, dispatcher_id, window_start_ms, window_end_ms, parcel_ref, placement, state, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9, $9)",
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

    /// Move a delivery from one state to another; fails if it is not in `from` (so two
    /// racing requests cannot both make the same transition).
    pub async fn transition_delivery(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        now: i64,
    ) -> Result<bool> {
        let mut n = 0;
        for f in from {
            let r = sqlx::query(
                "UPDATE deliveries SET state = $1, updated_ms = $2 WHERE id = $3 AND state = $4",
            )
            .bind(to)
            .bind(now)
            .bind(id)
            .bind(*f)
            .execute_durably(&self.writer)
            .await?;
            n += r.rows_affected();
            if n > 0 {
                break;
            }
        }
        Ok(n > 0)
    }

    pub async fn mark_delivery_compromised(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE deliveries SET compromised = 1, updated_ms = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn active_deliveries_of_home(&self, home_id: &str) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM deliveries d WHERE d.home_id = $1 AND d.state IN ('entering', 'inside', 'delivered')"))
            .bind(home_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery).collect()
    }
}
