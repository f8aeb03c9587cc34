//! Latency and idleness: Z4, Z5 and ZC on one idle worker (`latencies`), and Z6 (an idle
//! worker's transactions and statements).

use super::*;

/// Runs the phases of this module that the plan asks for.
pub(super) async fn run(run: &mut Run<'_>) -> Result<()> {
    let bars = run.bars;
    let plan = run.plan;
    let config = run.config;
    let watcher = &mut run.watcher;
    let r = &mut run.r;
    let rng = &mut run.rng;
    let nonce = run.nonce.as_str();
    if plan.has("z4") || plan.has("z4x") || plan.has("z5") || plan.has("zc") {
        watcher.quiesce().await?;
        let mut harness = workflow::Harness::start(config.clone())?;
        let measured = latencies(plan, config, &mut harness, nonce, rng, bars, r).await;
        let stopped = harness.stop().await;
        match (measured, stopped) {
            (Ok(()), Ok(())) => {}
            (Ok(()), Err(w)) => return Err(w),
            (Err(e), Ok(())) => return Err(e),
            (Err(e), Err(w)) => return Err(e.context(format!("and then: {w:#}"))),
        }
    }
    if plan.has("z6") {
        let bar = Bar::new(
            bars,
            plan.idle_settle_secs + plan.idle_secs,
            "Z6",
            "idle worker",
        );
        let (xacts, statements) = idle(config, watcher, plan, &bar).await?;
        say(
            &bar,
            format!(
                "Z6  idle worker over {} s: {}, {}",
                plan.idle_secs,
                format_value(xacts, "transactions/s"),
                statements.map_or_else(
                    || "statements/s n/a".to_owned(),
                    |s| format_value(s, "statements/s")
                )
            ),
        );
        r.z6 = Some((xacts, statements));
    }
    Ok(())
}

/// Z4 and Z5 on one idle worker (the `zart-bench` harness).
pub(super) async fn latencies(
    plan: &Plan,
    config: &Config,
    harness: &mut workflow::Harness,
    nonce: &str,
    rng: &mut Rng,
    bars: bool,
    r: &mut Results,
) -> Result<()> {
    let ms = |d: Duration| stats::ms(d);
    let from = workflow::StartFrom {
        local: plan.has("z4"),
        remote: plan.has("z4x"),
    };
    if from.local || from.remote {
        let label = match (from.local, from.remote) {
            (true, true) => "pickup: start -> handler, local and remote starts in turn",
            (false, true) => "pickup: start -> handler, remote starts",
            _ => "pickup: start -> handler",
        };
        let bar = Bar::new(
            bars,
            (plan.warmup + plan.pickup_samples) as u64,
            "Z4",
            label,
        );
        harness.set_progress(bar.clone());
        // Raw baselines at Z4's idle gaps, one before each pickup sample (F, a durable insert
        // and Zart's start statement alone, in turn): a round trip on an idle machine costs
        // more than one 5-20 ms after the last, for Zart and the baselines alike.
        let mut probe = raw::NotifyProbe::open(config).await?;
        let taken = harness
            .pickup(
                nonce,
                plan.warmup,
                plan.pickup_samples,
                Gap::ms(plan.pickup_gap_ms.0, plan.pickup_gap_ms.1),
                rng,
                Some(&mut probe),
                from,
            )
            .await;
        probe.close().await?;
        let taken = taken?;
        // Each baseline gets every third pickup's pairing; a tiny --pickup-samples may leave
        // one without samples, and it then shows as not run.
        r.f_idle = Summary::of(&taken.notify).ok();
        r.c_idle = Summary::of(&taken.commits).ok();
        r.s_idle = Summary::of(&taken.start_statements).ok();
        let idle =
            |f: Option<Summary>| f.map_or("-".to_owned(), |f| format!("{:.3} ms", ms(f.p50)));
        for (remote, pickups, starts) in [
            (false, &taken.pickups, &taken.starts),
            (true, &taken.remote_pickups, &taken.remote_starts),
        ] {
            if !from.includes(remote) {
                continue;
            }
            let s = Summary::of(pickups)?;
            let what = if remote {
                "Z4x pickup, idle worker, started from another scheduler"
            } else {
                "Z4  pickup, idle worker"
            };
            say(
                &bar,
                format!(
                    "{what}: p50 {:.3} ms, p99 {:.3} ms (at the same gaps: F p50 {}, a durable insert p50 {})",
                    ms(s.p50),
                    ms(s.p99),
                    idle(r.f_idle),
                    idle(r.c_idle),
                ),
            );
            if remote {
                r.z4x = Some(s);
                r.z4x_start = Some(Summary::of(starts)?);
            } else {
                r.z4 = Some(s);
                r.z4_start = Some(Summary::of(starts)?);
            }
        }
    }
    if plan.has("z5") {
        let wait_gap = Gap::ms(plan.wait_gap_ms.0, plan.wait_gap_ms.1);
        let bar = Bar::new(
            bars,
            (plan.warmup + plan.timer_samples) as u64,
            "Z5",
            "timers: sleep(1 s) woken",
        );
        harness.set_progress(bar.clone());
        let samples = harness
            .timer_elapsed(nonce, plan.warmup, plan.timer_samples, wait_gap, rng)
            .await?;
        let timer = Summary::of(&samples)?;
        say(
            &bar,
            format!(
                "Z5  timer lateness of sleep(1 s): p50 {:.3} ms, p99 {:.3} ms",
                ms(timer.p50) - ms(workflow::NAP),
                ms(timer.p99) - ms(workflow::NAP)
            ),
        );
        let bar = Bar::new(
            bars,
            (plan.warmup + plan.event_samples) as u64,
            "Z5",
            "events: send -> received",
        );
        harness.set_progress(bar.clone());
        let (samples, sends) = harness
            .event_wake(nonce, plan.warmup, plan.event_samples, wait_gap, rng)
            .await?;
        let event = Summary::of(&samples)?;
        let send = Summary::of(&sends)?;
        say(
            &bar,
            format!(
                "Z5  event wake: p50 {:.3} ms, p99 {:.3} ms (send_event returns: p50 {:.3} ms)",
                ms(event.p50),
                ms(event.p99),
                ms(send.p50)
            ),
        );
        r.event_send = Some(send);
        harness.set_progress(Bar::hidden());
        r.timer = Some(timer);
        r.event = Some(event);
    }
    if plan.has("zc") {
        let bar = Bar::new(bars, plan.cron_secs, "ZC", "cron: every second");
        harness.set_progress(bar.clone());
        let (created, started) = harness
            .cron_lateness(nonce, plan.warmup.min(2), plan.cron_secs)
            .await?;
        let (created, started) = (Summary::of(&created)?, Summary::of(&started)?);
        say(
            &bar,
            format!(
                "ZC  cron every second: execution created p50 {:.3} ms, p99 {:.3} ms after its fire time; run began p50 {:.3} ms, p99 {:.3} ms",
                ms(created.p50),
                ms(created.p99),
                ms(started.p50),
                ms(started.p99)
            ),
        );
        harness.set_progress(Bar::hidden());
        r.zc = Some((created, started));
    }
    Ok(())
}

