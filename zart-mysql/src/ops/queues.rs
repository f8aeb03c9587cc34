//! Limits per queue (`zart_set_queue_limits`, `zart_list_queue_limits`, `zart_limit_freed`),
//! and what counts against them when a claim picks (the limits half of `zart_pick_tasks`).
//!
//! A limited queue has a `zart_queue_limits` row; every run a claim starts in it is recorded in
//! `zart_limit_runs` with its fence. A run is running while its task row holds that fence with
//! a lease not yet expired, and counts against a rate while it started within the interval.
//! A claim in a limited queue locks its limits row first (`queries::LOCK_QUEUE_LIMITS`), so
//! claims of every process take turns counting and recording its runs.

use super::p;
use std::collections::HashMap;

use zart::limits::check_name;
use zart::queues::{QueueLimits, QueueLimitsRow, Rate};
use zart::scheduler::{Lease, Wakeup};
use zart::Error;

use super::Tx;
use crate::clock;
use crate::queries;
use crate::writer::Reply;

/// The limit columns of `zart_queue_limits`, in order.
type LimitsRow = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// A queue's limits as stored: counts, and intervals in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    max_running: Option<i64>,
    rate_limit: Option<i64>,
    pub(crate) rate_ms: Option<i64>,
    key_max_running: Option<i64>,
    key_rate_limit: Option<i64>,
    pub(crate) key_rate_ms: Option<i64>,
}

impl Limits {
    fn from_row(r: LimitsRow) -> Self {
        let (max_running, rate_limit, rate_ms, key_max_running, key_rate_limit, key_rate_ms) = r;
        Limits {
            max_running,
            rate_limit,
            rate_ms,
            key_max_running,
            key_rate_limit,
            key_rate_ms,
        }
    }

    fn from_api(l: &QueueLimits) -> Self {
        let rate = |r: Option<Rate>| {
            (
                r.map(|r| i64::from(r.count)),
                r.map(|r| clock::millis(r.per)),
            )
        };
        let (rate_limit, rate_ms) = rate(l.rate);
        let (key_rate_limit, key_rate_ms) = rate(l.key_rate);
        Limits {
            max_running: l.max_running.map(i64::from),
            rate_limit,
            rate_ms,
            key_max_running: l.key_max_running.map(i64::from),
            key_rate_limit,
            key_rate_ms,
        }
    }

    fn to_api(self) -> QueueLimits {
        let count = |n: Option<i64>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let rate =
            |n: Option<i64>, ms: Option<i64>| Some(Rate::new(count(n)?, clock::duration(ms?)));
        QueueLimits {
            max_running: count(self.max_running),
            rate: rate(self.rate_limit, self.rate_ms),
            key_max_running: count(self.key_max_running),
            key_rate: rate(self.key_rate_limit, self.key_rate_ms),
        }
    }

    /// Whether a limit per key is set.
    fn per_key(&self) -> bool {
        self.key_max_running.is_some() || self.key_rate_limit.is_some()
    }
}

/// The time `ms` before `now`, as stored: where a rate window of `ms` starts.
fn window_start(now: i64, ms: i64) -> String {
    clock::format(now.saturating_sub(ms))
}

/// The limits of `queue`, if it has any.
pub(crate) async fn queue_limits(tx: &mut Tx<'_>, queue: &str) -> Result<Option<Limits>, Error> {
    read_limits(tx, queries::QUEUE_LIMITS, queue).await
}

/// The limits of `queue`, if it has any, its row locked until commit (a claim).
pub(crate) async fn lock_queue_limits(
    tx: &mut Tx<'_>,
    queue: &str,
) -> Result<Option<Limits>, Error> {
    read_limits(tx, queries::LOCK_QUEUE_LIMITS, queue).await
}

async fn read_limits(tx: &mut Tx<'_>, sql: &str, queue: &str) -> Result<Option<Limits>, Error> {
    let row: Option<LimitsRow> = tx.first(sql, p![queue], "reading queue limits").await?;
    Ok(row.map(Limits::from_row))
}

