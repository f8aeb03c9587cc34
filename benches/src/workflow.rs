//! The Zart figures: pickup latency (start to handler entry) and end-to-end latency of a
//! one-step workflow (start to `wait` returning), each measured against an idle worker; then
//! the lateness of overlapping `sleep(1 s)` timers, and the wake-up latency of an event sent
//! to a suspended `wait_for_event`.
//!
//! One [`PostgresScheduler`] is shared by the worker and the client, as in a single process
//! that both starts and runs workflows; the worker runs with `WorkerConfig::default()`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use zart::{
    DurableScheduler, EventOutcome, ExecutionStatus, Scheduler, ShutdownHandle, TaskContext,
    TaskError, TaskHandler, TaskRegistry, Worker, WorkerConfig,
};
use zart_pg::{PgPool, PostgresScheduler};

use crate::progress::Bar;
use crate::raw::NotifyProbe;
use crate::stats::{Gap, Rng};

/// The task whose handler entry marks pickup.
const PICKUP_TASK: &str = "bench-pickup";
/// The one-step workflow timed end to end.
const ONE_STEP_TASK: &str = "bench-one-step";
/// The workflow that sleeps [`NAP`] once.
const SLEEP_TASK: &str = "bench-sleep";
/// The workflow that waits for the event [`EVENT`].
const EVENT_TASK: &str = "bench-event";
/// The duration of the timed sleep; timer lateness is the time it took beyond this.
pub const NAP: Duration = Duration::from_secs(1);
/// The event the event workflow waits for.
const EVENT: &str = "go";
/// How often the driver looks whether an event workflow is waiting yet (not a measured path).
const POLL: Duration = Duration::from_millis(2);
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

/// The instants each sleep workflow first reached its sleep, by execution id.
type Reached = Arc<Mutex<HashMap<String, Instant>>>;

/// Sleeps [`NAP`] once. Records the instant it first reaches the sleep (the code outside steps
/// runs again on every replay, so only the first time counts), and the instant the sleep
/// returns.
struct SleepProbe {
    reached: Reached,
    woke: mpsc::UnboundedSender<Entered>,
}

#[async_trait]
impl TaskHandler for SleepProbe {
    type Data = serde_json::Value;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<(), TaskError> {
        let id = ctx.execution_id().to_owned();
        lock(&self.reached)
            .entry(id.clone())
            .or_insert_with(Instant::now);
        // Suspends the first time (`?` ends this run); a later claim returns Ok here.
        ctx.sleep("nap", NAP).await?;
        let at = Instant::now();
        // Only fails once the driver has stopped listening; nothing to report then.
        let _ = self.woke.send((id, at));
        Ok(())
    }
}

/// Waits for the event [`EVENT`] without a timeout and records the instant it is received.
struct EventProbe {
    woke: mpsc::UnboundedSender<Entered>,
}

#[async_trait]
impl TaskHandler for EventProbe {
    type Data = serde_json::Value;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<(), TaskError> {
        match ctx.wait_for_event::<serde_json::Value>(EVENT, None).await? {
            EventOutcome::Received(_) => {
                let at = Instant::now();
                // Only fails once the driver has stopped listening; nothing to report then.
                let _ = self.woke.send((ctx.execution_id().to_owned(), at));
                Ok(())
            }
            EventOutcome::TimedOut | EventOutcome::Malformed { .. } => Err(TaskError::failed(
                "a wait without timeout timed out, or a JSON payload did not fit JSON",
            )),
        }
    }
}

/// Starts `id` of `task` through `durable`; fails if it already existed.
async fn begin(durable: &DurableScheduler<PostgresScheduler>, id: &str, task: &str) -> Result<()> {
    let input = serde_json::json!({ "bench": true });
    let outcome = tokio::time::timeout(TIMEOUT, durable.start(id, task, input))
        .await
        .map_err(|_| anyhow!("starting {id:?} took over {TIMEOUT:?}"))?
        .with_context(|| format!("starting {id:?}"))?;
    if !outcome.created {
        bail!("execution {id:?} already existed (ids must be unique per run)");
    }
    Ok(())
}

/// Locks `mutex`, also after a panic elsewhere (the map stays usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The samples of [`Harness::pickup`].
#[derive(Debug, Default)]
pub struct Pickups {
    /// `start` to the handler's first instant.
    pub pickups: Vec<Duration>,
    /// `start` returning.
    pub starts: Vec<Duration>,
    /// The paired raw LISTEN/NOTIFY round trips (empty without a probe).
    pub notify: Vec<Duration>,
    /// The paired raw durable single-row inserts (empty without a probe).
    pub commits: Vec<Duration>,
    /// The paired starts made by Zart's start statement sent alone on a plain connection
    /// (empty without a probe): `start`'s SQL without the engine around it.
    pub start_statements: Vec<Duration>,
    /// `start` to the handler's first instant, started from the other scheduler (no
    /// in-process hand-off: the start notifies and the worker claims, as from another
    /// process). Empty unless asked for.
    pub remote_pickups: Vec<Duration>,
    /// `start` returning, on the other scheduler.
    pub remote_starts: Vec<Duration>,
}

