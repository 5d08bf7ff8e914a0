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
//!
//! Here: [`Db`], its connections and the reads. Beside it: `writer` (the writer thread and its
//! group commits), `checkpoint` (the checkpointer thread), [`cache`] (the caches, and the
//! generation and epoch they are checked against) and `migrations`.

pub mod accounts;
pub mod audit;
pub mod cache;
pub mod callback_urls;
mod checkpoint;
pub mod grants;
pub mod groups;
pub mod idp;
pub mod imports;
pub mod links;
mod migrations;
pub mod replay;
pub mod sessions;
pub mod settings;
pub mod signin_settings;
pub mod sp_keys;
pub mod tokens;
pub mod transactions;
pub mod users;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use checkpoint::Checkpointer;
use writer::WriteSide;

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
        let permit = self.admit_reader().await?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            db.read_blocking(f)
        })
        .await
        .map_err(|e| Error::internal(format!("database task: {e}")))?
    }

    /// A place at the read gate: one of the reader connections is free for its holder.
    async fn admit_reader(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.0
            .read_gate
            .clone()
            .acquire_owned()
            .await
            .map_err(Error::internal)
    }

    /// [`Db::read`], then `then` on what was read, on the same blocking thread once the reader
    /// connection and its place at the gate are given back: one hand-off to the blocking pool
    /// for work that reads and then computes (the ACS reads its login transaction, then checks
    /// the response's signature), instead of one for each.
    pub async fn read_then<T, U, F, G>(&self, f: F, then: G) -> Result<U>
    where
        U: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        G: FnOnce(T) -> U + Send + 'static,
    {
        let permit = self.admit_reader().await?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let read = db.read_blocking(f);
            drop(permit);
            read.map(then)
        })
        .await
        .map_err(|e| Error::internal(format!("database task: {e}")))?
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
    use rusqlite::Transaction;
    use rusqlite::wal::CheckpointMode;
    use writer::WAL_RESTART_FRAMES;

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

    /// `read_then` gives the reader connection and its place at the gate back before `then`
    /// runs: jobs computing on every reader's place leave reads free to run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_then_frees_the_reader_before_computing() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let db = Db::open(&dir.path().join("agent.db"))?;
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let mut jobs = Vec::new();
        for _ in 0..READERS {
            let (db, wait, started_tx) = (db.clone(), wait.clone(), started_tx.clone());
            jobs.push(tokio::spawn(async move {
                db.read_then(
                    |c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?),
                    move |one| {
                        let _ = started_tx.send(());
                        let _ = wait.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        one
                    },
                )
                .await
            }));
        }
        for _ in 0..READERS {
            started.recv().await.expect("a job started computing");
        }
        // Every job is computing now; a read must still get through.
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            db.read(|c| Ok(c.query_row("SELECT 2", [], |r| r.get::<_, i64>(0))?)),
        )
        .await;
        for _ in 0..READERS {
            release.send(()).expect("a job waits");
        }
        assert_eq!(read.expect("a read waited for the computing jobs")?, 2);
        for j in jobs {
            assert_eq!(j.await.expect("job")?, 1);
        }
        Ok(())
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
