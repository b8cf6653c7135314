//! A device's broker credentials: the single-use challenges of a renewal and the
//! stored hash of its password. In the database, so a challenge issued by one node of
//! a fleet is answered at any other, and used once in all.

use crate::durable::Durably;
use crate::{opt_i64, Result, Store, StoreError};

/// Used challenges are kept this long after they expired, to tell a reuse from an
/// unknown nonce; then swept.
const KEEP_AFTER_EXPIRY_MS: i64 = 60 * 60 * 1000;

/// What became of an attempt to use a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeUse {
    /// Unused and unexpired: now used (by this call only).
    Taken,
    /// Already used.
    Used,
    /// Past its expiry.
    Expired,
    /// No such challenge for this device (never issued, for another device, or swept).
    Unknown,
}

impl Store {
    /// Keep a new challenge `nonce` for `device_id`, valid until `expires_ms`; sweeps
    /// long-expired ones.
    pub async fn create_credential_challenge(
        &self,
        nonce: &str,
        device_id: &str,
        now: i64,
        expires_ms: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM credential_challenges WHERE expires_ms < $1")
            .bind(now.saturating_sub(KEEP_AFTER_EXPIRY_MS))
            .execute_durably(&self.writer)
            .await?;
        sqlx::query("INSERT INTO credential_challenges (nonce, device_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)")
            .bind(nonce)
            .bind(device_id)
            .bind(now)
            .bind(expires_ms)
            .execute_durably(&self.writer)
            .await
            .map_err(crate::conflict("challenge"))?;
        Ok(())
    }

    /// Use `device_id`'s challenge `nonce` at `now`. The update is the check, so two
    /// requests racing with one challenge (on one node or two) cannot both take it.
    pub async fn take_credential_challenge(
        &self,
        nonce: &str,
        device_id: &str,
        now: i64,
    ) -> Result<ChallengeUse> {
        let r = sqlx::query(
            "UPDATE credential_challenges SET used_ms = $1 \
             WHERE nonce = $2 AND device_id = $3 AND used_ms IS NULL AND expires_ms > $1",
        )
        .bind(now)
        .bind(nonce)
        .bind(device_id)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(ChallengeUse::Taken);
        }
        let row = sqlx::query(
            "SELECT used_ms, expires_ms FROM credential_challenges WHERE nonce = $1 AND device_id = $2",
        )
        .bind(nonce)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => ChallengeUse::Unknown,
            Some(r) if opt_i64(&r, "used_ms")?.is_some() => ChallengeUse::Used,
            Some(_) => ChallengeUse::Expired,
        })
    }

    /// Replace a device's broker password hash (a renewal). Refused (`NotFound`) for
    /// a revoked or unknown device.
    pub async fn set_device_mqtt_password_hash(&self, device_id: &str, hash: &str) -> Result<()> {
        let r = sqlx::query(
            "UPDATE devices SET mqtt_password_hash = $1 WHERE id = $2 AND revoked_ms IS NULL",
        )
        .bind(hash)
        .bind(device_id)
        .execute_durably(&self.writer)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
