-- Fleet mode: several hub nodes on one PostgreSQL (docs/architecture.md "Fleet").
-- The tables exist on SQLite too, so both schemas stay alike; only PostgreSQL runs a
-- fleet.

-- Each partition of homes has one owner node at a time, for as long as its lease
-- lasts; epoch counts the owners it has had.
CREATE TABLE fleet_leases (
    part INTEGER PRIMARY KEY,
    node_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
-- The nodes heard from recently: partitions are shared among them.
CREATE TABLE fleet_nodes (
    node_id TEXT PRIMARY KEY,
    seen_ms BIGINT NOT NULL
);
-- Live events raised on one node, for owners connected to the others (a notification
-- carries the id).
CREATE TABLE fleet_events (
    id BIGSERIAL PRIMARY KEY,
    origin TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
-- Hub -> device message numbers: one counter per device, shared by every node.
ALTER TABLE devices ADD COLUMN downlink_seq BIGINT NOT NULL DEFAULT 0;
-- Hub -> device messages decided on a node that does not act for the device's home,
-- waiting for the node that does: it numbers and sends every message to its devices,
-- so they arrive in the order they were numbered.
CREATE TABLE fleet_downlinks (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT NOT NULL,
    home_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
-- Browsers' Web Push subscriptions (were a file in the data folder, which only one hub
-- process could keep): one row per push endpoint, owned by one account.
CREATE TABLE push_subscriptions (
    endpoint TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_owner ON push_subscriptions(owner_id);
-- Sign-in attempts per account and per source address, shared by a fleet's nodes (a
-- single hub keeps them in memory): an attacker gains nothing by spreading guesses
-- over the nodes.
CREATE TABLE sign_in_throttle (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    failures BIGINT NOT NULL,
    pending BIGINT NOT NULL,
    last_failure_ms BIGINT NOT NULL,
    pending_since_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