/// Which schedulers [`Harness::pickup`] starts from.
#[derive(Debug, Clone, Copy)]
pub struct StartFrom {
    /// The worker's own scheduler (an idle worker takes the start by in-process hand-off).
    pub local: bool,
    /// A scheduler of its own, as another process would start.
    pub remote: bool,
}

impl StartFrom {
    /// Whether starts from the other scheduler (`remote`) or the worker's own are asked for.
    pub fn includes(self, remote: bool) -> bool {
        if remote {
            self.remote
        } else {
            self.local
        }
    }
}

/// A running worker and a client on one scratch database.
pub struct Harness {
    config: tokio_postgres::Config,
    durable: DurableScheduler<PostgresScheduler>,
    /// A client with a pool, listener and hand-off offers of its own: its starts reach the
    /// worker as another process's do.
    remote: DurableScheduler<PostgresScheduler>,
    entered: mpsc::UnboundedReceiver<Entered>,
    reached: Reached,
    slept: mpsc::UnboundedReceiver<Entered>,
    received: mpsc::UnboundedReceiver<Entered>,
    stop: ShutdownHandle,
    worker: JoinHandle<Result<(), zart::Error>>,
    bar: Bar,
}

impl Harness {
    /// Starts an idle worker with all benchmark tasks on the (migrated) database at `config`.
    pub fn start(config: tokio_postgres::Config) -> Result<Harness> {
        let pool = PgPool::from_config(config.clone(), POOL_SIZE).context("building the pool")?;
        let scheduler = Arc::new(PostgresScheduler::new(pool));
        let (tx, entered) = mpsc::unbounded_channel();
        let (slept_tx, slept) = mpsc::unbounded_channel();
        let (received_tx, received) = mpsc::unbounded_channel();
        let reached = Reached::default();
        let mut registry = TaskRegistry::new();
        registry.register(PICKUP_TASK, PickupProbe { entered: tx })?;
        registry.register(ONE_STEP_TASK, OneStep)?;
        registry.register(
            SLEEP_TASK,
            SleepProbe {
                reached: reached.clone(),
                woke: slept_tx,
            },
        )?;
        registry.register(EVENT_TASK, EventProbe { woke: received_tx })?;
        let registry = Arc::new(registry);
        let worker = Worker::new(
            scheduler.clone(),
            registry.clone(),
            WorkerConfig::default().with_handle_signals(false),
        );
        let stop = worker.shutdown_handle();
        let worker = tokio::spawn(worker.run());
        let remote_pool =
            PgPool::from_config(config.clone(), 2).context("building the remote client's pool")?;
        let remote = DurableScheduler::new(
            Arc::new(PostgresScheduler::new(remote_pool)),
            registry.clone(),
        );
        Ok(Harness {
            config,
            durable: DurableScheduler::new(scheduler, registry),
            remote,
            entered,
            reached,
            slept,
            received,
            stop,
            worker,
            bar: Bar::hidden(),
        })
    }

    /// Advances `bar` once per sample (warm-ups included) from now on.
    pub fn set_progress(&mut self, bar: Bar) {
        self.bar = bar;
    }

