//! The checkpointer thread: it copies the WAL into the database file after commits, off
//! the writer's thread.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::configure;
use crate::error::{Error, Result};

/// The thread that checkpoints the WAL after commits: it sleeps until woken (no polling
/// when idle), checkpoints (PASSIVE: never blocks readers or the writer), then lets commits
/// accumulate for a moment — unless the writer asks for a pass at once. It ends, after a
/// last pass, when the writer side is dropped.
pub(super) struct Checkpointer {
    state: Mutex<CheckpointState>,
    wake: Condvar,
}

#[derive(Default)]
struct CheckpointState {
    /// Commits since the last pass began.
    dirty: bool,
    /// The writer waits for a pass (see `WriteSide::rewind_wal`): no pause before it.
    urgent: bool,
    /// Passes begun, and the last one ended.
    begun: u64,
    ended: u64,
    closed: bool,
}

impl Checkpointer {
    pub(super) fn spawn(path: &Path) -> Result<Arc<Self>> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        // The same file, to flush what passes copied (below).
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let ck = Arc::new(Self {
            state: Mutex::new(CheckpointState::default()),
            wake: Condvar::new(),
        });
        let thread = ck.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || thread.run(&conn, &file))
            .map_err(|e| Error::internal(format!("checkpoint thread: {e}")))?;
        Ok(ck)
    }

    fn state(&self) -> MutexGuard<'_, CheckpointState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self, conn: &Connection, file: &std::fs::File) {
        let mut s = self.state();
        loop {
            s = self
                .wake
                .wait_while(s, |s| !(s.dirty || s.urgent || s.closed))
                .unwrap_or_else(|p| p.into_inner());
            let last = s.closed;
            s.dirty = false;
            s.urgent = false;
            s.begun += 1;
            drop(s);
            // On the way out too: the last commits' frames go into the database.
            let copied = conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(2))
                .inspect_err(|e| tracing::warn!("WAL checkpoint failed: {e}"))
                .unwrap_or(0);
            // SQLite flushes the database file only after a pass that reached the end of the
            // WAL, which under sustained writes none does (commits keep adding frames): the
            // pages copied would pile up unflushed, for the writer's last copy before a rewind
            // to flush them all (20 ms for 64 MiB, every request waiting). Flushed here instead.
            if copied > 0
                && let Err(e) = file.sync_data()
            {
                tracing::warn!("flushing the database file failed: {e}");
            }
            s = self.state();
            s.ended = s.begun;
            if last {
                return;
            }
            s = self
                .wake
                .wait_timeout_while(s, CHECKPOINT_PAUSE, |s| !(s.urgent || s.closed))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// A commit happened.
    pub(super) fn committed(&self) {
        let mut s = self.state();
        if !s.dirty {
            s.dirty = true;
            self.wake.notify_one();
        }
    }

    /// Asks for a pass now; returns what to give [`Checkpointer::done`].
    pub(super) fn pass_now(&self) -> u64 {
        let mut s = self.state();
        s.urgent = true;
        self.wake.notify_one();
        s.begun
    }

    /// Whether a pass that began after [`Checkpointer::pass_now`] returned `asked` has ended.
    pub(super) fn done(&self, asked: u64) -> bool {
        self.state().ended > asked
    }

    pub(super) fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }
}

/// How long commits accumulate between two checkpoints.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);
