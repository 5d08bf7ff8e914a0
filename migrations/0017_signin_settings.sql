-- 0017: who may get in (issue 18), the account's sign-in settings: AutoProvision (unknown
-- identities with a verified email in one of the listed domains become standard users at their
-- first sign-in), the IdP groups whose members are admins, and the absolute lifetime of a
-- signed-in session (renewals end there). No row: the defaults (off, none, 30 days).
CREATE TABLE signin_settings (
    account_id              INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    auto_provision          INTEGER NOT NULL DEFAULT 0 CHECK (auto_provision IN (0, 1)),
    session_lifetime_days   INTEGER NOT NULL DEFAULT 30
                            CHECK (session_lifetime_days BETWEEN 1 AND 365),
    updated_at              INTEGER NOT NULL
);

-- Domains (lower-case ASCII, IDNA A-labels) whose verified emails AutoProvision accepts. A
-- username no user has is routed to the one account auto-provisioning its domain.
CREATE TABLE auto_provision_domains (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    domain      TEXT NOT NULL,
    PRIMARY KEY (account_id, domain)
) WITHOUT ROWID;
CREATE INDEX auto_provision_domains_domain ON auto_provision_domains(domain);

-- IdP groups (names or ids, as the IdP sends them) whose members are the account's admins.
CREATE TABLE admin_groups (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

-- Who made a user's role what it is: NULL by hand (init, user add, an import), 'admin_groups'
-- by the AdminGroups rule at a sign-in. Only the rule's admins are demoted by the rule.
ALTER TABLE users ADD COLUMN role_source TEXT CHECK (role_source IS NULL OR role_source = 'admin_groups');
