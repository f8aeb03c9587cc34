//! History: Z7 (a drain after a long history of finished executions, and the table sizes) and
//! ZL (the admin list page over that history).

use super::*;

/// Runs the phases of this module that the plan asks for.
pub(super) async fn run(run: &mut Run<'_>) -> Result<()> {
    let bars = run.bars;
    let plan = run.plan;
    let count = plan.count;
    let config = run.config;
    let watcher = &mut run.watcher;
    let r = &mut run.r;
    if plan.has("z7") {
        let bar = Bar::new(bars, plan.history, "Z7", "history fill");
        let filled = Instant::now();
        history::fill(watcher.client(), plan.history, &bar).await?;
        say(
            &bar,
            format!(
                "Z7  filled {} finished executions (one step each) in {:.1} s",
                report::thousands(plan.history as f64),
                filled.elapsed().as_secs_f64()
            ),
        );
        let task = "z7-noop1";
        drain::prefill(watcher.client(), task, count, 1).await?;
        let bar = Bar::new(bars, count.into(), "Z7", "drain after the history");
        let drained =
            drain::drain(config, watcher, task, None, count, plan.concurrency, &bar).await?;
        say(
            &bar,
            format!(
                "Z7  drain, one-step no-op, after the history: {} in {:.2} s",
                format_value(drained.rate, "executions/s"),
                drained.elapsed.as_secs_f64()
            ),
        );
        r.top.insert("z7", watcher.top_statements(TOP).await?);
        r.z7 = Some(drained.rate);
        r.counts.push(PhaseCounts::new(
            "z7",
            "execution",
            count.into(),
            1,
            drained.delta,
        ));
        watcher
            .client()
            .batch_execute("analyze public.zart_tasks, public.zart_executions, public.zart_steps")
            .await
            .context("Z7: analyze before reading the sizes")?;
        r.sizes = history::sizes(watcher.client()).await?;

        // ZL: the admin list page over the history just filled.
        let pool = PgPool::from_config(config.clone(), 2)?;
        let scheduler = PostgresScheduler::new(pool);
        let samples = if plan.history < 100_000 { 3 } else { 50 };
        r.zl = listing::measure(&scheduler, samples).await?;
        for z in &r.zl {
            let met = if z.p95_ms <= ZL_TARGET_MS {
                "met"
            } else {
                "not met"
            };
            println!(
            "ZL  list page, {}: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} rows; target p95 <= {ZL_TARGET_MS} ms: {met})",
            z.shape, z.p50_ms, z.p95_ms, z.max_ms, z.rows
        );
        }
    }

    Ok(())
}
