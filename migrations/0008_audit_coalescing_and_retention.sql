-- 0008: repeated refusals coalesce into one row (how many, when last); the audit trail has a
-- retention (per account, default 180 days) and a size bound (applied by the agent).
ALTER TABLE audit_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN last_at INTEGER;
CREATE INDEX audit_events_refusals ON audit_events(action, actor, detail) WHERE outcome = 'refused';
CREATE INDEX audit_events_at ON audit_events(at);
ALTER TABLE accounts ADD COLUMN audit_retention_days INTEGER
    CHECK (audit_retention_days IS NULL OR audit_retention_days > 0);
