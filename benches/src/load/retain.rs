//! Retention: ZR (a drain while pruning, against without) and ZS (steady load with retention
//! on: the tables' sizes over time).

use super::*;

/// Runs the phases of this module that the plan asks for.
pub(super) async fn run(run: &mut Run<'_>) -> Result<()> {
    let bars = run.bars;
    let plan = run.plan;
    let count = plan.count;
    let config = run.config;
    let watcher = &mut run.watcher;
    let r = &mut run.r;
    if plan.has("zr") {
        if !plan.has("z7") {
            let bar = Bar::new(bars, plan.history, "ZR", "history fill");
            history::fill(watcher.client(), plan.history, &bar).await?;
            bar.finish();
        }
        let zr = retention::prune_drain(config, watcher, count, plan.concurrency, bars).await?;
        println!(
        "ZR  drain while pruning / without: {:.2}x ({:.0} against {:.0} and {:.0} executions/s)",
        zr.ratio(),
        zr.with,
        zr.without[0],
        zr.without[1]
    );
        r.zr = Some(zr);
    }
    if plan.has("zs") {
        let (secs, rate, keep) = plan.steady;
        let bar = Bar::new(bars, secs, "ZS", "steady load, retention on");
        let samples = retention::steady(
            config,
            watcher,
            rate,
            secs,
            Duration::from_secs(keep),
            Duration::from_secs(5.min(secs.div_ceil(4)).max(1)),
            &bar,
        )
        .await?;
        bar.finish();
        println!("ZS  steady load: {rate} starts/s, completed kept {keep} s; sizes:");
        for s in &samples {
            println!(
                "ZS    {:>6.1} s  started {:>9}  executions {:>8}  tables {:>8.1} MiB",
                s.secs,
                s.started,
                s.executions,
                s.bytes as f64 / 1_048_576.0
            );
        }
        r.zs = samples;
    }

    Ok(())
}
