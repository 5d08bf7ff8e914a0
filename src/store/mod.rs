//! SQLite storage: one database file in the data directory, WAL, foreign keys, migrations.
//!
//! [`Db`] holds one writer connection and a few reader connections; SQLite calls block, so
//! none runs on an async worker (one stuck on disk I/O would stall every other request).
//!
//! - Reads run on tokio's blocking pool (`spawn_blocking`). A semaphore admits only as many
//!   as there are reader connections, so waiting happens asynchronously instead of in parked
//!   blocking threads (which would grow the pool, and memory, under load).
//! - Writes are queued to one writer thread that owns the writer connection. It runs every
//!   queued write in one transaction (group commit), each inside its own savepoint (a failing
//!   write rolls back alone), and answers each after the commit. Under load many requests
//!   share one commit and one thread wake-up (the writer lets a batch fill for up to 150 µs
//!   once batches show sustained writes); alone, a write is a transaction of its own.
//! - Checkpoints run on a thread of their own; under sustained writes the writer lets the
//!   WAL rewind every 16 MiB, in two steps that keep the copying off the writer's thread.

pub mod accounts;
pub mod audit;
pub mod cache;
pub mod callback_urls;
pub mod groups;
pub mod idp;
pub mod imports;
pub mod links;
mod migrations;
pub mod replay;
pub mod sessions;
pub mod tokens;
pub mod transactions;
pub mod users;

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// Reader connections kept open besides the writer.
const READERS: usize = 4;

/// A handle to the agent's database; cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Inner>);

struct Inner {
    /// A connection used only to ask `PRAGMA data_version` (see [`Db::generation`]).
    watch: Option<Mutex<Connection>>,
    read_gate: Arc<tokio::sync::Semaphore>,
    /// Empty for in-memory databases, whose readers share the writer.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The writer connection and its queue, shared with the writer thread.
    w: Arc<WriteSide>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: the writer thread finishes what is queued and ends.
        self.w.queue().closed = true;
        self.w.wake.notify_one();
    }
}

/// What the writer thread and the handles share.
struct WriteSide {
    writer: Mutex<Connection>,
    /// Commits made through this handle (the generation of in-memory databases).
    commits: AtomicUsize,
    /// Changes when a write that may touch cached data ends (see [`Db::epoch`]).
    epoch: AtomicU64,
    /// Writes waiting for the next group commit.
    queue: Mutex<Queue>,
    /// Wakes the writer thread when it sleeps and a write arrives (or the handle closes).
    wake: Condvar,
    /// The checkpointer thread (`None` for in-memory databases).
    checkpoint: Option<Arc<Checkpointer>>,
    /// Frames in the WAL after the last commit (SQLite's WAL hook reports it).
    wal_frames: Arc<AtomicI64>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Box<dyn Job>>,
    /// The writer thread waits for work (a push must wake it).
    idle: bool,
    /// The writer thread waits for more writes to join its batch (a push that fills it
    /// must wake it).
    lingering: bool,
    /// No handle is left: the thread ends once the queue is empty.
    closed: bool,
}

/// A queued write, its closure's type erased.
trait Job: Send {
    /// Runs the closure inside the open transaction; false when it failed.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Marks the job failed (its savepoint could not be managed).
    fn fail(&mut self, why: &str);
    /// Answers the waiting request once the transaction committed (or did not).
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
    /// Whether the job may change data an in-process cache holds (see [`Db::epoch`]).
    fn changes_cached_data(&self) -> bool;
}

struct TypedJob<T, F> {
    f: Option<F>,
    out: Option<Result<T>>,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
    changes_cached_data: bool,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> Result<T> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(f) = self.f.take() else { return false };
        let out = f(tx);
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn fail(&mut self, why: &str) {
        self.f = None;
        self.out = Some(Err(Error::internal(format!("database savepoint: {why}"))));
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), String>) {
        let out = match (committed, self.out) {
            (Ok(()), Some(out)) => out,
            (_, Some(Err(e))) => Err(e),
            (Err(e), Some(Ok(_))) => Err(Error::internal(format!("database commit: {e}"))),
            (_, None) => Err(Error::internal(format!(
                "database transaction: {}",
                "not started"
            ))),
        };
        // The request may have gone (timed out); its write stands or fell all the same.
        let _ = self.reply.send(out);
    }

    fn changes_cached_data(&self) -> bool {
        self.changes_cached_data
    }
}

