//! Access sessions and guest grants (migration 0003).
//!
//! A session is the interval in which a door opening at a home is authorised: a
//! delivery (from entry granted until the courier marks it delivered, or until the
//! camera is lost), an owner's remote unlock or a guest's unlock (until the lock
//! relocks, capped by `ends_ms`). Door events are judged by their signed device time
//! against these intervals, so a log uploaded late after an outage is judged as of
//! when it happened.

use crate::durable::Durably;
use crate::{flag, opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub home_id: String,
    pub grant_ref: String,
    pub delivery_id: Option<String>,
    pub opened_ms: i64,
    pub ends_ms: Option<i64>,
    pub delivered_ms: Option<i64>,
    pub compromised_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    pub secure_alert_ms: Option<i64>,
    /// The door it opened (None: a session from before doors, for any door).
    pub door_id: Option<String>,
}

const SCOLS: &str = "id, home_id, grant_ref, delivery_id, opened_ms, ends_ms, delivered_ms, compromised_ms, closed_ms, secure_alert_ms, door_id";

fn session(r: &AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        grant_ref: r.try_get("grant_ref")?,
        delivery_id: r.try_get::<Option<String>, _>("delivery_id")?,
        opened_ms: r.try_get("opened_ms")?,
        ends_ms: opt_i64(r, "ends_ms")?,
        delivered_ms: opt_i64(r, "delivered_ms")?,
        compromised_ms: opt_i64(r, "compromised_ms")?,
        closed_ms: opt_i64(r, "closed_ms")?,
        secure_alert_ms: opt_i64(r, "secure_alert_ms")?,
        door_id: r.try_get::<Option<String>, _>("door_id")?,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct GuestGrantRow {
    pub id: String,
    pub home_id: String,
    pub owner_id: String,
    pub name: String,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    /// JSON array of `{"day":1..7,"start_minute":..,"end_minute":..}` (1 = Monday);
    /// empty array = any time inside the validity.
    pub weekly: String,
    pub utc_offset_minutes: i64,
    pub camera_required: bool,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
    /// The door the guest may open.
    pub door_id: Option<String>,
}

const GCOLS: &str = "id, home_id, owner_id, name, valid_from_ms, valid_until_ms, weekly, utc_offset_minutes, camera_required, created_ms, revoked_ms, door_id";

fn grant(r: &AnyRow) -> Result<GuestGrantRow> {
    Ok(GuestGrantRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        owner_id: r.try_get("owner_id")?,
        name: r.try_get("name")?,
        valid_from_ms: r.try_get("valid_from_ms")?,
        valid_until_ms: r.try_get("valid_until_ms")?,
        weekly: r.try_get("weekly")?,
        utc_offset_minutes: r.try_get("utc_offset_minutes")?,
        camera_required: flag(r, "camera_required")?,
        created_ms: r.try_get("created_ms")?,
        revoked_ms: opt_i64(r, "revoked_ms")?,
        door_id: r.try_get::<Option<String>, _>("door_id")?,
    })
}

pub struct NewGuestGrant<'a> {
    pub home_id: &'a str,
    pub owner_id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub weekly: &'a str,
    pub utc_offset_minutes: i64,
    pub camera_required: bool,
    pub door_id: &'a str,
}

impl Store {
    pub async fn open_session(
        &self,
        home_id: &str,
        door_id: &str,
        grant_ref: &str,
        delivery_id: Option<&str>,
        opened_ms: i64,
        ends_ms: Option<i64>,
    ) -> Result<String> {
        let mut tx = self.writer.begin().await?;
        let id = insert_session(
            &mut tx,
            home_id,
            Some(door_id),
            grant_ref,
            delivery_id,
            opened_ms,
            ends_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn session_of_delivery(&self, delivery_id: &str) -> Result<SessionRow> {
        let r = sqlx::query(&format!(
            "SELECT {SCOLS} FROM access_sessions WHERE delivery_id = $1 ORDER BY opened_ms DESC LIMIT 1"
        ))
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        session(&r)
    }

    pub async fn session_delivered(&self, delivery_id: &str, at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE access_sessions SET delivered_ms = $1 WHERE delivery_id = $2 AND delivered_ms IS NULL")
            .bind(at_ms)
            .bind(delivery_id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn session_compromised(&self, delivery_id: &str, at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE access_sessions SET compromised_ms = $1 WHERE delivery_id = $2 AND compromised_ms IS NULL")
            .bind(at_ms)
            .bind(delivery_id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    /// Close one session; true if it was open.
    pub async fn close_session(&self, id: &str, at_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE access_sessions SET closed_ms = $1 WHERE id = $2 AND closed_ms IS NULL",
        )
        .bind(at_ms)
        .bind(id)
        .execute_durably(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Mark that the "could not confirm closed and locked" alert was raised; true if
    /// this call did it (so exactly one hub process alerts).
    pub async fn mark_secure_alert(&self, id: &str, at_ms: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE access_sessions SET secure_alert_ms = $1 WHERE id = $2 AND secure_alert_ms IS NULL")
            .bind(at_ms)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Sessions of a door that may cover `t_ms`: opened before `t_ms + slack_ms` and
    /// not closed before `t_ms - slack_ms`. `door_id = None` (a device on no door)
    /// considers every session of the home; sessions from before doors existed count
    /// for every door.
    pub async fn sessions_near(
        &self,
        home_id: &str,
        door_id: Option<&str>,
        t_ms: i64,
        slack_ms: i64,
    ) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SCOLS} FROM access_sessions WHERE home_id = $1 AND opened_ms <= $2 AND (closed_ms IS NULL OR closed_ms >= $3) \
             AND ($4 = '' OR door_id IS NULL OR door_id = $4) ORDER BY opened_ms"
        ))
        .bind(home_id)
        .bind(t_ms.saturating_add(slack_ms))
        .bind(t_ms.saturating_sub(slack_ms))
        .bind(door_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session).collect()
    }

    /// Open sessions of a home.
    pub async fn open_sessions(&self, home_id: &str) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SCOLS} FROM access_sessions WHERE home_id = $1 AND closed_ms IS NULL ORDER BY opened_ms"
        ))
        .bind(home_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session).collect()
    }