/// The runs of `queue` running at `now`, and those started within `rate_ms` of it (0 without
/// a rate).
async fn run_counts(
    tx: &mut Tx<'_>,
    queue: &str,
    now: i64,
    rate_ms: Option<i64>,
) -> Result<(i64, i64), Error> {
    let since = rate_ms.map(|ms| window_start(now, ms));
    tx.one(
        queries::LIMIT_RUN_COUNTS,
        p![queue, clock::format(now), since],
        "counting a queue's runs",
    )
    .await
}

/// Deletes the runs of `queue` that neither run nor fall within any rate window.
pub(super) async fn delete_spent_runs(
    tx: &mut Tx<'_>,
    queue: &str,
    limits: &Limits,
) -> Result<(), Error> {
    let window = limits
        .rate_ms
        .unwrap_or(0)
        .max(limits.key_rate_ms.unwrap_or(0));
    tx.exec(
        queries::DELETE_SPENT_RUNS,
        p![queue, window_start(tx.now, window), tx.now_text()],
        "claiming",
    )
    .await?;
    Ok(())
}

/// Records a run claimed in a limited queue.
pub(super) async fn record_run(
    tx: &mut Tx<'_>,
    queue: &str,
    lease: &Lease,
    limit_key: Option<&str>,
) -> Result<(), Error> {
    tx.exec(
        queries::INSERT_LIMIT_RUN,
        p![
            queue,
            lease.execution_id,
            lease.fence,
            limit_key,
            tx.now_text()
        ],
        "claiming",
    )
    .await?;
    Ok(())
}

/// What a claim may still take: how many runs, and what each limit key has running and
/// started within its window (a claim's own picks included).
pub(crate) struct Budget {
    left: usize,
    limits: Limits,
    keys: HashMap<String, (i64, i64)>,
}

impl Budget {
    /// Up to `limit` runs, no limit otherwise.
    pub(crate) fn unlimited(limit: usize) -> Self {
        Budget {
            left: limit,
            limits: Limits::default(),
            keys: HashMap::new(),
        }
    }

    /// Up to `limit` runs, and what `queue`'s limits let start at `now`:
    /// `min(limit, max_running - running, rate_limit - started in window)`.
    pub(crate) async fn read(
        tx: &mut Tx<'_>,
        queue: &str,
        limits: Limits,
        now: i64,
        limit: usize,
    ) -> Result<Self, Error> {
        let (running, recent) = run_counts(tx, queue, now, limits.rate_ms).await?;
        let room = |max: Option<i64>, used: i64| {
            max.map_or(usize::MAX, |m| usize::try_from(m - used).unwrap_or(0))
        };
        let left = limit
            .min(room(limits.max_running, running))
            .min(room(limits.rate_limit, recent));
        let keys = if limits.per_key() && left > 0 {
            key_counts(tx, queue, now, limits.key_rate_ms).await?
        } else {
            HashMap::new()
        };
        Ok(Budget { left, limits, keys })
    }

    /// How many runs the claim may still take.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// Whether a task with `key` may start now: its key is below its own limits.
    pub(crate) fn admits(&self, key: Option<&str>) -> bool {
        let Some(key) = key else { return true };
        let (running, recent) = self.keys.get(key).copied().unwrap_or((0, 0));
        self.limits.key_max_running.is_none_or(|m| running < m)
            && self.limits.key_rate_limit.is_none_or(|m| recent < m)
    }

    /// Counts a pick with `key`.
    pub(crate) fn take(&mut self, key: Option<&str>) {
        self.left = self.left.saturating_sub(1);
        if let (Some(key), true) = (key, self.limits.per_key()) {
            let counts = self.keys.entry(key.to_owned()).or_insert((0, 0));
            counts.0 += 1;
            counts.1 += 1;
        }
    }
}

