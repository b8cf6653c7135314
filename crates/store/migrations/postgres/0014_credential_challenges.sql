-- Single-use challenges for a device's broker credential renewal
-- (docs/protocol.md §8.6): the device signs one with its key to get a new broker
-- password. Kept after use (used_ms) so a reused one is told apart from an unknown
-- one; swept an hour after it expired.
CREATE TABLE credential_challenges (
    nonce TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT
);
CREATE INDEX credential_challenges_expiry ON credential_challenges(expires_ms);
