//! ZR and ZS: retention under load (issue #24 item 4).
//!
//! **ZR** drains `count` one-step executions three times over a large history of finished
//! executions (Z7's, finished a day ago): without retention, with the draining worker's
//! retention on (completed older than an hour, so it prunes the history while it drains, at
//! its default pace), and without again. The figure is the drain with pruning against the mean
//! of the two without, in the same run. **ZS** empties Zart's tables, runs a steady load
//! (starts at a fixed rate, one worker draining them with retention keeping completed
//! executions `keep` long) and samples the tables' sizes, to show they stop growing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::{Client, Config};
use zart::retention::Retention;
use zart::{TaskRegistry, Worker, WorkerConfig};
use zart_pg::{PgPool, PostgresScheduler};

use crate::dbstats::Watcher;
use crate::drain::{self, Entries, NoOp};
use crate::history::HISTORY_TASK;
use crate::progress::Bar;

/// What ZR measured.
#[derive(Debug, Clone, Serialize)]
pub struct PruneDrain {
    /// Executions/s of the drains without retention (before and after).
    pub without: [f64; 2],
    /// Executions/s of the drain while the worker pruned.
    pub with: f64,
    /// History rows before the drain with retention, and after it.
    pub history_before: i64,
    /// History rows left after the drain with retention.
    pub history_after: i64,
    /// Seconds the drain with retention took.
    pub with_secs: f64,
}

impl PruneDrain {
    /// The drain with pruning over the mean of the two without.
    pub fn ratio(&self) -> f64 {
        self.with / ((self.without[0] + self.without[1]) / 2.0)
    }
}

async fn history_rows(client: &Client) -> Result<i64> {
    Ok(client
        .query_one(
            "select /* zart-load watcher */ count(*) from public.zart_executions where task_name = $1",
            &[&HISTORY_TASK],
        )
        .await
        .context("counting the history")?
        .try_get(0)?)
}

/// Runs ZR (see the module docs); `bars` draws progress bars.
///
/// # Errors
/// When a drain fails.
pub async fn prune_drain(
    config: &Config,
    watcher: &mut Watcher,
    count: u32,
    concurrency: Option<usize>,
    bars: bool,
) -> Result<PruneDrain> {
    let worker = || {
        let mut c = WorkerConfig::default().with_handle_signals(false);
        if let Some(n) = concurrency {
            c = c.with_concurrency(n);
        }
        c
    };
    let mut without = [0.0; 2];
    let mut with = 0.0;
    let mut with_secs = 0.0;
    let mut history_before = 0;
    let mut history_after = 0;
    for (i, task) in ["zr-off-1", "zr-on", "zr-off-2"].into_iter().enumerate() {
        drain::prefill(watcher.client(), task, count, 1).await?;
        let pruning = task == "zr-on";
        let config_i = if pruning {
            history_before = history_rows(watcher.client()).await?;
            worker().with_retention(
                Retention::default().with_completed(Some(Duration::from_secs(3600))),
            )
        } else {
            worker()
        };
        let label = if pruning {
            "drain while pruning"
        } else {
            "drain, no pruning"
        };
        let bar = Bar::new(bars, count.into(), "ZR", label);
        let drained = drain::drain_with(config, watcher, task, None, count, config_i, &bar).await?;
        bar.finish();
        println!(
            "ZR  {label} ({task}): {:.0} executions/s in {:.2} s",
            drained.rate,
            drained.elapsed.as_secs_f64()
        );
        if pruning {
            with = drained.rate;
            with_secs = drained.elapsed.as_secs_f64();
            history_after = history_rows(watcher.client()).await?;
            println!(
                "ZR  history pruned during that drain: {} of {history_before}",
                history_before - history_after
            );
        } else {
            without[usize::from(i > 0)] = drained.rate;
        }
    }
    Ok(PruneDrain {
        without,
        with,
        history_before,
        history_after,
        with_secs,
    })
}

/// One ZS sample.
#[derive(Debug, Clone, Serialize)]
pub struct SizeSample {
    /// Seconds since the steady load started.
    pub secs: f64,
    /// Executions started so far.
    pub started: i64,
    /// Rows in `zart_executions`.
    pub executions: i64,
    /// Total bytes (heap, indexes, TOAST) of `zart_executions`, `zart_steps`, `zart_events`
    /// and `zart_tasks`.
    pub bytes: i64,
}

/// How often ZS vacuums when the server's autovacuum is off.
pub const VACUUM_EVERY: Duration = Duration::from_secs(10);

const SIZE_SQL: &str = "select /* zart-load watcher */ (select count(*) from public.zart_executions),
        pg_total_relation_size('public.zart_executions') + pg_total_relation_size('public.zart_steps')
        + pg_total_relation_size('public.zart_events') + pg_total_relation_size('public.zart_tasks')";

