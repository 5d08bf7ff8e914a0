//! The desktop shell: a tray app that runs the core's API server in a background task and
//! opens its windows (sign-in, admin, first run) on demand. It only adapts the core
//! (`amove_agent`): no API, SSO or storage logic lives here.

mod agent;
mod autostart;
mod certs;
mod commands;
mod deep_link;
mod expiry;
mod keep;
mod logs;
mod notify;
mod prefs;
mod session;
mod signin;
mod state;
mod tray;
mod windows;

use tauri::{Manager, RunEvent};

pub use state::Shell;

/// Builds and runs the app until Quit (or SIGINT/SIGTERM).
pub fn run() {
    #[cfg(target_os = "linux")]
    without_gdk_gl();
    let settings = match agent::settings_from_env() {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("amove-desktop: {msg}");
            std::process::exit(2);
        }
    };
    let logs_dir = logs::init(&settings.data_dir);
    let shell = Shell::new(logs_dir);
    let prefs = prefs::Prefs::load(&settings.data_dir);
    let app = tauri::Builder::default()
        // First, so a second launch is forwarded before any other plugin reacts to it; its
        // `deep-link` feature hands an amove:// argument to the deep-link plugin's listeners.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            deep_link::on_second_instance(app, argv)
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(autostart::plugin())
        .manage(shell)
        .manage(prefs)
        .invoke_handler(tauri::generate_handler![
            commands::app_state,
            commands::api,
            commands::start_sign_in,
            commands::sign_out,
            commands::first_run_setup,
            commands::close_window,
            commands::open_import_in_browser,
        ])
        .setup(move |app| {
            tray::create(app.handle())?;
            windows::follow(app.handle());
            notify::setup(app.handle());
            expiry::follow(app.handle());
            certs::follow(app.handle());
            deep_link::setup(app.handle());
            agent::spawn(app.handle().clone(), settings);
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the desktop app");
            eprintln!("amove-desktop: cannot start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| match event {
        // Closing the last window asks to exit without a code: the tray app stays.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => handle.state::<Shell>().stop(),
        _ => {}
    });
}

/// GDK probes OpenGL when GTK starts, which loads the GL driver into a process that mostly sits
/// in the tray; under Mesa's llvmpipe that is ~10 MB of anonymous memory the app then keeps
/// (libLLVM's relocated data alone is 8 MB; BENCHMARKS.md, "Desktop app"). The windows render
/// without GDK's GL (WebKit uses its non-GL path to show its pages), so the app re-executes
/// itself once with `GDK_GL=disable` — an environment variable only takes effect before GTK
/// starts, and this crate does not set one in-process (`std::env::set_var` races with threads
/// reading the environment). An explicit `GDK_GL` (even empty) is left alone.
#[cfg(target_os = "linux")]
fn without_gdk_gl() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GDK_GL").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GDK_GL", "disable")
        .exec();
    // Only reached when exec failed: run as we are.
    eprintln!("amove-desktop: could not restart without OpenGL ({err}); continuing");
}
