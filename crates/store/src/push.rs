//! Browsers' Web Push subscriptions: one row per push endpoint, owned by one account,
//! shared by every hub process (the hub decides who may take an endpoint over,
//! `alerts::push`).

use crate::durable::Durably;
use crate::{Result, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    pub owner_id: String,
    pub endpoint: String,
    /// The browser's P-256 key, base64url.
    pub p256dh: String,
    /// The browser's 16-byte auth secret, base64url.
    pub auth: String,
    pub created_ms: i64,
}

const COLS: &str = "owner_id, endpoint, p256dh, auth, created_ms";

fn row(r: &AnyRow) -> Result<PushSubscriptionRow> {
    Ok(PushSubscriptionRow {
        owner_id: r.try_get("owner_id")?,
        endpoint: r.try_get("endpoint")?,
        p256dh: r.try_get("p256dh")?,
        auth: r.try_get("auth")?,
        created_ms: r.try_get("created_ms")?,
    })
}

impl Store {
    /// An owner's subscriptions, oldest first.
    pub async fn push_subscriptions(&self, owner_id: &str) -> Result<Vec<PushSubscriptionRow>> {
        sqlx::query(&format!(
            "SELECT {COLS} FROM push_subscriptions WHERE owner_id = $1 ORDER BY created_ms, endpoint"
        ))
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    /// The subscription of one endpoint, whoever owns it (for the hub's take-over rule).
    pub async fn push_subscription_at(
        &self,
        endpoint: &str,
    ) -> Result<Option<PushSubscriptionRow>> {
        sqlx::query(&format!(
            "SELECT {COLS} FROM push_subscriptions WHERE endpoint = $1"
        ))
        .bind(endpoint)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(row)
        .transpose()
    }

    /// Keep `s`, replacing whatever the endpoint had.
    pub async fn put_push_subscription(&self, s: &PushSubscriptionRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO push_subscriptions ({COLS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (endpoint) DO UPDATE SET owner_id = EXCLUDED.owner_id, \
             p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, created_ms = EXCLUDED.created_ms"
        ))
        .bind(&s.owner_id)
        .bind(&s.endpoint)
        .bind(&s.p256dh)
        .bind(&s.auth)
        .bind(s.created_ms)
        .execute_durably(&self.writer)
        .await?;
        Ok(())
    }

    /// Forget an endpoint's subscription (only if `owner_id` owns it, when given);
    /// whether there was one.
    pub async fn delete_push_subscription(
        &self,
        owner_id: Option<&str>,
        endpoint: &str,
    ) -> Result<bool> {
        let r = match owner_id {
            Some(o) => {
                sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1 AND owner_id = $2")
                    .bind(endpoint)
                    .bind(o)
                    .execute_durably(&self.writer)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
                    .bind(endpoint)
                    .execute_durably(&self.writer)
                    .await?
            }
        };
        Ok(r.rows_affected() > 0)
    }
}
