-- 0016: what a signed-in session keeps of its sign-in at the IdP, bound to the session JWT it
-- currently backs (`jti`; a refresh moves it to the new JWT). OIDC: the refresh token and the
-- ID token (RP-initiated logout's id_token_hint), both sealed; SAML: the NameID and SessionIndex
-- a LogoutRequest names, sealed, with a hash of the SessionIndex for an IdP-initiated logout to
-- find the session by. `started_at` is the sign-in, from which the absolute lifetime counts.
CREATE TABLE session_grants (
    id                    INTEGER PRIMARY KEY,
    jti                   TEXT NOT NULL UNIQUE,
    jwt_expires_at        INTEGER NOT NULL,
    account_id            INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id               INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider              TEXT NOT NULL CHECK (provider IN ('okta', 'entra', 'saml')),
    idp_config_id         INTEGER NOT NULL,
    issuer                TEXT NOT NULL,
    subject               TEXT NOT NULL,
    started_at            INTEGER NOT NULL,
    refreshed_at          INTEGER,
    refresh_token_enc     TEXT,
    id_token_enc          TEXT,
    saml_logout_enc       TEXT,
    saml_session_hash     TEXT
);
CREATE INDEX session_grants_subject ON session_grants(account_id, issuer, subject);
CREATE INDEX session_grants_user ON session_grants(user_id);
CREATE INDEX session_grants_expiry ON session_grants(jwt_expires_at);

-- Sign-outs sent to the IdP and not yet back: the `state` (OIDC) or RelayState (SAML) the
-- agent's signed-out page and SLO endpoint expect, as a hash, and for SAML the LogoutRequest's ID
-- a LogoutResponse must answer (InResponseTo). Single use, 10 minutes.
CREATE TABLE pending_logouts (
    state_hash      TEXT PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    provider        TEXT NOT NULL CHECK (provider IN ('okta', 'entra', 'saml')),
    idp_config_id   INTEGER NOT NULL,
    request_id      TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pending_logouts_request ON pending_logouts(request_id) WHERE request_id IS NOT NULL;

-- SAML single logout: the IdP's SingleLogoutService (HTTP-Redirect), from its metadata or set
-- by the admin (`IdPSLOURL`).
ALTER TABLE idp_configs ADD COLUMN idp_slo_url TEXT;
