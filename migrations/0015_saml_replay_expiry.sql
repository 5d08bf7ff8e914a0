-- 0015: every accepted SAML assertion first forgets the expired ones
-- (`DELETE … WHERE expires_at <= now`); without an index that scanned the whole replay cache, on
-- the single writer, once per sign-in: at 1,000 sign-ins a minute the cache holds ~5,000 rows
-- (NotOnOrAfter is usually 5 minutes). Measured with scripts/bench.sh (BENCHMARKS.md, SAML ACS).
CREATE INDEX saml_replay_cache_expiry ON saml_replay_cache(expires_at);
