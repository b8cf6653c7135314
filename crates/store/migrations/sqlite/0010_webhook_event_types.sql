-- Which event types a webhook endpoint receives: a comma-separated list of types
-- (alert.raised, delivery.state_changed, ...); empty: every type.
ALTER TABLE webhook_endpoints ADD COLUMN event_types TEXT NOT NULL DEFAULT '';
