-- 0014: the agent's own SAML keys (per account: it is the SP of each account's SAML IdP),
-- whether its AuthnRequests are signed, whether plain assertions are refused, and the IdP's
-- metadata URL.
--
-- A key is active while retire_at is NULL; after a rotation the previous key keeps working
-- (published, decrypting) until retire_at, then it is deleted. The private key is sealed
-- (crypto::seal) with a context naming the account, the use and the certificate's digest.
ALTER TABLE idp_configs ADD COLUMN sign_authn_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idp_configs ADD COLUMN require_encrypted_assertions INTEGER NOT NULL DEFAULT 0;
-- Where the IdP publishes its metadata (certificate rollover is read from it).
ALTER TABLE idp_configs ADD COLUMN idp_metadata_url TEXT;

CREATE TABLE sp_keys (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    use             TEXT NOT NULL CHECK (use IN ('signing', 'encryption')),
    private_key_enc TEXT NOT NULL,
    certificate     TEXT NOT NULL,
    not_after       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    retire_at       INTEGER
);
-- One active key per account and use: concurrent first uses insert one, the others read it.
CREATE UNIQUE INDEX sp_keys_active ON sp_keys (account_id, use) WHERE retire_at IS NULL;
