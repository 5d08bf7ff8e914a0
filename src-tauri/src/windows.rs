//! Windows on demand: none at start; each is created when asked for and destroyed when
//! closed, so WebKit's processes run only while a window is open. Open windows hear
//! [`SESSION_EVENT`] whenever the shell's state changes.

use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

use crate::state::Shell;

/// Event sent to the windows when the sign-in state (or the agent's) changed.
const SESSION_EVENT: &str = "session-changed";

/// The app's windows (the label is also what the page shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Sign in through the account's identity provider.
    SignIn,
    /// Admin settings (or the first-run screen when no account exists).
    Admin,
    /// The agent could not start.
    Error,
}

impl View {
    /// The window label.
    pub fn label(self) -> &'static str {
        match self {
            View::SignIn => "signin",
            View::Admin => "admin",
            View::Error => "error",
        }
    }
    /// From a label or a `--open` argument.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "signin" | "sign-in" => Some(View::SignIn),
            "admin" | "settings" => Some(View::Admin),
            "error" => Some(View::Error),
            _ => None,
        }
    }
    fn title(self) -> &'static str {
        match self {
            View::SignIn => "Sign in — Amove",
            View::Admin => "Amove — admin settings",
            View::Error => "Amove",
        }
    }
    fn size(self) -> (f64, f64) {
        match self {
            View::SignIn => (460.0, 440.0),
            View::Admin => (1000.0, 780.0),
            View::Error => (520.0, 320.0),
        }
    }
}

/// Shows window `view`, creating it if it is not open.
pub fn open(app: &AppHandle, view: View) {
    if let Some(w) = app.get_webview_window(view.label()) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    app.state::<Shell>().mark_opened(view.label());
    let (w, h) = view.size();
    let built = WebviewWindowBuilder::new(app, view.label(), WebviewUrl::App("index.html".into()))
        .title(view.title())
        .inner_size(w, h)
        .min_inner_size(360.0, 300.0)
        .center()
        .focused(true)
        .build();
    if let Err(e) = built {
        tracing::error!(error = %e, window = view.label(), "cannot open the window");
    }
}

/// Closes (destroys) window `view` if it is open.
pub fn close(app: &AppHandle, view: View) {
    if let Some(w) = app.get_webview_window(view.label())
        && let Err(e) = w.destroy()
    {
        tracing::warn!(error = %e, "cannot close the window");
    }
}

/// Tells the open windows about every change of the shell's state, for as long as the app runs.
pub fn follow(app: &AppHandle) {
    let handle = app.clone();
    app.state::<Shell>().on_change(move || {
        let _ = handle.emit(SESSION_EVENT, ());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_arguments_name_the_same_views() {
        for view in [View::SignIn, View::Admin, View::Error] {
            assert_eq!(View::parse(view.label()), Some(view));
        }
        assert_eq!(View::parse("sign-in"), Some(View::SignIn));
        assert_eq!(View::parse("settings"), Some(View::Admin));
        assert_eq!(View::parse("tray"), None);
    }
}