fn configure(conn: &Connection) -> Result<()> {
    // Another process (the CLI while the agent runs) may hold the write lock briefly.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a SQLite connection half-updated: the
    // transaction was rolled back when it dropped. So a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Db {
    /// Opens (creating if needed) the database file and applies migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::internal(format!(
                "could not enable WAL (journal_mode={mode})"
            )));
        }
        // NORMAL (SQLite's advice for WAL): a commit survives a crash of the agent (kill -9
        // loses nothing acknowledged); a power cut may lose the last commits but never
        // corrupts. FULL would fsync every login transaction and cap sign-ins at the disk's
        // sync rate.
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        migrations::apply(&mut writer)?;
        // Checkpoints (copying the WAL into the database, with an fsync of each) run on a
        // thread of their own, not in the writer's way; the writer only finishes one when the
        // WAL grows past WAL_RESTART_FRAMES (see `WriteSide::rewind_wal`).
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let wal_frames = Arc::new(AtomicI64::new(0));
        let frames = wal_frames.clone();
        writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            frames.store(i64::from(pages), Ordering::Relaxed);
            Ok(())
        }))?;
        restrict_permissions(path);
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&r)?;
            readers.push(Mutex::new(r));
        }
        let watch = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&watch)?;
        // Last: once started, only the writer side (below) ends it.
        let checkpoint = Checkpointer::spawn(path)?;
        Ok(Self(Arc::new(Inner {
            watch: Some(Mutex::new(watch)),
            read_gate: Arc::new(tokio::sync::Semaphore::new(READERS)),
            readers,
            next_reader: AtomicUsize::new(0),
            w: WriteSide::start(writer, Some(checkpoint), wal_frames)?,
        })))
    }

    /// A fresh private in-memory database with the schema applied (for tests).
    pub fn open_in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn)?;
        migrations::apply(&mut conn)?;
        Ok(Self(Arc::new(Inner {
            watch: None,
            read_gate: Arc::new(tokio::sync::Semaphore::new(1)),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            w: WriteSide::start(conn, None, Arc::default())?,
        })))
    }

    /// Runs `f` on a reader connection, off the async executor.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .0
            .read_gate
            .clone()
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            db.read_blocking(f)
        })
        .await
        .map_err(|e| Error::internal(format!("database task: {e}")))?
    }

    /// Runs `f` inside one IMMEDIATE transaction on the writer, off the async executor.
    /// The transaction commits when `f` returns `Ok`, and rolls back otherwise: a request
    /// never leaves a partial write behind.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.queue_write(f, true).await
    }

    /// [`Db::write`] for writes that change no data an in-process cache holds (login
    /// transactions: inserted by `sso_url`, the hot path, and read by nothing cached), so
    /// they leave [`Db::epoch`] as it is. Any other write must use [`Db::write`].
    pub async fn write_uncached<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.queue_write(f, false).await
    }

    async fn queue_write<T, F>(&self, f: F, changes_cached_data: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let mut q = self.0.w.queue();
            q.jobs.push(Box::new(TypedJob {
                f: Some(f),
                out: None,
                reply,
                changes_cached_data,
            }));
            // Only a sleeping writer needs the wake-up (a system call), or a lingering one
            // once its batch is full; a busy one takes the job with its next batch.
            if q.idle || (q.lingering && q.jobs.len() >= LINGER_UNTIL_QUEUED) {
                q.idle = false;
                self.0.w.wake.notify_one();
            }
        }
        answer
            .await
            .map_err(|_| Error::internal("a database write was dropped"))?
    }

    /// A number that changes whenever anyone — this agent or another process such as the
    /// CLI — commits to the database. Caches compare it to know they are still exact.
    ///
    /// Called inline on async workers: in WAL mode `PRAGMA data_version` reads the shared
    /// wal-index header in memory and does no disk I/O. In-memory databases (one connection,
    /// no other writer) report a counter of their own commits.
    pub fn generation(&self) -> Result<i64> {
        match &self.0.watch {
            Some(w) => {
                let conn = lock(w);
                let mut stmt = conn.prepare_cached("PRAGMA data_version")?;
                Ok(stmt.query_row([], |r| r.get(0))?)
            }
            None => Ok(i64::try_from(self.0.w.commits.load(Ordering::Acquire)).unwrap_or(i64::MAX)),
        }
    }

    /// A number that changes after every write through this handle except
    /// [`Db::write_uncached`] ones — whether it committed or not — and before the writer
    /// is answered. An in-process cache of data that only this process writes (IdP
    /// configurations, callback allow-lists) is exact while the epoch it was read at is
    /// current: take the epoch *before* reading, and a read racing a write is tagged with
    /// the epoch that write ends. Unlike [`Db::generation`] it is blind to other processes.
    pub fn epoch(&self) -> u64 {
        self.0.w.epoch.load(Ordering::Acquire)
    }

    /// [`Db::read`] for synchronous callers (the CLI).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.0.readers.is_empty() {
            return f(&lock(&self.0.w.writer));
        }
        let n = self.0.readers.len();
        let start = self.0.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(conn) = self.0.readers[(start + i) % n].try_lock() {
                return f(&conn);
            }
        }
        f(&lock(&self.0.readers[start % n]))
    }

    /// [`Db::write`] for synchronous callers (the CLI).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let _epoch = EpochBump(Some(&self.0.w.epoch));
        let mut conn = lock(&self.0.w.writer);
        let tx = Transaction::new(&mut conn, TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        self.0.w.commits.fetch_add(1, Ordering::AcqRel);
        self.0.w.wake_checkpointer();
        Ok(out)
    }
}

