-- 0005: login transactions keyed by an integer id that their handles carry.
--
-- The `Identifier` and the `state` of a transaction both encode its id next to 256 random
-- bits (the split-token pattern: the id locates the row, the rest proves possession and is
-- compared after the lookup). The id is the creation second times 2^20 plus a counter, so new
-- transactions append to the table's last page and expired ones are a prefix of it: starting
-- a login no longer updates pages at random places of two indexes (the hash and the state),
-- which was most of its cost. Only import transactions, rare, have an index of their own.
--
-- Pending transactions of the old shape cannot be found by the new lookups. They live for ten
-- minutes at most, so they are dropped: a sign-in in flight during the upgrade starts again.
DROP TABLE login_transactions;
CREATE TABLE login_transactions (
    id                  INTEGER PRIMARY KEY,
    handle_hash         TEXT NOT NULL,
    handle_enc          TEXT,
    account_id          INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    purpose             TEXT NOT NULL CHECK (purpose IN ('login', 'import')),
    client              TEXT NOT NULL DEFAULT 'api' CHECK (client IN ('api', 'desktop')),
    provider            TEXT NOT NULL CHECK (provider IN ('okta', 'entra', 'saml')),
    idp_config_id       INTEGER NOT NULL,
    started_by_user_id  INTEGER REFERENCES users(id) ON DELETE CASCADE,
    login_hint          TEXT NOT NULL,
    callback_url        TEXT NOT NULL,
    state               TEXT NOT NULL,
    nonce               TEXT,
    pkce_verifier_enc   TEXT,
    saml_request_id     TEXT,
    code_hash           TEXT,
    code_expires_at     INTEGER,
    result_enc          TEXT,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    consumed_at         INTEGER
);
CREATE INDEX login_transactions_imports ON login_transactions(started_by_user_id, created_at)
    WHERE purpose = 'import';
