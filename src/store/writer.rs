//! The writer thread: it owns the writer connection and runs every queued write in one
//! transaction (group commit), each inside its own savepoint, answering each after the
//! commit; under sustained writes it lets batches fill and the WAL rewind.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::checkpoint::Checkpointer;
use super::{Db, lock};
use crate::error::{Error, Result};

/// What the writer thread and the handles share.
pub(super) struct WriteSide {
    pub(super) writer: Mutex<Connection>,
    /// Commits made through this handle (the generation of in-memory databases).
    pub(super) commits: AtomicUsize,
    /// Changes when a write that may touch cached data ends (see [`Db::epoch`]).
    pub(super) epoch: AtomicU64,
    /// Writes waiting for the next group commit.
    queue: Mutex<Queue>,
    /// Wakes the writer thread when it sleeps and a write arrives (or the handle closes).
    pub(super) wake: Condvar,
    /// The checkpointer thread (`None` for in-memory databases).
    pub(super) checkpoint: Option<Arc<Checkpointer>>,
    /// Frames in the WAL after the last commit (SQLite's WAL hook reports it).
    pub(super) wal_frames: Arc<AtomicI64>,
}

#[derive(Default)]
pub(super) struct Queue {
    jobs: Vec<Box<dyn Job>>,
    /// The writer thread waits for work (a push must wake it).
    idle: bool,
    /// The writer thread waits for more writes to join its batch (a push that fills it
    /// must wake it).
    lingering: bool,
    /// No handle is left: the thread ends once the queue is empty.
    pub(super) closed: bool,
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

impl Db {
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
    pub(super) fn start(
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

    pub(super) fn queue(&self) -> MutexGuard<'_, Queue> {
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

/// Batches of at least this many writes mean sustained writes (see `WriteSide::linger`).
const LINGER_AFTER_BATCH: usize = 4;

/// How long the writer waits for more writes to join a batch under sustained writes.
const LINGER: Duration = Duration::from_micros(150);

/// The queue length that ends that wait early.
const LINGER_UNTIL_QUEUED: usize = 32;

/// WAL length (4 KiB frames, so 16 MiB) past which the writer lets the WAL rewind (see
/// `WriteSide::rewind_wal`); without it the WAL would grow without end under sustained writes.
pub(super) const WAL_RESTART_FRAMES: i64 = 4096;

/// Advances the epoch when dropped: after the transaction, on every path out.
struct EpochBump<'a>(Option<&'a AtomicU64>);

impl Drop for EpochBump<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.0 {
            e.fetch_add(1, Ordering::AcqRel);
        }
    }
}
