//! The backend-neutral parts of the per-backend load drivers, `zart-load-sqlite` ([`crate::sqlite`])
//! and `zart-load-mysql` ([`crate::mysql`]): a worker at `WorkerConfig::default()` and its
//! stop, drains of pre-filled no-op executions ([`drain`]), pickup sampling on an idle worker
//! ([`pickup`]), and the worker process that another process's pickups and idle cost are
//! measured on ([`child`]).
//!
//! Each backend module builds its schedulers and reads its database; everything here works on
//! any [`zart::Scheduler`].

pub mod child;
pub mod drain;
pub mod pickup;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use zart::{Scheduler, TaskRegistry, Worker, WorkerConfig};

use crate::progress::Bar;

/// The longest one sample or one start may take before the run fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A worker at `WorkerConfig::default()` (signals left to the driver), or with `concurrency`
/// slots.
pub fn default_worker<S: Scheduler + 'static>(
    scheduler: Arc<S>,
    registry: Arc<TaskRegistry>,
    concurrency: Option<usize>,
) -> Worker<S> {
    let mut config = WorkerConfig::default().with_handle_signals(false);
    if let Some(concurrency) = concurrency {
        config = config.with_concurrency(concurrency);
    }
    Worker::new(scheduler, registry, config)
}

/// Waits up to 60 s for a worker task to end after its shutdown, and reports how it ended.
///
/// # Errors
/// When the worker failed, panicked or did not stop.
pub async fn stopped(
    what: &str,
    handle: tokio::task::JoinHandle<Result<(), zart::Error>>,
) -> Result<()> {
    match tokio::time::timeout(Duration::from_secs(60), handle).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e).with_context(|| format!("{what}: the worker failed")),
        Ok(Err(e)) => Err(e).with_context(|| format!("{what}: the worker task panicked")),
        Err(_) => Err(anyhow!("{what}: the worker did not stop within 60 s")),
    }
}

/// Sleeps `secs` seconds, advancing `bar` each second.
pub async fn tick(secs: u64, bar: &Bar) {
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bar.inc(1);
    }
}

/// Runs a driver's `main`: builds a multi-threaded tokio runtime, runs `work` on it, and
/// turns its error into a message on stderr (prefixed with `tool`) and a failing exit code.
/// The runtime is shut down without waiting for blocking tasks (a worker process may still
/// have a stdin read in flight).
pub fn main<F>(tool: &str, work: impl FnOnce() -> F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{tool}: error: building the tokio runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(work());
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{tool}: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
