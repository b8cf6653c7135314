-- Wi-Fi attack evidence (law 7): one row per attack a device reported in `wifi_attack`
-- events. A detector reports an attack while it is going on and again when it has
-- ended; both carry the same (device, kind, start), so the second updates the first.
-- `outage_*` and `explained_alert_ids` tie the attack to the camera outage it explains.
CREATE TABLE wifi_attacks (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    ongoing BIGINT NOT NULL,
    detail TEXT NOT NULL,
    camera_id TEXT,
    outage_from_ms BIGINT,
    outage_to_ms BIGINT,
    delivery_id TEXT,
    alert_id TEXT,
    timeline_id TEXT,
    explained_alert_ids TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (device_id, kind, start_ms)
);
CREATE INDEX wifi_attacks_home ON wifi_attacks(home_id, start_ms);
