-- Audit entries committed to a home (threshold_core::audit, v2): the form of each
-- entry (1: before home commitments; 2: its hash covers its home) and its home (NULL:
-- hub-wide, or a v1 entry).
ALTER TABLE audit_log ADD COLUMN v INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN home_id TEXT;
