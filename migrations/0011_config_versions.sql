-- 0011: each IdP configuration has a version, raised by every update; a pending login
-- remembers the version it started with and completes only against that same configuration
-- (an update keeps the row id, so the id alone let a login started against one IdP or
-- certificate finish against another).
ALTER TABLE idp_configs ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE login_transactions ADD COLUMN idp_config_version INTEGER;
