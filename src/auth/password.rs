//! Local passwords: argon2id (RustCrypto `argon2`, default RFC 9106 parameters).
//!
//! Both functions are CPU-bound (tens of milliseconds): async callers run them on the
//! blocking pool.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Shortest password accepted for a new local account.
pub const MIN_LENGTH: usize = 12;
/// Longest password accepted (argon2 hashes anything, but a megabyte "password" is an attack).
pub const MAX_LENGTH: usize = 1024;

/// Checks a new password against the policy; the message says what is wrong.
pub fn check_policy(pw: &Secret) -> Result<()> {
    let n = pw.expose().chars().count();
    if n < MIN_LENGTH {
        return Err(Error::invalid(format!(
            "password must be at least {MIN_LENGTH} characters"
        )));
    }
    if pw.expose().len() > MAX_LENGTH {
        return Err(Error::invalid(format!(
            "password must be at most {MAX_LENGTH} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password into a PHC string with a fresh random salt.
pub fn hash(pw: &Secret) -> Result<String> {
    Argon2::default()
        .hash_password(pw.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("argon2: {e}")))
}

/// True when `pw` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify(pw: &Secret, phc: &str) -> bool {
    if pw.expose().len() > MAX_LENGTH {
        return false;
    }
    Argon2::default()
        .verify_password(pw.expose().as_bytes(), phc)
        .is_ok()
}

/// Spends the same time as [`verify`] against a throwaway hash, so an unknown user or a
/// user without a password cannot be told apart from a wrong password by timing.
pub fn verify_dummy(pw: &Secret) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash(&Secret::new("dummy password for timing")).ok()) {
        let _ = verify(pw, phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_verifies() -> Result<()> {
        let pw = Secret::new("correct horse battery");
        let phc = hash(&pw)?;
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify(&pw, &phc));
        assert!(!verify(&Secret::new("wrong horse battery"), &phc));
        assert!(!verify(&pw, "not a hash"));
        Ok(())
    }

    #[test]
    fn policy_names_the_problem() {
        let e = check_policy(&Secret::new("short"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("password must be at least 12 characters")
        );
    }
}
