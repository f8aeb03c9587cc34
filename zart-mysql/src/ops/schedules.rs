//! Cron schedules (`zart_schedule`, `zart_pause_schedule`, `zart_delete_schedule`,
//! `zart_claim_schedules`, `zart_fire_schedule`) in the writer's transaction; and the reads
//! (`zart_schedules`, `zart_next_schedule_at`) on a read connection.
//!
//! The cron expression is never evaluated here: workers compute fire times (`zart::schedule`)
//! and hand them to [`fire_schedule`] with the execution id of each. A schedule's
//! `updated_at` is when its timing (cron, time zone) was last declared, which claims return as
//! [`DueSchedule::declared_at`].

use super::{col, p};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use zart::limits::check_name;
use zart::schedule::{CatchUp, Overlap, Schedule, ScheduleRow};
use zart::scheduler::{
    ClaimSchedulesParams, DueSchedule, FireOutcome, FireScheduleParams, NextRunAtParams, Wakeup,
};
use zart::Error;

use super::cancel::cancel_tree;
use super::fence::wake_waiter;
use super::start::{insert_execution, NewExecution};
use super::{check_lease, check_size, Tx};
use crate::clock;
use crate::errors::{from_json, internal, to_json};
use crate::queries;
use crate::writer::Reply;

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

/// A schedule row read whole (15 columns: past the tuples mysql_async converts).
fn stored(mut r: mysql_async::Row, what: &str) -> Result<Stored, Error> {
    Ok((
        col(&mut r, 0, what)?,
        col(&mut r, 1, what)?,
        col(&mut r, 2, what)?,
        col(&mut r, 3, what)?,
        col(&mut r, 4, what)?,
        col(&mut r, 5, what)?,
        col(&mut r, 6, what)?,
        col(&mut r, 7, what)?,
        col(&mut r, 8, what)?,
        col(&mut r, 9, what)?,
        col(&mut r, 10, what)?,
        col(&mut r, 11, what)?,
        col(&mut r, 12, what)?,
        col(&mut r, 13, what)?,
        col(&mut r, 14, what)?,
    ))
}

/// What a fire reads of the schedule it holds: paused, task, queue, input, overlap, the
/// execution it started last.
type Held = (i64, String, String, String, String, Option<String>);

/// Stores a new schedule or replaces a declaration (see `Scheduler::upsert_schedule`);
/// answers whether it is new.
pub(super) async fn upsert_schedule(tx: &mut Tx<'_>, s: &Schedule) -> Result<Reply, Error> {
    s.check()?;
    let input = to_json(&s.input, "a schedule's input")?;
    check_size(tx, "input", &input)?;
    let what = "storing a schedule";
    let timing: Option<(String, String)> =
        tx.first(queries::SCHEDULE_TIMING, p![&s.id], what).await?;
    let now = tx.now_text();
    let catch_up_limit = s.catch_up.limit();
    let declaration = p![
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
            let mut params = declaration;
            params.push(mysql_async::Value::from(&now));
            tx.exec(queries::INSERT_SCHEDULE, params, what).await?;
        }
        Some((cron, time_zone)) => {
            tx.exec(queries::UPDATE_SCHEDULE, declaration, what).await?;
            if *cron != s.cron || *time_zone != s.time_zone {
                tx.exec(queries::RETIME_SCHEDULE, p![s.id, now], what)
                    .await?;
            }
        }
    }
    tx.wake(Wakeup::Work {
        queue: s.queue.clone(),
    });
    Ok(Reply::Upserted(timing.is_none()))
}

/// Pauses or resumes a schedule; a resumed one may be due at once, so its workers are woken.
pub(super) async fn pause_schedule(
    tx: &mut Tx<'_>,
    id: &str,
    paused: bool,
) -> Result<Reply, Error> {
    let queue: Option<String> = tx
        .first(queries::SCHEDULE_QUEUE, p![id], "pausing a schedule")
        .await?;
    tx.exec(
        queries::PAUSE_SCHEDULE,
        p![id, i64::from(paused)],
        "pausing a schedule",
    )
    .await?;
    let Some(queue) = queue else {
        return Err(Error::NotFound { id: id.to_owned() });
    };
    if !paused {
        tx.wake(Wakeup::Work { queue });
    }
    Ok(Reply::Done)
}

