//! Homes and their one-time device pairing codes.

use crate::durable::Durably;
use crate::{flag, opt_i64, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone, Debug, PartialEq)]
pub struct HomeRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub geofence_m: f64,
    pub in_home_enabled: bool,
    pub approval_required: bool,
    /// JSON: `{"days":[1..=7],"start_minute":0..1440,"end_minute":..}`, local time in
    /// `time_zone` (older rows may carry `utc_offset_minutes`, used when the home has no
    /// zone).
    pub allowed_hours: String,
    pub created_ms: i64,
    /// IANA time zone name; None for homes from before zones.
    pub time_zone: Option<String>,
    /// The postal address as the owner wrote it (empty: not given).
    pub address: String,
}

#[derive(Clone, Debug)]
pub struct NewHome<'a> {
    pub owner_id: &'a str,
    pub name: &'a str,
    pub lat: f64,
    pub lon: f64,
    pub geofence_m: f64,
    pub time_zone: Option<&'a str>,
}

/// A one-time pairing code to store (only its hash).
#[derive(Clone, Debug)]
pub struct NewPairing<'a> {
    pub code_hash: &'a str,
    pub home_id: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub door_id: Option<&'a str>,
    pub now: i64,
    pub expires_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PairingRow {
    pub home_id: String,
    pub owner_id: String,
    pub kind: String,
    pub name: String,
    pub expires_ms: i64,
    /// The door the device is for (a lock or contact sensor on it, a camera watching it).
    pub door_id: Option<String>,
}

fn home(r: &AnyRow) -> Result<HomeRow> {
    home_prefixed(r, "")
}

/// A home from columns named with a prefix (a join, see [`HOME_COLS_AS_H`]).
pub(crate) fn home_prefixed(r: &AnyRow, p: &str) -> Result<HomeRow> {
    let col = |name: &str| format!("{p}{name}");
    Ok(HomeRow {
        id: r.try_get(col("id").as_str())?,
        owner_id: r.try_get(col("owner_id").as_str())?,
        name: r.try_get(col("name").as_str())?,
        lat: r.try_get(col("lat").as_str())?,
        lon: r.try_get(col("lon").as_str())?,
        geofence_m: r.try_get(col("geofence_m").as_str())?,
        in_home_enabled: flag(r, &col("in_home_enabled"))?,
        approval_required: flag(r, &col("approval_required"))?,
        allowed_hours: r.try_get(col("allowed_hours").as_str())?,
        created_ms: r.try_get(col("created_ms").as_str())?,
        time_zone: r.try_get::<Option<String>, _>(col("time_zone").as_str())?,
        address: r.try_get(col("address").as_str())?,
    })
}

/// The columns of `homes h`, each named `h_<column>`, for joins.
pub(crate) const HOME_COLS_AS_H: &str = "h.id AS h_id, h.owner_id AS h_owner_id, h.name AS h_name, \
    h.lat AS h_lat, h.lon AS h_lon, h.geofence_m AS h_geofence_m, h.in_home_enabled AS h_in_home_enabled, \
    h.approval_required AS h_approval_required, h.allowed_hours AS h_allowed_hours, h.created_ms AS h_created_ms, \
    h.time_zone AS h_time_zone, h.address AS h_address";

const HOME_COLS: &str = "id, owner_id, name, lat, lon, geofence_m, in_home_enabled, approval_required, allowed_hours, created_ms, time_zone, address";

impl Store {
    pub async fn create_home(&self, h: NewHome<'_>, now: i64) -> Result<HomeRow> {
        let id = crate::new_id();
        sqlx::query(
            "INSERT INTO homes (id, owner_id, name, lat, lon, geofence_m, in_home_enabled, approval_required, allowed_hours, created_ms, time_zone) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, 0, '{}', $7, $8)",
        )
        .bind(&id)
        .bind(h.owner_id)
        .bind(h.name)
        .bind(h.lat)
        .bind(h.lon)
        .bind(h.geofence_m)
        .bind(now)
        .bind(h.time_zone)
        .execute_durably(&self.writer)
        .await?;
        self.home_any(&id).await
    }

