//! `zart limits`: set, list and clear the limits of a queue (docs/scheduling.md).

use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;
use zart::queues::{QueueLimits, QueueLimitsRow, Rate};
use zart::Scheduler;

use crate::exit::Usage;
use crate::print_json;
use crate::text::{duration, parse_delay, table};

/// The `zart limits` subcommands.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// List the queues with limits, with the runs counting against them now.
    List,
    /// Set the limits of a queue for the whole fleet, replacing the ones it had.
    Set {
        /// The queue.
        queue: String,
        /// At most this many runs at once.
        #[arg(long)]
        max_running: Option<u32>,
        /// At most this many runs started per interval: 100/1m, 5/1s.
        #[arg(long)]
        rate: Option<String>,
        /// At most this many runs at once per limit key.
        #[arg(long)]
        key_max_running: Option<u32>,
        /// At most this many runs started per interval per limit key: 1/10s.
        #[arg(long)]
        key_rate: Option<String>,
    },
    /// Remove the limits of a queue.
    Clear {
        /// The queue.
        queue: String,
    },
}

/// Runs a `zart limits` subcommand.
pub async fn run(
    scheduler: Arc<dyn Scheduler>,
    command: LimitsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        LimitsCommand::List => {
            let rows = scheduler.list_queue_limits().await?;
            if json {
                print_json(&json!({ "queues": rows.iter().map(row_json).collect::<Vec<_>>() }))?;
            } else if rows.is_empty() {
                outln!("zart: no queue has limits");
            } else {
                let lines: Vec<Vec<String>> = rows.iter().map(row_line).collect();
                out!(
                    "{}",
                    table(
                        &[
                            "QUEUE",
                            "MAX RUNNING",
                            "RATE",
                            "PER KEY",
                            "RUNNING",
                            "STARTED IN WINDOW"
                        ],
                        &lines
                    )
                );
            }
        }
        LimitsCommand::Set {
            queue,
            max_running,
            rate,
            key_max_running,
            key_rate,
        } => {
            let limits = QueueLimits {
                max_running,
                rate: rate
                    .as_deref()
                    .map(|r| parse_rate("--rate", r))
                    .transpose()?,
                key_max_running,
                key_rate: key_rate
                    .as_deref()
                    .map(|r| parse_rate("--key-rate", r))
                    .transpose()?,
            };
            if limits.is_empty() {
                return Err(Usage(
                    "give at least one of --max-running, --rate, --key-max-running, --key-rate \
                     (`zart limits clear` removes limits)"
                        .to_owned(),
                )
                .into());
            }
            zart::limits::check_name("queue", &queue)?;
            limits.validate()?;
            scheduler.set_queue_limits(&queue, Some(limits)).await?;
            if json {
                print_json(&json!({ "queue": queue, "limits": limits_json(&limits) }))?;
            } else {
                outln!("zart: queue {queue:?} limited to {}", describe(&limits));
            }
        }
        LimitsCommand::Clear { queue } => {
            zart::limits::check_name("queue", &queue)?;
            scheduler.set_queue_limits(&queue, None).await?;
            if json {
                print_json(&json!({ "queue": queue, "limits": null }))?;
            } else {
                outln!("zart: queue {queue:?} has no limits");
            }
        }
    }
    Ok(())
}

/// `N/DURATION`: N runs per DURATION.
fn parse_rate(flag: &str, text: &str) -> Result<Rate, Usage> {
    let bad = |why: String| {
        Usage(format!(
            "{flag}: {why} (write it as N/DURATION, such as 100/1m)"
        ))
    };
    let (count, per) = text
        .split_once('/')
        .ok_or_else(|| bad(format!("{text:?} has no '/'")))?;
    let count = count
        .trim()
        .parse::<u32>()
        .map_err(|_| bad(format!("{count:?} is not a count")))?;
    let per = parse_delay(per.trim()).map_err(bad)?;
    Ok(Rate::new(count, per))
}

fn rate_text(rate: Option<Rate>) -> String {
    rate.map_or_else(
        || "-".to_owned(),
        |r| format!("{}/{}", r.count, duration(r.per)),
    )
}

fn describe(l: &QueueLimits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = l.max_running {
        parts.push(format!("{n} running"));
    }
    if let Some(r) = l.rate {
        parts.push(format!("{} started per {}", r.count, duration(r.per)));
    }
    if let Some(n) = l.key_max_running {
        parts.push(format!("{n} running per key"));
    }
    if let Some(r) = l.key_rate {
        parts.push(format!(
            "{} started per {} per key",
            r.count,
            duration(r.per)
        ));
    }
    parts.join(", ")
}

fn row_line(r: &QueueLimitsRow) -> Vec<String> {
    let l = &r.limits;
    let per_key = match (l.key_max_running, l.key_rate) {
        (None, None) => "-".to_owned(),
        (n, rate) => format!(
            "{} running, {}",
            n.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            rate_text(rate)
        ),
    };
    vec![
        r.queue.clone(),
        l.max_running
            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        rate_text(l.rate),
        per_key,
        r.running.to_string(),
        r.started_in_window.to_string(),
    ]
}

fn limits_json(l: &QueueLimits) -> serde_json::Value {
    let rate = |r: Option<Rate>| {
        r.map(|r| json!({ "count": r.count, "per_ms": u64::try_from(r.per.as_millis()).unwrap_or(u64::MAX) }))
    };
    json!({
        "max_running": l.max_running,
        "rate": rate(l.rate),
        "key_max_running": l.key_max_running,
        "key_rate": rate(l.key_rate),
    })
}

fn row_json(r: &QueueLimitsRow) -> serde_json::Value {
    json!({
        "queue": r.queue,
        "limits": limits_json(&r.limits),
        "running": r.running,
        "started_in_window": r.started_in_window,
    })
}
