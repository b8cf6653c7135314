-- Alerts about the hub itself rather than a home (it fell behind with its devices'
-- messages, ...): for operators, one per cause, resolved when the cause ends.
CREATE TABLE system_alerts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL,
    cause_key TEXT NOT NULL UNIQUE,
    raised_ms INTEGER NOT NULL,
    resolved_ms INTEGER
);
CREATE INDEX system_alerts_raised ON system_alerts(raised_ms);