    /// Pickup latency: `Instant::now()` right before `start` to the handler's first instant.
    /// Each execution is awaited to completion (untimed) before the idle gap. Also returns,
    /// per sample, how long `start` itself took to return (its commit is part of every
    /// pickup, so it is the floor under the pickup figure). With both schedulers in `from`,
    /// each sample is a start from the worker's own scheduler, then one from the other, each
    /// after its own gap.
    ///
    /// With a `probe`, every pickup is paired with one raw baseline sample taken after its own
    /// random `gap`, so the baselines see the same idle machine as the pickups they are
    /// compared with: a LISTEN/NOTIFY round trip, a durable single-row insert and Zart's start
    /// statement alone, in turn (none warms up the next).
    #[allow(clippy::too_many_arguments)]
    pub async fn pickup(
        &mut self,
        nonce: &str,
        warmup: usize,
        samples: usize,
        gap: Gap,
        rng: &mut Rng,
        mut probe: Option<&mut NotifyProbe>,
        from: StartFrom,
    ) -> Result<Pickups> {
        let mut out = Pickups::default();
        let mut probes = 0usize;
        for i in 0..warmup + samples {
            for remote in [false, true] {
                if !from.includes(remote) {
                    continue;
                }
                if let Some(probe) = probe.as_deref_mut() {
                    let (took, into) = match probes % 3 {
                        0 => (probe.sample(nonce).await?, &mut out.notify),
                        1 => (probe.commit_sample(nonce).await?, &mut out.commits),
                        _ => (probe.start_sample(nonce).await?, &mut out.start_statements),
                    };
                    probes += 1;
                    if i >= warmup {
                        into.push(took);
                    }
                    gap.sleep(rng).await;
                }
                let id = format!("pickup-{nonce}-{i}{}", if remote { "-x" } else { "" });
                let started = Instant::now();
                let via = if remote { &self.remote } else { &self.durable };
                begin(via, &id, PICKUP_TASK).await?;
                let returned = started.elapsed();
                let entered = self.entered(&id).await?;
                self.finish(&id).await?;
                if i >= warmup {
                    let (pickups, starts) = if remote {
                        (&mut out.remote_pickups, &mut out.remote_starts)
                    } else {
                        (&mut out.pickups, &mut out.starts)
                    };
                    pickups.push(entered.saturating_duration_since(started));
                    starts.push(returned);
                }
                gap.sleep(rng).await;
            }
            self.bar.inc(1);
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
            self.bar.inc(1);
            gap.sleep(rng).await;
        }
        Ok(out)
    }

    /// Timer lateness: starts `warmup + samples` sleep workflows a random `gap` apart, so that
    /// many [`NAP`] timers overlap, then collects them all. Each sample is the handler's
    /// instant after the sleep returned minus the instant it first reached the sleep; the
    /// lateness is that minus [`NAP`] (left to the caller, as it may be slightly negative).
    /// The first `warmup` executions started are not measured.
    pub async fn timer_elapsed(
        &mut self,
        nonce: &str,
        warmup: usize,
        samples: usize,
        gap: Gap,
        rng: &mut Rng,
    ) -> Result<Vec<Duration>> {
        let ids: Vec<String> = (0..warmup + samples)
            .map(|i| format!("sleep-{nonce}-{i}"))
            .collect();
        for id in &ids {
            self.begin(id, SLEEP_TASK).await?;
            gap.sleep(rng).await;
        }
        let mut woke: HashMap<String, Instant> = HashMap::with_capacity(ids.len());
        let deadline = tokio::time::Instant::now() + NAP + TIMEOUT;
        while woke.len() < ids.len() {
            match tokio::time::timeout_at(deadline, self.slept.recv()).await {
                Err(_) => {
                    let missing = ids.iter().filter(|id| !woke.contains_key(*id)).count();
                    let why = self.worker_state();
                    bail!(
                        "{missing} of {} sleeps had not woken {:?} after the last start{why}",
                        ids.len(),
                        NAP + TIMEOUT
                    )
                }
                Ok(None) => bail!("the sleep probe is gone (the worker stopped?)"),
                Ok(Some((id, at))) => {
                    if woke.insert(id.clone(), at).is_some() {
                        bail!("execution {id:?} returned from its sleep twice");
                    }
                    self.bar.inc(1);
                }
            }
        }
        for id in &ids {
            self.finish(id).await?;
        }
        let reached = lock(&self.reached);
        ids.iter()
            .skip(warmup)
            .map(|id| {
                let first = reached
                    .get(id)
                    .ok_or_else(|| anyhow!("execution {id:?} woke but never reached its sleep"))?;
                let woke = woke
                    .get(id)
                    .ok_or_else(|| anyhow!("execution {id:?} never woke"))?;
                Ok(woke.saturating_duration_since(*first))
            })
            .collect()
    }