/// Z6: an idle default worker's transactions and statements per second.
pub(super) async fn idle(
    config: &Config,
    watcher: &mut Watcher,
    plan: &Plan,
    bar: &Bar,
) -> Result<(f64, Option<f64>)> {
    watcher.quiesce().await?;
    let tick = |secs: u64| async move {
        for _ in 0..secs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            bar.inc(1);
        }
    };
    let (mark, stopped) = {
        let pool = PgPool::from_config(config.clone(), zart_pg::DEFAULT_POOL_SIZE)?;
        let scheduler = Arc::new(PostgresScheduler::new(pool));
        let mut registry = TaskRegistry::new();
        registry.register("z6-idle", NoOp::new(Arc::new(Entries::new(u64::MAX)), None))?;
        let worker = Worker::new(
            scheduler,
            Arc::new(registry),
            WorkerConfig::default().with_handle_signals(false),
        );
        let stop = worker.shutdown_handle();
        let handle = tokio::spawn(worker.run());
        // Startup (schema check, first claim, LISTEN) and its statistics out of the way.
        tick(plan.idle_settle_secs).await;
        let mark = watcher.begin(false).await?;
        tick(plan.idle_secs).await;
        if handle.is_finished() {
            bail!("Z6: the idle worker stopped by itself");
        }
        stop.shutdown();
        (
            mark,
            tokio::time::timeout(Duration::from_secs(60), handle).await,
        )
    };
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("Z6: the worker failed"),
        Ok(Err(e)) => return Err(e).context("Z6: the worker task panicked"),
        Err(_) => bail!("Z6: the worker did not stop within 60 s"),
    }
    let delta = watcher.end(mark).await?;
    let secs = delta.secs.max(1e-9);
    Ok((
        delta.xacts as f64 / secs,
        delta.statements.map(|s| s as f64 / secs),
    ))
}