    /// Open sessions the watcher must act on, across homes: delivery sessions marked
    /// delivered or compromised, and owner/guest sessions past their end at `now`.
    pub async fn sessions_to_watch(&self, now: i64, limit: i64) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SCOLS} FROM access_sessions WHERE closed_ms IS NULL AND \
             (delivered_ms IS NOT NULL OR compromised_ms IS NOT NULL OR (delivery_id IS NULL AND ends_ms < $1)) \
             ORDER BY opened_ms LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session).collect()
    }

    /// When (device time) this lock reported accepting this nonce, if it did. `nonce`
    /// must be hex (checked).
    pub async fn nonce_accepted(&self, device_id: &str, nonce: &str) -> Result<Option<i64>> {
        if nonce.is_empty() || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let pattern = format!("%\"{nonce}\"%");
        let r = sqlx::query("SELECT device_time_ms FROM device_events WHERE device_id = $1 AND event_type = 'token_accepted' AND detail LIKE $2 ORDER BY seq LIMIT 1")
            .bind(device_id)
            .bind(pattern)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(row) => Some(row.try_get::<i64, _>("device_time_ms")?),
            None => None,
        })
    }

    pub async fn create_guest_grant(
        &self,
        g: NewGuestGrant<'_>,
        now: i64,
    ) -> Result<GuestGrantRow> {
        let id = crate::new_id();
        sqlx::query("INSERT INTO guest_grants (id, home_id, owner_id, name, secret_hash, valid_from_ms, valid_until_ms, weekly, utc_offset_minutes, camera_required, created_ms, door_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
            .bind(&id)
            .bind(g.home_id)
            .bind(g.owner_id)
            .bind(g.name)
            .bind(g.secret_hash)
            .bind(g.valid_from_ms)
            .bind(g.valid_until_ms)
            .bind(g.weekly)
            .bind(g.utc_offset_minutes)
            .bind(g.camera_required as i64)
            .bind(now)
            .bind(g.door_id)
            .execute_durably(&self.writer)
            .await?;
        self.guest_grant(g.owner_id, &id).await
    }

    /// One grant, scoped to its owner.
    pub async fn guest_grant(&self, owner_id: &str, id: &str) -> Result<GuestGrantRow> {
        let r = sqlx::query(&format!(
            "SELECT {GCOLS} FROM guest_grants WHERE id = $1 AND owner_id = $2"
        ))
        .bind(id)
        .bind(owner_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        grant(&r)
    }

    pub async fn guest_grant_by_secret(&self, secret_hash: &str) -> Result<GuestGrantRow> {
        let r = sqlx::query(&format!(
            "SELECT {GCOLS} FROM guest_grants WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        grant(&r)
    }

    pub async fn guest_grants(&self, owner_id: &str, home_id: &str) -> Result<Vec<GuestGrantRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {GCOLS} FROM guest_grants WHERE owner_id = $1 AND home_id = $2 ORDER BY created_ms, id"
        ))
        .bind(owner_id)
        .bind(home_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant).collect()
    }

    pub async fn revoke_guest_grant(&self, owner_id: &str, id: &str, now: i64) -> Result<()> {
        let r = sqlx::query("UPDATE guest_grants SET revoked_ms = $1 WHERE id = $2 AND owner_id = $3 AND revoked_ms IS NULL")
            .bind(now)
            .bind(id)
            .bind(owner_id)
            .execute_durably(&self.writer)
            .await?;
        if r.rows_affected() == 0 {
            // Unknown, someone else's, or already revoked: look again to tell apart.
            self.guest_grant(owner_id, id).await?;
        }
        Ok(())
    }

    pub async fn set_delivery_approved(&self, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE deliveries SET approved = 1, updated_ms = $1 WHERE id = $2 AND state = 'scheduled'")
            .bind(now)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

/// Open an access session; its new id.
pub(crate) async fn insert_session(
    conn: &mut sqlx::AnyConnection,
    home_id: &str,
    door_id: Option<&str>,
    grant_ref: &str,
    delivery_id: Option<&str>,
    opened_ms: i64,
    ends_ms: Option<i64>,
) -> Result<String> {
    let id = crate::new_id();
    sqlx::query(
        "INSERT INTO access_sessions (id, home_id, door_id, grant_ref, delivery_id, opened_ms, ends_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(home_id)
    .bind(door_id)
    .bind(grant_ref)
    .bind(delivery_id)
    .bind(opened_ms)
    .bind(ends_ms)
    .execute(conn)
    .await?;
    Ok(id)
}