/// Runs ZS from empty tables (it truncates Zart's four tables first, so an earlier phase's
/// history does not count): starts `rate` one-step executions per second for `secs` seconds
/// (ten statements a second, each followed by a wake-up), one worker draining them with
/// retention keeping completed executions `keep` long (checked every second), sampling sizes
/// every `every`. Deleted rows' space is reused only after a vacuum: when the server runs
/// without autovacuum (benchmark servers often do), the phase vacuums the four tables every
/// [`VACUUM_EVERY`] itself, as autovacuum would, and says so.
///
/// # Errors
/// When a statement or the worker fails.
pub async fn steady(
    config: &Config,
    watcher: &mut Watcher,
    rate: u32,
    secs: u64,
    keep: Duration,
    every: Duration,
    bar: &Bar,
) -> Result<Vec<SizeSample>> {
    let task = "zs-noop1";
    watcher
        .client()
        .batch_execute(
            "truncate public.zart_executions, public.zart_steps, public.zart_events, \
             public.zart_tasks",
        )
        .await
        .context("ZS: emptying the tables")?;
    let autovacuum: String = watcher
        .client()
        .query_one("show autovacuum", &[])
        .await
        .context("ZS: reading autovacuum")?
        .try_get(0)?;
    let vacuum_every = (autovacuum != "on").then_some(VACUUM_EVERY);
    if let Some(every) = vacuum_every {
        println!(
            "ZS  note: autovacuum is off on this server; the phase vacuums the tables every {} s",
            every.as_secs()
        );
    }
    let pool = PgPool::from_config(config.clone(), zart_pg::DEFAULT_POOL_SIZE)?;
    let scheduler = Arc::new(PostgresScheduler::new(pool));
    let mut registry = TaskRegistry::new();
    registry.register(task, NoOp::new(Arc::new(Entries::new(u64::MAX)), None))?;
    let retention = Retention::default()
        .with_completed(Some(keep))
        .with_interval(Duration::from_secs(1));
    let worker = Worker::new(
        scheduler,
        Arc::new(registry),
        WorkerConfig::default()
            .with_handle_signals(false)
            .with_retention(retention),
    );
    let stop = worker.shutdown_handle();
    let handle = tokio::spawn(worker.run());

    let per_tick = (rate / 10).max(1);
    let mut started: i64 = 0;
    let mut samples = Vec::new();
    let begin = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sample = Duration::ZERO;
    let mut next_vacuum = vacuum_every.unwrap_or_default();
    // On a connection of its own, so the starts keep their pace while it runs.
    let vacuumer = crate::scratch::connect(config).await?;
    let mut vacuuming: Option<tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>> = None;
    let vacuumer = Arc::new(vacuumer);
    let result: Result<()> = async {
        while begin.elapsed() < Duration::from_secs(secs) {
            tick.tick().await;
            drain::start_many(watcher.client(), task, 1, started + 1, per_tick).await?;
            started += i64::from(per_tick);
            watcher
                .client()
                .execute("select pg_notify('zart_work', 'default')", &[])
                .await
                .context("ZS: waking the worker")?;
            if begin.elapsed() >= next_sample {
                let row = watcher
                    .client()
                    .query_one(SIZE_SQL, &[])
                    .await
                    .context("ZS: reading the sizes")?;
                samples.push(SizeSample {
                    secs: begin.elapsed().as_secs_f64(),
                    started,
                    executions: row.try_get(0)?,
                    bytes: row.try_get(1)?,
                });
                next_sample += every;
                bar.set(begin.elapsed().as_secs());
            }
            if let Some(every) = vacuum_every {
                let idle = vacuuming.as_ref().is_none_or(|v| v.is_finished());
                if idle && begin.elapsed() >= next_vacuum {
                    if let Some(done) = vacuuming.take() {
                        done.await?.context("ZS: vacuum")?;
                    }
                    let client = vacuumer.clone();
                    vacuuming = Some(tokio::spawn(async move {
                        client
                            .batch_execute(
                                "vacuum public.zart_executions, public.zart_steps, \
                                 public.zart_events, public.zart_tasks",
                            )
                            .await
                    }));
                    next_vacuum = begin.elapsed() + every;
                }
            }
            if handle.is_finished() {
                anyhow::bail!("ZS: the worker stopped");
            }
        }
        Ok(())
    }
    .await;
    stop.shutdown();
    let stopped = tokio::time::timeout(Duration::from_secs(60), handle).await;
    if let Some(v) = vacuuming {
        v.await?.context("ZS: vacuum")?;
    }
    result?;
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("ZS: the worker failed"),
        Ok(Err(e)) => return Err(e).context("ZS: the worker panicked"),
        Err(_) => anyhow::bail!("ZS: the worker did not stop within 60 s"),
    }
    Ok(samples)
}

/// The growth of the tables over the second half of a steady run: the last sample's bytes over
/// the one at half time (1.0: no growth).
pub fn second_half_growth(samples: &[SizeSample]) -> Option<f64> {
    let last = samples.last()?;
    let mid = samples.iter().find(|s| s.secs >= last.secs / 2.0)?;
    (mid.bytes > 0).then(|| last.bytes as f64 / mid.bytes as f64)
}
