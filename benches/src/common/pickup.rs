//! Pickup on an idle worker: from just before `start` to the first step's body running, at
//! random idle gaps, each sample awaited to completion before the next; the probe workflow a
//! worker process runs too, and the in-process phase on any scheduler.
//!
//! In one process the scheduler's own commit wakes the worker at once (no polling), so the
//! pickup is the start's durable commit, the claim's commit and the hand-over to the step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use tokio::sync::mpsc;
use zart::{
    DurableScheduler, ExecutionStatus, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry,
};

use super::{default_worker, stopped, TIMEOUT};
use crate::progress::Bar;
use crate::stats::{Figure, Gap, Rng, Summary};

/// The probe workflow's task name.
pub const PICKUP_TASK: &str = "zart-load-pickup";

/// What the probe calls, with the execution id, when its first step's body runs.
pub type OnFirstStep = Arc<dyn Fn(&str) + Send + Sync>;

/// A workflow of one no-op step whose body first calls [`OnFirstStep`] (only once per
/// execution: a recorded step is not run again).
pub struct FirstStep {
    on_first_step: OnFirstStep,
}

impl FirstStep {
    /// A probe calling `on_first_step`.
    pub fn new(on_first_step: OnFirstStep) -> FirstStep {
        FirstStep { on_first_step }
    }

    /// A probe that reports nothing (for a client that only starts executions).
    pub fn silent() -> FirstStep {
        FirstStep::new(Arc::new(|_: &str| {}))
    }
}

#[async_trait]
impl TaskHandler for FirstStep {
    type Data = serde_json::Value;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<(), TaskError> {
        let id = ctx.execution_id().to_owned();
        let on_first_step = self.on_first_step.clone();
        ctx.step("first", || async move {
            on_first_step(&id);
            Ok::<_, std::io::Error>(())
        })
        .await
    }
}

/// The samples of one pickup phase.
#[derive(Debug, Default)]
pub struct Pickups {
    /// `start` to the first step's body.
    pub pickups: Vec<Duration>,
    /// `start` returning (its durable commit is inside every pickup).
    pub starts: Vec<Duration>,
}

/// Starts `id` of [`PICKUP_TASK`] and fails unless it is new.
///
/// # Errors
/// When the start fails, takes over [`TIMEOUT`], or the id existed.
pub async fn begin<S: Scheduler>(durable: &DurableScheduler<S>, id: &str) -> Result<()> {
    let input = serde_json::json!({ "bench": true });
    let outcome = tokio::time::timeout(TIMEOUT, durable.start(id, PICKUP_TASK, input))
        .await
        .map_err(|_| anyhow!("starting {id:?} took over {TIMEOUT:?}"))?
        .with_context(|| format!("starting {id:?}"))?;
    if !outcome.created {
        bail!("execution {id:?} already existed");
    }
    Ok(())
}

/// Waits for `id` to finish and fails unless it completed.
///
/// # Errors
/// When the wait fails or times out, or the execution did not complete.
pub async fn finish<S: Scheduler>(durable: &DurableScheduler<S>, id: &str) -> Result<()> {
    let execution = durable
        .wait(id, Some(TIMEOUT))
        .await
        .with_context(|| format!("waiting for {id:?}"))?;
    if execution.status != ExecutionStatus::Completed {
        bail!(
            "execution {id:?} ended {} instead of completed: {:?}",
            execution.status,
            execution.error
        );
    }
    Ok(())
}

/// The samples of a pickup phase: ids `<prefix>-<nonce>-<i>`, `warmup` unmeasured first, each
/// start after a random `gap`.
#[derive(Debug, Clone, Copy)]
pub struct PickupPlan<'a> {
    /// Makes the ids unique to the run.
    pub nonce: &'a str,
    /// Unmeasured samples first.
    pub warmup: usize,
    /// Measured samples.
    pub samples: usize,
    /// The idle gap before each start.
    pub gap: Gap,
}

