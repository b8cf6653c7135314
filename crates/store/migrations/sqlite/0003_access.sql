-- Access sessions (delivery, owner remote unlock, guest) and guest grants.
-- A session is the interval during which a door opening is authorised; door events
-- are judged by their signed device time against these intervals, so a log that
-- arrives late after an outage is judged as of when it happened.
CREATE TABLE access_sessions (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    grant_ref TEXT NOT NULL,
    delivery_id TEXT,
    opened_ms INTEGER NOT NULL,
    ends_ms INTEGER,
    delivered_ms INTEGER,
    compromised_ms INTEGER,
    closed_ms INTEGER,
    secure_alert_ms INTEGER
);
CREATE INDEX access_sessions_home ON access_sessions(home_id, opened_ms);
CREATE INDEX access_sessions_delivery ON access_sessions(delivery_id);
CREATE TABLE guest_grants (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    owner_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    valid_from_ms INTEGER NOT NULL,
    valid_until_ms INTEGER NOT NULL,
    weekly TEXT NOT NULL,
    utc_offset_minutes INTEGER NOT NULL,
    camera_required INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX guest_grants_home ON guest_grants(home_id);
CREATE UNIQUE INDEX guest_grants_secret ON guest_grants(secret_hash);
