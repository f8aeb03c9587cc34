//! The raw baselines: C (single-row inserts), U and B (claim-1 and claim-100 + delete), F
//! (the LISTEN/NOTIFY round trip), BZ and BZ3 (Zart's writes for one- and three-step
//! workflows, in plain SQL on Zart's tables).

use super::*;

/// Runs the phases of this module that the plan asks for.
pub(super) async fn run(run: &mut Run<'_>) -> Result<()> {
    let bars = run.bars;
    let plan = run.plan;
    let count = plan.count;
    let clients = plan.clients;
    let config = run.config;
    let watcher = &mut run.watcher;
    let r = &mut run.r;
    let rng = &mut run.rng;
    let nonce = run.nonce.as_str();
    if plan.has("c") {
        throughput::prepare_inserts(watcher.client()).await?;
        let bar = Bar::new(bars, count.into(), "C", "raw single-row inserts");
        let mark = watcher.begin(true).await?;
        let (rows, took) = throughput::inserts(config, count, clients, &bar).await?;
        let delta = watcher.end(mark).await?;
        r.top.insert("c", watcher.top_statements(TOP).await?);
        throughput::drop_table(watcher.client(), throughput::INSERT_TABLE).await?;
        let rate = rows as f64 / took.as_secs_f64();
        say(
            &bar,
            format!(
                "C   raw single-row inserts, {clients} clients: {}",
                format_value(rate, "commits/s")
            ),
        );
        r.c = Some(r.record("c", rate));
        r.counts.push(PhaseCounts::new("c", "row", rows, 0, delta));
    }
    for (key, table, batch) in [("u", "bench_u", 1), ("b", "bench_b", 100)] {
        if !plan.has(key) {
            continue;
        }
        throughput::prepare_queue(watcher.client(), table, count).await?;
        let label = format!("raw claim-{batch} + delete");
        let bar = Bar::new(bars, count.into(), &key.to_uppercase(), &label);
        let mark = watcher.begin(true).await?;
        let (rows, took) = throughput::claims(config, table, batch, clients, &bar).await?;
        let delta = watcher.end(mark).await?;
        r.top.insert(key, watcher.top_statements(TOP).await?);
        throughput::drop_table(watcher.client(), table).await?;
        if rows != u64::from(count) {
            bail!("{}: {rows} of {count} rows were done", key.to_uppercase());
        }
        let rate = rows as f64 / took.as_secs_f64();
        say(
            &bar,
            format!(
                "{:<3} {label}, {clients} clients: {}",
                key.to_uppercase(),
                format_value(rate, "rows/s")
            ),
        );
        if key == "u" {
            r.u = Some(r.record("u", rate));
        } else {
            r.b = Some(r.record("b", rate));
        }
        r.counts.push(PhaseCounts::new(key, "row", rows, 0, delta));
    }
    // BZ and BZ3: what Z2 and Z3 write, with no engine in between (throughput::zart_shaped).
    for (key, task, steps) in [("bz", "bz-raw1", 1), ("bz3", "bz3-raw3", 3)] {
        if !plan.has(key) {
            continue;
        }
        let task = &round_task(task, run.round);
        let executions = count / steps;
        drain::prefill(watcher.client(), task, executions, steps).await?;
        let label = format!("raw SQL, Zart's writes, {steps}-step, claim-100");
        let bar = Bar::new(bars, executions.into(), &key.to_uppercase(), &label);
        let mark = watcher.begin(true).await?;
        let (done, took) = throughput::zart_shaped(config, task, steps, 100, clients, &bar).await?;
        let delta = watcher.end(mark).await?;
        r.top.insert(key, watcher.top_statements(TOP).await?);
        drain::check_completed(watcher.client(), task, None, executions).await?;
        if done != u64::from(executions) {
            bail!(
                "{}: {done} of {executions} executions were done",
                key.to_uppercase()
            );
        }
        let rate = done as f64 / took.as_secs_f64();
        let (value, unit) = if steps == 1 {
            (rate, "executions/s")
        } else {
            (rate * f64::from(steps), "steps/s")
        };
        say(
            &bar,
            format!(
                "{:<3} {label}, {clients} clients: {}",
                key.to_uppercase(),
                format_value(value, unit)
            ),
        );
        if steps == 1 {
            r.bz = Some(r.record("bz", value));
        } else {
            r.bz3 = Some(r.record("bz3", value));
        }
        r.counts.push(PhaseCounts::new(
            key,
            "execution",
            executions.into(),
            steps,
            delta,
        ));
    }
    if plan.has("f") && run.round == 0 {
        let bar = Bar::new(
            bars,
            (plan.warmup + plan.notify_samples) as u64,
            "F",
            "raw LISTEN/NOTIFY round trip",
        );
        let samples = raw::round_trips(
            config,
            nonce,
            plan.warmup,
            plan.notify_samples,
            Gap::ms(plan.f_gap_ms.0, plan.f_gap_ms.1),
            rng,
            &bar,
        )
        .await?;
        let f = Summary::of(&samples)?;
        say(
            &bar,
            format!(
                "F   LISTEN/NOTIFY round trip: p50 {:.3} ms, p99 {:.3} ms",
                stats::ms(f.p50),
                stats::ms(f.p99)
            ),
        );
        r.f = Some(f);
    }
    Ok(())
}
