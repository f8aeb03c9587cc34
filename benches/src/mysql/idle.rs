//! Q6 and Q6x: what an idle worker (empty queue) costs the server, watched for a window after
//! it settles. Its scheduler's connections go through a [`Meter`], which counts every command
//! they send ([`super::meter`] says how): statements per second (the target: every query and
//! prepared-statement execution, the change probe, transaction control and clock reads
//! included), split into the change probe, others on Zart's tables, and the rest; commands
//! that run no statement (prepares, pings, ...) per second; connections opened. Next to them
//! the scheduler's own `poll_count()` per second, and the server's `Questions` counter per
//! second over the same window (the whole server's: anything else it runs counts too, so it
//! is a cross-check on a quiet server, not the figure).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;
use zart::TaskRegistry;

use super::child::{self, Counts};
use super::meter::Meter;
use super::{close, scheduler, Scratch};
use crate::common::child::WorkerProcess;
use crate::common::{default_worker, stopped, tick};
use crate::drain::{Entries, NoOp};
use crate::progress::Bar;

/// An idle worker's rates over the window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IdleCost {
    /// The window, seconds.
    pub secs: f64,
    /// Statements per second, all of them (the target's count).
    pub statements: f64,
    /// Of those, change-probe reads per second.
    pub probes: f64,
    /// Of those, other statements on Zart's tables per second.
    pub zart_tables: f64,
    /// Of those, the rest (transaction control, clock reads, session set-up) per second.
    pub other: f64,
    /// Commands that run no statement (prepare, close, ping, ...) per second.
    pub protocol: f64,
    /// Connections opened during the window.
    pub connections: u64,
    /// The scheduler's `poll_count()` per second.
    pub polls: f64,
    /// The server's `Questions` per second over the window, less the closing reading itself
    /// (everything the server ran, from any client).
    pub server_questions: f64,
}

/// The counts at one end of the window.
#[derive(Debug, Clone, Copy)]
struct Reading {
    counts: Counts,
    questions: u64,
    at: Instant,
}

impl IdleCost {
    fn between(before: Reading, after: Reading) -> IdleCost {
        let secs = after
            .at
            .saturating_duration_since(before.at)
            .as_secs_f64()
            .max(1e-9);
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let (b, a) = (before.counts.meter, after.counts.meter);
        IdleCost {
            secs,
            statements: per(a.statements, b.statements),
            probes: per(a.probes, b.probes),
            zart_tables: per(a.zart_tables, b.zart_tables),
            other: per(a.other, b.other),
            protocol: per(a.protocol, b.protocol),
            connections: a.connections.saturating_sub(b.connections),
            polls: per(after.counts.polls, before.counts.polls),
            server_questions: per(after.questions, before.questions.saturating_add(1)),
        }
    }

    /// Fails when the meter cannot be right: no statement counted before the window (a
    /// worker's start-up runs several), or the scheduler polled in the window and the meter
    /// saw no probe.
    fn check(&self, what: &str, before: &Counts) -> Result<()> {
        if before.meter.statements == 0 {
            bail!("{what}: the meter counted no statement of the worker's start-up: it is broken");
        }
        if self.polls > 0.0 && self.probes == 0.0 {
            bail!("{what}: the scheduler polled but the meter saw no change probe: it is broken");
        }
        Ok(())
    }
}

/// Q6: a default worker in this process with nothing to do, its scheduler connected through
/// a meter, settled for `settle` seconds, then watched for `secs`.
///
/// # Errors
/// When the worker fails or stops by itself, a reading fails, or the meter is broken.
pub async fn in_process(scratch: &Scratch, settle: u64, secs: u64, bar: &Bar) -> Result<IdleCost> {
    let meter = Meter::start(scratch.server().address()).await?;
    let scheduler = scheduler(&scratch.server().url_via(meter.port(), scratch.name())).await?;
    let mut registry = TaskRegistry::new();
    registry.register("q6-idle", NoOp::new(Arc::new(Entries::new(u64::MAX)), None))?;
    let worker = default_worker(scheduler.clone(), Arc::new(registry), None);
    let stop = worker.shutdown_handle();
    let handle = tokio::spawn(worker.run());
    let watched = async {
        let counts = || Counts {
            meter: meter.counts(),
            polls: scheduler.poll_count(),
        };
        tick(settle, bar).await;
        let before = Reading {
            questions: scratch.questions().await?,
            counts: counts(),
            at: Instant::now(),
        };
        tick(secs, bar).await;
        let after = Reading {
            counts: counts(),
            at: Instant::now(),
            questions: scratch.questions().await?,
        };
        let cost = IdleCost::between(before, after);
        cost.check("Q6", &before.counts)?;
        if handle.is_finished() {
            bail!("Q6: the idle worker stopped by itself");
        }
        Ok(cost)
    }
    .await;
    stop.shutdown();
    let ended = stopped("Q6", handle).await;
    close(scheduler).await;
    drop(meter);
    let cost = watched?;
    ended?;
    Ok(cost)
}

/// Q6x: the worker in `process` (connected through its own meter), with nothing to do,
/// settled for `settle` seconds, then watched for `secs`.
///
/// # Errors
/// When the process does not answer, a reading fails, or its meter is broken.
pub async fn other_process(
    scratch: &Scratch,
    process: &mut WorkerProcess,
    settle: u64,
    secs: u64,
    bar: &Bar,
) -> Result<IdleCost> {
    tick(settle, bar).await;
    let before = Reading {
        questions: scratch.questions().await?,
        counts: child::counts(process).await?,
        at: Instant::now(),
    };
    tick(secs, bar).await;
    let after = Reading {
        counts: child::counts(process).await?,
        at: Instant::now(),
        questions: scratch.questions().await?,
    };
    let cost = IdleCost::between(before, after);
    cost.check("Q6x", &before.counts)?;
    Ok(cost)
}
