-- An administrator can disable an account: it can no longer sign in, and its sessions
-- and API keys end with it. NULL: active.
ALTER TABLE users ADD COLUMN disabled_ms INTEGER;
