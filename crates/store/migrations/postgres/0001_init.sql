CREATE TABLE users (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE TABLE homes (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    geofence_m DOUBLE PRECISION NOT NULL,
    in_home_enabled BIGINT NOT NULL,
    approval_required BIGINT NOT NULL,
    allowed_hours TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX homes_owner ON homes(owner_id);
CREATE TABLE pairing_codes (
    code_hash TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    mqtt_password_hash TEXT NOT NULL,
    enrolled_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    transport_hwm BIGINT NOT NULL DEFAULT 0,
    event_hwm BIGINT NOT NULL DEFAULT 0,
    frame_hwm BIGINT NOT NULL DEFAULT 0,
    last_state TEXT,
    last_seen_ms BIGINT
);
CREATE INDEX devices_home ON devices(home_id);
CREATE TABLE device_gaps (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    space TEXT NOT NULL,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    opened_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, space, from_seq)
);
CREATE TABLE device_events (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    device_time_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BYTEA NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    courier_id TEXT NOT NULL REFERENCES users(id),
    dispatcher_id TEXT NOT NULL REFERENCES users(id),
    window_start_ms BIGINT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    parcel_ref TEXT NOT NULL,
    placement TEXT NOT NULL,
    state TEXT NOT NULL,
    compromised BIGINT NOT NULL DEFAULT 0,
    approved BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX deliveries_courier ON deliveries(courier_id);
CREATE INDEX deliveries_home ON deliveries(home_id);
CREATE TABLE timeline (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    device_id TEXT,
    delivery_id TEXT,
    time_ms BIGINT NOT NULL,
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
    created_ms BIGINT NOT NULL,
    acked_ms BIGINT
);
CREATE INDEX alerts_home ON alerts(home_id, created_ms);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    hub_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
