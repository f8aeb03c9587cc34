//! Drains: Z2 and Z2p (one-step, plain and with priorities and a never-binding limit), Z2t
//! (as the worker login, tenancy off and on), Z3 (three-step), Z8 (worker processes).

use super::*;

/// Runs the phases of this module that the plan asks for.
pub(super) async fn run(run: &mut Run<'_>) -> Result<()> {
    let bars = run.bars;
    let plan = run.plan;
    let count = plan.count;
    let config = run.config;
    let url = run.url;
    let dbname = run.dbname;
    let logins = run.logins;
    let watcher = &mut run.watcher;
    let r = &mut run.r;
    let round = run.round;
    // Z2, then Z2p: Z2 with what priorities and limits cost when they never bind (four
    // priorities, and a concurrency limit far above the worker's slots, so every claim takes
    // the limited path: the queue's limits row, the running count).
    for (key, label, task, levels, limited) in [
        ("z2", "Z2", "z2-noop1", 1, false),
        ("z2p", "Z2p", "z2p-noop1", 4, true),
    ] {
        if !plan.has(key) {
            continue;
        }
        let task = &round_task(task, round);
        drain::prefill_at_priorities(watcher.client(), task, count, 1, levels).await?;
        const LIMIT: &str =
            "select public.zart_set_queue_limits('default', p_max_running => 1000000)";
        const UNLIMIT: &str = "select public.zart_set_queue_limits('default')";
        if limited {
            watcher.client().batch_execute(LIMIT).await.context(LIMIT)?;
        }
        let what = if limited {
            "drain, one-step no-op, 4 priorities, concurrency limit 1,000,000"
        } else {
            "drain, one-step no-op"
        };
        let bar = Bar::new(bars, count.into(), label, what);
        let drained =
            drain::drain(config, watcher, task, None, count, plan.concurrency, &bar).await?;
        if limited {
            watcher
                .client()
                .batch_execute(UNLIMIT)
                .await
                .context(UNLIMIT)?;
        }
        r.top.insert(key, watcher.top_statements(TOP).await?);
        let versus = match (limited, r.z2) {
            (true, Some(z2)) => format!("; / Z2 = {:.2}×", drained.rate / z2),
            _ => String::new(),
        };
        say(
            &bar,
            format!(
                "{label:<3} {what}, 1 worker: {} in {:.2} s{versus}",
                format_value(drained.rate, "executions/s"),
                drained.elapsed.as_secs_f64()
            ),
        );
        if limited {
            r.z2p = Some(r.record("z2p", drained.rate));
        } else {
            r.z2 = Some(r.record("z2", drained.rate));
        }
        r.counts.push(PhaseCounts::new(
            key,
            "execution",
            count.into(),
            1,
            drained.delta,
        ));
    }
    if plan.has("z2t") && round == 0 {
        let login = logins.worker();
        let worker_config = logins.config(config, &login);
        let mut rates = [0.0; 2];
        for (on, key, task) in [(false, "z2t.off", "z2t-off"), (true, "z2t.on", "z2t-on")] {
            let mode = if on { "on" } else { "off" };
            tenancy::set_tenancy(watcher.client(), on).await?;
            // Tenancy on: the login's tenant's executions interleaved with as many of another
            // tenant's, which the login's claims must read past and leave alone.
            if on {
                tenancy::prefill_mixed(config, task, count, 1).await?;
            } else {
                drain::prefill(watcher.client(), task, count, 1).await?;
            }
            let bar = Bar::new(
                bars,
                count.into(),
                "Z2t",
                &format!("drain as the worker login, tenancy {mode}"),
            );
            let drained = drain::drain(
                &worker_config,
                watcher,
                task,
                on.then_some(TENANT),
                count,
                plan.concurrency,
                &bar,
            )
            .await?;
            r.top.insert(key, watcher.top_statements(TOP).await?);
            let versus = if on {
                format!("; on / off = {:.2}×", drained.rate / rates[0])
            } else {
                String::new()
            };
            let backlog = if on {
                format!(
                    ", {} due executions of tenant {OTHER_TENANT} skipped",
                    report::thousands(f64::from(count))
                )
            } else {
                String::new()
            };
            say(
            &bar,
            format!(
                "Z2t drain, one-step no-op, 1 worker, as {login}, tenancy {mode}{backlog}: {} in {:.2} s{versus}",
                format_value(drained.rate, "executions/s"),
                drained.elapsed.as_secs_f64()
            ),
        );
            rates[usize::from(on)] = drained.rate;
            r.counts.push(PhaseCounts::new(
                key,
                "execution",
                count.into(),
                1,
                drained.delta,
            ));
            if on {
                if let Some(problem) =
                    tenancy::untouched(watcher.client(), task, OTHER_TENANT, count).await?
                {
                    r.problems.push(problem);
                }
                tenancy::remove(watcher.client(), task, Some(OTHER_TENANT)).await?;
            }
        }
        tenancy::set_tenancy(watcher.client(), false).await?;
        r.z2t = Some((rates[0], rates[1]));
    }
    if plan.has("z3") {
        let task = &round_task("z3-noop3", round);
        let executions = count / 3;
        drain::prefill(watcher.client(), task, executions, 3).await?;
        let bar = Bar::new(bars, executions.into(), "Z3", "drain, three-step no-op");
        let drained = drain::drain(
            config,
            watcher,
            task,
            None,
            executions,
            plan.concurrency,
            &bar,
        )
        .await?;
        r.top.insert("z3", watcher.top_statements(TOP).await?);
        let steps = drained.rate * 3.0;
        say(
            &bar,
            format!(
                "Z3  drain, three-step no-op, 1 worker: {} ({})",
                format_value(steps, "steps/s"),
                format_value(drained.rate, "executions/s")
            ),
        );
        r.z3 = Some(r.record("z3", steps));
        r.counts.push(PhaseCounts::new(
            "z3",
            "execution",
            executions.into(),
            3,
            drained.delta,
        ));
    }
    if plan.has("z8") && round == 0 {
        let task = "z8-noop1";
        drain::prefill(watcher.client(), task, count, 1).await?;
        let bar = Bar::new(bars, count.into(), "Z8", "drain, worker processes");
        let fleet = fleet::drain(
            url,
            dbname,
            watcher,
            task,
            count,
            plan.workers,
            plan.concurrency,
            &bar,
        )
        .await?;
        say(&bar, format!(
        "Z8  drain, {} worker processes: {} in {:.2} s; entries per process {:?}; double claims {}; never entered {}",
        fleet.workers, format_value(fleet.rate, "executions/s"), fleet.secs, fleet.entries_per_worker, fleet.double_claimed, fleet.missing
    ));
        if fleet.double_claimed > 0 {
            r.problems.push(format!(
                "Z8: {} executions were entered more than once (double claims), e.g. {:?}",
                fleet.double_claimed, fleet.double_claimed_examples
            ));
        }
        if fleet.missing > 0 {
            r.problems.push(format!(
                "Z8: {} executions were never entered by a worker process, e.g. {:?}",
                fleet.missing, fleet.missing_examples
            ));
        }
        r.top.insert("z8", watcher.top_statements(TOP).await?);
        if let Some(delta) = fleet.delta {
            r.counts
                .push(PhaseCounts::new("z8", "execution", count.into(), 1, delta));
        }
        r.z8 = Some(fleet);
    }
    Ok(())
}