impl WriteSide {
    /// Wraps the writer connection and starts its thread.
    fn start(
        writer: Connection,
        checkpoint: Option<Arc<Checkpointer>>,
        wal_frames: Arc<AtomicI64>,
    ) -> Result<Arc<Self>> {
        let w = Arc::new(Self {
            writer: Mutex::new(writer),
            commits: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            checkpoint,
            wal_frames,
        });
        let thread = w.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || thread.run())
            .map_err(|e| Error::internal(format!("writer thread: {e}")))?;
        Ok(w)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer thread: takes everything queued, runs it as one batch, repeats; sleeps
    /// only while the queue is empty.
    fn run(&self) {
        // The checkpointer pass a WAL rewind waits for (see `rewind_wal`).
        let mut rewind = None;
        // The size of the last batch: how busy the writer is.
        let mut last_batch = 0;
        loop {
            let jobs = {
                let mut q = self.queue();
                loop {
                    if !q.jobs.is_empty() {
                        if last_batch >= LINGER_AFTER_BATCH {
                            q = self.linger(q);
                        }
                        q.idle = false;
                        last_batch = q.jobs.len();
                        break std::mem::take(&mut q.jobs);
                    }
                    if q.closed {
                        return;
                    }
                    q.idle = true;
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.run_batch(jobs);
            self.rewind_wal(&mut rewind);
        }
    }

    /// Under sustained writes, lets more writes join the next commit: waits up to
    /// [`LINGER`] until [`LINGER_UNTIL_QUEUED`] are queued (PostgreSQL's `commit_delay`
    /// with `commit_siblings`). A commit's cost (locks, WAL frames, thread wake-ups) is
    /// mostly the same for one write as for thirty, and small batches under load rewrite
    /// the same tail pages into the WAL commit after commit. Alone (the last batch was
    /// small), a write never waits.
    fn linger<'a>(&self, mut q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        q.lingering = true;
        q = self
            .wake
            .wait_timeout_while(q, LINGER, |q| {
                q.jobs.len() < LINGER_UNTIL_QUEUED && !q.closed
            })
            .unwrap_or_else(|p| p.into_inner())
            .0;
        q.lingering = false;
        q
    }

    /// Lets the WAL rewind once it is past [`WAL_RESTART_FRAMES`].
    ///
    /// SQLite starts the WAL over when a write transaction begins with every frame copied
    /// into the database. The checkpointer copies frames while new commits keep adding
    /// some, so under sustained writes that moment never comes by itself, and the WAL would
    /// grow without end. So, in two steps, each between two batches (after the batch was
    /// answered): the writer asks the checkpointer for a pass at once, and goes on
    /// committing while that pass copies nearly everything (with its fsyncs) off the
    /// writer's thread; once it is done, the writer copies the few frames committed
    /// meanwhile, and its next transaction rewinds the WAL. Only the requests queued during
    /// that short copy wait for it.
    fn rewind_wal(&self, asked: &mut Option<u64>) {
        let Some(ck) = &self.checkpoint else { return };
        if self.wal_frames.load(Ordering::Relaxed) < WAL_RESTART_FRAMES {
            *asked = None;
            return;
        }
        let Some(pass) = *asked else {
            *asked = Some(ck.pass_now());
            return;
        };
        if !ck.done(pass) {
            return;
        }
        let conn = lock(&self.writer);
        match conn.wal_checkpoint_v2(rusqlite::DEFAULT_NAME, CheckpointMode::PASSIVE) {
            Ok(_) => *asked = None,
            // PASSIVE never waits: busy (the checkpointer is at it) means after the next batch.
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
            Err(e) => {
                tracing::warn!("WAL checkpoint failed: {e}");
                *asked = None;
            }
        }
    }

    /// Runs `jobs` in one IMMEDIATE transaction, one savepoint each, then answers them all.
    fn run_batch(&self, jobs: Vec<Box<dyn Job>>) {
        let bump = jobs.iter().any(|j| j.changes_cached_data());
        let mut conn = lock(&self.writer);
        let tx = match Transaction::new(&mut conn, TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                for job in jobs {
                    job.finish(Err(e.to_string()));
                }
                return;
            }
        };
        let mut ran = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            if let Err(e) = tx
                .prepare_cached("SAVEPOINT job")
                .and_then(|mut st| st.execute([]))
            {
                job.fail(&e.to_string());
                ran.push(job);
                continue;
            }
            // A panicking job fails alone; the writer thread must outlive it.
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&tx)))
                .unwrap_or_else(|_| {
                    job.fail("the write panicked");
                    false
                });
            let end = |sql: &str| tx.prepare_cached(sql).and_then(|mut st| st.execute([]));
            let ended = if ok {
                end("RELEASE job")
            } else {
                end("ROLLBACK TO job").and_then(|_| end("RELEASE job"))
            };
            if let Err(e) = ended {
                job.fail(&e.to_string());
            }
            ran.push(job);
        }
        let committed = tx.commit().map_err(|e| e.to_string());
        if committed.is_ok() {
            self.commits.fetch_add(1, Ordering::AcqRel);
            self.wake_checkpointer();
        }
        drop(conn);
        // After the transaction ended (whatever became of it), before anyone is answered.
        if bump {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        for job in ran {
            job.finish(committed.clone());
        }
    }

    fn wake_checkpointer(&self) {
        if let Some(c) = &self.checkpoint {
            c.committed();
        }
    }
}

