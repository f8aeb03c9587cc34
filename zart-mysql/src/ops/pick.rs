//! Which due tasks a claim takes (`zart_claim_levels`, `zart_pick_tasks`): higher priorities
//! first, the names in turn within a priority, the earliest due first within a name; or, on an
//! oldest-first claim, the longest due whatever their priority. In a limited queue the
//! picking stops at the queue's limits and passes over a task whose limit key is at its own.
//! Reads only: the claim writes what was picked, and `next_run_at` asks whether anything
//! would be.

use std::collections::HashSet;

use super::{p, Tx};
use zart::Error;

use super::queues::{Budget, Limits};
use crate::clock;
use crate::queries;

/// How many due tasks of each name and priority an oldest-first claim of a limited queue
/// reads (as zart-pg): the candidates it sorts by due time.
const OLDEST_FIRST_READ: usize = 1000;

/// A due task as the claim read it: the claim count and recoveries it will have once claimed.
pub(super) struct Due {
    pub(super) id: String,
    pub(super) wait_kind: Option<String>,
    pub(super) wait_name: Option<String>,
    pub(super) task_name: String,
    pub(super) attempts: i64,
    pub(super) recoveries: i64,
    pub(super) limit_key: Option<String>,
    run_at: String,
}

/// A row of `queries::DUE_TASKS`.
type DueRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
    String,
);

impl Due {
    fn from_row(r: DueRow) -> Self {
        let (id, wait_kind, wait_name, task_name, attempts, recoveries, limit_key, run_at) = r;
        Due {
            id,
            wait_kind,
            wait_name,
            task_name,
            attempts: attempts.saturating_add(1),
            recoveries,
            limit_key,
            run_at,
        }
    }
}

/// What to pick from.
pub(super) struct Pick<'a> {
    pub(super) queue: &'a str,
    /// The task names, each once, in their turn (see `claim::claim_order`).
    pub(super) names: &'a [&'a str],
    pub(super) limit: usize,
    pub(super) now: i64,
    pub(super) oldest_first: bool,
}

/// The (priority, task name) pairs of `queue` that have task rows: highest priority first
/// and, within a priority, the names in the order given.
pub(super) async fn claim_levels<'n>(
    tx: &mut Tx<'_>,
    queue: &str,
    names: &[&'n str],
) -> Result<Vec<(i64, &'n str)>, Error> {
    let mut levels = Vec::with_capacity(names.len());
    for &name in names {
        let rows: Vec<i64> = tx
            .all(queries::CLAIM_LEVELS, p![queue, name], "claiming")
            .await?;
        levels.extend(rows.into_iter().map(|priority| (priority, name)));
    }
    // Stable: the names keep their turn within a priority.
    levels.sort_by_key(|&(priority, _)| std::cmp::Reverse(priority));
    Ok(levels)
}

/// The due tasks a claim of up to `p.limit` takes now, in the order it takes them; with
/// `limits`, within the queue's limits (the runs counted at `p.now`).
pub(super) async fn pick_tasks(
    tx: &mut Tx<'_>,
    p: &Pick<'_>,
    limits: Option<&Limits>,
) -> Result<Vec<Due>, Error> {
    let mut budget = match limits {
        Some(limits) => Budget::read(tx, p.queue, *limits, p.now, p.limit).await?,
        None => Budget::unlimited(p.limit),
    };
    if budget.left() == 0 {
        return Ok(Vec::new());
    }
    let levels = claim_levels(tx, p.queue, p.names).await?;
    let now = clock::format(p.now);
    let mut picked = Vec::new();
    let mut seen = HashSet::new();
    // Takes `due` if the budget admits it; false once the budget is spent.
    let mut take = |due: Due, budget: &mut Budget| {
        if budget.admits(due.limit_key.as_deref()) && seen.insert(due.id.clone()) {
            budget.take(due.limit_key.as_deref());
            picked.push(due);
        }
        budget.left() > 0
    };
    if p.oldest_first {
        // Without limits no candidate is passed over: the first `limit` of each level are
        // enough.
        let read = if limits.is_some() {
            OLDEST_FIRST_READ.max(p.limit)
        } else {
            p.limit
        };
        for due in oldest_due(tx, p.queue, &levels, &now, read).await? {
            if !take(due, &mut budget) {
                break;
            }
        }
    } else {
        for &level in &levels {
            // Without limits no candidate is passed over: the rest of the budget is enough.
            let read = if limits.is_some() {
                usize::MAX
            } else {
                budget.left()
            };
            if !due_tasks(tx, p.queue, level, &now, read, |due| take(due, &mut budget)).await? {
                break;
            }
        }
    }
    Ok(picked)
}

/// Up to `read` due tasks of each level, the longest due first across levels (equal due
/// times in claim order).
async fn oldest_due(
    tx: &mut Tx<'_>,
    queue: &str,
    levels: &[(i64, &str)],
    now: &str,
    read: usize,
) -> Result<Vec<Due>, Error> {
    let mut all = Vec::new();
    for &level in levels {
        due_tasks(tx, queue, level, now, read, |due| {
            all.push(due);
            true
        })
        .await?;
    }
    // Stable: equal due times keep the claim order.
    all.sort_by(|a, b| a.run_at.cmp(&b.run_at));
    Ok(all)
}

/// Reads up to `max` due tasks of one level, earliest first, into `visit` until it returns
/// false; returns false if it did. Reads lazily: only as far as `visit` goes.
async fn due_tasks(
    tx: &mut Tx<'_>,
    queue: &str,
    (priority, name): (i64, &str),
    now: &str,
    max: usize,
    mut visit: impl FnMut(Due) -> bool,
) -> Result<bool, Error> {
    // MySQL's LIMIT takes no "all": the largest count stands for it.
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let rows: Vec<DueRow> = tx
        .all(
            queries::DUE_TASKS,
            p![queue, name, priority, now, max],
            "claiming",
        )
        .await?;
    for row in rows {
        if !visit(Due::from_row(row)) {
            return Ok(false);
        }
    }
    Ok(true)
}
