//! Q6 and Q6x: what an idle worker costs, watched for a window after it settles: statements on
//! Zart's tables per second (the target), transaction control per second, and `PRAGMA
//! data_version` reads per second (the cross-process wake-up probe, not a statement on Zart's
//! tables). Statements are counted by the scheduler itself
//! ([`zart_sqlite::SqliteScheduler::statement_counts`], an SQLite trace hook on its write and
//! read connections).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use zart::TaskRegistry;
use zart_sqlite::Synchronous;

use super::child::{self, Counts};
use super::scheduler;
use crate::common::child::WorkerProcess;
use crate::common::{default_worker, stopped, tick};
use crate::drain::{Entries, NoOp};
use crate::progress::Bar;

/// An idle worker's rates over the window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IdleCost {
    /// The window, seconds.
    pub secs: f64,
    /// Statements on Zart's tables per second.
    pub statements: f64,
    /// `begin`, `commit`, savepoints and pragmas per second.
    pub control: f64,
    /// `data_version` reads per second.
    pub polls: f64,
}

impl IdleCost {
    fn between(before: Counts, after: Counts, took: Duration) -> IdleCost {
        let secs = took.as_secs_f64().max(1e-9);
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        IdleCost {
            secs,
            statements: per(after.statements.zart_tables, before.statements.zart_tables),
            control: per(after.statements.control, before.statements.control),
            polls: per(after.polls, before.polls),
        }
    }
}

/// Q6: a default worker in this process with nothing to do, settled for `settle` seconds,
/// then watched for `secs`.
///
/// # Errors
/// When the worker fails or stops by itself.
pub async fn in_process(
    url: &str,
    sync: Synchronous,
    settle: u64,
    secs: u64,
    bar: &Bar,
) -> Result<IdleCost> {
    let scheduler = scheduler(url, sync, true).await?;
    let mut registry = TaskRegistry::new();
    registry.register("q6-idle", NoOp::new(Arc::new(Entries::new(u64::MAX)), None))?;
    let worker = default_worker(scheduler.clone(), Arc::new(registry), None);
    let stop = worker.shutdown_handle();
    let handle = tokio::spawn(worker.run());
    let counts = || Counts {
        statements: scheduler.statement_counts(),
        polls: scheduler.poll_count(),
    };
    tick(settle, bar).await;
    let (before, started) = (counts(), Instant::now());
    if before.statements.zart_tables == 0 {
        bail!("Q6: the worker's startup counted no statement: statement counting is broken");
    }
    tick(secs, bar).await;
    let cost = IdleCost::between(before, counts(), started.elapsed());
    if handle.is_finished() {
        bail!("Q6: the idle worker stopped by itself");
    }
    stop.shutdown();
    stopped("Q6", handle).await?;
    Ok(cost)
}

/// Q6x: the worker in `process`, with nothing to do, settled for `settle` seconds, then
/// watched for `secs`.
///
/// # Errors
/// When the process does not answer.
pub async fn other_process(
    process: &mut WorkerProcess,
    settle: u64,
    secs: u64,
    bar: &Bar,
) -> Result<IdleCost> {
    tick(settle, bar).await;
    let (before, started) = (child::counts(process).await?, Instant::now());
    if before.statements.zart_tables == 0 {
        bail!("Q6x: the worker process counted no statement: statement counting is broken");
    }
    tick(secs, bar).await;
    let after = child::counts(process).await?;
    Ok(IdleCost::between(before, after, started.elapsed()))
}
