-- 0004: the SAML attribute that carries a user's groups (NULL: the defaults — groups,
-- memberOf, the Microsoft groups claim URI, isMemberOf).
ALTER TABLE idp_configs ADD COLUMN groups_attribute TEXT;
