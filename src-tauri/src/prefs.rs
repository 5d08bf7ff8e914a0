//! The shell's own small preferences, `DATA_DIR/desktop.json`: whether *Start at login* was
//! decided (by the first sign-in or by the user), the last email signed in with, and the day
//! the last certificate warning was shown. No secret lives here.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Values {
    /// Start at login was turned on by the first sign-in or set by the user: never again by us.
    pub autostart_decided: bool,
    /// The email of the last sign-in (the sign-in window is filled with it).
    pub last_username: Option<String>,
    /// The day (Unix time / 86 400) a certificate warning was last shown: at most one a day.
    pub cert_warned_day: Option<i64>,
}

/// The preferences file, managed by Tauri.
pub struct Prefs {
    path: PathBuf,
    values: Mutex<Values>,
}

impl Prefs {
    /// Reads `dir/desktop.json` (a missing or unreadable file reads as the defaults).
    pub fn load(dir: &std::path::Path) -> Self {
        let path = dir.join("desktop.json");
        let values = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            path,
            values: Mutex::new(values),
        }
    }
    /// The current values.
    pub fn get(&self) -> Values {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Changes the values with `f` and writes the file (replaced whole: never half-written).
    /// Returns what `f` returned.
    pub fn update<T>(&self, f: impl FnOnce(&mut Values) -> T) -> T {
        let mut v = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut v);
        if let Err(e) = write(&self.path, &v) {
            tracing::warn!(error = %e, "cannot save {}", self.path.display());
        }
        out
    }
}

fn write(path: &std::path::Path, v: &Values) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_a_reload_and_a_broken_file_reads_as_defaults() {
        let dir = std::env::temp_dir().join(format!("amove-prefs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = Prefs::load(&dir);
        assert_eq!(p.get(), Values::default());
        p.update(|v| {
            v.autostart_decided = true;
            v.last_username = Some("alice@example.com".into());
        });
        let again = Prefs::load(&dir);
        assert!(again.get().autostart_decided);
        assert_eq!(
            again.get().last_username.as_deref(),
            Some("alice@example.com")
        );
        std::fs::write(dir.join("desktop.json"), b"{not json").unwrap();
        assert_eq!(Prefs::load(&dir).get(), Values::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