impl Drop for WriteSide {
    fn drop(&mut self) {
        if let Some(c) = &self.checkpoint {
            c.close();
        }
    }
}

/// The thread that checkpoints the WAL after commits: it sleeps until woken (no polling
/// when idle), checkpoints (PASSIVE: never blocks readers or the writer), then lets commits
/// accumulate for a moment — unless the writer asks for a pass at once. It ends, after a
/// last pass, when the writer side is dropped.
struct Checkpointer {
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
    fn spawn(path: &Path) -> Result<Arc<Self>> {
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
    fn committed(&self) {
        let mut s = self.state();
        if !s.dirty {
            s.dirty = true;
            self.wake.notify_one();
        }
    }

    /// Asks for a pass now; returns what to give [`Checkpointer::done`].
    fn pass_now(&self) -> u64 {
        let mut s = self.state();
        s.urgent = true;
        self.wake.notify_one();
        s.begun
    }

    /// Whether a pass that began after [`Checkpointer::pass_now`] returned `asked` has ended.
    fn done(&self, asked: u64) -> bool {
        self.state().ended > asked
    }

    fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }
}

/// Batches of at least this many writes mean sustained writes (see `WriteSide::linger`).
const LINGER_AFTER_BATCH: usize = 4;

/// How long the writer waits for more writes to join a batch under sustained writes.
const LINGER: Duration = Duration::from_micros(150);

/// The queue length that ends that wait early.
const LINGER_UNTIL_QUEUED: usize = 32;

/// How long commits accumulate between two checkpoints.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// WAL length (4 KiB frames, so 16 MiB) past which the writer lets the WAL rewind (see
/// `WriteSide::rewind_wal`); without it the WAL would grow without end under sustained writes.
const WAL_RESTART_FRAMES: i64 = 4096;

/// Advances the epoch when dropped: after the transaction, on every path out.
struct EpochBump<'a>(Option<&'a AtomicU64>);

