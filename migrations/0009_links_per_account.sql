-- 0009: IdP links are scoped by account. A SAML Issuer (and a NameID) is whatever the IdP
-- writes, so with links unique across the database an admin of one account could pre-link
-- another account's IdP identities to users of their own, and lock those users out for good.
-- Now (account, issuer, subject) is unique; one user still has one link per provider kind.
CREATE TABLE user_idp_links_new (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider    TEXT NOT NULL CHECK (provider IN ('okta', 'entra', 'saml')),
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    linked_at   INTEGER NOT NULL,
    UNIQUE (account_id, issuer, subject),
    UNIQUE (user_id, provider)
);
INSERT INTO user_idp_links_new (id, account_id, user_id, provider, issuer, subject, linked_at)
    SELECT l.id, u.account_id, l.user_id, l.provider, l.issuer, l.subject, l.linked_at
    FROM user_idp_links l JOIN users u ON u.id = l.user_id;
DROP TABLE user_idp_links;
ALTER TABLE user_idp_links_new RENAME TO user_idp_links;
CREATE INDEX user_idp_links_user ON user_idp_links (user_id);
