//! Cryptographic helpers: random tokens, hashes, key files, sealing secrets at rest.

pub mod seal;

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// `n` bytes from the operating system's CSPRNG.
///
/// They are fetched [`POOL_BYTES`] at a time per thread — one system call where a login
/// draws five values — and handed out once each: the bytes given out are wiped from the
/// pool at once, so what stays in memory is only what is yet to be used (as with any
/// generator in the process). Requests larger than a quarter of the pool bypass it.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    if N > POOL_BYTES / 4 {
        os_random(&mut out)?;
        return Ok(out);
    }
    match POOL.try_with(|p| p.borrow_mut().take(&mut out)) {
        Ok(taken) => taken?,
        // The thread is ending and its pool is gone.
        Err(_) => os_random(&mut out)?,
    }
    Ok(out)
}

fn os_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::internal(format!("random: {e}")))
}

/// How many bytes a thread's pool of OS randomness holds.
const POOL_BYTES: usize = 4096;

struct RandomPool {
    buf: [u8; POOL_BYTES],
    /// Where the unused bytes begin (`POOL_BYTES`: none left).
    next: usize,
}

impl RandomPool {
    fn take(&mut self, out: &mut [u8]) -> Result<()> {
        if self.next + out.len() > POOL_BYTES {
            os_random(&mut self.buf[..])?;
            self.next = 0;
        }
        let used = &mut self.buf[self.next..self.next + out.len()];
        out.copy_from_slice(used);
        zeroize::Zeroize::zeroize(used);
        self.next += out.len();
        Ok(())
    }
}

impl Drop for RandomPool {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf[..]);
    }
}

thread_local! {
    static POOL: std::cell::RefCell<RandomPool> = const {
        std::cell::RefCell::new(RandomPool {
            buf: [0; POOL_BYTES],
            next: POOL_BYTES,
        })
    };
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

/// Makes sure an existing key file or data directory is the owner's alone (Unix: no group or
/// other permission bits). Permissions an older agent, a backup restore or a careless `cp`
/// left open are tightened (0600 for a file, 0700 for a directory) with a warning; if the
/// agent cannot change them (the path is someone else's), it refuses to start, saying which
/// path and what to do. On other systems the per-user profile directory protects them.
pub fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let want = if meta.is_dir() { 0o700 } else { 0o600 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(want)).map_err(|e| {
                Error::internal(format!(
                    "{} is readable by other users (mode {mode:o}) and the agent cannot \
                     change that ({e}); make it the agent user's own with chmod {want:o}",
                    path.display()
                ))
            })?;
            tracing::warn!(
                path = %path.display(),
                "tightened permissions {mode:o} -> {want:o}: key material must be the owner's alone"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates the data directory (0700 on Unix) if it does not exist; an existing one is checked
/// with [`check_private`].
pub fn ensure_private_dir(path: &Path) -> Result<()> {
    if path.exists() {
        return check_private(path);
    }
    {
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

    #[cfg(unix)]
    #[test]
    fn open_key_files_and_directories_are_tightened() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("data.key");
        std::fs::write(&file, b"k")?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        check_private(&file)?;
        assert_eq!(
            std::fs::metadata(&file)?.permissions().mode() & 0o777,
            0o600
        );
        let sub = dir.path().join("data");
        std::fs::create_dir(&sub)?;
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755))?;
        ensure_private_dir(&sub)?;
        assert_eq!(std::fs::metadata(&sub)?.permissions().mode() & 0o777, 0o700);
        // Already private: left as it is.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400))?;
        check_private(&file)?;
        assert_eq!(
            std::fs::metadata(&file)?.permissions().mode() & 0o777,
            0o400
        );
        Ok(())
    }

    #[test]
    fn random_tokens_are_256_bits_and_distinct() -> Result<()> {
        let a = random_token()?;
        let b = random_token()?;
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        Ok(())
    }

    #[test]
    fn pooled_random_bytes_are_handed_out_once_and_wiped_from_the_pool() -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        // Several refills of the pool: no value comes out twice.
        for _ in 0..(3 * POOL_BYTES / 32) {
            assert!(seen.insert(random_bytes::<32>()?), "a value came out twice");
        }
        let mut pool = RandomPool {
            buf: [0; POOL_BYTES],
            next: POOL_BYTES,
        };
        let mut a = [0u8; 24];
        pool.take(&mut a)?;
        assert_ne!(a, [0u8; 24], "the pool was filled from the OS");
        assert!(
            pool.buf[..24].iter().all(|&b| b == 0),
            "given-out bytes stay wiped"
        );
        assert!(
            pool.buf[24..].iter().any(|&b| b != 0),
            "the rest is yet to be used"
        );
        let mut b = [0u8; 24];
        pool.take(&mut b)?;
        assert_ne!(a, b);
        assert_eq!(pool.next, 48);
        // Past the end, the pool is refilled rather than read beyond.
        pool.next = POOL_BYTES - 10;
        pool.take(&mut b)?;
        assert_eq!(pool.next, 24);
        // Large requests do not go through the pool.
        let big = random_bytes::<2048>()?;
        assert!(big.iter().any(|&b| b != 0));
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