/// Runs a pickup phase: for each sample, sleeps a random gap, takes `mark()` and starts the
/// probe through `durable`, waits for its report on `entered`, then awaits its completion
/// (untimed). A pickup is `since(&mark, reported)`.
///
/// # Errors
/// When a start, a report or a completion fails or times out.
#[allow(clippy::too_many_arguments)]
pub async fn sample<S: Scheduler, M, T>(
    durable: &DurableScheduler<S>,
    prefix: &str,
    plan: PickupPlan<'_>,
    rng: &mut Rng,
    bar: &Bar,
    entered: &mut mpsc::UnboundedReceiver<(String, T)>,
    mark: impl Fn() -> M,
    since: impl Fn(&M, T) -> Duration,
) -> Result<Pickups> {
    let mut out = Pickups::default();
    for i in 0..plan.warmup + plan.samples {
        plan.gap.sleep(rng).await;
        let id = format!("{prefix}-{}-{i}", plan.nonce);
        let (marked, started) = (mark(), Instant::now());
        begin(durable, &id).await?;
        let returned = started.elapsed();
        let at = receive(entered, &id)
            .await
            .with_context(|| format!("{prefix}: sample {i}"))?;
        finish(durable, &id).await?;
        if i >= plan.warmup {
            out.pickups.push(since(&marked, at));
            out.starts.push(returned);
        }
        bar.inc(1);
    }
    Ok(out)
}

/// Pickups by a default worker sharing `scheduler` with the client that starts the probes
/// (ids prefixed `prefix`, which also names the phase in errors).
///
/// # Errors
/// As [`sample`], or when the worker fails.
pub async fn in_process<S: Scheduler + 'static>(
    scheduler: Arc<S>,
    prefix: &str,
    plan: PickupPlan<'_>,
    rng: &mut Rng,
    bar: &Bar,
) -> Result<Pickups> {
    let (tx, mut entered) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut registry = TaskRegistry::new();
    registry.register(
        PICKUP_TASK,
        FirstStep::new(Arc::new(move |id: &str| {
            let at = Instant::now();
            // Fails only once the driver has stopped listening.
            let _ = tx.send((id.to_owned(), at));
        })),
    )?;
    let registry = Arc::new(registry);
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    let worker = default_worker(scheduler, registry, None);
    let stop = worker.shutdown_handle();
    let handle = tokio::spawn(worker.run());
    let measured = sample(
        &durable,
        prefix,
        plan,
        rng,
        bar,
        &mut entered,
        Instant::now,
        |started, at| at.saturating_duration_since(*started),
    )
    .await;
    stop.shutdown();
    let ended = stopped(&prefix.to_uppercase(), handle).await;
    let out = measured?;
    ended?;
    Ok(out)
}

/// Waits (up to [`TIMEOUT`]) for the report of `id` on `rx`, skipping others.
///
/// # Errors
/// When none comes in time or the sender is gone.
pub async fn receive<T>(rx: &mut mpsc::UnboundedReceiver<(String, T)>, id: &str) -> Result<T> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("execution {id:?} was not picked up within {TIMEOUT:?}"),
            Ok(None) => bail!("the pickup probe is gone (the worker stopped?)"),
            Ok(Some((reported, at))) if reported == id => return Ok(at),
            Ok(Some(_)) => {}
        }
    }
}

/// One pickup phase's rows in the latency detail: its pickups and its `start()` returning.
#[derive(Debug, Clone, Copy)]
pub struct PickupRows<'a> {
    /// Key of the pickup row (`q4`).
    pub key: &'static str,
    /// Name of the pickup row.
    pub name: &'static str,
    /// Key of the `start()` row (`q4_start`).
    pub start_key: &'static str,
    /// Name of the `start()` row.
    pub start_name: &'static str,
    /// The samples, if the phase ran.
    pub pickups: Option<&'a Pickups>,
}

/// The latency-detail rows of the pickup phases that ran, after `first` (a raw baseline's
/// row, if any).
///
/// # Errors
/// When a phase that ran has no samples.
pub fn figures(first: Option<Figure>, phases: &[PickupRows<'_>]) -> Result<Vec<Figure>> {
    let mut out: Vec<Figure> = first.into_iter().collect();
    for p in phases {
        if let Some(pickups) = p.pickups {
            out.push(Figure::new(
                p.key,
                p.name,
                &Summary::of(&pickups.pickups)?,
                None,
            ));
            out.push(Figure::new(
                p.start_key,
                p.start_name,
                &Summary::of(&pickups.starts)?,
                None,
            ));
        }
    }
    Ok(out)
}
