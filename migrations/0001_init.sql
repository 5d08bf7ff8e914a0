-- 0001: accounts, users, groups, IdP configurations, login transactions, tokens, audit.
-- Times are Unix seconds (UTC). Secrets are never stored in clear: passwords as argon2id
-- PHC strings, tokens and codes as SHA-256 hashes, client secrets sealed (XChaCha20-Poly1305).

CREATE TABLE accounts (
    id                      INTEGER PRIMARY KEY,
    identifier              TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name                    TEXT NOT NULL,
    access_token_ttl_secs   INTEGER CHECK (access_token_ttl_secs IS NULL OR access_token_ttl_secs > 0),
    created_at              INTEGER NOT NULL
);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    first_name      TEXT NOT NULL DEFAULT '',
    last_name       TEXT NOT NULL DEFAULT '',
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'user')),
    status          TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    password_hash   TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX users_account ON users(account_id);

-- The immutable IdP subject a user is bound to, one per issuer; one subject never maps to
-- two users.
CREATE TABLE user_idp_links (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider    TEXT NOT NULL CHECK (provider IN ('okta', 'entra', 'saml')),
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    linked_at   INTEGER NOT NULL,
    UNIQUE (issuer, subject),
    UNIQUE (user_id, issuer)
);

CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    external_id TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (account_id, name)
);
CREATE UNIQUE INDEX groups_external ON groups(account_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE group_members (
    group_id    INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;

-- One configuration of each kind per account; at most one active per account.
CREATE TABLE idp_configs (
    id                  INTEGER PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind                TEXT NOT NULL CHECK (kind IN ('okta', 'entra', 'saml')),
    active              INTEGER NOT NULL CHECK (active IN (0, 1)),
    client_id           TEXT,
    client_secret_enc   TEXT,
    openid_url          TEXT,
    graph_url           TEXT,
    certificate         TEXT,
    next_certificate    TEXT,
    sp_entity_id        TEXT,
    idp_sso_url         TEXT,
    idp_entity_id       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (account_id, kind),
    CHECK (kind = 'saml' OR (client_id IS NOT NULL AND client_secret_enc IS NOT NULL AND openid_url IS NOT NULL)),
    CHECK (kind <> 'saml' OR (certificate IS NOT NULL AND sp_entity_id IS NOT NULL AND idp_sso_url IS NOT NULL))
);
CREATE UNIQUE INDEX idp_configs_one_active ON idp_configs(account_id) WHERE active = 1;

-- Extra https callback URLs an admin allows for the account.
CREATE TABLE callback_urls (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    PRIMARY KEY (account_id, url)
) WITHOUT ROWID;

-- Pending browser logins. The handle returned as `Identifier` is stored only as a hash.
CREATE TABLE login_transactions (
    handle_hash         TEXT PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    purpose             TEXT NOT NULL CHECK (purpose IN ('login', 'import')),
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
CREATE INDEX login_transactions_expiry ON login_transactions(expires_at);
CREATE INDEX login_transactions_state ON login_transactions(state);

-- Long-lived access tokens from the token exchange API, stored as SHA-256 hashes.
CREATE TABLE access_tokens (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash      TEXT NOT NULL UNIQUE,
    grant_type      TEXT NOT NULL,
    scope           TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    last_used_at    INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX access_tokens_account ON access_tokens(account_id);

-- Session JWTs revoked before their expiry (sign-out), kept until they would have expired.
CREATE TABLE revoked_sessions (
    jti         TEXT PRIMARY KEY,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- SAML assertion IDs already consumed, kept until the assertion's NotOnOrAfter.
CREATE TABLE saml_replay_cache (
    assertion_id    TEXT NOT NULL,
    issuer          TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (issuer, assertion_id)
) WITHOUT ROWID;

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_account ON audit_events(account_id, id DESC);