/// What each limit key of `queue` has running at `now`, and started within `key_rate_ms`.
async fn key_counts(
    tx: &mut Tx<'_>,
    queue: &str,
    now: i64,
    key_rate_ms: Option<i64>,
) -> Result<HashMap<String, (i64, i64)>, Error> {
    let since = key_rate_ms.map(|ms| window_start(now, ms));
    let rows: Vec<(String, i64, i64)> = tx
        .all(
            queries::KEY_RUN_COUNTS,
            p![queue, clock::format(now), since],
            "counting runs by limit key",
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(key, running, recent)| (key, (running, recent)))
        .collect())
}

/// When a rate window of `queue`'s limits next lets one more run start after `now`: the
/// earliest start within the queue's window plus its interval, or the same per key; `None`
/// when no recorded run holds a window.
pub(crate) async fn next_rate_slot(
    tx: &mut Tx<'_>,
    queue: &str,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, Error> {
    let mut next: Option<i64> = None;
    for (ms, keyed) in [(limits.rate_ms, false), (limits.key_rate_ms, true)] {
        let Some(ms) = ms else { continue };
        let first: Option<String> = tx
            .one(
                queries::FIRST_RUN_AFTER,
                p![queue, window_start(now, ms), keyed],
                "reading a queue's rate window",
            )
            .await?;
        if let Some(first) = first {
            let at = clock::parse_stored(&first, "a run's start")?.saturating_add(ms);
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok(next)
}

/// Wakes the workers of `queue` if it has limits: a run ending there may let a waiting claim
/// go (`zart_limit_freed`).
pub(super) async fn limit_freed(tx: &mut Tx<'_>, queue: &str) -> Result<(), Error> {
    if queue_limits(tx, queue).await?.is_some() {
        tx.wake(Wakeup::Work {
            queue: queue.to_owned(),
        });
    }
    Ok(())
}

/// Sets or removes the limits of `queue`; true when it has limits now. Wakes its workers:
/// looser limits may let claims go.
pub(super) async fn set_queue_limits(
    tx: &mut Tx<'_>,
    queue: &str,
    limits: Option<&QueueLimits>,
) -> Result<Reply, Error> {
    check_name("queue", queue)?;
    let limits = limits.copied().unwrap_or_default();
    limits.validate()?;
    let what = "setting queue limits";
    tx.wake(Wakeup::Work {
        queue: queue.to_owned(),
    });
    if limits.is_empty() {
        tx.exec(queries::DELETE_QUEUE_LIMITS, p![queue], what)
            .await?;
        tx.exec(queries::DELETE_QUEUE_RUNS, p![queue], what).await?;
        return Ok(Reply::LimitsSet(false));
    }
    let l = Limits::from_api(&limits);
    tx.exec(
        queries::UPSERT_QUEUE_LIMITS,
        p![
            queue,
            l.max_running,
            l.rate_limit,
            l.rate_ms,
            l.key_max_running,
            l.key_rate_limit,
            l.key_rate_ms,
            tx.now_text()
        ],
        what,
    )
    .await?;
    Ok(Reply::LimitsSet(true))
}

/// Every queue with limits, by name, with its runs running now and started within its rate
/// interval.
pub(crate) async fn list_queue_limits(tx: &mut Tx<'_>) -> Result<Vec<QueueLimitsRow>, Error> {
    let what = "listing queue limits";
    type Row = (
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = tx.all(queries::LIST_QUEUE_LIMITS, p![], what).await?;
    let now = tx.now();
    let mut out = Vec::with_capacity(rows.len());
    for (queue, a, b, c, d, e, f) in rows {
        let limits = Limits::from_row((a, b, c, d, e, f));
        let (running, recent) = run_counts(tx, &queue, now, limits.rate_ms).await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        out.push(QueueLimitsRow {
            queue,
            limits: limits.to_api(),
            running: count(running),
            started_in_window: count(recent),
        });
    }
    Ok(out)
}
