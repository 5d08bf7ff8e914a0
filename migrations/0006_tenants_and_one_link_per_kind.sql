-- 0006: Entra ID tenant allow-list; one IdP link per local user and provider kind.
--
-- `allowed_tenants` is a JSON array of Entra ID tenant ids (`tid`), NULL when none is listed.
-- A multi-tenant configuration (`common`, `organizations`, `consumers`, or a discovery issuer
-- with `{tenantid}`) signs in only tokens whose `tid` it lists.
ALTER TABLE idp_configs ADD COLUMN allowed_tenants TEXT;

-- Links were unique per (user, issuer), so a second Entra tenant (or a second Okta
-- authorization server, or a second SAML IdP) linked the same user afresh: through a tenant an
-- attacker controls, by the email alone. A user now has at most one link per provider kind.
-- Where an older database holds several, the first one made is kept: the later ones are
-- exactly the links this rule refuses (their identities are told they are linked already).
DELETE FROM user_idp_links
WHERE id NOT IN (
    SELECT id FROM (
        SELECT id, ROW_NUMBER() OVER (
            PARTITION BY user_id, provider ORDER BY linked_at, id
        ) AS n
        FROM user_idp_links
    )
    WHERE n = 1
);
CREATE UNIQUE INDEX user_idp_links_one_per_kind ON user_idp_links (user_id, provider);
