//! Starting executions (`zart_start_execution`, `zart_insert_execution`): idempotent by id,
//! with the conflict rules of task, input, queue, parent and deadline.

use super::Cached;
use rusqlite::OptionalExtension;
use zart::limits::check_name;
use zart::scheduler::{StartExecutionParams, StartOutcome, WakeAt, Wakeup};
use zart::{Error, ExecutionStatus};

use super::{check_size, Tx};
use crate::clock;
use crate::errors::{from_json, to_json, SqlResult};
use crate::queries;
use crate::writer::Reply;

/// What a new execution is started with.
pub(super) struct NewExecution<'a> {
    pub id: &'a str,
    pub task_name: &'a str,
    pub input: &'a serde_json::Value,
    pub queue: &'a str,
    pub parent_id: Option<&'a str>,
    pub deadline_ms: Option<i64>,
    /// When it starts, in ms on the store's clock (`None`: now; an earlier time means now).
    pub start_ms: Option<i64>,
}

pub(super) fn start_execution(tx: &mut Tx<'_>, p: &StartExecutionParams) -> Result<Reply, Error> {
    if let Some(parent) = &p.parent_id {
        if parent == &p.id {
            return Err(Error::invalid(
                "parent id",
                "an execution cannot be its own parent",
            ));
        }
        let exists: Option<String> = tx
            .conn
            .row_cached(queries::EXECUTION_STATUS, [parent], |r| r.get(0))
            .optional()
            .or_db(tx.conn, "starting an execution")?;
        if exists.is_none() {
            // A new execution cannot be an ancestor of an existing one: no cycle can form.
            return Err(Error::invalid(
                "parent id",
                format!("no execution {parent:?}"),
            ));
        }
    }
    let outcome = insert_execution(
        tx,
        &NewExecution {
            id: &p.id,
            task_name: &p.task_name,
            input: &p.input,
            queue: &p.queue,
            parent_id: p.parent_id.as_deref(),
            deadline_ms: p.deadline.map(clock::millis),
            start_ms: start_ms(tx, p.start)?,
        },
    )?;
    Ok(Reply::Started(outcome))
}

/// The start time of a delayed start on the store's clock, refused over 100 years ahead.
fn start_ms(tx: &Tx<'_>, start: Option<WakeAt>) -> Result<Option<i64>, Error> {
    let limit = clock::millis(zart::limits::MAX_WAIT);
    Ok(match start {
        None => None,
        Some(WakeAt::After(delay)) => {
            let ms = clock::millis(delay);
            if ms > limit {
                return Err(Error::invalid(
                    "start delay",
                    format!("{ms} ms is outside 0 ms to 100 years"),
                ));
            }
            Some(tx.now.saturating_add(ms))
        }
        Some(WakeAt::At(at)) => {
            let ms = clock::system_ms(at);
            if ms.saturating_sub(tx.now) > limit {
                return Err(Error::invalid("start time", "is more than 100 years ahead"));
            }
            Some(ms)
        }
    })
}

/// Inserts the execution and its task if the id is new; else returns the existing one's status
/// when everything matches, or [`Error::Conflict`] saying what differs.
pub(super) fn insert_execution(
    tx: &mut Tx<'_>,
    e: &NewExecution<'_>,
) -> Result<StartOutcome, Error> {
    check_name("execution id", e.id)?;
    check_name("task name", e.task_name)?;
    check_name("queue", e.queue)?;
    let input = to_json(e.input, "the input")?;
    check_size(tx, "input", &input)?;
    if let Some(ms) = e.deadline_ms {
        if ms <= 0 || ms > clock::millis(zart::limits::MAX_WAIT) {
            return Err(Error::invalid(
                "deadline",
                format!("{ms} ms is outside 1 ms to 100 years"),
            ));
        }
    }
    let now = tx.now_text();
    // The deadline counts from the start: a delayed execution gets its whole deadline.
    let start = e.start_ms.map_or(tx.now, |ms| ms.max(tx.now));
    let start_at = (start > tx.now).then(|| clock::format(start));
    let run_at = clock::format(start);
    let deadline_at = e
        .deadline_ms
        .map(|ms| clock::format(start.saturating_add(ms)));
    let inserted = tx
        .conn
        .exec_cached(
            queries::INSERT_EXECUTION,
            rusqlite::params![
                e.id,
                e.task_name,
                e.queue,
                input,
                e.parent_id,
                deadline_at,
                now,
                start_at
            ],
        )
        .or_db(tx.conn, "starting an execution")?;
    if inserted == 1 {
        tx.conn
            .exec_cached(
                queries::INSERT_TASK,
                rusqlite::params![e.id, e.task_name, e.queue, run_at],
            )
            .or_db(tx.conn, "starting an execution")?;
        tx.wake(Wakeup::Work {
            queue: e.queue.to_owned(),
        });
        return Ok(StartOutcome {
            created: true,
            status: ExecutionStatus::Scheduled,
            id: e.id.to_owned(),
        });
    }
    let existing = tx
        .conn
        .row_cached(queries::EXISTING_EXECUTION, [e.id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .or_db(tx.conn, "starting an execution")?;
    // started_from: the start time asked for, else the creation time.
    let (task_name, stored_input, queue, parent_id, deadline_at, started_from, status) = existing;
    let conflict = |detail: String| Error::Conflict {
        id: e.id.to_owned(),
        detail,
    };
    if task_name != e.task_name {
        return Err(conflict(format!(
            "execution {:?} already exists with task {task_name:?}, not {:?}",
            e.id, e.task_name
        )));
    }
    let stored: serde_json::Value = from_json(&stored_input, "a stored input")?;
    if &stored != e.input {
        return Err(conflict(format!(
            "execution {:?} already exists with a different input",
            e.id
        )));
    }
    if queue != e.queue {
        return Err(conflict(format!(
            "execution {:?} already exists in queue {queue:?}, not {:?}",
            e.id, e.queue
        )));
    }
    if parent_id.as_deref() != e.parent_id {
        let show = |p: Option<&str>| p.map_or("none".to_owned(), |p| format!("{p:?}"));
        return Err(conflict(format!(
            "execution {:?} already exists with parent {}, not {}",
            e.id,
            show(parent_id.as_deref()),
            show(e.parent_id)
        )));
    }
    let stored_deadline = match deadline_at {
        Some(at) => Some(
            clock::parse_stored(&at, "a deadline")?
                - clock::parse_stored(&started_from, "a start time")?,
        ),
        None => None,
    };
    if stored_deadline != e.deadline_ms {
        let show = |d: Option<i64>| d.map_or("none".to_owned(), |ms| format!("{ms} ms"));
        return Err(conflict(format!(
            "execution {:?} already exists with deadline {}, not {}",
            e.id,
            show(stored_deadline),
            show(e.deadline_ms)
        )));
    }
    Ok(StartOutcome {
        created: false,
        status: ExecutionStatus::parse(&status)?,
        id: e.id.to_owned(),
    })
}
