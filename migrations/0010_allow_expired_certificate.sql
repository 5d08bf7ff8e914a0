-- 0010: an admin may allow a SAML IdP's expired signing certificate (some IdPs never rotate);
-- otherwise a certificate that expires after it was saved stops verifying.
ALTER TABLE idp_configs ADD COLUMN allow_expired_certificate INTEGER NOT NULL DEFAULT 0;
