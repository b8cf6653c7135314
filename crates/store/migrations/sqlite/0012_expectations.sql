-- "I expect a delivery from X today": an owner's expectation for a home, matched to
-- the delivery that arrives for it (its window overlapping, from that merchant when
-- one is named).
CREATE TABLE expectations (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    dispatcher_id TEXT,
    note TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    delivery_id TEXT,
    matched_ms INTEGER
);
CREATE INDEX expectations_home ON expectations(home_id, window_end_ms);
