//! The tray's session across restarts. On macOS and Windows it lives in the OS keychain
//! (Keychain, Credential Manager: the `keyring` crate), one entry per data directory. On Linux —
//! where the agent itself keeps its data key in `DATA_DIR/data.key` rather than the Secret
//! Service, which a locked or headless session does not have — it is sealed with the agent's
//! data key (XChaCha20-Poly1305, bound to its purpose) in `DATA_DIR/desktop-session.sealed`
//! (0600). Never in clear, never in the log.

use std::path::{Path, PathBuf};

use amove_agent::crypto::seal::Sealer;
use amove_agent::secret::Secret;
use serde::{Deserialize, Serialize};

use crate::state::{Session, Shell};

/// What the sealed value binds itself to: a ciphertext moved elsewhere does not open.
const CONTEXT: &str = "desktop:tray-session";
const FILE: &str = "desktop-session.sealed";

#[derive(Serialize, Deserialize)]
struct Stored {
    token: String,
    username: String,
    display_name: String,
    account: String,
    is_admin: bool,
    expires_at: i64,
    #[serde(default)]
    issued_at: i64,
}

/// Where the session is kept.
pub struct Keep {
    dir: PathBuf,
    sealer: Sealer,
}

impl Keep {
    /// The store of the running agent's data directory (none while it is not running).
    pub fn of(shell: &Shell) -> Option<Self> {
        let agent = shell.agent().ok()?;
        Some(Self::new(&agent.settings.data_dir, agent.sealer.clone()))
    }
    /// The store of `data_dir`, sealing with the agent's `sealer`.
    pub fn new(data_dir: &Path, sealer: Sealer) -> Self {
        Self {
            dir: data_dir.to_path_buf(),
            sealer,
        }
    }

    /// Keeps `s` (replacing what was kept).
    pub fn save(&self, s: &Session) {
        let stored = Stored {
            token: s.token.expose().to_string(),
            username: s.username.clone(),
            display_name: s.display_name.clone(),
            account: s.account.clone(),
            is_admin: s.is_admin,
            expires_at: s.expires_at,
            issued_at: s.issued_at,
        };
        let result = serde_json::to_vec(&stored)
            .map_err(|e| e.to_string())
            .and_then(|json| self.sealer.seal(&json, CONTEXT).map_err(|e| e.to_string()))
            .and_then(|sealed| store::put(&self.dir, &sealed));
        if let Err(e) = result {
            tracing::warn!("cannot keep the session for the next start: {e}");
        }
    }

    /// The kept session, if there is one that opens.
    pub fn load(&self) -> Option<Session> {
        let sealed = store::get(&self.dir)?;
        let json = match self.sealer.open(&sealed, CONTEXT) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "the kept session does not open; ignored");
                return None;
            }
        };
        let s: Stored = serde_json::from_slice(&json).ok()?;
        Some(Session {
            token: Secret::new(s.token),
            username: s.username,
            display_name: s.display_name,
            account: s.account,
            is_admin: s.is_admin,
            expires_at: s.expires_at,
            issued_at: s.issued_at,
        })
    }

    /// Forgets the kept session (sign-out, a refused renewal, a revoked session).
    pub fn clear(&self) {
        store::delete(&self.dir);
    }
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
mod store {
    //! The sealed file in the data directory.
    use super::*;

    pub fn put(dir: &Path, sealed: &str) -> Result<(), String> {
        // Written beside and renamed over: never a half-written file.
        let tmp = dir.join(format!("{FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        amove_agent::crypto::create_private_file(&tmp, sealed.as_bytes())
            .map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, dir.join(FILE)).map_err(|e| e.to_string())
    }

    pub fn get(dir: &Path) -> Option<String> {
        std::fs::read_to_string(dir.join(FILE)).ok()
    }

    pub fn delete(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(FILE));
    }
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
mod store {
    //! The OS keychain; the sealed value is what it holds (so it also needs the data key).
    use super::*;

    fn entry(dir: &Path) -> Option<keyring::Entry> {
        keyring::Entry::new("amove-desktop", &format!("session:{}", dir.display())).ok()
    }

    pub fn put(dir: &Path, sealed: &str) -> Result<(), String> {
        entry(dir)
            .ok_or_else(|| "no keychain".to_string())?
            .set_password(sealed)
            .map_err(|e| e.to_string())
    }

    pub fn get(dir: &Path) -> Option<String> {
        entry(dir)?.get_password().ok()
    }

    pub fn delete(dir: &Path) {
        if let Some(e) = entry(dir) {
            let _ = e.delete_credential();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            token: Secret::new("eyJhbGciOi.session.jwt".to_string()),
            username: "alice@example.com".into(),
            display_name: "Alice Example".into(),
            account: "acme".into(),
            is_admin: true,
            expires_at: 2_000_000_000,
            issued_at: 1_999_990_000,
        }
    }

    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    #[test]
    fn the_session_is_kept_sealed_and_comes_back_whole() {
        let dir = std::env::temp_dir().join(format!("amove-keep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keep = Keep::new(&dir, Sealer::from_key(&[3u8; 32]));
        assert!(keep.load().is_none());
        keep.save(&session());
        let raw = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(
            !raw.contains("eyJ") && !raw.contains("alice"),
            "not in clear: {raw}"
        );
        let back = keep.load().unwrap();
        assert_eq!(back.token.expose(), "eyJhbGciOi.session.jwt");
        assert_eq!((back.expires_at, back.is_admin), (2_000_000_000, true));
        // Another data key (another machine's data directory) does not open it.
        assert!(
            Keep::new(&dir, Sealer::from_key(&[4u8; 32]))
                .load()
                .is_none()
        );
        keep.clear();
        assert!(keep.load().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
