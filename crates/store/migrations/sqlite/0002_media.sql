-- Delivery recordings, stored camera frames, and owners' webhooks.
CREATE TABLE recordings (
    delivery_id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    started_ms INTEGER NOT NULL,
    ends_ms INTEGER
);
CREATE INDEX recordings_home ON recordings(home_id, started_ms);
CREATE TABLE media_frames (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    home_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    capture_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    recovered INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX media_frames_home ON media_frames(home_id, capture_ms);
CREATE INDEX media_frames_received ON media_frames(received_ms);
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    description TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints(owner_id);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_ms);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, created_ms);
