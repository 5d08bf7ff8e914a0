//! *Start at login* (`tauri-plugin-autostart`: an XDG autostart entry on Linux, a launch agent
//! on macOS, the Run key on Windows). Off until the first successful sign-in turns it on — the
//! notification and the sign-in window say so — and from then on only the user's tray toggle
//! changes it.

use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::ManagerExt;

use crate::prefs::Prefs;

/// The plugin; the entry starts the app without arguments (the tray only, no window).
pub fn plugin<R: Runtime>() -> tauri::plugin::TauriPlugin<R> {
    let builder = tauri_plugin_autostart::Builder::new().app_name("amove-desktop");
    #[cfg(target_os = "macos")]
    let builder = builder.macos_launcher(tauri_plugin_autostart::MacosLauncher::LaunchAgent);
    builder.build()
}

/// Whether the app starts at login.
pub fn is_enabled(app: &AppHandle) -> bool {
    app.autolaunch().is_enabled().unwrap_or(false)
}

/// The user's toggle: turns it on or off; the choice is kept.
pub fn set(app: &AppHandle, on: bool) -> Result<(), String> {
    let al = app.autolaunch();
    let r = if on { al.enable() } else { al.disable() };
    r.map_err(|e| e.to_string())?;
    app.state::<Prefs>().update(|v| v.autostart_decided = true);
    tracing::info!("start at login {}", if on { "on" } else { "off" });
    Ok(())
}

/// After a successful sign-in: turns Start at login on the first time (unless the user chose
/// already). True when it was turned on now.
pub fn on_first_sign_in(app: &AppHandle) -> bool {
    let prefs = app.state::<Prefs>();
    if prefs.get().autostart_decided {
        return false;
    }
    match app.autolaunch().enable() {
        Ok(()) => {
            prefs.update(|v| v.autostart_decided = true);
            tracing::info!("start at login on (first sign-in)");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot turn on start at login");
            false
        }
    }
}
