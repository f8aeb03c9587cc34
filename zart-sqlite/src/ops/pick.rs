//! Which due tasks a claim takes (`zart_claim_levels`, `zart_pick_tasks`): higher priorities
//! first, the names in turn within a priority, the earliest due first within a name; or, on an
//! oldest-first claim, the longest due whatever their priority. In a limited queue the
//! picking stops at the queue's limits and passes over a task whose limit key is at its own.
//! Reads only: the claim writes what was picked, and `next_run_at` asks whether anything
//! would be.

use std::collections::HashSet;

use rusqlite::{CachedStatement, Connection, Row};
use zart::Error;

use super::queues::{Budget, Limits};
use crate::clock;
use crate::errors::SqlResult;
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

impl Due {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Due {
            id: r.get(0)?,
            wait_kind: r.get(1)?,
            wait_name: r.get(2)?,
            task_name: r.get(3)?,
            attempts: r.get::<_, i64>(4)?.saturating_add(1),
            recoveries: r.get(5)?,
            limit_key: r.get(6)?,
            run_at: r.get(7)?,
        })
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
pub(super) fn claim_levels<'n>(
    conn: &Connection,
    queue: &str,
    names: &[&'n str],
) -> Result<Vec<(i64, &'n str)>, Error> {
    let mut stmt = conn
        .prepare_cached(queries::CLAIM_LEVELS)
        .or_db(conn, "claiming")?;
    let mut levels = Vec::with_capacity(names.len());
    for &name in names {
        let rows = stmt
            .query_map(rusqlite::params![queue, name], |r| r.get::<_, i64>(0))
            .or_db(conn, "claiming")?;
        for priority in rows {
            levels.push((priority.or_db(conn, "claiming")?, name));
        }
    }
    // Stable: the names keep their turn within a priority.
    levels.sort_by_key(|&(priority, _)| std::cmp::Reverse(priority));
    Ok(levels)
}

/// The due tasks a claim of up to `p.limit` takes now, in the order it takes them; with
/// `limits`, within the queue's limits (the runs counted at `p.now`).
pub(super) fn pick_tasks(
    conn: &Connection,
    p: &Pick<'_>,
    limits: Option<&Limits>,
) -> Result<Vec<Due>, Error> {
    let mut budget = match limits {
        Some(limits) => Budget::read(conn, p.queue, *limits, p.now, p.limit)?,
        None => Budget::unlimited(p.limit),
    };
    if budget.left() == 0 {
        return Ok(Vec::new());
    }
    let levels = claim_levels(conn, p.queue, p.names)?;
    let now = clock::format(p.now);
    let mut stmt = conn
        .prepare_cached(queries::DUE_TASKS)
        .or_db(conn, "claiming")?;
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
        for due in oldest_due(conn, &mut stmt, p.queue, &levels, &now, read)? {
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
            if !due_tasks(conn, &mut stmt, p.queue, level, &now, read, |due| {
                take(due, &mut budget)
            })? {
                break;
            }
        }
    }
    Ok(picked)
}

/// Up to `read` due tasks of each level, the longest due first across levels (equal due
/// times in claim order).
fn oldest_due(
    conn: &Connection,
    stmt: &mut CachedStatement<'_>,
    queue: &str,
    levels: &[(i64, &str)],
    now: &str,
    read: usize,
) -> Result<Vec<Due>, Error> {
    let mut all = Vec::new();
    for &level in levels {
        due_tasks(conn, stmt, queue, level, now, read, |due| {
            all.push(due);
            true
        })?;
    }
    // Stable: equal due times keep the claim order.
    all.sort_by(|a, b| a.run_at.cmp(&b.run_at));
    Ok(all)
}

/// Reads up to `max` due tasks of one level, earliest first, into `visit` until it returns
/// false; returns false if it did. Reads lazily: only as far as `visit` goes.
fn due_tasks(
    conn: &Connection,
    stmt: &mut CachedStatement<'_>,
    queue: &str,
    (priority, name): (i64, &str),
    now: &str,
    max: usize,
    mut visit: impl FnMut(Due) -> bool,
) -> Result<bool, Error> {
    // SQLite reads a negative limit as none.
    let max = i64::try_from(max).unwrap_or(-1);
    let mut rows = stmt
        .query(rusqlite::params![queue, name, priority, now, max])
        .or_db(conn, "claiming")?;
    while let Some(row) = rows.next().or_db(conn, "claiming")? {
        let due = Due::from_row(row).or_db(conn, "claiming")?;
        if !visit(due) {
            return Ok(false);
        }
    }
    Ok(true)
}
