//! What the nodes of a fleet share through PostgreSQL (docs/architecture.md "Fleet"):
//! partition leases timed by the database's clock (so the nodes' own clocks do not
//! decide who owns what), the list of nodes heard from, live events for the other
//! nodes, notifications (LISTEN/NOTIFY) and one downlink counter per device.
//!
//! Leases, events and notifications are PostgreSQL only: a fleet refuses to start on
//! SQLite (`HubConfig::validate`). The downlink counter works on both.

use crate::{Backend, Result, Store, StoreError};
use sqlx::postgres::PgListener;
use sqlx::Row;

/// The database's clock in milliseconds, evaluated once per statement.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A partition this node holds: which, and how many owners it has had (a new owner
/// always sees a larger epoch than the one before).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldLease {
    pub part: i32,
    pub epoch: i64,
}

/// What a node learns when it renews its leases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The database's clock at the renewal.
    pub db_now_ms: i64,
    /// The leases this node still holds, now extended.
    pub held: Vec<HeldLease>,
    /// Nodes heard from within one lease period, this one included.
    pub live_nodes: i64,
}

/// One row of the lease table, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub part: i32,
    pub node_id: String,
    pub epoch: i64,
    pub expires_ms: i64,
}

/// A live event stored for the other nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetEventRow {
    pub id: i64,
    pub origin: String,
    pub body: String,
}

/// A downlink waiting for the node acting for its home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedDownlink {
    pub id: i64,
    pub device_id: String,
    pub home_id: String,
    pub kind: i64,
    /// The message body (JSON), to be numbered, signed and sent.
    pub body: String,
    pub created_ms: i64,
}

fn queued(r: &sqlx::any::AnyRow) -> Result<QueuedDownlink> {
    Ok(QueuedDownlink {
        id: r.try_get("id")?,
        device_id: r.try_get("device_id")?,
        home_id: r.try_get("home_id")?,
        kind: r.try_get("kind")?,
        body: r.try_get("body")?,
        created_ms: r.try_get("created_ms")?,
    })
}

const QUEUED_COLS: &str = "id, device_id, home_id, kind, body, created_ms";

/// One sign-in throttle entry as stored (`hub::auth::throttle` decides what it means).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleRow {
    pub failures: i64,
    pub pending: i64,
    pub last_failure_ms: i64,
    pub pending_since_ms: i64,
}

/// The channels a fleet's notifications travel on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Something every node caches changed (the payload names it).
    Changes,
    /// A live event was stored (the payload is its id, a space, the node that raised
    /// it).
    Events,
    /// A downlink waits for the node acting for its home (the payload is its id, a
    /// space, the home's id).
    Downlinks,
}

/// A notification received: its channel and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub channel: Channel,
    pub payload: String,
}

/// This node's subscription to the fleet's notifications.
pub struct Listener {
    inner: PgListener,
    ns: std::sync::Arc<str>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("ns", &self.ns).finish()
    }
}

impl Listener {
    /// The next notification. `Ok(None)`: the connection was lost and has been
    /// re-established, so notifications may have been missed: catch up from the
    /// tables.
    pub async fn recv(&mut self) -> Result<Option<Notice>> {
        let Some(n) = self.inner.try_recv().await? else {
            return Ok(None);
        };
        let channel = if n.channel() == channel_name(&self.ns, Channel::Events) {
            Channel::Events
        } else if n.channel() == channel_name(&self.ns, Channel::Downlinks) {
            Channel::Downlinks
        } else {
            Channel::Changes
        };
        Ok(Some(Notice {
            channel,
            payload: n.payload().to_owned(),
        }))
    }
}

/// Channels are per database, not per schema: the name carries the schema so that
/// two fleets (or two tests) in one database do not hear each other.
fn channel_name(ns: &str, c: Channel) -> String {
    match c {
        Channel::Changes => format!("thr_{ns}_changes"),
        Channel::Events => format!("thr_{ns}_events"),
        Channel::Downlinks => format!("thr_{ns}_downlinks"),
    }
}

