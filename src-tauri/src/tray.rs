//! The tray icon and its menu: a status line (who, which account, until when), Sign in… (*Sign
//! in again…* after the session expired), Sign in as someone else…, Sign out, Admin settings… (or Set up this agent…), Start at
//! login, Open logs folder, Quit. It follows the shell's state: every change redraws it.

use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};
use tauri_plugin_opener::OpenerExt;

use crate::state::Shell;
use crate::windows::{self, View};
use crate::{agent, autostart, session};

const TRAY_ID: &str = "main";

/// The status line: not signed in, signed in as whom, or why the agent is not running.
fn status_line(shell: &Shell) -> String {
    if let Some(e) = shell.start_error() {
        // The first clause: "cannot listen on 127.0.0.1:29123", not cut at the port's colon.
        let first = e.split(": ").next().unwrap_or(e);
        return format!("Agent not running — {first}");
    }
    if shell.agent().is_err() {
        return "Starting…".into();
    }
    match shell.session() {
        Some(s) => format!(
            "Signed in as {} — {}, until {}",
            s.display_name,
            s.account,
            s.until()
        ),
        None => "Not signed in".into(),
    }
}

fn menu(app: &AppHandle) -> tauri::Result<Menu<Wry>> {
    let shell = app.state::<Shell>();
    let running = shell.agent().is_ok();
    let session = shell.session();
    let status = MenuItem::with_id(app, "status", status_line(&shell), false, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let sign_in_label = if shell.session_expired() {
        "Sign in again…"
    } else {
        "Sign in…"
    };
    let sign_in = MenuItem::with_id(app, "signin", sign_in_label, running, None::<&str>)?;
    let sign_out = MenuItem::with_id(app, "signout", "Sign out", session.is_some(), None::<&str>)?;
    // Another person on this machine, or another account: the IdP asks for credentials again.
    let someone_else = MenuItem::with_id(
        app,
        "signin-other",
        "Sign in as someone else…",
        running && (session.is_some() || shell.session_expired()),
        None::<&str>,
    )?;
    let login = CheckMenuItem::with_id(
        app,
        "autostart",
        "Start at login",
        true,
        autostart::is_enabled(app),
        None::<&str>,
    )?;
    let logs = MenuItem::with_id(app, "logs", "Open logs folder", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let sep2 = PredefinedMenuItem::separator(app)?;
    // Admin settings… is there for everyone while the agent runs: an admin signed in from the
    // tray goes straight in, anyone else gets the admin sign-in (or "not an admin").
    let admin_label = if shell.needs_setup() {
        "Set up this agent…"
    } else {
        "Admin settings…"
    };
    let admin = running
        .then(|| MenuItem::with_id(app, "admin", admin_label, true, None::<&str>))
        .transpose()?;
    let menu = Menu::with_items(app, &[&status, &sep, &sign_in, &someone_else, &sign_out])?;
    if let Some(admin) = admin {
        menu.append(&admin)?;
    }
    menu.append_items(&[&sep2, &login, &logs, &quit])?;
    Ok(menu)
}

fn on_menu(app: &AppHandle, id: &str) {
    match id {
        "signin" | "signin-other" => {
            let shell = app.state::<Shell>();
            let force = id == "signin-other";
            if shell.force_authn() != force {
                // The open window was for the other kind of sign-in: start it afresh.
                windows::close(app, View::SignIn);
            }
            shell.set_force_authn(force);
            windows::open(app, View::SignIn);
        }
        "admin" => windows::open(app, View::Admin),
        "signout" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move { session::sign_out(&app).await });
        }
        "autostart" => {
            let on = !autostart::is_enabled(app);
            if let Err(e) = autostart::set(app, on) {
                tracing::warn!(error = %e, "cannot change start at login");
            }
            // The check mark follows the entry, whatever GTK toggled on the click.
            refresh(app);
        }
        "logs" => {
            let dir = app.state::<Shell>().logs_dir.clone();
            if let Err(e) = app.opener().open_path(dir.to_string_lossy(), None::<&str>) {
                tracing::warn!(error = %e, "cannot open the logs folder {}", dir.display());
            }
        }
        "quit" => agent::quit(app),
        _ => {}
    }
}

/// Creates the tray icon; it is redrawn on every change of the shell's state from then on.
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Amove")
        .menu(&menu(app)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()));
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    tracing::info!("tray ready: {}", status_line(&app.state::<Shell>()));
    let handle = app.clone();
    app.state::<Shell>().on_change(move || refresh(&handle));
    Ok(())
}

/// Redraws the menu from the current state.
fn refresh(app: &AppHandle) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let status = status_line(&app.state::<Shell>());
    match menu(app) {
        Ok(m) => {
            if let Err(e) = tray.set_menu(Some(m)) {
                tracing::warn!(error = %e, "cannot update the tray menu");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot build the tray menu"),
    }
    let _ = tray.set_tooltip(Some(format!("Amove — {status}")));
    tracing::info!("tray status: {status}");
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn status_line_says_starting_then_why_the_agent_is_not_running() {
        let shell = Shell::new(PathBuf::from("/nonexistent/logs"));
        assert_eq!(status_line(&shell), "Starting…");
        shell.set_start_error(
            "cannot listen on 127.0.0.1:29123: the address is already in use. Is another…".into(),
        );
        assert_eq!(
            status_line(&shell),
            "Agent not running — cannot listen on 127.0.0.1:29123"
        );
    }
}
