//! Cryptographic helpers: random tokens, hashes, key files, sealing secrets at rest.

pub mod seal;

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::internal(format!("random: {e}")))?;
    Ok(b)
}

/// 32 random bytes (256 bits), base64url without padding: 43 characters.
pub fn random_token() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// SHA-256 of `s`, lowercase hex: how tokens and codes are stored and looked up.
/// (They carry 256 random bits, so a fast hash is enough; no salt is needed.)
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Creates `path` readable by the owner only (0600 on Unix) and writes `bytes` to it.
/// Fails if the file exists, so a key is never silently replaced.
pub fn create_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Creates the data directory (0700 on Unix) if it does not exist.
pub fn ensure_private_dir(path: &Path) -> Result<()> {
    if !path.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_256_bits_and_distinct() -> Result<()> {
        let a = random_token()?;
        let b = random_token()?;
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only_and_never_overwritten() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("k");
        create_private_file(&p, b"x")?;
        assert_eq!(std::fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        assert!(create_private_file(&p, b"y").is_err());
        Ok(())
    }
}