/// A schema name as a channel-name part: lowercase letters, digits and `_`, short.
pub(crate) fn namespace(schema: &str) -> String {
    schema
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        .take(40)
        .collect()
}

/// `pg_notify` as a statement that returns a row (its bare `void` result cannot be
/// read through sqlx's `Any` driver); delivered when the transaction commits.
fn notify<'q>(
    channel: String,
    payload: String,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS n")
        .bind(channel)
        .bind(payload)
}

fn held_leases(rows: &[sqlx::any::AnyRow]) -> Result<Vec<HeldLease>> {
    rows.iter()
        .map(|r| {
            Ok(HeldLease {
                part: r.try_get(0)?,
                epoch: r.try_get(1)?,
            })
        })
        .collect()
}

fn event_row(r: &sqlx::any::AnyRow) -> Result<FleetEventRow> {
    Ok(FleetEventRow {
        id: r.try_get(0)?,
        origin: r.try_get(1)?,
        body: r.try_get(2)?,
    })
}

impl Store {
    fn postgres_only(&self) -> Result<()> {
        if self.backend == Backend::Postgres {
            Ok(())
        } else {
            Err(StoreError::Unsupported("fleet mode needs PostgreSQL"))
        }
    }

    /// Say this node is alive, extend the leases it holds and count the live nodes.
    /// A lease that expired before this renewal is not extended: it may have a new
    /// owner, or be claimed again (with a new epoch) by [`Store::fleet_claim`].
    pub async fn fleet_renew(&self, node: &str, lease_ms: i64) -> Result<Renewal> {
        self.postgres_only()?;
        let now: i64 = sqlx::query(&format!(
            "INSERT INTO fleet_nodes (node_id, seen_ms) VALUES ($1, {DB_NOW_MS}) \
             ON CONFLICT (node_id) DO UPDATE SET seen_ms = EXCLUDED.seen_ms RETURNING seen_ms"
        ))
        .bind(node)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        let held = held_leases(
            &sqlx::query(
                "UPDATE fleet_leases SET expires_ms = $1 + $2 \
                 WHERE node_id = $3 AND expires_ms >= $1 RETURNING part, epoch",
            )
            .bind(now)
            .bind(lease_ms)
            .bind(node)
            .fetch_all(&self.pool)
            .await?,
        )?;
        let live_nodes: i64 =
            sqlx::query("SELECT COUNT(*) FROM fleet_nodes WHERE seen_ms > $1 - $2")
                .bind(now)
                .bind(lease_ms)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(Renewal {
            db_now_ms: now,
            held,
            live_nodes,
        })
    }

