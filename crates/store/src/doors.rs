//! Doors, the cameras that watch them, their openings, and the merchants an owner
//! trusts to deliver inside (migration 0005).

use crate::durable::Durably;
use crate::{flag, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One door of a home, with its devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorRow {
    pub id: String,
    pub home_id: String,
    pub name: String,
    pub lock_id: Option<String>,
    pub contact_id: Option<String>,
    /// Ids of the cameras bound to this door, sorted.
    pub camera_ids: Vec<String>,
    pub accepts_deliveries: bool,
    pub created_ms: i64,
}

/// What an owner may change on a door; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoorChange {
    pub name: Option<String>,
    pub lock_id: Option<Option<String>>,
    pub contact_id: Option<Option<String>>,
    pub camera_ids: Option<Vec<String>>,
    pub accepts_deliveries: Option<bool>,
}

const DCOLS: &str = "id, home_id, name, lock_id, contact_id, accepts_deliveries, created_ms";

fn door(r: &AnyRow) -> Result<DoorRow> {
    Ok(DoorRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        name: r.try_get("name")?,
        lock_id: r.try_get::<Option<String>, _>("lock_id")?,
        contact_id: r.try_get::<Option<String>, _>("contact_id")?,
        camera_ids: Vec::new(),
        accepts_deliveries: flag(r, "accepts_deliveries")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// One recorded door opening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpeningRow {
    pub id: String,
    pub home_id: String,
    pub door_id: Option<String>,
    pub at_ms: i64,
    /// Device ids that reported it, comma-separated.
    pub reported_by: String,
    pub attribution: String,
    pub session_id: Option<String>,
    pub delivery_id: Option<String>,
}

fn opening(r: &AnyRow) -> Result<OpeningRow> {
    Ok(OpeningRow {
        id: r.try_get("id")?,
        home_id: r.try_get("home_id")?,
        door_id: r.try_get::<Option<String>, _>("door_id")?,
        at_ms: r.try_get("at_ms")?,
        reported_by: r.try_get("reported_by")?,
        attribution: r.try_get("attribution")?,
        session_id: r.try_get::<Option<String>, _>("session_id")?,
        delivery_id: r.try_get::<Option<String>, _>("delivery_id")?,
    })
}

/// A dispatcher an owner trusts for one home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantRow {
    pub dispatcher_id: String,
    pub display_name: String,
    pub trusted_ms: i64,
}

