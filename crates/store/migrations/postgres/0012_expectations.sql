-- "I expect a delivery from X today": an owner's expectation for a home, matched to
-- the delivery that arrives for it (its window overlapping, from that merchant when
-- one is named).
CREATE TABLE expectations (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    dispatcher_id TEXT,
    note TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    delivery_id TEXT,
    matched_ms BIGINT
);
CREATE INDEX expectations_home ON expectations(home_id, window_end_ms);
