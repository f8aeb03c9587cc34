//! Helpers of the criterion micro-benches in `benches/benches/`: a scratch database per bench
//! binary, the scheduler, starting and claiming executions, and carrying the first error out
//! of a timing loop (the benches never panic).

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::runtime::Runtime;
use tokio_postgres::Config;
use zart::scheduler::{ClaimTasksParams, ClaimedTask, DynScheduler};
use zart_pg::{PgPool, PostgresScheduler};

use crate::scratch::{server_config, unique_name, Scratch};

/// A lease long enough to outlast any bench.
pub const LONG_LEASE: Duration = Duration::from_secs(3600);

/// The worker id the benches claim as.
pub const WORKER_ID: &str = "zart-criterion";

/// Runs a bench binary's `body` against a fresh, migrated scratch database
/// (`zart_crit_<bench>_<pid>`) on the server in `DATABASE_URL`, and drops the database
/// afterwards (also when `body` fails or panics). Without `DATABASE_URL` it says so and exits 0.
pub fn main_with_db(bench: &str, body: impl FnOnce(&Runtime, &Config) -> Result<()>) -> ExitCode {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!(
            "{bench}: DATABASE_URL is not set; skipping. Set it to a PostgreSQL 15+ server, \
             e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p zart-benches"
        );
        return ExitCode::SUCCESS;
    };
    match run(bench, &url, body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{bench}: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(bench: &str, url: &str, body: impl FnOnce(&Runtime, &Config) -> Result<()>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let server = server_config(url, "zart-criterion")?;
    let scratch = runtime.block_on(Scratch::create(
        &server,
        &unique_name(&format!("zart_crit_{bench}")),
    ))?;
    let config = scratch.config().clone();
    let result = runtime
        .block_on(zart_pg::migrate(&config))
        .context("migrating the scratch database")
        .and_then(|_| {
            std::panic::catch_unwind(AssertUnwindSafe(|| body(&runtime, &config)))
                .unwrap_or_else(|_| Err(anyhow!("the bench panicked")))
        });
    let dropped = runtime.block_on(scratch.drop_database());
    match (result, dropped) {
        (Ok(()), dropped) => dropped,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(d)) => Err(e.context(format!("and then: {d:#}"))),
    }
}

/// A scheduler on the database, as the worker sees it (through the `Scheduler` trait).
///
/// # Errors
/// When the pool cannot be built.
pub fn scheduler(config: &Config) -> Result<DynScheduler> {
    let pool = PgPool::from_config(config.clone(), zart_pg::DEFAULT_POOL_SIZE)?;
    Ok(Arc::new(PostgresScheduler::new(pool)))
}

/// Claims up to `limit` due executions of `task` for [`WORKER_ID`] with a lease of `lease`.
///
/// # Errors
/// When the claim fails.
pub async fn claim(
    scheduler: &DynScheduler,
    task: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<ClaimedTask>> {
    Ok(scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: WORKER_ID.to_owned(),
            queue: "default".to_owned(),
            task_names: vec![task.to_owned()],
            limit,
            lease,
            ..Default::default()
        })
        .await?)
}

/// Claims exactly one due execution of `task`.
///
/// # Errors
/// When the claim fails or finds nothing.
pub async fn claim_one(
    scheduler: &DynScheduler,
    task: &str,
    lease: Duration,
) -> Result<ClaimedTask> {
    let mut claimed = claim(scheduler, task, 1, lease).await?;
    match claimed.pop() {
        Some(task) if claimed.is_empty() => Ok(task),
        _ => bail!("expected to claim one execution of {task}"),
    }
}

/// Starts execution `id` of `task` with `input` on the default queue and claims it (it must
/// be the only due execution of `task`).
///
/// # Errors
/// When the start or the claim fails, or the claim finds something else.
pub async fn start_and_claim(
    scheduler: &DynScheduler,
    id: &str,
    task: &str,
    input: serde_json::Value,
    lease: Duration,
) -> Result<ClaimedTask> {
    scheduler
        .start_execution(zart::scheduler::StartExecutionParams {
            id: id.to_owned(),
            task_name: task.to_owned(),
            input,
            queue: "default".to_owned(),
            parent_id: None,
            deadline: None,
            start: None,
            ..Default::default()
        })
        .await?;
    claim_one(scheduler, task, lease).await
}

/// A completed step `s<n>` at position `n` with a `null` result, under `lease`.
pub fn null_step(lease: &zart::scheduler::Lease, n: u32) -> zart::scheduler::CommitStepParams {
    zart::scheduler::CommitStepParams {
        lease: lease.clone(),
        name: format!("s{n}"),
        seq: n,
        status: zart::scheduler::StepStatus::Completed,
        output: Some(serde_json::Value::Null),
        error: None,
        attempts: 1,
    }
}

/// A JSON string of `bytes` pseudo-random letters and digits (so compression does not
/// flatter large payloads).
pub fn payload(bytes: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = crate::stats::Rng::from_clock();
    (0..bytes)
        .map(|_| {
            let i = (rng.next_u64() % ALPHABET.len() as u64) as usize;
            char::from(ALPHABET.get(i).copied().unwrap_or(b'x'))
        })
        .collect()
}

/// The first error of a timing loop, kept until the bench ends.
#[derive(Debug, Default)]
pub struct FirstError(Mutex<Option<anyhow::Error>>);

impl FirstError {
    /// `Some(value)` on success; on failure keeps the error (the first one) and returns
    /// `None`, so the loop can stop.
    pub fn record<T, E: Into<anyhow::Error>>(&self, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(err.into());
                }
                None
            }
        }
    }

    /// Whether an error was recorded.
    pub fn failed(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The recorded error, if any.
    ///
    /// # Errors
    /// The first error recorded.
    pub fn into_result(self) -> Result<()> {
        match self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}
