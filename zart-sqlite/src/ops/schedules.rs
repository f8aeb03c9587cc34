//! Cron schedules (`zart_schedule`, `zart_pause_schedule`, `zart_delete_schedule`,
//! `zart_claim_schedules`, `zart_fire_schedule`) in the writer's transaction; and the reads
//! (`zart_schedules`, `zart_next_schedule_at`) on a read connection.
//!
//! The cron expression is never evaluated here: workers compute fire times (`zart::schedule`)
//! and hand them to [`fire_schedule`] with the execution id of each. A schedule's
//! `updated_at` is when its timing (cron, time zone) was last declared, which claims return as
//! [`DueSchedule::declared_at`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use zart::limits::check_name;
use zart::schedule::{CatchUp, Overlap, Schedule, ScheduleRow};
use zart::scheduler::{
    ClaimSchedulesParams, DueSchedule, FireOutcome, FireScheduleParams, NextRunAtParams, Wakeup,
};
use zart::Error;

use super::cancel::cancel_tree;
use super::fence::wake_waiter;
use super::start::{insert_execution, NewExecution};
use super::{check_lease, check_size, Cached, Tx};
use crate::clock;
use crate::errors::{from_json, internal, to_json, SqlResult};
use crate::queries;
use crate::writer::Reply;
use crate::Settings;

/// A schedule row as stored, in the column order of `queries::schedule_columns!`.
type Stored = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

/// What a fire reads of the schedule it holds: paused, task, queue, input, overlap, the
/// execution it started last.
type Held = (i64, String, String, String, String, Option<String>);

