//! Logging: the same `tracing` output as the headless agent, on stderr and in
//! `DATA_DIR/logs/amove-desktop.log` (the tray's "Open logs folder").

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Sets up logging and returns the logs folder.
pub fn init(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join("logs");
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("AMOVE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    // The data directory holds keys: create it private (0700) before anything inside it.
    let file = amove_agent::crypto::ensure_private_dir(data_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::create_dir_all(&dir).map_err(|e| e.to_string()))
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("amove-desktop.log"))
                .map_err(|e| e.to_string())
        });
    match file {
        Ok(f) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(false)
            .with_writer(std::io::stderr.and(Mutex::new(f)))
            .init(),
        Err(e) => {
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .init();
            tracing::warn!(error = %e, dir = %dir.display(), "cannot open the log file; logging to stderr only");
        }
    }
    dir
}
