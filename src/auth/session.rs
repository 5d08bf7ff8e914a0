//! Session JWTs: EdDSA (Ed25519) tokens the agent mints at sign-in and verifies itself.
//!
//! The signing key is created on first start and kept in the data directory
//! (`session-signing.pem`, 0600). Expiry is checked against the agent's [`Clock`], not the
//! library's, so tests can move time.
//!
//! [`Clock`]: crate::clock::Clock

use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::crypto::{create_private_file, random_bytes, random_token};
use crate::error::{Error, Result};

const KEY_FILE: &str = "session-signing.pem";
/// The `iss` and `aud` of every session JWT.
pub const ISSUER: &str = "amove-agent";

/// What a session JWT says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`ISSUER`].
    pub aud: String,
    /// The user's id.
    pub sub: String,
    /// The user's email.
    pub email: String,
    /// The account identifier.
    pub acct: String,
    /// The account id.
    pub aid: i64,
    /// `owner`, `admin` or `user` at the time of sign-in.
    pub role: String,
    /// How the user signed in: `okta`, `entra`, `saml` or `password`.
    pub amr: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Unique id, for revocation.
    pub jti: String,
}

/// The agent's session signing key pair.
#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    validation: Validation,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKeys(kid={})", self.kid)
    }
}

impl SessionKeys {
    /// Loads the key of `data_dir`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if path.exists() {
            crate::crypto::check_private(&path)?;
        }
        let key = match std::fs::read_to_string(&path) {
            Ok(pem) => SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                Error::internal(format!("{} is not an Ed25519 key: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::from_bytes(&random_bytes::<32>()?);
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| Error::internal(format!("encoding key: {e}")))?;
                create_private_file(&path, pem.as_bytes())?;
                key
            }
            Err(e) => return Err(e.into()),
        };
        Self::from_signing_key(&key)
    }

    /// A fresh random key that lives only in memory (tests).
    pub fn ephemeral() -> Result<Self> {
        Self::from_signing_key(&SigningKey::from_bytes(&random_bytes::<32>()?))
    }

    fn from_signing_key(key: &SigningKey) -> Result<Self> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| Error::internal(format!("encoding key: {e}")))?;
        let public = key.verifying_key().to_bytes();
        let kid = crate::crypto::sha256_hex(&hex::encode(public))[..16].to_string();
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Expiry is checked against the agent's clock in `verify`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_audience(&[ISSUER]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            kid,
            validation,
        })
    }

    /// Signs a new session for `claims` (its `iss`, `aud`, `iat`, `exp` and `jti` are set here).
    pub fn mint(
        &self,
        mut claims: SessionClaims,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(String, SessionClaims)> {
        claims.iss = ISSUER.into();
        claims.aud = ISSUER.into();
        claims.iat = now;
        claims.exp = now.saturating_add(ttl_secs);
        claims.jti = random_token()?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("signing session: {e}")))?;
        Ok((token, claims))
    }

    /// Checks signature, algorithm, issuer, audience and expiry at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<SessionClaims> {
        let claims = self.verify_any_age(token)?;
        if claims.exp <= now {
            return Err(Error::Token(
                "the session token has expired; sign in again".into(),
            ));
        }
        Ok(claims)
    }

    /// Checks signature, algorithm, issuer and audience, whatever the expiry (a session
    /// renewal accepts a session that expired while the machine slept: its grant decides).
    pub fn verify_any_age(&self, token: &str) -> Result<SessionClaims> {
        jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|_| Error::Token("the session token is invalid".into()))
    }
}

/// A claims template for a user; `mint` fills in the rest.
pub fn claims_for(
    user_id: i64,
    email: &str,
    account_identifier: &str,
    account_id: i64,
    role: &str,
    amr: &str,
) -> SessionClaims {
    SessionClaims {
        iss: String::new(),
        aud: String::new(),
        sub: user_id.to_string(),
        email: email.to_string(),
        acct: account_identifier.to_string(),
        aid: account_id,
        role: role.to_string(),
        amr: amr.to_string(),
        iat: 0,
        exp: 0,
        jti: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        claims_for(1, "a@b.test", "acme", 1, "admin", "password")
    }

    #[test]
    fn mints_and_verifies() -> Result<()> {
        let k = SessionKeys::ephemeral()?;
        let (t, c) = k.mint(claims(), 1_000, 60)?;
        assert_eq!(k.verify(&t, 1_010)?, c);
        Ok(())
    }

    #[test]
    fn refuses_expired_tampered_and_foreign_tokens() -> Result<()> {
        let k = SessionKeys::ephemeral()?;
        let (t, _) = k.mint(claims(), 1_000, 60)?;
        assert!(matches!(k.verify(&t, 1_060), Err(Error::Token(_))));
        let other = SessionKeys::ephemeral()?;
        assert!(matches!(other.verify(&t, 1_010), Err(Error::Token(_))));
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(k.verify(&parts.join("."), 1_010).is_err());
        Ok(())
    }

    #[test]
    fn refuses_alg_none() -> Result<()> {
        use base64::Engine;
        let k = SessionKeys::ephemeral()?;
        let (t, _) = k.mint(claims(), 1_000, 60)?;
        let payload = t.split('.').nth(1).unwrap_or_default();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert!(k.verify(&format!("{header}.{payload}."), 1_010).is_err());
        Ok(())
    }

    #[test]
    fn key_file_persists_across_loads() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let a = SessionKeys::load_or_create(dir.path())?;
        let (t, _) = a.mint(claims(), 1_000, 60)?;
        let b = SessionKeys::load_or_create(dir.path())?;
        assert!(b.verify(&t, 1_001).is_ok());
        Ok(())
    }
}
