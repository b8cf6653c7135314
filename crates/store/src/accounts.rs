//! Users, sessions and API keys. Secrets are stored only as hashes (argon2 for
//! passwords, computed by the hub; SHA-256 for high-entropy random tokens).

use crate::durable::Durably;
use crate::{conflict, opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Courier,
    Dispatcher,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Courier => "courier",
            Role::Dispatcher => "dispatcher",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Owner, Role::Courier, Role::Dispatcher, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Clone, PartialEq)]
pub struct UserRow {
    pub id: String,
    pub role: Role,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_ms: i64,
    /// When an administrator disabled the account (it cannot sign in); None: active.
    pub disabled_ms: Option<i64>,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

fn user(row: &AnyRow) -> Result<UserRow> {
    let role: String = row.try_get("role")?;
    Ok(UserRow {
        id: row.try_get("id")?,
        role: Role::parse(&role).ok_or(StoreError::NotFound)?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        created_ms: row.try_get("created_ms")?,
        disabled_ms: opt_i64(row, "disabled_ms")?,
    })
}

const USER_COLS: &str = "id, role, username, display_name, password_hash, created_ms, disabled_ms";

impl Store {
    pub async fn create_user(
        &self,
        role: Role,
        username: &str,
        display_name: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<UserRow> {
        let id = crate::new_id();
        sqlx::query("INSERT INTO users (id, role, username, display_name, password_hash, created_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(role.as_str())
            .bind(username)
            .bind(display_name)
            .bind(password_hash)
            .bind(now)
            .execute_durably(&self.writer)
            .await
            .map_err(conflict("username"))?;
        self.user(&id).await
    }

    pub async fn user(&self, id: &str) -> Result<UserRow> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user(&row)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn users_by_role(&self, role: Role) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE role = $1 ORDER BY username"
        ))
        .bind(role.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user).collect()
    }

    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
        expires_ms: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_ms)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    /// The user behind a session, if it exists and has not expired. Also returns the
    /// stored hash so the caller can compare it in constant time.
    pub async fn session_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(String, UserRow)>> {
        let row = sqlx::query(
            "SELECT s.token_hash AS token_hash, u.id AS id, u.role AS role, u.username AS username, u.display_name AS display_name, \
             u.password_hash AS password_hash, u.created_ms AS created_ms, u.disabled_ms AS disabled_ms \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_ms > $2 \
             AND u.disabled_ms IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((r.try_get("token_hash")?, user(&r)?))),
            None => Ok(None),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn create_api_key(
        &self,
        user_id: &str,
        key_hash: &str,
        name: &str,
        now: i64,
    ) -> Result<ApiKeyRow> {
        let id = crate::new_id();
        sqlx::query("INSERT INTO api_keys (id, user_id, key_hash, name, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(user_id)
            .bind(key_hash)
            .bind(name)
            .bind(now)
            .execute_durably(&self.writer)
            .await
            .map_err(conflict("api key"))?;
        Ok(ApiKeyRow {
            id,
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            created_ms: now,
            revoked_ms: None,
        })
    }

    pub async fn api_key_user(&self, key_hash: &str) -> Result<Option<(String, UserRow)>> {
        let row = sqlx::query(
            "SELECT k.key_hash AS key_hash, u.id AS id, u.role AS role, u.username AS username, u.display_name AS display_name, \
             u.password_hash AS password_hash, u.created_ms AS created_ms, u.disabled_ms AS disabled_ms \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1 AND k.revoked_ms IS NULL \
             AND u.disabled_ms IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((r.try_get("key_hash")?, user(&r)?))),
            None => Ok(None),
        }
    }

    pub async fn api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyRow>> {
        let rows = sqlx::query("SELECT id, user_id, name, created_ms, revoked_ms FROM api_keys WHERE user_id = $1 ORDER BY created_ms")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyRow {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    name: r.try_get("name")?,
                    created_ms: r.try_get("created_ms")?,
                    revoked_ms: opt_i64(r, "revoked_ms")?,
                })
            })
            .collect()
    }

    /// Disable an account: it cannot sign in any more, and its sessions and API keys
    /// end now, in one transaction.
    pub async fn disable_user(&self, user_id: &str, now: i64) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let r =
            sqlx::query("UPDATE users SET disabled_ms = $1 WHERE id = $2 AND disabled_ms IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_ms = $1 WHERE user_id = $2 AND revoked_ms IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_api_key(&self, user_id: &str, key_id: &str, now: i64) -> Result<()> {
        let r = sqlx::query("UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND user_id = $3 AND revoked_ms IS NULL")
            .bind(now)
            .bind(key_id)
            .bind(user_id)
            .execute_durably(&self.writer)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
