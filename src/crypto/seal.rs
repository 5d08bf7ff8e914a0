//! Sealing secrets at rest (client secrets, PKCE verifiers) with XChaCha20-Poly1305.
//!
//! The 256-bit data key lives in the OS keychain where the platform has one the agent can
//! use unattended (macOS Keychain, Windows Credential Manager), otherwise in a 0600 file
//! `data.key` in the data directory. Each sealed value is bound to where it belongs (the
//! associated data names the row and field), so a ciphertext copied to another row fails.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::crypto::{create_private_file, random_bytes};
use crate::error::{Error, Result};
use crate::secret::Secret;

const PREFIX: &str = "v1.";
const KEY_FILE: &str = "data.key";

/// Where the data key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    /// The OS keychain.
    Keychain,
    /// `data.key` in the data directory.
    File,
}

/// Seals and opens secrets with the agent's data key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer with this key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Loads the data key of `data_dir`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, KeyLocation)> {
        if let Some(key) = keychain::load_or_create(data_dir)? {
            return Ok((Self::from_key(&key), KeyLocation::Keychain));
        }
        let path = data_dir.join(KEY_FILE);
        if path.exists() {
            super::check_private(&path)?;
        }
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => decode_key(&text)
                .ok_or_else(|| Error::internal(format!("{} is corrupt", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Zeroizing::new(random_bytes::<32>()?);
                create_private_file(&path, STANDARD.encode(*key).as_bytes())?;
                key
            }
            Err(e) => return Err(e.into()),
        };
        Ok((Self::from_key(&key), KeyLocation::File))
    }

    /// Encrypts `plaintext` bound to `context` (e.g. `idp_configs:7:client_secret`).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String> {
        // nonce ‖ ciphertext ‖ tag, encrypted in place: the plaintext copy is overwritten
        // (and wiped on the way out if encryption fails); the capacity is exact, so it is
        // never reallocated with the plaintext in it.
        let nonce = random_bytes::<24>()?;
        let mut raw = Zeroizing::new(Vec::with_capacity(24 + plaintext.len() + 16));
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                context.as_bytes(),
                &mut raw[24..],
            )
            .map_err(|_| Error::internal("sealing failed"))?;
        raw.extend_from_slice(&tag);
        let mut out = String::with_capacity(PREFIX.len() + raw.len().div_ceil(3) * 4);
        out.push_str(PREFIX);
        STANDARD.encode_string(&raw, &mut out);
        Ok(out)
    }

    /// Seals a secret string.
    pub fn seal_secret(&self, s: &Secret, context: &str) -> Result<String> {
        self.seal(s.expose().as_bytes(), context)
    }

    /// Decrypts what [`Sealer::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Zeroizing<Vec<u8>>> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|r| r.len() > 24)
            .ok_or_else(|| Error::internal("sealed value is malformed"))?;
        let (nonce, ct) = raw.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::internal("sealed value does not open with this data key"))
    }

    /// Opens a sealed UTF-8 secret.
    pub fn open_secret(&self, sealed: &str, context: &str) -> Result<Secret> {
        let bytes = self.open(sealed, context)?;
        let s = std::str::from_utf8(&bytes)
            .map_err(|_| Error::internal("sealed secret is not UTF-8"))?;
        Ok(Secret::new(s))
    }
}

fn decode_key(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(STANDARD.decode(text.trim()).ok()?);
    let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(Zeroizing::new(arr))
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
mod keychain {
    //! The data key in the platform keychain, one entry per data directory.
    use super::*;

    pub fn load_or_create(data_dir: &Path) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let user = format!("data-key:{}", data_dir.display());
        let Ok(entry) = keyring::Entry::new("amove-agent", &user) else {
            return Ok(None);
        };
        match entry.get_password() {
            Ok(text) => Ok(decode_key(&text)),
            Err(keyring::Error::NoEntry) => {
                let key = Zeroizing::new(random_bytes::<32>()?);
                match entry.set_password(&STANDARD.encode(*key)) {
                    Ok(()) => Ok(Some(key)),
                    // No usable keychain (locked, headless): fall back to the key file.
                    Err(_) => Ok(None),
                }
            }
            Err(_) => Ok(None),
        }
    }
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
mod keychain {
    //! Linux and others: the Secret Service needs an unlocked desktop session, which a
    //! headless agent (and CI) does not have, so the key file is used.
    use super::*;

    pub fn load_or_create(_data_dir: &Path) -> Result<Option<Zeroizing<[u8; 32]>>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrips_and_binds_context() -> Result<()> {
        let s = Sealer::from_key(&[7u8; 32]);
        let sealed = s.seal(b"top secret", "idp_configs:1:client_secret")?;
        assert!(!sealed.contains("top secret"));
        assert_eq!(
            &*s.open(&sealed, "idp_configs:1:client_secret")?,
            b"top secret"
        );
        assert!(s.open(&sealed, "idp_configs:2:client_secret").is_err());
        assert!(
            Sealer::from_key(&[8u8; 32])
                .open(&sealed, "idp_configs:1:client_secret")
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn key_file_is_created_once_and_reused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (a, loc) = Sealer::load_or_create(dir.path())?;
        assert_eq!(loc, KeyLocation::File);
        let sealed = a.seal(b"x", "c")?;
        let (b, _) = Sealer::load_or_create(dir.path())?;
        assert_eq!(&*b.open(&sealed, "c")?, b"x");
        Ok(())
    }
}
