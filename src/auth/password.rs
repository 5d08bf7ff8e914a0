//! Local passwords: argon2id (RustCrypto `argon2`, default RFC 9106 parameters).
//!
//! Both functions are CPU-bound (tens of milliseconds): async callers run them on the
//! blocking pool. Verification works in a reusable [`HashMemory`]: argon2 needs ~19 MiB per
//! hash, and fresh allocations of that size end up retained per thread by the allocator, so
//! a burst of sign-ins would otherwise leave the agent hundreds of megabytes larger.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

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

/// Largest argon2 memory a stored hash may ask for (64 MiB), so a tampered database cannot
/// make verification allocate without bound.
const MAX_BLOCKS: usize = 64 * 1024;

/// Reusable argon2 working memory: buffers are taken for one verification and given back.
#[derive(Debug, Default)]
pub struct HashMemory {
    free: Mutex<Vec<Vec<Block>>>,
}

impl HashMemory {
    /// An empty pool (buffers are made on first use).
    pub fn new() -> Self {
        Self::default()
    }

    fn with_buffer<T>(&self, f: impl FnOnce(&mut Vec<Block>) -> T) -> T {
        let mut buf = self
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        let out = f(&mut buf);
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(buf);
        out
    }
}

/// True when `pw` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify(pw: &Secret, phc: &str, memory: &HashMemory) -> bool {
    if pw.expose().len() > MAX_LENGTH {
        return false;
    }
    memory.with_buffer(|buf| verify_in(pw.expose().as_bytes(), phc, buf).unwrap_or(false))
}

fn verify_in(pw: &[u8], phc: &str, buf: &mut Vec<Block>) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let (salt, expected) = (parsed.salt.as_ref()?, parsed.hash.as_ref()?);
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return None;
    }
    if buf.len() < blocks {
        buf.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.as_bytes().len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(pw, salt, &mut out, &mut buf[..blocks])
        .ok()?;
    Some(out.ct_eq(expected.as_bytes()).into())
}

/// Spends the same time as [`verify`] against a throwaway hash, so an unknown user or a
/// user without a password cannot be told apart from a wrong password by timing.
pub fn verify_dummy(pw: &Secret, memory: &HashMemory) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash(&Secret::new("dummy password for timing")).ok()) {
        let _ = verify(pw, phc, memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_verifies() -> Result<()> {
        let pw = Secret::new("correct horse battery");
        let phc = hash(&pw)?;
        let mem = HashMemory::new();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify(&pw, &phc, &mem));
        assert!(!verify(&Secret::new("wrong horse battery"), &phc, &mem));
        assert!(!verify(&pw, "not a hash", &mem));
        // One buffer served all three.
        assert_eq!(mem.free.lock().map(|f| f.len()).unwrap_or(0), 1);
        Ok(())
    }

    #[test]
    fn refuses_hashes_asking_for_unbounded_memory() {
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify(&Secret::new("x"), huge, &HashMemory::new()));
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