    /// Event wake-up latency: for each sample, starts an event workflow, polls until it is
    /// suspended waiting (`zart_waiting`), sleeps a random `gap`, then times from just before
    /// `send_event` to the handler's instant after `wait_for_event` returned `Received`. Each
    /// execution is awaited to completion (untimed) before the next. Also returns, per sample,
    /// how long `send_event` itself took to return (its commit is inside every sample).
    pub async fn event_wake(
        &mut self,
        nonce: &str,
        warmup: usize,
        samples: usize,
        gap: Gap,
        rng: &mut Rng,
    ) -> Result<(Vec<Duration>, Vec<Duration>)> {
        let (poller, connection) = self
            .config
            .connect(NoTls)
            .await
            .context("events: opening the polling connection")?;
        let poller_task = tokio::spawn(connection);
        let waiting = poller
            .prepare("select 1 from zart_waiting where execution_id = $1")
            .await
            .context("events: preparing the zart_waiting poll")?;
        let mut out = Vec::with_capacity(samples);
        let mut sends = Vec::with_capacity(samples);
        for i in 0..warmup + samples {
            let id = format!("event-{nonce}-{i}");
            self.begin(&id, EVENT_TASK).await?;
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            while poller
                .query_opt(&waiting, &[&id])
                .await
                .with_context(|| format!("events: polling zart_waiting for {id:?}"))?
                .is_none()
            {
                if tokio::time::Instant::now() >= deadline {
                    let why = self.worker_state();
                    bail!("execution {id:?} was not waiting within {TIMEOUT:?}{why}");
                }
                tokio::time::sleep(POLL).await;
            }
            gap.sleep(rng).await;
            let sent = Instant::now();
            tokio::time::timeout(
                TIMEOUT,
                self.durable.send_event(&id, EVENT, &serde_json::json!({})),
            )
            .await
            .map_err(|_| anyhow!("sending the event to {id:?} took over {TIMEOUT:?}"))?
            .with_context(|| format!("sending the event to {id:?}"))?;
            let returned = sent.elapsed();
            let woke = receive(&mut self.received, &id, "did not receive its event")
                .await
                .map_err(|e| anyhow!("{e}{}", self.worker_state()))?;
            self.finish(&id).await?;
            if i >= warmup {
                out.push(woke.saturating_duration_since(sent));
                sends.push(returned);
            }
            self.bar.inc(1);
        }
        drop(poller);
        match tokio::time::timeout(Duration::from_secs(5), poller_task).await {
            Ok(Ok(Ok(()))) => Ok((out, sends)),
            Ok(Ok(Err(e))) => Err(e).context("events: closing the polling connection"),
            Ok(Err(e)) => Err(e).context("events: the polling connection task failed"),
            Err(_) => bail!("events: the polling connection did not close within 5 s"),
        }
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
    /// Cron lateness (ZC): a schedule of every second (`* * * * * *`, overlap allow) of the
    /// one-step task for `secs` seconds, then deleted. Per firing, read back from the
    /// executions it started: how late the execution was created, and how late its run began,
    /// after the fire time its id names, both by the database clock. The first `warmup`
    /// firings are not measured.
    pub async fn cron_lateness(
        &mut self,
        nonce: &str,
        warmup: usize,
        secs: u64,
    ) -> Result<(Vec<Duration>, Vec<Duration>)> {
        let id = format!("zc-{nonce}");
        self.durable
            .schedule(
                zart::schedule::Schedule::new(&id, "* * * * * *", ONE_STEP_TASK)
                    .input(serde_json::json!({ "bench": true }))
                    .overlap(zart::schedule::Overlap::Allow)
                    .catch_up(zart::schedule::CatchUp::Skip),
            )
            .await
            .context("declaring the cron schedule")?;
        for _ in 0..secs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.bar.inc(1);
        }
        self.durable.delete_schedule(&id).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        let conn = tokio::spawn(connection);
        let rows = client
            .query(
                "select extract(epoch from e.created_at - f.at)::float8,
                        extract(epoch from e.started_at - f.at)::float8
                   from zart_executions e
                  cross join lateral (select split_part(e.id, '@', 2)::timestamptz as at) f
                  where e.id like $1 || '@%' and e.started_at is not null
                  order by e.id",
                &[&id],
            )
            .await
            .context("reading the firings")?;
        drop(client);
        conn.abort();
        let secs_of = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let (mut created, mut started) = (Vec::new(), Vec::new());
        for row in rows.iter().skip(warmup) {
            created.push(secs_of(row.get(0)));
            started.push(secs_of(row.get(1)));
        }
        if created.is_empty() {
            bail!("the cron schedule fired {} times in {secs} s", rows.len());
        }
        Ok((created, started))
    }

    async fn begin(&self, id: &str, task: &str) -> Result<()> {
        begin(&self.durable, id, task).await
    }

    /// Waits for the pickup probe to report `id`'s handler entry.
    async fn entered(&mut self, id: &str) -> Result<Instant> {
        receive(&mut self.entered, id, "was not picked up")
            .await
            .map_err(|e| anyhow!("{e}{}", self.worker_state()))
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

/// Waits (up to the timeout) for a probe to report `id`, skipping reports of other executions,
/// and returns the reported instant. `what` completes the timeout error
/// `execution .. <what> within ..`.
async fn receive(
    rx: &mut mpsc::UnboundedReceiver<Entered>,
    id: &str,
    what: &str,
) -> Result<Instant> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("execution {id:?} {what} within {TIMEOUT:?}"),
            Ok(None) => bail!("the probe is gone (the worker stopped?)"),
            Ok(Some((reported, at))) if reported == id => return Ok(at),
            Ok(Some(_)) => {}
        }
    }
}