    /// A home by id, regardless of owner: for the hub's own use (device gateway,
    /// dispatcher checks), never for answering an owner's request.
    pub async fn home_any(&self, id: &str) -> Result<HomeRow> {
        let row = sqlx::query(&format!("SELECT {HOME_COLS} FROM homes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        home(&row)
    }

    /// An owner's home. Another owner's home is `NotFound`, exactly like a missing one.
    pub async fn home(&self, owner_id: &str, id: &str) -> Result<HomeRow> {
        let row = sqlx::query(&format!(
            "SELECT {HOME_COLS} FROM homes WHERE id = $1 AND owner_id = $2"
        ))
        .bind(id)
        .bind(owner_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        home(&row)
    }

    pub async fn homes(&self, owner_id: &str) -> Result<Vec<HomeRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {HOME_COLS} FROM homes WHERE owner_id = $1 ORDER BY created_ms, id"
        ))
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(home).collect()
    }

    pub async fn all_homes(&self) -> Result<Vec<HomeRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {HOME_COLS} FROM homes ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(home).collect()
    }

    /// Change a home's settings; `time_zone: None` keeps the zone it has.
    pub async fn update_home_settings(
        &self,
        owner_id: &str,
        id: &str,
        in_home_enabled: bool,
        approval_required: bool,
        allowed_hours: &str,
        time_zone: Option<&str>,
    ) -> Result<HomeRow> {
        let r = sqlx::query("UPDATE homes SET in_home_enabled = $1, approval_required = $2, allowed_hours = $3, time_zone = COALESCE($6, time_zone) WHERE id = $4 AND owner_id = $5")
            .bind(i64::from(in_home_enabled))
            .bind(i64::from(approval_required))
            .bind(allowed_hours)
            .bind(id)
            .bind(owner_id)
            .bind(time_zone)
            .execute_durably(&self.writer)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.home(owner_id, id).await
    }

    /// Set an owner's home's postal address.
    pub async fn set_home_address(
        &self,
        owner_id: &str,
        id: &str,
        address: &str,
    ) -> Result<HomeRow> {
        let r = sqlx::query("UPDATE homes SET address = $1 WHERE id = $2 AND owner_id = $3")
            .bind(address)
            .bind(id)
            .bind(owner_id)
            .execute_durably(&self.writer)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.home(owner_id, id).await
    }

    pub async fn create_pairing_code(&self, p: NewPairing<'_>) -> Result<()> {
        sqlx::query("INSERT INTO pairing_codes (code_hash, home_id, kind, name, created_ms, expires_ms, door_id) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(p.code_hash)
            .bind(p.home_id)
            .bind(p.kind)
            .bind(p.name)
            .bind(p.now)
            .bind(p.expires_ms)
            .bind(p.door_id)
            .execute_durably(&self.writer)
            .await
            .map_err(crate::conflict("pairing code"))?;
        Ok(())
    }

    /// The device kind an unused, unexpired pairing code is for, without using it.
    pub async fn pairing_code_kind(&self, code_hash: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT kind FROM pairing_codes WHERE code_hash = $1 AND used_ms IS NULL AND expires_ms > $2")
            .bind(code_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>("kind")).transpose()?)
    }

    /// Use a pairing code: succeeds once, while unexpired. The update is the check, so
    /// two devices racing for one code cannot both win.
    pub async fn take_pairing_code(&self, code_hash: &str, now: i64) -> Result<PairingRow> {
        let r = sqlx::query("UPDATE pairing_codes SET used_ms = $1 WHERE code_hash = $2 AND used_ms IS NULL AND expires_ms > $1")
            .bind(now)
            .bind(code_hash)
            .execute_durably(&self.writer)
            .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query(
            "SELECT p.home_id AS home_id, h.owner_id AS owner_id, p.kind AS kind, p.name AS name, p.expires_ms AS expires_ms, p.used_ms AS used_ms, p.door_id AS door_id \
             FROM pairing_codes p JOIN homes h ON h.id = p.home_id WHERE p.code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let _ = opt_i64(&row, "used_ms")?;
        Ok(PairingRow {
            home_id: row.try_get("home_id")?,
            owner_id: row.try_get("owner_id")?,
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            expires_ms: row.try_get("expires_ms")?,
            door_id: row.try_get::<Option<String>, _>("door_id")?,
        })
    }
}
