-- 0013: settings of the agent as a whole, not of one account (the network setting of IdP
-- requests: a proxy URL, sealed, and a NO_PROXY list). One row per named setting.
CREATE TABLE agent_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