impl Drop for EpochBump<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.0 {
            e.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in [
        path.to_path_buf(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        // Best effort: the -wal/-shm files may not exist yet.
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// True when `e` is a UNIQUE or PRIMARY KEY constraint violation.
pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// The message of a constraint violation (names the index or columns), if `e` is one.
pub fn constraint_message(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            msg.as_deref()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that inserts the account `id`.
    fn insert_account(
        id: impl Into<String>,
    ) -> impl FnOnce(&Transaction<'_>) -> Result<usize> + Send + 'static {
        let id = id.into();
        move |tx| {
            Ok(tx.execute(
                "INSERT INTO accounts (identifier, name, created_at) VALUES (?1, 'A', 0)",
                [id],
            )?)
        }
    }

    #[tokio::test]
    async fn write_rolls_back_on_error() -> Result<()> {
        let db = Db::open_in_memory()?;
        let r: Result<()> = db
            .write(|tx| {
                tx.execute(
                    "INSERT INTO accounts (identifier, name, created_at) VALUES ('a', 'A', 0)",
                    [],
                )?;
                Err(Error::invalid("stop"))
            })
            .await;
        assert!(r.is_err());
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?))
            .await?;
        assert_eq!(n, 0);
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_writes_share_commits_and_fail_alone() -> Result<()> {
        let db = Db::open_in_memory()?;
        let mut tasks = Vec::new();
        for i in 0..50 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |tx| {
                    tx.execute(
                        "INSERT INTO accounts (identifier, name, created_at) VALUES (?1, 'x', 0)",
                        [format!("acct{}", i % 40)],
                    )?;
                    if i % 7 == 0 {
                        return Err(Error::invalid("this one fails"));
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.map_err(Error::internal)?.is_ok() {
                ok += 1;
            }
        }
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?))
            .await?;
        // Failed jobs and duplicate identifiers left nothing behind; every success is there.
        assert_eq!(n, ok);
        assert!(ok >= 30, "{ok}");
        Ok(())
    }

    #[test]
    fn generation_changes_on_commits_from_other_connections() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.db");
        let db = Db::open(&path)?;
        let g0 = db.generation()?;
        assert_eq!(db.generation()?, g0);
        db.write_blocking(|tx| {
            Ok(tx.execute(
                "INSERT INTO accounts (identifier, name, created_at) VALUES ('a', 'A', 0)",
                [],
            )?)
        })?;
        let g1 = db.generation()?;
        assert_ne!(g1, g0);
        // Another process's connection (the CLI) committing is seen too.
        let other = Connection::open(&path)?;
        other.execute(
            "INSERT INTO accounts (identifier, name, created_at) VALUES ('b', 'B', 0)",
            [],
        )?;
        assert_ne!(db.generation()?, g1);
        Ok(())
    }

    #[tokio::test]
    async fn commits_are_checkpointed_into_the_database_file_in_the_background() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.db");
        let db = Db::open(&path)?;
        let before = std::fs::metadata(&path)?.len();
        for i in 0..200 {
            db.write(move |tx| {
                Ok(tx.execute(
                    "INSERT INTO accounts (identifier, name, created_at) VALUES (?1, ?2, 0)",
                    rusqlite::params![format!("a{i}"), "x".repeat(2000)],
                )?)
            })
            .await?;
        }
        // The writer never checkpoints itself (wal_autocheckpoint = 0): only the background
        // thread can have grown the database file.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path)?.len() <= before + 200 * 2000 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint happened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_checkpoint_pass_asked_for_copies_every_frame_committed_before() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.db");
        let db = Db::open(&path)?;
        let ck =
            db.0.w
                .checkpoint
                .clone()
                .ok_or_else(|| Error::internal("no checkpointer"))?;
        for round in 0..3 {
            for i in 0..50 {
                db.write(move |tx| {
                    Ok(tx.execute(
                        "INSERT INTO accounts (identifier, name, created_at) VALUES (?1, ?2, 0)",
                        rusqlite::params![format!("a{round}-{i}"), "x".repeat(1000)],
                    )?)
                })
                .await?;
            }
            // Asked while the checkpointer may be in its pause, mid-pass, or asleep.
            let asked = ck.pass_now();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !ck.done(asked) {
                assert!(std::time::Instant::now() < deadline, "the pass never came");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Nothing was committed since: that pass copied the whole WAL.
            let other = Connection::open(&path)?;
            // (A connection opens the WAL with its first read.)
            other.query_row("SELECT count(*) FROM accounts", [], |r| r.get::<_, i64>(0))?;
            let (log, copied) =
                other.wal_checkpoint_v2(rusqlite::DEFAULT_NAME, CheckpointMode::PASSIVE)?;
            assert!(log > 0, "round {round}: the WAL is empty");
            assert_eq!(log, copied, "round {round}: frames left to copy");
            let frames = db.0.w.wal_frames.load(Ordering::Relaxed);
            assert!(frames > 0, "the WAL hook reports the WAL's length");
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_burst_a_lone_write_is_not_held_back() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let db = Db::open(&dir.path().join("agent.db"))?;
        // Large batches: the writer lingers before its next commit.
        let burst: Vec<_> = (0..256)
            .map(|i| {
                let db = db.clone();
                let f = insert_account(format!("b{i}"));
                tokio::spawn(async move { db.write(f).await })
            })
            .collect();
        for w in burst {
            w.await.map_err(Error::internal)??;
        }
        // A write alone now waits at most the linger (150 µs), not for company that never
        // comes; a second's margin keeps the test about that, not about the machine.
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), db.write(insert_account("alone")))
            .await
            .map_err(|_| Error::internal("the lone write never committed"))??;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))?))
            .await?;
        assert_eq!(n, 257);
        Ok(())
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() -> Result<()> {
        let db = Db::open_in_memory()?;
        let insert = insert_account;
        let (a, boom, b) = tokio::join!(
            db.write(insert("a")),
            db.write(move |tx: &Transaction<'_>| -> Result<usize> {
                insert("half")(tx)?;
                panic!("a bug in a write")
            }),
            db.write(insert("b")),
        );
        assert!(a.is_ok() && b.is_ok());
        assert!(boom.is_err());
        // The writer thread survived the panic (else this would wait forever).
        tokio::time::timeout(Duration::from_secs(10), db.write(insert("after")))
            .await
            .map_err(|_| Error::internal("the writer thread is gone"))??;
        let ids: Vec<String> = db
            .read(|c| {
                let mut st = c.prepare("SELECT identifier FROM accounts ORDER BY identifier")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await?;
        assert_eq!(ids, ["a", "after", "b"], "the panicking write left nothing");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_sustained_writes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.db");
        let db = Db::open(&path)?;
        // 48 MiB of rows from 16 writers that never pause: the checkpointer alone would
        // never find the WAL fully copied, and the WAL would hold all of it.
        let mut writers = Vec::new();
        for w in 0..16 {
            let db = db.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..768 {
                    db.write(move |tx| {
                        Ok(tx.execute(
                            "INSERT INTO accounts (identifier, name, created_at) \
                             VALUES (?1, ?2, 0)",
                            rusqlite::params![format!("a{w}-{i}"), "x".repeat(4000)],
                        )?)
                    })
                    .await?;
                }
                Ok::<_, Error>(())
            }));
        }
        for w in writers {
            w.await.map_err(Error::internal)??;
        }
        let wal = std::fs::metadata(path.with_extension("db-wal"))?.len();
        let bound = 2 * WAL_RESTART_FRAMES as u64 * 4096 + (4 << 20);
        assert!(wal < bound, "WAL of {wal} bytes (bound {bound})");
        Ok(())
    }

    #[tokio::test]
    async fn the_epoch_moves_after_every_write_but_uncached_ones() -> Result<()> {
        let db = Db::open_in_memory()?;
        let insert = |tx: &Transaction<'_>, id: &str| -> Result<usize> {
            Ok(tx.execute(
                "INSERT INTO accounts (identifier, name, created_at) VALUES (?1, 'A', 0)",
                [id],
            )?)
        };
        let e0 = db.epoch();
        db.write_uncached(move |tx| insert(tx, "a")).await?;
        assert_eq!(db.epoch(), e0, "an uncached write leaves the epoch");
        db.write(move |tx| insert(tx, "b")).await?;
        let e1 = db.epoch();
        assert!(e1 > e0, "a write moves it before its caller is answered");
        // A failed write moves it too (what it touched is unknown).
        let failed = db.write(move |tx| insert(tx, "b")).await;
        assert!(failed.is_err());
        let e2 = db.epoch();
        assert!(e2 > e1);
        db.write_blocking(|tx| insert(tx, "c"))?;
        assert!(db.epoch() > e2);
        Ok(())
    }

    #[test]
    fn file_database_uses_wal_and_foreign_keys() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let db = Db::open(&dir.path().join("agent.db"))?;
        let (mode, fk): (String, i64) = db.read_blocking(|c| {
            Ok((
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        })?;
        assert_eq!(mode, "wal");
        assert_eq!(fk, 1);
        Ok(())
    }
}
