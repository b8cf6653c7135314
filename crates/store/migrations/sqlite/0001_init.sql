CREATE TABLE users (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE homes (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    geofence_m REAL NOT NULL,
    in_home_enabled INTEGER NOT NULL,
    approval_required INTEGER NOT NULL,
    allowed_hours TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX homes_owner ON homes(owner_id);
CREATE TABLE pairing_codes (
    code_hash TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    mqtt_password_hash TEXT NOT NULL,
    enrolled_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    transport_hwm INTEGER NOT NULL DEFAULT 0,
    event_hwm INTEGER NOT NULL DEFAULT 0,
    frame_hwm INTEGER NOT NULL DEFAULT 0,
    last_state TEXT,
    last_seen_ms INTEGER
);
CREATE INDEX devices_home ON devices(home_id);
CREATE TABLE device_gaps (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    space TEXT NOT NULL,
    from_seq INTEGER NOT NULL,
    to_seq INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, space, from_seq)
);
CREATE TABLE device_events (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    device_time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    courier_id TEXT NOT NULL REFERENCES users(id),
    dispatcher_id TEXT NOT NULL REFERENCES users(id),
    window_start_ms INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL,
    parcel_ref TEXT NOT NULL,
    placement TEXT NOT NULL,
    state TEXT NOT NULL,
    compromised INTEGER NOT NULL DEFAULT 0,
    approved INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX deliveries_courier ON deliveries(courier_id);
CREATE INDEX deliveries_home ON deliveries(home_id);
CREATE TABLE timeline (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    device_id TEXT,
    delivery_id TEXT,
    time_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX timeline_home ON timeline(home_id, time_ms);
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    device_id TEXT,
    delivery_id TEXT,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    acked_ms INTEGER
);
CREATE INDEX alerts_home ON alerts(home_id, created_ms);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    hub_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
