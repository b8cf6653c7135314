//! Owners' expected deliveries ("a parcel from Acme today"), and the delivery each
//! turned into. Owner-scoped like every other read.

use crate::durable::Durably;
use crate::{opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
pub struct ExpectationRow {
    pub id: String,
    pub home_id: String,
    /// The merchant (dispatcher account) expected; `None`: any.
    pub dispatcher_id: Option<String>,
    pub note: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub created_ms: i64,
    /// The delivery it turned into, once one arrived.
    pub delivery_id: Option<String>,
    pub matched_ms: Option<i64>,
}

const COLS: &str = "e.id AS id, e.home_id AS home_id, e.dispatcher_id AS dispatcher_id, e.note AS note, \
    e.window_start_ms AS window_start_ms, e.window_end_ms AS window_end_ms, e.created_ms AS created_ms, \
    e.delivery_id AS delivery_id, e.matched_ms AS matched_ms";

fn row(r: &AnyRow) -> Result<ExpectationRow> {
    Ok(ExpectationRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        dispatcher_id: r.try_get::<Option<String>, _>("dispatcher_id")?,
        note: r.try_get("note")?,
        window_start_ms: r.try_get("window_start_ms")?,
        window_end_ms: r.try_get("window_end_ms")?,
        created_ms: r.try_get("created_ms")?,
        delivery_id: r.try_get::<Option<String>, _>("delivery_id")?,
        matched_ms: opt_i64(r, "matched_ms")?,
    })
}

impl Store {
    /// An owner's new expectation for one of their homes (`NotFound`: not their home).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_expectation(
        &self,
        owner_id: &str,
        home_id: &str,
        dispatcher_id: Option<&str>,
        note: &str,
        window: (i64, i64),
        now: i64,
    ) -> Result<ExpectationRow> {
        self.home(owner_id, home_id).await?;
        let id = crate::new_id();
        sqlx::query(
            "INSERT INTO expectations (id, home_id, dispatcher_id, note, window_start_ms, window_end_ms, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(home_id)
        .bind(dispatcher_id)
        .bind(note)
        .bind(window.0)
        .bind(window.1)
        .bind(now)
        .execute_durably(&self.writer)
        .await?;
        self.expectations(owner_id, home_id, 0)
            .await?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or(StoreError::NotFound)
    }

    /// An owner's expectations for a home whose window ends at or after `since_ms`,
    /// soonest first.
    pub async fn expectations(
        &self,
        owner_id: &str,
        home_id: &str,
        since_ms: i64,
    ) -> Result<Vec<ExpectationRow>> {
        sqlx::query(&format!(
            "SELECT {COLS} FROM expectations e JOIN homes h ON h.id = e.home_id \
             WHERE e.home_id = $1 AND h.owner_id = $2 AND e.window_end_ms >= $3 \
             ORDER BY e.window_start_ms, e.id"
        ))
        .bind(home_id)
        .bind(owner_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    /// Forget one of an owner's expectations.
    pub async fn delete_expectation(&self, owner_id: &str, id: &str) -> Result<()> {
        let r = sqlx::query(
            "DELETE FROM expectations WHERE id = $1 AND home_id IN (SELECT id FROM homes WHERE owner_id = $2)",
        )
        .bind(id)
        .bind(owner_id)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A delivery arrived for `home_id`: the first unmatched expectation whose window
    /// overlaps the delivery's, from its merchant or from any, now points at it.
    /// Returns the expectation matched, if one was.
    pub async fn match_expectation(
        &self,
        home_id: &str,
        dispatcher_id: &str,
        window: (i64, i64),
        delivery_id: &str,
        now: i64,
    ) -> Result<Option<String>> {
        let candidate: Option<String> = sqlx::query(
            "SELECT id FROM expectations WHERE home_id = $1 AND delivery_id IS NULL \
             AND window_start_ms <= $3 AND window_end_ms >= $2 \
             AND (dispatcher_id IS NULL OR dispatcher_id = $4) \
             ORDER BY CASE WHEN dispatcher_id IS NULL THEN 1 ELSE 0 END, window_start_ms, id LIMIT 1",
        )
        .bind(home_id)
        .bind(window.0)
        .bind(window.1)
        .bind(dispatcher_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
        let Some(id) = candidate else {
            return Ok(None);
        };
        let r = sqlx::query(
            "UPDATE expectations SET delivery_id = $1, matched_ms = $2 WHERE id = $3 AND delivery_id IS NULL",
        )
        .bind(delivery_id)
        .bind(now)
        .bind(&id)
        .execute_durably(&self.writer)
        .await?;
        Ok((r.rows_affected() == 1).then_some(id))
    }
}
