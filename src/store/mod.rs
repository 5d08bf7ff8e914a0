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
//!   share one commit and one thread wake-up; alone, a write is a transaction of its own.

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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

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
    /// Wakes the checkpointer after a commit (`None` for in-memory databases).
    checkpoint: Option<std::sync::mpsc::SyncSender<()>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Box<dyn Job>>,
    /// The writer thread waits for work (a push must wake it).
    idle: bool,
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
        // thread of their own, not in the writer's way; the writer checkpoints only when the
        // WAL grows past WAL_RESTART_FRAMES, which sustained writes alone cause.
        writer.pragma_update(None, "wal_autocheckpoint", WAL_RESTART_FRAMES)?;
        let checkpoint = spawn_checkpointer(path)?;
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
        Ok(Self(Arc::new(Inner {
            watch: Some(Mutex::new(watch)),
            read_gate: Arc::new(tokio::sync::Semaphore::new(READERS)),
            readers,
            next_reader: AtomicUsize::new(0),
            w: WriteSide::start(writer, Some(checkpoint))?,
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
            w: WriteSide::start(conn, None)?,
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
            // Only a sleeping writer needs the wake-up (a system call); a busy one takes
            // the job with its next batch.
            if q.idle {
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
        checkpoint: Option<std::sync::mpsc::SyncSender<()>>,
    ) -> Result<Arc<Self>> {
        let w = Arc::new(Self {
            writer: Mutex::new(writer),
            commits: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            checkpoint,
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
        loop {
            let jobs = {
                let mut q = self.queue();
                loop {
                    if !q.jobs.is_empty() {
                        q.idle = false;
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
            // Full means a wake-up is pending already.
            let _ = c.try_send(());
        }
    }
}

/// Starts the thread that checkpoints the WAL after commits: it sleeps until woken (no
/// polling when idle), checkpoints (PASSIVE: never blocks readers or the writer), then
/// lets commits accumulate for a moment. It ends when the [`Db`] is dropped.
fn spawn_checkpointer(path: &Path) -> Result<std::sync::mpsc::SyncSender<()>> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!("WAL checkpoint failed: {e}");
                }
                std::thread::sleep(CHECKPOINT_PAUSE);
            }
            // The last commits' frames go into the database before the agent ends.
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        })
        .map_err(|e| Error::internal(format!("checkpoint thread: {e}")))?;
    Ok(tx)
}

/// How long commits accumulate between two checkpoints.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// WAL length (4 KiB frames, so 16 MiB) past which the writer checkpoints itself. The
/// checkpointer copies frames while commits keep adding some, so under sustained writes it
/// never finds the WAL fully copied, and SQLite rewinds the WAL only when a write begins with
/// every frame copied: without this the WAL would grow without end. Past this length the
/// writer, between two of its transactions (nothing is being added), copies what is left,
/// and its next transaction rewinds the WAL.
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
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() -> Result<()> {
        let db = Db::open_in_memory()?;
        let insert = |id: &'static str| {
            move |tx: &Transaction<'_>| -> Result<usize> {
                Ok(tx.execute(
                    "INSERT INTO accounts (identifier, name, created_at) VALUES (?1, 'A', 0)",
                    [id],
                )?)
            }
        };
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