    /// Claim up to `want` of the `parts` partitions that nobody holds (never held, or
    /// the lease expired), atomically: of two nodes claiming one partition, one wins.
    pub async fn fleet_claim(
        &self,
        node: &str,
        parts: i32,
        want: i64,
        lease_ms: i64,
    ) -> Result<Vec<HeldLease>> {
        self.postgres_only()?;
        if want <= 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "WITH now AS (SELECT {DB_NOW_MS} AS ms), \
             free AS (SELECT p.part FROM generate_series(0, $2 - 1) AS p(part) \
                      LEFT JOIN fleet_leases l ON l.part = p.part \
                      WHERE l.part IS NULL OR l.expires_ms < (SELECT ms FROM now) \
                      ORDER BY random() LIMIT $3) \
             INSERT INTO fleet_leases (part, node_id, epoch, expires_ms) \
             SELECT part, $1, 1, (SELECT ms FROM now) + $4 FROM free \
             ON CONFLICT (part) DO UPDATE SET node_id = EXCLUDED.node_id, \
                 epoch = fleet_leases.epoch + 1, expires_ms = EXCLUDED.expires_ms \
             WHERE fleet_leases.expires_ms < (SELECT ms FROM now) \
             RETURNING part, epoch"
        ))
        .bind(node)
        .bind(parts)
        .bind(want)
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await?;
        held_leases(&rows)
    }

    /// Give a partition up at once (more than a fair share, or stopping), so another
    /// node need not wait for the lease to run out.
    pub async fn fleet_release(&self, node: &str, part: i32) -> Result<()> {
        self.postgres_only()?;
        sqlx::query("UPDATE fleet_leases SET expires_ms = 0 WHERE node_id = $1 AND part = $2")
            .bind(node)
            .bind(part)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// This node is stopping: give every partition up and leave the node list.
    pub async fn fleet_leave(&self, node: &str) -> Result<()> {
        self.postgres_only()?;
        sqlx::query("UPDATE fleet_leases SET expires_ms = 0 WHERE node_id = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM fleet_nodes WHERE node_id = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every lease, by partition.
    pub async fn fleet_leases(&self) -> Result<Vec<LeaseRow>> {
        self.postgres_only()?;
        sqlx::query("SELECT part, node_id, epoch, expires_ms FROM fleet_leases ORDER BY part")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(LeaseRow {
                    part: r.try_get(0)?,
                    node_id: r.try_get(1)?,
                    epoch: r.try_get(2)?,
                    expires_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Tell every node (this one included) on `channel`; delivered when the
    /// statement commits.
    pub async fn fleet_notify(&self, channel: Channel, payload: &str) -> Result<()> {
        self.postgres_only()?;
        notify(channel_name(&self.channel_ns, channel), payload.to_owned())
            .fetch_all(&self.pool)
            .await?;
        Ok(())
    }

    /// Store a live event for the other nodes and tell them its id, in one commit.
    pub async fn fleet_publish_event(&self, origin: &str, body: &str, now: i64) -> Result<i64> {
        self.postgres_only()?;
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO fleet_events (origin, body, created_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(origin)
        .bind(body)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        notify(
            channel_name(&self.channel_ns, Channel::Events),
            format!("{id} {origin}"),
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Stored live events from other nodes than `me` with ids after `after`, oldest
    /// first, at most `limit`.
    pub async fn fleet_events_after(
        &self,
        me: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FleetEventRow>> {
        self.postgres_only()?;
        sqlx::query(
            "SELECT id, origin, body FROM fleet_events WHERE id > $1 AND origin <> $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(me)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_row)
        .collect()
    }

    /// One stored live event.
    pub async fn fleet_event(&self, id: i64) -> Result<Option<FleetEventRow>> {
        self.postgres_only()?;
        sqlx::query("SELECT id, origin, body FROM fleet_events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(event_row)
            .transpose()
    }

    /// The newest stored live event's id (0 if none): where a starting node begins.
    pub async fn fleet_events_head(&self) -> Result<i64> {
        self.postgres_only()?;
        Ok(sqlx::query("SELECT COALESCE(MAX(id), 0) FROM fleet_events")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Forget live events stored before `before_ms` (they are only for catching up).
    pub async fn fleet_prune_events(&self, before_ms: i64) -> Result<u64> {
        self.postgres_only()?;
        Ok(
            sqlx::query("DELETE FROM fleet_events WHERE created_ms < $1")
                .bind(before_ms)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Listen to the fleet's channels on a connection of its own.
    pub async fn fleet_listen(&self) -> Result<Listener> {
        self.postgres_only()?;
        let url = self
            .pg_url
            .as_deref()
            .ok_or(StoreError::Unsupported("fleet mode needs PostgreSQL"))?;
        let mut inner = PgListener::connect(url).await?;
        inner
            .listen_all([
                channel_name(&self.channel_ns, Channel::Changes).as_str(),
                channel_name(&self.channel_ns, Channel::Events).as_str(),
                channel_name(&self.channel_ns, Channel::Downlinks).as_str(),
            ])
            .await?;
        Ok(Listener {
            inner,
            ns: self.channel_ns.clone(),
        })
    }

    /// Leave a downlink for the node acting for `home_id`, and tell it, in one commit.
    pub async fn fleet_queue_downlink(
        &self,
        device_id: &str,
        home_id: &str,
        kind: u8,
        body: &str,
        now: i64,
    ) -> Result<i64> {
        self.postgres_only()?;
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO fleet_downlinks (device_id, home_id, kind, body, created_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(device_id)
        .bind(home_id)
        .bind(i64::from(kind))
        .bind(body)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        notify(
            channel_name(&self.channel_ns, Channel::Downlinks),
            format!("{id} {home_id}"),
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Take one waiting downlink (it is gone for every other node); `None` if another
    /// node took it first.
    pub async fn fleet_take_downlink(&self, id: i64) -> Result<Option<QueuedDownlink>> {
        self.postgres_only()?;
        sqlx::query(&format!(
            "DELETE FROM fleet_downlinks WHERE id = $1 RETURNING {QUEUED_COLS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(queued)
        .transpose()
    }

    /// Every waiting downlink, oldest first (for a node that took homes over, or
    /// missed notifications).
    pub async fn fleet_waiting_downlinks(&self, limit: i64) -> Result<Vec<QueuedDownlink>> {
        self.postgres_only()?;
        sqlx::query(&format!(
            "SELECT {QUEUED_COLS} FROM fleet_downlinks ORDER BY id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(queued)
        .collect()
    }

    /// Change one sign-in throttle entry (`scope` and `key`) under a row lock, so that
    /// attempts on several nodes are counted one after another: `change` gets the
    /// entry as stored (all zero if none) and decides; the entry is then stored, or
    /// deleted when it holds nothing (no failures, nothing pending).
    pub async fn fleet_throttle<R>(
        &self,
        scope: &str,
        key: &str,
        change: impl FnOnce(&mut ThrottleRow) -> R,
    ) -> Result<R> {
        self.postgres_only()?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sign_in_throttle (scope, key, failures, pending, last_failure_ms, pending_since_ms) \
             VALUES ($1, $2, 0, 0, 0, 0) ON CONFLICT DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query(
            "SELECT failures, pending, last_failure_ms, pending_since_ms FROM sign_in_throttle \
             WHERE scope = $1 AND key = $2 FOR UPDATE",
        )
        .bind(scope)
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        let mut row = ThrottleRow {
            failures: r.try_get(0)?,
            pending: r.try_get(1)?,
            last_failure_ms: r.try_get(2)?,
            pending_since_ms: r.try_get(3)?,
        };
        let out = change(&mut row);
        if row.failures == 0 && row.pending == 0 {
            sqlx::query("DELETE FROM sign_in_throttle WHERE scope = $1 AND key = $2")
                .bind(scope)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "UPDATE sign_in_throttle SET failures = $3, pending = $4, last_failure_ms = $5, \
                 pending_since_ms = $6 WHERE scope = $1 AND key = $2",
            )
            .bind(scope)
            .bind(key)
            .bind(row.failures)
            .bind(row.pending)
            .bind(row.last_failure_ms)
            .bind(row.pending_since_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The next number for a hub -> device message to `device`: one more than the last
    /// one any node used, and at least `floor` (numbers started from the wall clock
    /// before the counter was shared, and a device keeps the highest it has seen).
    pub async fn next_downlink_seq(&self, device: &str, floor: i64) -> Result<i64> {
        let mut lease = self.writer.lease().await?;
        let row = sqlx::query(
            "UPDATE devices SET downlink_seq = CASE WHEN downlink_seq + 1 > $2 \
             THEN downlink_seq + 1 ELSE $2 END WHERE id = $1 RETURNING downlink_seq",
        )
        .bind(device)
        .bind(floor)
        .fetch_optional(&mut *lease)
        .await?;
        drop(lease);
        // Numbers need not survive a crash (a device refuses anything not above the
        // highest it saw), but waiting for the disk keeps SQLite's writer honest.
        self.writer.durable().await?;
        match row {
            Some(r) => Ok(r.try_get(0)?),
            None => Err(StoreError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_becomes_a_safe_channel_part() {
        assert_eq!(namespace("t_AB12\"; DROP"), "t_ab12drop");
        assert_eq!(channel_name("public", Channel::Events), "thr_public_events");
        assert!(channel_name(&namespace(&"x".repeat(100)), Channel::Changes).len() <= 63);
    }
}