/// Deletes a schedule; answers whether there was one.
pub(super) async fn delete_schedule(tx: &mut Tx<'_>, id: &str) -> Result<Reply, Error> {
    let deleted = tx
        .exec(queries::DELETE_SCHEDULE, p![id], "deleting a schedule")
        .await?;
    Ok(Reply::Deleted(deleted > 0))
}

/// Holds the due schedules of the queue and names for the worker, names in turn from a random
/// first one, as task claims do.
pub(super) async fn claim_schedules(
    tx: &mut Tx<'_>,
    p: &ClaimSchedulesParams,
) -> Result<Reply, Error> {
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
    for name in names {
        let left = limit - due.len();
        if left == 0 {
            break;
        }
        let rows: Vec<mysql_async::Row> = tx
            .all(
                queries::DUE_SCHEDULES,
                p![
                    p.queue,
                    name,
                    now,
                    i64::try_from(left).unwrap_or(i64::MAX),
                    by
                ],
                what,
            )
            .await?;
        for row in rows {
            let row = stored(row, what)?;
            if seen.insert(row.0.clone()) {
                due.push(row);
            }
        }
    }

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
        tx.exec(
            queries::LOCK_SCHEDULE,
            p![due.row.schedule.id, p.worker_id, until],
            what,
        )
        .await?;
    }
    Ok(Reply::SchedulesClaimed(claimed))
}

/// Fires a schedule the worker holds: each fire time in order under the overlap policy, then
/// the next fire time (or the error) and the hold given up. A schedule paused while held only
/// has its hold given up: the times stay for its catch-up on resume.
pub(super) async fn fire_schedule(tx: &mut Tx<'_>, p: &FireScheduleParams) -> Result<Reply, Error> {
    let what = "firing a schedule";
    let held: Option<Held> = tx
        .first(queries::HELD_SCHEDULE, p![p.id, p.worker_id], what)
        .await?;
    let Some((paused, task_name, queue, input_text, overlap, mut last)) = held else {
        return Err(Error::LeaseLost { id: p.id.clone() });
    };
    if paused != 0 {
        tx.exec(queries::RELEASE_SCHEDULE, p![&p.id], what).await?;
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
        if status(tx, id).await?.is_none() {
            let previous = match &last {
                Some(prev) => status(tx, prev)
                    .await?
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
                        outcome
                            .cancelled
                            .extend(cancel_tree(tx, &prev, true).await?);
                        if let Some(parent) = parent {
                            if let Some(queue) = wake_waiter(tx, &parent, "child", &prev).await? {
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
            )
            .await?;
            if started.created {
                outcome.started.push(id.clone());
            }
        }
        tx.exec(
            queries::RECORD_FIRE,
            p![p.id, clock::format(clock::system_ms(*at)), id],
            what,
        )
        .await?;
        last = Some(id.clone());
    }
    let next = p.next_fire_at.map(|t| clock::format(clock::system_ms(t)));
    tx.exec(queries::FIRED_SCHEDULE, p![p.id, next, p.error], what)
        .await?;
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
async fn status(tx: &mut Tx<'_>, id: &str) -> Result<Option<(String, Option<String>)>, Error> {
    tx.first(queries::EXECUTION_STATUS, p![id], "firing a schedule")
        .await
}

/// Whether a stored execution status is a final one.
fn is_finished(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// Every schedule, by id.
pub(crate) async fn list_schedules(tx: &mut Tx<'_>) -> Result<Vec<ScheduleRow>, Error> {
    let what = "listing schedules";
    let rows: Vec<mysql_async::Row> = tx.all(queries::LIST_SCHEDULES, p![], what).await?;
    let mut schedules = Vec::new();
    for row in rows {
        let row = stored(row, what)?;
        schedules.push(schedule_row(row)?.0);
    }
    Ok(schedules)
}

/// How long until a schedule of the queue with one of the names can be claimed: zero when
/// one is due (or not computed yet), a held one at the end of its hold if that is later;
/// `None` when there is none (paused and stopped ones do not count).
pub(crate) async fn next_schedule_at(
    tx: &mut Tx<'_>,
    p: &NextRunAtParams,
) -> Result<Option<Duration>, Error> {
    let now = tx.now();
    let now_text = clock::format(now);
    let earliest = super::read::earliest_by_name(
        tx,
        queries::NEXT_SCHEDULE_AT,
        "next_schedule_at",
        p,
        Some(&now_text),
    )
    .await?;
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
