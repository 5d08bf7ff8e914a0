-- 0012: an OIDC configuration may have no client secret: a public client (RFC 8252 §8.5),
-- which authenticates at the token endpoint with its client_id and the PKCE verifier alone.
-- SQLite cannot drop a CHECK, so the table is rebuilt with the same columns and rows; no
-- other table refers to it.
CREATE TABLE idp_configs_0012 (
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
    groups_attribute    TEXT,
    allowed_tenants     TEXT,
    allow_expired_certificate INTEGER NOT NULL DEFAULT 0,
    version             INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, kind),
    CHECK (kind = 'saml' OR (client_id IS NOT NULL AND openid_url IS NOT NULL)),
    CHECK (kind <> 'saml' OR (certificate IS NOT NULL AND sp_entity_id IS NOT NULL AND idp_sso_url IS NOT NULL))
);
INSERT INTO idp_configs_0012 (id, account_id, kind, active, client_id, client_secret_enc,
        openid_url, graph_url, certificate, next_certificate, sp_entity_id, idp_sso_url,
        idp_entity_id, created_at, updated_at, groups_attribute, allowed_tenants,
        allow_expired_certificate, version)
    SELECT id, account_id, kind, active, client_id, client_secret_enc, openid_url, graph_url,
        certificate, next_certificate, sp_entity_id, idp_sso_url, idp_entity_id, created_at,
        updated_at, groups_attribute, allowed_tenants, allow_expired_certificate, version
    FROM idp_configs;
DROP TABLE idp_configs;
ALTER TABLE idp_configs_0012 RENAME TO idp_configs;
CREATE UNIQUE INDEX idp_configs_one_active ON idp_configs(account_id) WHERE active = 1;
