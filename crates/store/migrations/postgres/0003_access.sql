-- Access sessions (delivery, owner remote unlock, guest) and guest grants.
-- A session is the interval during which a door opening is authorised; door events
-- are judged by their signed device time against these intervals, so a log that
-- arrives late after an outage is judged as of when it happened.
CREATE TABLE access_sessions (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    grant_ref TEXT NOT NULL,
    delivery_id TEXT,
    opened_ms BIGINT NOT NULL,
    ends_ms BIGINT,
    delivered_ms BIGINT,
    compromised_ms BIGINT,
    closed_ms BIGINT,
    secure_alert_ms BIGINT
);
CREATE INDEX access_sessions_home ON access_sessions(home_id, opened_ms);
CREATE INDEX access_sessions_delivery ON access_sessions(delivery_id);
CREATE TABLE guest_grants (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    owner_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    valid_from_ms BIGINT NOT NULL,
    valid_until_ms BIGINT NOT NULL,
    weekly TEXT NOT NULL,
    utc_offset_minutes BIGINT NOT NULL,
    camera_required BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX guest_grants_home ON guest_grants(home_id);
CREATE UNIQUE INDEX guest_grants_secret ON guest_grants(secret_hash);
