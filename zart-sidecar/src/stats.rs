//! The queue gauges: every `ZART_STATS_INTERVAL`, one [`Admin::queue_stats`] read sets
//! `zart_queue_depth`, `zart_queue_due` and `zart_queue_oldest_due_age_seconds`.
//!
//! A gauge whose queue or status has emptied since the last read is set to 0, so it does not
//! keep a stale value. A failed read (a login without `SELECT` on `zart_tasks`, the database
//! away) counts in `zart_queue_stats_errors_total`, leaves the gauges as they were and is
//! logged: at warn level the first time, at debug level while it keeps failing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use zart::admin::{Admin, QueueStats};
use zart::telemetry;
use zart::ExecutionStatus;

/// The statuses an unfinished execution can have.
const LIVE: [ExecutionStatus; 4] = [
    ExecutionStatus::Scheduled,
    ExecutionStatus::Running,
    ExecutionStatus::Sleeping,
    ExecutionStatus::Waiting,
];

/// Reads the statistics every `interval`, forever (the caller aborts the task). The gauges of
/// `queues` start at 0, so dashboards see them before the first read.
pub(crate) async fn poll(admin: Arc<dyn Admin>, queues: Vec<String>, interval: Duration) {
    let mut gauges = Gauges::default();
    for queue in &queues {
        gauges.zero_queue(queue);
    }
    let mut failing = false;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match admin.queue_stats().await {
            Ok(stats) => {
                if failing {
                    tracing::info!("queue statistics read again");
                }
                failing = false;
                gauges.set(&stats);
            }
            Err(err) => {
                metrics::counter!(telemetry::QUEUE_STATS_ERRORS).increment(1);
                let error = zart::error::error_chain(&err);
                if failing {
                    tracing::debug!(%error, "queue statistics still cannot be read");
                } else {
                    tracing::warn!(
                        %error,
                        "cannot read the queue statistics (the login needs SELECT on zart_tasks, \
                         e.g. the zart_reader role); the queue gauges keep their last values"
                    );
                }
                failing = true;
            }
        }
    }
}

/// The label sets set at the last read, to zero those that disappear.
#[derive(Default)]
struct Gauges {
    depths: BTreeSet<(String, &'static str)>,
    queues: BTreeSet<String>,
}

impl Gauges {
    fn zero_queue(&mut self, queue: &str) {
        for status in LIVE {
            depth(queue, status.as_str(), 0);
            self.depths.insert((queue.to_owned(), status.as_str()));
        }
        due(queue, 0, None);
        self.queues.insert(queue.to_owned());
    }

    fn set(&mut self, stats: &[QueueStats]) {
        let mut depths = BTreeSet::new();
        let mut queues = BTreeSet::new();
        for q in stats {
            for (status, count) in &q.by_status {
                depth(&q.queue, status.as_str(), *count);
                depths.insert((q.queue.clone(), status.as_str()));
            }
            due(&q.queue, q.due, q.oldest_due_age);
            queues.insert(q.queue.clone());
        }
        for (queue, status) in self.depths.difference(&depths) {
            depth(queue, status, 0);
        }
        for queue in self.queues.difference(&queues) {
            due(queue, 0, None);
        }
        self.depths = depths;
        self.queues = queues;
    }
}

fn depth(queue: &str, status: &'static str, count: u64) {
    metrics::gauge!(
        telemetry::QUEUE_DEPTH,
        "queue" => queue.to_owned(),
        "status" => status
    )
    .set(count as f64);
}

fn due(queue: &str, count: u64, oldest: Option<Duration>) {
    metrics::gauge!(telemetry::QUEUE_DUE, "queue" => queue.to_owned()).set(count as f64);
    metrics::gauge!(telemetry::QUEUE_OLDEST_DUE_AGE, "queue" => queue.to_owned())
        .set(oldest.map_or(0.0, |age| age.as_secs_f64()));
}