/// Stores a new schedule or replaces a declaration (see `Scheduler::upsert_schedule`);
/// answers whether it is new.
pub(super) fn upsert_schedule(tx: &mut Tx<'_>, s: &Schedule) -> Result<Reply, Error> {
    s.check()?;
    let input = to_json(&s.input, "a schedule's input")?;
    check_size(tx, "input", &input)?;
    let what = "storing a schedule";
    let timing: Option<(String, String)> = tx
        .conn
        .row_cached(queries::SCHEDULE_TIMING, [&s.id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .or_db(tx.conn, what)?;
    let now = tx.now_text();
    let catch_up_limit = s.catch_up.limit();
    let declaration = rusqlite::params![
        s.id,
        s.task_name,
        s.queue,
        input,
        s.cron,
        s.time_zone,
        s.overlap.as_str(),
        s.catch_up.as_str(),
        catch_up_limit,
    ];
    match &timing {
        None => {
            let mut params = declaration.to_vec();
            params.push(&now);
            tx.conn
                .exec_cached(queries::INSERT_SCHEDULE, params.as_slice())
                .or_db(tx.conn, what)?;
        }
        Some((cron, time_zone)) => {
            tx.conn
                .exec_cached(queries::UPDATE_SCHEDULE, declaration)
                .or_db(tx.conn, what)?;
            if *cron != s.cron || *time_zone != s.time_zone {
                tx.conn
                    .exec_cached(queries::RETIME_SCHEDULE, rusqlite::params![s.id, now])
                    .or_db(tx.conn, what)?;
            }
        }
    }
    tx.wake(Wakeup::Work {
        queue: s.queue.clone(),
    });
    Ok(Reply::Upserted(timing.is_none()))
}

/// Pauses or resumes a schedule; a resumed one may be due at once, so its workers are woken.
pub(super) fn pause_schedule(tx: &mut Tx<'_>, id: &str, paused: bool) -> Result<Reply, Error> {
    let queue: Option<String> = tx
        .conn
        .row_cached(
            queries::PAUSE_SCHEDULE,
            rusqlite::params![id, i64::from(paused)],
            |r| r.get(0),
        )
        .optional()
        .or_db(tx.conn, "pausing a schedule")?;
    let Some(queue) = queue else {
        return Err(Error::NotFound { id: id.to_owned() });
    };
    if !paused {
        tx.wake(Wakeup::Work { queue });
    }
    Ok(Reply::Done)
}

/// Deletes a schedule; answers whether there was one.
pub(super) fn delete_schedule(tx: &mut Tx<'_>, id: &str) -> Result<Reply, Error> {
    let deleted = tx
        .conn
        .exec_cached(queries::DELETE_SCHEDULE, [id])
        .or_db(tx.conn, "deleting a schedule")?;
    Ok(Reply::Deleted(deleted > 0))
}

/// Holds the due schedules of the queue and names for the worker, names in turn from a random
/// first one, as task claims do.
pub(super) fn claim_schedules(tx: &mut Tx<'_>, p: &ClaimSchedulesParams) -> Result<Reply, Error> {
    let lease_ms = check_lease(p.lease)?;
    let names = super::claim::claim_order(&p.task_names);
    if names.is_empty() || p.limit == 0 {
        return Ok(Reply::SchedulesClaimed(Vec::new()));
    }

    let what = "claiming schedules";
    let now = tx.now_text();
    let ahead_ms = clock::millis(p.ahead);
    super::check_wait("ahead", ahead_ms)?;
    let by = clock::format(tx.now.saturating_add(ahead_ms));
    let limit = usize::try_from(p.limit).unwrap_or(usize::MAX);
    let mut due: Vec<Stored> = Vec::new();
    let mut seen = HashSet::new();
    let mut select = tx
        .conn
        .prepare_cached(queries::DUE_SCHEDULES)
        .or_db(tx.conn, what)?;
    for name in names {
        let left = limit - due.len();
        if left == 0 {
            break;
        }
        let rows = select
            .query_map(
                rusqlite::params![
                    p.queue,
                    name,
                    now,
                    i64::try_from(left).unwrap_or(i64::MAX),
                    by
                ],
                |r| r.try_into(),
            )
            .or_db(tx.conn, what)?;
        for row in rows {
            let row: Stored = row.or_db(tx.conn, what)?;
            if seen.insert(row.0.clone()) {
                due.push(row);
            }
        }
    }
    drop(select);

    // Every row is read back before the first write: one that cannot be read refuses the
    // claim with nothing written.
    let claimed = due
        .into_iter()
        .map(|row| {
            let (row, declared_at) = schedule_row(row)?;
            Ok(DueSchedule {
                row,
                declared_at: clock::to_system(declared_at),
                now: clock::to_system(tx.now),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let until = clock::format(tx.now.saturating_add(lease_ms));
    for due in &claimed {
        tx.conn
            .exec_cached(
                queries::LOCK_SCHEDULE,
                rusqlite::params![due.row.schedule.id, p.worker_id, until],
            )
            .or_db(tx.conn, what)?;
    }
    Ok(Reply::SchedulesClaimed(claimed))
}

/// Fires a schedule the worker holds: each fire time in order under the overlap policy, then
/// the next fire time (or the error) and the hold given up. A schedule paused while held only
/// has its hold given up: the times stay for its catch-up on resume.
pub(super) fn fire_schedule(tx: &mut Tx<'_>, p: &FireScheduleParams) -> Result<Reply, Error> {
    let what = "firing a schedule";
    let held: Option<Held> = tx
        .conn
        .row_cached(
            queries::HELD_SCHEDULE,
            rusqlite::params![p.id, p.worker_id],
            |r| r.try_into(),
        )
        .optional()
        .or_db(tx.conn, what)?;
    let Some((paused, task_name, queue, input_text, overlap, mut last)) = held else {
        return Err(Error::LeaseLost { id: p.id.clone() });
    };
    if paused != 0 {
        tx.conn
            .exec_cached(queries::RELEASE_SCHEDULE, [&p.id])
            .or_db(tx.conn, what)?;
        return Ok(Reply::Fired(FireOutcome::default()));
    }
    // Everything that can refuse the fire is checked before its first write.
    for (_, id) in &p.fires {
        check_name("execution id", id)?;
    }
    check_name("task name", &task_name)?;
    check_name("queue", &queue)?;
    check_size(tx, "input", &input_text)?;
    if let Some(error) = &p.error {
        let limit = tx.settings.max_payload_bytes;
        if error.len() > limit {
            return Err(Error::invalid(
                "schedule error",
                format!("{} bytes is over the limit of {limit} bytes", error.len()),
            ));
        }
    }
    let named = |e: Error| internal(format!("schedule {:?}: {e}", p.id));
    let input: serde_json::Value =
        from_json(&input_text, &format!("the input of schedule {:?}", p.id))?;
    let overlap = Overlap::parse(&overlap).map_err(named)?;

    let mut outcome = FireOutcome::default();
    for (at, id) in &p.fires {
        // An id that exists already was fired before: nothing to start and nothing to apply
        // the overlap policy for.
        if status(tx, id)?.is_none() {
            let previous = match &last {
                Some(prev) => status(tx, prev)?
                    .filter(|(status, _)| !is_finished(status))
                    .map(|(_, parent)| (prev.clone(), parent)),
                None => None,
            };
            if let Some((prev, parent)) = previous {
                match overlap {
                    Overlap::Skip => {
                        outcome.skipped.push(id.clone());
                        continue;
                    }
                    Overlap::CancelPrevious => {
                        outcome.cancelled.extend(cancel_tree(tx, &prev, true)?);
                        if let Some(parent) = parent {
                            if let Some(queue) = wake_waiter(tx, &parent, "child", &prev)? {
                                tx.wake(Wakeup::Work { queue });
                            }
                        }
                    }
                    _ => {}
                }
            }
            let started = insert_execution(
                tx,
                &NewExecution {
                    id,
                    task_name: &task_name,
                    input: &input,
                    queue: &queue,
                    parent_id: None,
                    deadline_ms: None,
                    start_ms: None,
                    priority: 0,
                    limit_key: None,
                },
            )?;
            if started.created {
                outcome.started.push(id.clone());
            }
        }
        tx.conn
            .exec_cached(
                queries::RECORD_FIRE,
                rusqlite::params![p.id, clock::format(clock::system_ms(*at)), id],
            )
            .or_db(tx.conn, what)?;
        last = Some(id.clone());
    }
    let next = p.next_fire_at.map(|t| clock::format(clock::system_ms(t)));
    tx.conn
        .exec_cached(
            queries::FIRED_SCHEDULE,
            rusqlite::params![p.id, next, p.error],
        )
        .or_db(tx.conn, what)?;
    if !outcome.cancelled.is_empty() {
        tx.wake(Wakeup::Finished {
            execution_ids: Arc::from(outcome.cancelled.clone()),
        });
    }
    // One wake-up per queue, not one per execution started.
    let mut sent: Vec<Wakeup> = Vec::new();
    tx.wakeups.retain(|w| {
        let new = !sent.contains(w);
        if new {
            sent.push(w.clone());
        }
        new
    });
    Ok(Reply::Fired(outcome))
}

/// An execution's status and parent, or `None` when there is no such execution.
fn status(tx: &Tx<'_>, id: &str) -> Result<Option<(String, Option<String>)>, Error> {
    tx.conn
        .row_cached(queries::EXECUTION_STATUS, [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .or_db(tx.conn, "firing a schedule")
}

/// Whether a stored execution status is a final one.
fn is_finished(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// Every schedule, by id.
pub(crate) fn list_schedules(conn: &Connection) -> Result<Vec<ScheduleRow>, Error> {
    let what = "listing schedules";
    let mut stmt = conn
        .prepare_cached(queries::LIST_SCHEDULES)
        .or_db(conn, what)?;
    let rows = stmt.query_map([], |r| r.try_into()).or_db(conn, what)?;
    let mut schedules = Vec::new();
    for row in rows {
        let row: Stored = row.or_db(conn, what)?;
        schedules.push(schedule_row(row)?.0);
    }
    Ok(schedules)
}

/// How long until a schedule of the queue with one of the names can be claimed: zero when
/// one is due (or not computed yet), a held one at the end of its hold if that is later;
/// `None` when there is none (paused and stopped ones do not count).
pub(crate) fn next_schedule_at(
    conn: &Connection,
    settings: &Settings,
    p: &NextRunAtParams,
) -> Result<Option<Duration>, Error> {
    let now = clock::now(conn, settings.test_clock)?;
    let now_text = clock::format(now);
    let earliest = super::read::earliest_by_name(
        conn,
        queries::NEXT_SCHEDULE_AT,
        "next_schedule_at",
        p,
        Some(&now_text),
    )?;
    let Some(earliest) = earliest else {
        return Ok(None);
    };
    let at = clock::parse_stored(&earliest, "a schedule's next fire time")?;
    Ok(Some(clock::duration(at - now)))
}

/// A stored schedule as [`ScheduleRow`], with the time its timing was declared (ms).
fn schedule_row(row: Stored) -> Result<(ScheduleRow, i64), Error> {
    let (
        id,
        task_name,
        queue,
        input,
        cron,
        time_zone,
        overlap,
        catch_up,
        catch_up_limit,
        paused,
        next_fire_at,
        last_fire_at,
        last_execution_id,
        error,
        updated_at,
    ) = row;
    let named = |e: Error| internal(format!("schedule {id:?}: {e}"));
    let limit = u32::try_from(catch_up_limit).map_err(|_| {
        internal(format!(
            "schedule {id:?}: catch-up limit {catch_up_limit} is not a count"
        ))
    })?;
    let catch_up = CatchUp::parse(&catch_up, limit).map_err(named)?;
    let overlap = Overlap::parse(&overlap).map_err(named)?;
    let input = from_json(&input, &format!("the input of schedule {id:?}"))?;
    let time = |t: Option<String>, what: &str| -> Result<_, Error> {
        t.map(|t| clock::parse_stored(&t, &format!("schedule {id:?}'s {what}")))
            .transpose()
            .map(|ms| ms.map(clock::to_system))
    };
    let next_fire_at = time(next_fire_at, "next fire time")?;
    let last_fire_at = time(last_fire_at, "last fire time")?;
    let declared_at = clock::parse_stored(&updated_at, &format!("schedule {id:?}'s update time"))?;
    let schedule = Schedule::new(id, cron, task_name)
        .input(input)
        .time_zone(time_zone)
        .queue(queue)
        .overlap(overlap)
        .catch_up(catch_up);
    let mut row = ScheduleRow::new(schedule);
    row.paused = paused != 0;
    row.next_fire_at = next_fire_at;
    row.last_fire_at = last_fire_at;
    row.last_execution_id = last_execution_id;
    row.error = error;
    Ok((row, declared_at))
}
