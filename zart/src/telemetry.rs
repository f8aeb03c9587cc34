//! The metrics Zart emits: every name, its type, unit and labels, in one list.
//!
//! Zart records through the [`metrics`](https://docs.rs/metrics) facade and never installs a
//! recorder: in a program without one every record is a no-op. A program that wants them
//! installs a recorder of its choice (the `zart-sidecar` crate installs a Prometheus one) and
//! may call [`describe`] so the exporter shows each metric's help text and unit.
//! `docs/metrics.md` documents the same list for dashboards; a test keeps the two in step.

/// Executions created by this process's [`DurableScheduler`](crate::DurableScheduler) (a
/// start that found the id already there is not counted; starts from SQL are not seen).
pub const EXECUTIONS_STARTED: &str = "zart_executions_started_total";
/// Outcomes recorded by this process's workers, by `status` (`completed`, `failed`).
pub const EXECUTIONS_FINISHED: &str = "zart_executions_finished_total";
/// Executions claimed by this process's workers.
pub const CLAIMED: &str = "zart_claimed_total";
/// Time of one claim call.
pub const CLAIM_DURATION: &str = "zart_claim_duration_seconds";
/// Time from claim to recorded outcome, for runs that recorded one.
pub const RUN_DURATION: &str = "zart_run_duration_seconds";
/// Time of one step body (replayed steps are not timed).
pub const STEP_DURATION: &str = "zart_step_duration_seconds";
/// Items written per group-commit batch, by `kind`.
pub const GROUP_COMMIT_BATCH_SIZE: &str = "zart_group_commit_batch_size";
/// Group-commit batches that failed as a whole and were written item by item, by `kind`.
pub const GROUP_COMMIT_SPLITS: &str = "zart_group_commit_splits_total";
/// Polls of a backend's change counter (backends without push wake-ups: SQLite).
pub const WAKEUP_POLLS: &str = "zart_wakeup_polls_total";
/// Executions running on this process's workers now, by `queue`.
pub const RUNS_IN_FLIGHT: &str = "zart_runs_in_flight";
/// Leases renewed by heartbeats.
pub const LEASE_RENEWALS: &str = "zart_lease_renewals_total";
/// Runs stopped because their lease was lost, by `detected_by` (`heartbeat`, `write`).
pub const LEASE_LOSSES: &str = "zart_lease_losses_total";
/// Unfinished executions by `queue` and `status`, as last read from the store.
pub const QUEUE_DEPTH: &str = "zart_queue_depth";
/// Unfinished executions due now and not held by a live lease, by `queue`.
pub const QUEUE_DUE: &str = "zart_queue_due";
/// How long the oldest due execution of a `queue` has been due (0 when none is).
pub const QUEUE_OLDEST_DUE_AGE: &str = "zart_queue_oldest_due_age_seconds";
/// Failed reads of the queue statistics.
pub const QUEUE_STATS_ERRORS: &str = "zart_queue_stats_errors_total";
/// Fire times of cron schedules handled by this worker, by `outcome`.
pub const SCHEDULE_FIRINGS: &str = "zart_schedule_firings_total";

/// The type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (reset when the process restarts).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observed values.
    Histogram,
}

impl MetricKind {
    /// The name Prometheus uses: `counter`, `gauge`, `histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric: what a dashboard needs to know to use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metric {
    /// The name, as exported.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// Its unit: `seconds`, `executions`, `leases`, `items`, `polls` or `errors`.
    pub unit: &'static str,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it counts or measures, in one sentence.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: MetricKind,
    unit: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        unit,
        labels,
        help,
    }
}

/// Every metric Zart emits.
pub const METRICS: &[Metric] = &[
    metric(
        EXECUTIONS_STARTED,
        MetricKind::Counter,
        "executions",
        &[],
        "Executions created by this process's DurableScheduler.",
    ),
    metric(
        EXECUTIONS_FINISHED,
        MetricKind::Counter,
        "executions",
        &["status"],
        "Outcomes recorded by this process's workers (status: completed, failed).",
    ),
    metric(
        CLAIMED,
        MetricKind::Counter,
        "executions",
        &[],
        "Executions claimed by this process's workers.",
    ),
    metric(
        CLAIM_DURATION,
        MetricKind::Histogram,
        "seconds",
        &[],
        "Time of one claim call.",
    ),
    metric(
        RUN_DURATION,
        MetricKind::Histogram,
        "seconds",
        &[],
        "Time from claim to recorded outcome.",
    ),
    metric(
        STEP_DURATION,
        MetricKind::Histogram,
        "seconds",
        &[],
        "Time of one step body run (replays are not timed).",
    ),
    metric(
        GROUP_COMMIT_BATCH_SIZE,
        MetricKind::Histogram,
        "items",
        &["kind"],
        "Items written per group-commit batch (kind: steps, outcomes, sqlite, mysql).",
    ),
    metric(
        GROUP_COMMIT_SPLITS,
        MetricKind::Counter,
        "batches",
        &["kind"],
        "Group-commit batches that failed as a whole and were written item by item.",
    ),
    metric(
        WAKEUP_POLLS,
        MetricKind::Counter,
        "polls",
        &[],
        "Polls of the backend's change counter (SQLite).",
    ),
    metric(
        RUNS_IN_FLIGHT,
        MetricKind::Gauge,
        "executions",
        &["queue"],
        "Executions running on this process's workers now.",
    ),
    metric(
        LEASE_RENEWALS,
        MetricKind::Counter,
        "leases",
        &[],
        "Leases renewed by heartbeats.",
    ),
    metric(
        LEASE_LOSSES,
        MetricKind::Counter,
        "leases",
        &["detected_by"],
        "Runs stopped because their lease was lost (detected_by: heartbeat, write).",
    ),
    metric(
        SCHEDULE_FIRINGS,
        MetricKind::Counter,
        "firings",
        &["outcome"],
        "Fire times of cron schedules this worker handled (outcome: started, skipped, cancelled_previous).",
    ),
    metric(
        QUEUE_DEPTH,
        MetricKind::Gauge,
        "executions",
        &["queue", "status"],
        "Unfinished executions (status: scheduled, running, sleeping, waiting), as last read.",
    ),
    metric(
        QUEUE_DUE,
        MetricKind::Gauge,
        "executions",
        &["queue"],
        "Unfinished executions due now and not held by a live lease, as last read.",
    ),
    metric(
        QUEUE_OLDEST_DUE_AGE,
        MetricKind::Gauge,
        "seconds",
        &["queue"],
        "How long the oldest due execution has been due (0 when none is), as last read.",
    ),
    metric(
        QUEUE_STATS_ERRORS,
        MetricKind::Counter,
        "errors",
        &[],
        "Failed reads of the queue statistics.",
    ),
];

/// Describes every metric of [`METRICS`] to the installed recorder (help text and unit);
/// without a recorder it does nothing. Installs nothing.
pub fn describe() {
    for m in METRICS {
        let unit = match m.unit {
            "seconds" => metrics::Unit::Seconds,
            _ => metrics::Unit::Count,
        };
        match m.kind {
            MetricKind::Counter => metrics::describe_counter!(m.name, unit, m.help),
            MetricKind::Gauge => metrics::describe_gauge!(m.name, unit, m.help),
            MetricKind::Histogram => metrics::describe_histogram!(m.name, unit, m.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_prometheus_conventions() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        for m in METRICS {
            assert!(m.name.starts_with("zart_"), "{}", m.name);
            assert_eq!(
                m.kind == MetricKind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
            if m.unit == "seconds" {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
        }
    }
}
