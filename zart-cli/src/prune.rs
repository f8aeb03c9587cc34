//! `zart prune`: deletes old finished executions with their steps and events, batch by batch
//! (`zart::retention::prune`), with a progress bar on standard error when it is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zart::retention::{prune, PruneOptions, PruneReport, Retention};
use zart::Scheduler;

/// What `zart prune` was asked for.
#[derive(Debug, Clone)]
pub struct PruneArgs {
    /// The ages and the batch size.
    pub retention: Retention,
    /// Count instead of deleting.
    pub dry_run: bool,
    /// Whether to draw a progress bar (standard error is a terminal and no `--json`).
    pub bar: bool,
}

impl PruneArgs {
    /// The ages (`None`: keep), the batch, and whether a bar may be drawn.
    pub fn new(ages: [Option<Duration>; 3], batch: u32, dry_run: bool, json: bool) -> PruneArgs {
        let [completed, failed, cancelled] = ages;
        PruneArgs {
            retention: Retention::default()
                .with_completed(completed)
                .with_failed(failed)
                .with_cancelled(cancelled)
                .with_batch(batch),
            dry_run,
            bar: !json && std::io::stderr().is_terminal(),
        }
    }
}

/// Runs the prune; with a bar, counts first (a dry run) to size it.
pub async fn run(scheduler: &dyn Scheduler, args: &PruneArgs) -> Result<PruneReport, zart::Error> {
    let options = PruneOptions::new().with_dry_run(args.dry_run);
    if !args.bar || args.dry_run {
        return prune(scheduler, &args.retention, options, |_, _| {}).await;
    }
    let counted = prune(
        scheduler,
        &args.retention,
        PruneOptions::new().with_dry_run(true),
        |_, _| {},
    )
    .await?;
    let bar = ProgressBar::with_draw_target(Some(counted.total()), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "pruning {msg:<10} [{bar:30}] {human_pos:>9}/{human_len:<9} {elapsed:>4} (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let report = prune(scheduler, &args.retention, options, |status, n| {
        bar.set_message(status.as_str());
        bar.inc(n);
    })
    .await;
    bar.finish_and_clear();
    report
}

/// The report as one line of text.
pub fn text(report: &PruneReport) -> String {
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut line = format!(
        "zart: {verb} {} finished execution(s): {} completed, {} failed, {} cancelled",
        report.total(),
        report.completed,
        report.failed,
        report.cancelled
    );
    if report.busy {
        line.push_str(
            "; stopped early: another prune is running (a worker's retention or another \
             `zart prune`); run it again later",
        );
    }
    line
}

/// The report as JSON.
pub fn json(report: &PruneReport) -> serde_json::Value {
    serde_json::json!({
        "dry_run": report.dry_run,
        "busy": report.busy,
        "completed": report.completed,
        "failed": report.failed,
        "cancelled": report.cancelled,
        "total": report.total(),
    })
}
