//! CPU-bound work that must not hold an async worker (SAML signature checks and decryption):
//! run on tokio's blocking pool, at most one job per core at a time, first come first served.
//!
//! Unbounded, every request in flight got its own blocking thread: under 64 concurrent ACS
//! posts on two cores, 64 threads verified signatures at once, time-sliced by the kernel, so
//! every response took as long as the slowest and the context switches cost CPU of their own.
//! Queued on the gate, a response is validated in order of arrival with the cores' full speed.

use std::sync::OnceLock;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Error, Result};

fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores)
    })
}

/// A place at the gate, for a caller that runs its CPU work in a blocking job of its own (the
/// ACS's, which reads first: [`Db::read_then`](crate::store::Db::read_then)); held until
/// dropped.
pub async fn admit() -> Result<SemaphorePermit<'static>> {
    gate().acquire().await.map_err(Error::internal)
}

/// Runs `f` on the blocking pool once a core is free; `what` names the work in the error if
/// the task panics.
pub async fn run<T, F>(what: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let _permit = admit().await?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Never more jobs at once than cores, however many are queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_one_job_per_core_runs_at_once() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs: Vec<_> = (0..cores * 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(super::run("test job", move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for j in jobs {
            j.await.expect("task").expect("job");
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= cores, "{most} jobs ran at once on {cores} cores");
        assert!(most >= 1);
    }
}
