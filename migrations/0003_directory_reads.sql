-- 0003: directory reads of an import, kept (sealed) until the admin persists a selection, so
-- the IdP subjects users are linked to come from the IdP, never from the request.
CREATE TABLE directory_reads (
    id                  INTEGER PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    started_by_user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider            TEXT NOT NULL CHECK (provider IN ('okta', 'entra', 'saml')),
    issuer              TEXT NOT NULL,
    relations_enc       TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL
);
CREATE INDEX directory_reads_expiry ON directory_reads(expires_at);
