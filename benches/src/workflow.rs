//! The Zart figures: pickup latency (start to handler entry) and end-to-end latency of a
//! one-step workflow (start to `wait` returning), each measured against an idle worker.
//!
//! One [`PostgresScheduler`] is shared by the worker and the client, as in a single process
//! that both starts and runs workflows; the worker runs with `WorkerConfig::default()`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zart::{
    DurableScheduler, ExecutionStatus, Scheduler, ShutdownHandle, TaskContext, TaskError,
    TaskHandler, TaskRegistry, Worker, WorkerConfig,
};
use zart_pg::{PgPool, PostgresScheduler};

use crate::stats::{Gap, Rng};

/// The task whose handler entry marks pickup.
const PICKUP_TASK: &str = "bench-pickup";
/// The one-step workflow timed end to end.
const ONE_STEP_TASK: &str = "bench-one-step";
/// The longest one sample may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Pool size of the shared scheduler.
const POOL_SIZE: usize = 8;

/// An execution id and the instant its handler was entered.
type Entered = (String, Instant);

/// Records the instant it is entered, before anything else, and returns without steps.
struct PickupProbe {
    entered: mpsc::UnboundedSender<Entered>,
}

#[async_trait]
impl TaskHandler for PickupProbe {
    type Data = serde_json::Value;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<(), TaskError> {
        let at = Instant::now();
        // Only fails once the driver has stopped listening; nothing to report then.
        let _ = self.entered.send((ctx.execution_id().to_owned(), at));
        Ok(())
    }
}

/// A workflow of one no-op step returning a small value.
struct OneStep;

#[async_trait]
impl TaskHandler for OneStep {
    type Data = serde_json::Value;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<u32, TaskError> {
        ctx.step("noop", || async { Ok::<_, std::io::Error>(7u32) })
            .await
    }
}

/// A running worker and a client on one scratch database.
pub struct Harness {
    durable: DurableScheduler<PostgresScheduler>,
    entered: mpsc::UnboundedReceiver<Entered>,
    stop: ShutdownHandle,
    worker: JoinHandle<Result<(), zart::Error>>,
}

impl Harness {
    /// Starts an idle worker with both benchmark tasks on the (migrated) database at `config`.
    pub fn start(config: tokio_postgres::Config) -> Result<Harness> {
        let pool = PgPool::from_config(config, POOL_SIZE).context("building the pool")?;
        let scheduler = Arc::new(PostgresScheduler::new(pool));
        let (tx, entered) = mpsc::unbounded_channel();
        let mut registry = TaskRegistry::new();
        registry.register(PICKUP_TASK, PickupProbe { entered: tx });
        registry.register(ONE_STEP_TASK, OneStep);
        let registry = Arc::new(registry);
        let worker = Worker::new(
            scheduler.clone(),
            registry.clone(),
            WorkerConfig::default().with_handle_signals(false),
        );
        let stop = worker.shutdown_handle();
        let worker = tokio::spawn(worker.run());
        Ok(Harness {
            durable: DurableScheduler::new(scheduler, registry),
            entered,
            stop,
            worker,
        })
    }

    /// Pickup latency: `Instant::now()` right before `start` to the handler's first instant.
    /// Each execution is awaited to completion (untimed) before the idle gap.
    pub async fn pickup(
        &mut self,
        nonce: &str,
        warmup: usize,
        samples: usize,
        gap: Gap,
        rng: &mut Rng,
    ) -> Result<Vec<Duration>> {
        let mut out = Vec::with_capacity(samples);
        for i in 0..warmup + samples {
            let id = format!("pickup-{nonce}-{i}");
            let started = Instant::now();
            self.begin(&id, PICKUP_TASK).await?;
            let entered = self.entered(&id).await?;
            self.finish(&id).await?;
            if i >= warmup {
                out.push(entered.saturating_duration_since(started));
            }
            gap.sleep(rng).await;
        }
        Ok(out)
    }

    /// End-to-end latency: `Instant::now()` right before `start` to `wait` returning
    /// `Completed`, for the one-step workflow.
    pub async fn end_to_end(
        &mut self,
        nonce: &str,
        warmup: usize,
        samples: usize,
        gap: Gap,
        rng: &mut Rng,
    ) -> Result<Vec<Duration>> {
        let mut out = Vec::with_capacity(samples);
        for i in 0..warmup + samples {
            let id = format!("e2e-{nonce}-{i}");
            let started = Instant::now();
            self.begin(&id, ONE_STEP_TASK).await?;
            self.finish(&id).await?;
            let elapsed = started.elapsed();
            if i >= warmup {
                out.push(elapsed);
            }
            gap.sleep(rng).await;
        }
        Ok(out)
    }

    /// Shuts the worker down gracefully and reports how it ended.
    pub async fn stop(self) -> Result<()> {
        self.stop.shutdown();
        // The worker's own shutdown timeout (30 s by default) comes first.
        let limit = TIMEOUT + Duration::from_secs(10);
        match tokio::time::timeout(limit, self.worker).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e).context("the worker failed"),
            Ok(Err(e)) => Err(e).context("the worker task panicked or was cancelled"),
            Err(_) => bail!("the worker did not shut down within {limit:?}"),
        }
    }

    /// Starts `id` of `task`; fails unless it is newly created.
    async fn begin(&self, id: &str, task: &str) -> Result<()> {
        let input = serde_json::json!({ "bench": true });
        let outcome = tokio::time::timeout(TIMEOUT, self.durable.start(id, task, input))
            .await
            .map_err(|_| anyhow!("starting {id:?} took over {TIMEOUT:?}"))?
            .with_context(|| format!("starting {id:?}"))?;
        if !outcome.created {
            bail!("execution {id:?} already existed (ids must be unique per run)");
        }
        Ok(())
    }

    /// Waits for the pickup probe to report `id`'s handler entry.
    async fn entered(&mut self, id: &str) -> Result<Instant> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.entered.recv()).await {
                Err(_) => {
                    let why = self.worker_state();
                    bail!("execution {id:?} was not picked up within {TIMEOUT:?}{why}")
                }
                Ok(None) => bail!("the pickup probe is gone (the worker stopped?)"),
                Ok(Some((entered, at))) if entered == id => return Ok(at),
                Ok(Some(_)) => {}
            }
        }
    }

    /// Waits (up to the timeout) until `id` finishes, and fails unless it completed.
    async fn finish(&self, id: &str) -> Result<()> {
        let execution = match self.durable.wait(id, Some(TIMEOUT)).await {
            Ok(execution) => execution,
            Err(e @ zart::Error::WaitTimeout { .. }) => {
                let why = self.worker_state();
                return Err(anyhow!(e).context(format!("execution {id:?} timed out{why}")));
            }
            Err(e) => return Err(e).with_context(|| format!("waiting for {id:?}")),
        };
        if execution.status != ExecutionStatus::Completed {
            bail!(
                "execution {id:?} ended {} instead of completed: {:?}",
                execution.status,
                execution.error
            );
        }
        Ok(())
    }

    /// A hint for timeout messages: whether the worker task has already ended.
    fn worker_state(&self) -> &'static str {
        if self.worker.is_finished() {
            " (the worker task has ended)"
        } else {
            ""
        }
    }
}
