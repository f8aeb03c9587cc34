//! Durable waits (`zart_sleep`, `zart_await_event`, `zart_start_child`) and what ends them
//! (`zart_send_event` with its event hand-over).
//!
//! A wait is a step row, `waiting` while open, with its wake time (or timeout) in `wake_at`.
//! Every write happens under the writer's one transaction at a time, so a wait being
//! registered and an event being sent are serialised without a lock of their own: the event
//! is seen either by the wait or by the sender's wake-up, never lost between them.

use super::Cached;
use rusqlite::OptionalExtension;
use zart::limits::check_name;
use zart::scheduler::{
    AwaitEventParams, ChildSpec, ChildWait, EventWait, EventWaitRecord, Lease, SendEventParams,
    SleepParams, StartChildParams, StartChildrenParams, WakeAt, Wakeup,
};
use zart::{Error, ErrorRecord, ExecutionStatus};

use super::fence::{hold, suspend, wake_waiter};
use super::start::{insert_execution, NewExecution};
use super::{check_size, check_wait, Tx};
use crate::clock;
use crate::errors::{error_record, from_json, to_json, SqlResult};
use crate::queries;
use crate::writer::Reply;

/// Finds the open step row of a wait, or records it (`waiting`, with `wake_at` and `output`)
/// on first reach. Returns its wake time and whether it was recorded now.
fn open_wait(
    tx: &Tx<'_>,
    lease: &Lease,
    name: &str,
    seq: u32,
    kind: &str,
    wake_at: Option<String>,
    output: Option<String>,
) -> Result<(Option<String>, bool), Error> {
    check_name("step name", name)?;
    let id = &lease.execution_id;
    let found: Option<(Option<String>, String)> = tx
        .conn
        .row_cached(queries::FIND_WAIT, rusqlite::params![id, name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .or_db(tx.conn, "opening a wait")?;
    match found {
        None => {
            tx.conn
                .exec_cached(
                    queries::OPEN_WAIT,
                    rusqlite::params![id, name, seq, kind, wake_at, output, tx.now_text()],
                )
                .or_db(tx.conn, "opening a wait")?;
            Ok((wake_at, true))
        }
        Some((_, status)) if status != "waiting" => Err(Error::StepAlreadyRecorded {
            id: id.clone(),
            step: name.to_owned(),
        }),
        Some((wake, _)) => Ok((wake, false)),
    }
}

/// Records how a wait ended.
fn close_wait(
    tx: &Tx<'_>,
    id: &str,
    name: &str,
    status: &str,
    output: Option<String>,
    error: Option<String>,
) -> Result<(), Error> {
    tx.conn
        .exec_cached(
            queries::CLOSE_WAIT,
            rusqlite::params![id, name, status, output, error, tx.now_text()],
        )
        .or_db(tx.conn, "closing a wait")?;
    Ok(())
}

pub(super) fn sleep(tx: &mut Tx<'_>, p: &SleepParams) -> Result<Reply, Error> {
    let wake = match p.until {
        WakeAt::After(delay) => {
            let ms = clock::millis(delay);
            check_wait("sleep", ms)?;
            tx.now.saturating_add(ms)
        }
        WakeAt::At(time) => clock::system_ms(time),
    };
    hold(tx, &p.lease)?;
    let (wake, _) = open_wait(
        tx,
        &p.lease,
        &p.name,
        p.seq,
        "sleep",
        Some(clock::format(wake)),
        None,
    )?;
    let wake = match wake {
        Some(text) => clock::parse_stored(&text, "a wake time")?,
        None => tx.now,
    };
    if wake <= tx.now {
        let now = to_json(&tx.now_text(), "the time")?;
        close_wait(
            tx,
            &p.lease.execution_id,
            &p.name,
            "completed",
            Some(now),
            None,
        )?;
        return Ok(Reply::Slept(None));
    }
    suspend(
        tx,
        &p.lease,
        clock::format(wake),
        "sleeping",
        "sleep",
        &p.name,
    )?;
    tx.wake(Wakeup::Timer {
        queue: p.queue.clone(),
    });
    Ok(Reply::Slept(Some(clock::duration(wake - tx.now))))
}

/// Consumes the oldest buffered event `event_name` that arrived by `wake` (the wait's timeout)
/// into wait step `step`; returns its payload if there was one.
fn take_event(
    tx: &Tx<'_>,
    id: &str,
    step: &str,
    event_name: &str,
    wake: Option<&str>,
) -> Result<Option<serde_json::Value>, Error> {
    let event: Option<(i64, String)> = tx
        .conn
        .row_cached(
            queries::OLDEST_EVENT,
            rusqlite::params![id, event_name, wake],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .or_db(tx.conn, "taking an event")?;
    let Some((event_id, payload)) = event else {
        return Ok(None);
    };
    tx.conn
        .exec_cached(
            queries::CONSUME_EVENT,
            rusqlite::params![event_id, tx.now_text(), step],
        )
        .or_db(tx.conn, "taking an event")?;
    let payload: serde_json::Value = from_json(&payload, "an event payload")?;
    let record = EventWaitRecord::Received {
        received: payload.clone(),
    };
    let output = to_json(&record.to_output(), "an event wait record")?;
    close_wait(tx, id, step, "completed", Some(output), None)?;
    Ok(Some(payload))
}

pub(super) fn await_event(tx: &mut Tx<'_>, p: &AwaitEventParams) -> Result<Reply, Error> {
    let timeout = p.timeout.map(clock::millis);
    if let Some(ms) = timeout {
        check_wait("event timeout", ms)?;
    }
    hold(tx, &p.lease)?;
    let id = &p.lease.execution_id;
    let (wake, _) = open_wait(
        tx,
        &p.lease,
        &p.name,
        p.seq,
        "event",
        timeout.map(|ms| clock::format(tx.now.saturating_add(ms))),
        None,
    )?;
    if let Some(payload) = take_event(tx, id, &p.name, &p.event_name, wake.as_deref())? {
        return Ok(Reply::Event(EventWait::Received(payload)));
    }
    let wake_ms = match &wake {
        Some(text) => Some(clock::parse_stored(text, "an event timeout")?),
        None => None,
    };
    if wake_ms.is_some_and(|at| at <= tx.now) {
        let output = to_json(
            &EventWaitRecord::timed_out().to_output(),
            "an event wait record",
        )?;
        close_wait(tx, id, &p.name, "completed", Some(output), None)?;
        return Ok(Reply::Event(EventWait::TimedOut));
    }
    let run_at = wake.unwrap_or_else(|| clock::INFINITY.to_owned());
    suspend(tx, &p.lease, run_at, "waiting", "event", &p.event_name)?;
    if wake_ms.is_some() {
        tx.wake(Wakeup::Timer {
            queue: p.queue.clone(),
        });
    }
    Ok(Reply::Event(EventWait::Waiting {
        timeout_in: wake_ms.map(|at| clock::duration(at - tx.now)),
    }))
}

pub(super) fn send_event(tx: &mut Tx<'_>, p: &SendEventParams) -> Result<Reply, Error> {
    check_name("event name", &p.name)?;
    let payload = to_json(&p.payload, "an event payload")?;
    check_size(tx, "event payload", &payload)?;
    let id = &p.execution_id;
    let status: Option<String> = tx
        .conn
        .row_cached(queries::EXECUTION_STATUS, [id], |r| r.get(0))
        .optional()
        .or_db(tx.conn, "sending an event")?;
    let Some(status) = status else {
        return Err(Error::NotFound { id: id.clone() });
    };
    if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
        // Nothing would ever consume it.
        return Err(Error::Finished {
            id: id.clone(),
            status,
            what: "the event was not stored".to_owned(),
        });
    }
    tx.conn
        .exec_cached(
            queries::INSERT_EVENT,
            rusqlite::params![id, p.name, payload, tx.now_text()],
        )
        .or_db(tx.conn, "sending an event")?;
    let waiting: i64 = tx
        .conn
        .row_cached(
            queries::WAITS_FOR_EVENT,
            rusqlite::params![id, p.name],
            |r| r.get(0),
        )
        .or_db(tx.conn, "sending an event")?;
    if waiting == 0 {
        return Ok(Reply::Done);
    }
    // Suspended on exactly this event: hand it over into the open wait step for the name
    // (TaskContext::wait_for_event's step), so the replay finds it completed.
    let open: Option<(String, Option<String>)> = tx
        .conn
        .row_cached(
            queries::OPEN_EVENT_WAIT,
            rusqlite::params![id, p.name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .or_db(tx.conn, "sending an event")?;
    if let Some((step, wake)) = open {
        take_event(tx, id, &step, &p.name, wake.as_deref())?;
    }
    if let Some(queue) = wake_waiter(tx, id, "event", &p.name)? {
        tx.wake(Wakeup::Work { queue });
    }
    Ok(Reply::Done)
}

pub(super) fn start_child(tx: &mut Tx<'_>, p: &StartChildParams) -> Result<Reply, Error> {
    hold(tx, &p.lease)?;
    let wait = child_wait(
        tx,
        &p.lease,
        &ChildSpec {
            name: p.name.clone(),
            seq: p.seq,
            child_id: p.child_id.clone(),
            task_name: p.task_name.clone(),
            input: p.input.clone(),
        },
        &p.queue,
        p.detached,
    )?;
    if wait == ChildWait::Waiting {
        suspend(
            tx,
            &p.lease,
            clock::INFINITY.to_owned(),
            "waiting",
            "child",
            &p.child_id,
        )?;
    }
    Ok(Reply::Child(wait))
}

/// `zart_start_children`: each child as `start_child` without suspending; then, if asked and
/// any is unfinished, suspends until the first unfinished one (in order) finishes.
pub(super) fn start_children(tx: &mut Tx<'_>, p: &StartChildrenParams) -> Result<Reply, Error> {
    hold(tx, &p.lease)?;
    let mut waits = Vec::with_capacity(p.children.len());
    let mut first_waiting = None;
    for child in &p.children {
        let wait = child_wait(tx, &p.lease, child, &p.queue, false)?;
        if wait == ChildWait::Waiting && first_waiting.is_none() {
            first_waiting = Some(child.child_id.as_str());
        }
        waits.push(wait);
    }
    if let (true, Some(child_id)) = (p.suspend, first_waiting) {
        suspend(
            tx,
            &p.lease,
            clock::INFINITY.to_owned(),
            "waiting",
            "child",
            child_id,
        )?;
    }
    Ok(Reply::Children(waits))
}

/// `zart_child_wait`: with the parent held, starts or finds `child` (recording the wait on
/// first reach) and records its outcome once it has finished. Suspends nothing.
fn child_wait(
    tx: &mut Tx<'_>,
    lease: &Lease,
    p: &ChildSpec,
    queue: &str,
    detached: bool,
) -> Result<ChildWait, Error> {
    let id = &lease.execution_id;
    let marker = to_json(
        &serde_json::json!({ "child_id": p.child_id }),
        "a child wait",
    )?;
    let (_, first) = open_wait(tx, lease, &p.name, p.seq, "child", None, Some(marker))?;
    if first {
        if p.child_id == *id {
            return Err(Error::invalid(
                "child id",
                "an execution cannot be its own child",
            ));
        }
        // At the parent's priority.
        let priority: i64 = tx
            .conn
            .row_cached(queries::EXECUTION_PRIORITY, [id], |r| r.get(0))
            .or_db(tx.conn, "starting a child")?;
        insert_execution(
            tx,
            &NewExecution {
                id: &p.child_id,
                task_name: &p.task_name,
                input: &p.input,
                queue,
                // A detached child has no parent: nothing cascades to it.
                parent_id: (!detached).then_some(id.as_str()),
                deadline_ms: None,
                start_ms: None,
                priority: i16::try_from(priority).unwrap_or_default(),
                limit_key: None,
            },
        )?;
    }
    if detached {
        // Recorded at once: the parent goes on.
        let marker = to_json(
            &serde_json::json!({ "child_id": p.child_id }),
            "a detached child",
        )?;
        close_wait(tx, id, &p.name, "completed", Some(marker), None)?;
        return Ok(ChildWait::Detached);
    }
    let child: Option<(String, Option<String>, Option<String>)> = tx
        .conn
        .row_cached(queries::CHILD_OUTCOME, [&p.child_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .or_db(tx.conn, "starting a child")?;
    if let Some((status, output, error)) = child {
        let status = ExecutionStatus::parse(&status)?;
        if status.is_terminal() {
            let output = match output {
                Some(text) => Some(from_json::<serde_json::Value>(&text, "a child's output")?),
                None => None,
            };
            let error = error.as_deref().map(error_record);
            if status == ExecutionStatus::Completed {
                let text = output
                    .as_ref()
                    .map(|o| to_json(o, "a child's output"))
                    .transpose()?;
                close_wait(tx, id, &p.name, "completed", text, None)?;
            } else {
                // Recorded as the parent's own failure (kind child_failed, the child's
                // message, and the child's id as zart-pg stores it), so a replay sees exactly
                // what the first run saw.
                let record = ErrorRecord {
                    kind: "child_failed".to_owned(),
                    message: error.as_ref().map_or_else(
                        || format!("child {:?} ended {status}", p.child_id),
                        |e| e.message.clone(),
                    ),
                    step: Some(p.name.clone()),
                    attempts: Some(1),
                    ..Default::default()
                };
                let text = to_json(
                    &ChildFailure {
                        record,
                        child_id: &p.child_id,
                    },
                    "a child failure",
                )?;
                close_wait(tx, id, &p.name, "failed", None, Some(text))?;
            }
            return Ok(ChildWait::Finished {
                status,
                output,
                error,
            });
        }
    }
    Ok(ChildWait::Waiting)
}

/// A child's failure as its parent's wait records it: the error record and the child's id.
#[derive(serde::Serialize)]
struct ChildFailure<'a> {
    #[serde(flatten)]
    record: ErrorRecord,
    child_id: &'a str,
}