impl Store {
    /// Every door of every home, with its cameras (the hub's in-memory directory).
    pub async fn all_doors(&self) -> Result<Vec<DoorRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DCOLS} FROM doors ORDER BY home_id, created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut doors = rows.iter().map(door).collect::<Result<Vec<_>>>()?;
        let links =
            sqlx::query("SELECT door_id, camera_id FROM door_cameras ORDER BY door_id, camera_id")
                .fetch_all(&self.pool)
                .await?;
        for l in links {
            let (d, c): (String, String) = (l.try_get(0)?, l.try_get(1)?);
            if let Some(x) = doors.iter_mut().find(|x| x.id == d) {
                x.camera_ids.push(c);
            }
        }
        Ok(doors)
    }

    /// The doors of one home (any owner: callers have checked the home is theirs).
    pub async fn doors_of_home(&self, home_id: &str) -> Result<Vec<DoorRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DCOLS} FROM doors WHERE home_id = $1 ORDER BY created_ms, id"
        ))
        .bind(home_id)
        .fetch_all(&self.pool)
        .await?;
        let mut doors = rows.iter().map(door).collect::<Result<Vec<_>>>()?;
        for d in &mut doors {
            d.camera_ids = self.door_cameras(&d.id).await?;
        }
        Ok(doors)
    }

    async fn door_cameras(&self, door_id: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT camera_id FROM door_cameras WHERE door_id = $1 ORDER BY camera_id")
                .bind(door_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    /// One door, scoped to the owner of its home.
    pub async fn door(&self, owner_id: &str, door_id: &str) -> Result<DoorRow> {
        let r = sqlx::query(&format!(
            "SELECT {DCOLS} FROM doors WHERE id = $1 AND home_id IN (SELECT id FROM homes WHERE owner_id = $2)"
        ))
        .bind(door_id)
        .bind(owner_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut d = door(&r)?;
        d.camera_ids = self.door_cameras(&d.id).await?;
        Ok(d)
    }

    pub async fn create_door(
        &self,
        home_id: &str,
        name: &str,
        accepts_deliveries: bool,
        now: i64,
    ) -> Result<DoorRow> {
        let id = crate::new_id();
        sqlx::query("INSERT INTO doors (id, home_id, name, lock_id, contact_id, accepts_deliveries, created_ms) VALUES ($1, $2, $3, NULL, NULL, $4, $5)")
            .bind(&id)
            .bind(home_id)
            .bind(name)
            .bind(accepts_deliveries as i64)
            .bind(now)
            .execute_durably(&self.writer)
            .await?;
        Ok(DoorRow {
            id,
            home_id: home_id.to_owned(),
            name: name.to_owned(),
            lock_id: None,
            contact_id: None,
            camera_ids: Vec::new(),
            accepts_deliveries,
            created_ms: now,
        })
    }

    /// Change a door in one transaction. Devices must be of the door's home and of the
    /// right kind (checked by the caller); a lock or contact sensor already on another
    /// door is a conflict.
    pub async fn update_door(&self, door_id: &str, c: &DoorChange) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        if let Some(n) = &c.name {
            sqlx::query("UPDATE doors SET name = $1 WHERE id = $2")
                .bind(n)
                .bind(door_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(l) = &c.lock_id {
            sqlx::query("UPDATE doors SET lock_id = $1 WHERE id = $2")
                .bind(l.as_deref())
                .bind(door_id)
                .execute(&mut *tx)
                .await
                .map_err(crate::StoreError::from)
                .map_err(crate::conflict("the lock is on another door"))?;
        }
        if let Some(s) = &c.contact_id {
            sqlx::query("UPDATE doors SET contact_id = $1 WHERE id = $2")
                .bind(s.as_deref())
                .bind(door_id)
                .execute(&mut *tx)
                .await
                .map_err(crate::StoreError::from)
                .map_err(crate::conflict("the contact sensor is on another door"))?;
        }
        if let Some(a) = c.accepts_deliveries {
            sqlx::query("UPDATE doors SET accepts_deliveries = $1 WHERE id = $2")
                .bind(a as i64)
                .bind(door_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(cams) = &c.camera_ids {
            sqlx::query("DELETE FROM door_cameras WHERE door_id = $1")
                .bind(door_id)
                .execute(&mut *tx)
                .await?;
            for cam in cams {
                sqlx::query("INSERT INTO door_cameras (door_id, camera_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(door_id)
                    .bind(cam)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Bind one more camera to a door unless it already has `max` (one statement's
    /// worth of checking, so concurrent enrolments neither lose one another's camera
    /// nor go past the limit). False if the door was full.
    pub async fn add_door_camera(
        &self,
        door_id: &str,
        camera_id: &str,
        max: usize,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        // Taking the door row first serialises binders on PostgreSQL (SQLite has one
        // writer anyway), so the count below cannot be stale.
        sqlx::query("UPDATE doors SET name = name WHERE id = $1")
            .bind(door_id)
            .execute(&mut *tx)
            .await?;
        let n: i64 =
            sqlx::query("SELECT COUNT(*) FROM door_cameras WHERE door_id = $1 AND camera_id <> $2")
                .bind(door_id)
                .bind(camera_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= max {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO door_cameras (door_id, camera_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(door_id)
        .bind(camera_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Remove a door (its camera bindings go with it).
    pub async fn delete_door(&self, door_id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM door_cameras WHERE door_id = $1")
            .bind(door_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM doors WHERE id = $1")
            .bind(door_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Openings of a door (or, for `door_id = None`, of a home's door-less devices)
    /// recorded between two times.
    pub async fn openings_between(
        &self,
        home_id: &str,
        door_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<OpeningRow>> {
        let rows = sqlx::query(
            "SELECT id, home_id, door_id, at_ms, reported_by, attribution, session_id, delivery_id FROM door_openings \
             WHERE home_id = $1 AND COALESCE(door_id, '') = $2 AND at_ms >= $3 AND at_ms <= $4 ORDER BY at_ms, id",
        )
        .bind(home_id)
        .bind(door_id.unwrap_or(""))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(opening).collect()
    }

    pub async fn insert_opening(&self, o: &OpeningRow, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO door_openings (id, home_id, door_id, at_ms, reported_by, attribution, session_id, delivery_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&o.id)
            .bind(&o.home_id)
            .bind(o.door_id.as_deref())
            .bind(o.at_ms)
            .bind(&o.reported_by)
            .bind(&o.attribution)
            .bind(o.session_id.as_deref())
            .bind(o.delivery_id.as_deref())
            .bind(now)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    /// Add a reporting device to a recorded opening.
    pub async fn set_opening_reporters(&self, id: &str, reported_by: &str) -> Result<()> {
        sqlx::query("UPDATE door_openings SET reported_by = $1 WHERE id = $2")
            .bind(reported_by)
            .bind(id)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    /// Trust a dispatcher to deliver inside one home (idempotent).
    pub async fn trust_merchant(&self, home_id: &str, dispatcher_id: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO home_merchants (home_id, dispatcher_id, trusted_ms) VALUES ($1, $2, $3) ON CONFLICT (home_id, dispatcher_id) DO NOTHING")
            .bind(home_id)
            .bind(dispatcher_id)
            .bind(now)
            .execute_durably(&self.writer)
            .await?;
        Ok(())
    }

    /// Stop trusting a dispatcher; true if it was trusted.
    pub async fn distrust_merchant(&self, home_id: &str, dispatcher_id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM home_merchants WHERE home_id = $1 AND dispatcher_id = $2")
            .bind(home_id)
            .bind(dispatcher_id)
            .execute_durably(&self.writer)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn merchant_trusted(&self, home_id: &str, dispatcher_id: &str) -> Result<bool> {
        let r =
            sqlx::query("SELECT 1 FROM home_merchants WHERE home_id = $1 AND dispatcher_id = $2")
                .bind(home_id)
                .bind(dispatcher_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.is_some())
    }

    pub async fn merchants(&self, home_id: &str) -> Result<Vec<MerchantRow>> {
        let rows = sqlx::query("SELECT m.dispatcher_id AS dispatcher_id, u.display_name AS display_name, m.trusted_ms AS trusted_ms FROM home_merchants m JOIN users u ON u.id = m.dispatcher_id WHERE m.home_id = $1 ORDER BY m.trusted_ms, m.dispatcher_id")
            .bind(home_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MerchantRow {
                    dispatcher_id: r.try_get("dispatcher_id")?,
                    display_name: r.try_get("display_name")?,
                    trusted_ms: r.try_get("trusted_ms")?,
                })
            })
            .collect()
    }
}
