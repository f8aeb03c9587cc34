//! Durable waits (`zart_sleep`, `zart_await_event`, `zart_start_child`) and what ends them
//! (`zart_send_event` with its event hand-over).
//!
//! A wait is a step row, `waiting` while open, with its wake time (or timeout) in `wake_at`.
//! A wait being registered holds its execution's task row (the fence check locks it), and an
//! event being sent locks the same row first (`fence::lock_task`), so the two take turns even
//! from different processes: the event is seen either by the wait or by the sender's
//! hand-over, never lost between them.

use super::p;
use zart::limits::check_name;
use zart::scheduler::{
    AwaitEventParams, ChildSpec, ChildWait, EventWait, EventWaitRecord, Lease, SendEventParams,
    SleepParams, StartChildParams, StartChildrenParams, WakeAt, Wakeup,
};
use zart::{Error, ErrorRecord, ExecutionStatus};

use super::fence::{hold, lock_task, suspend, wake_waiter};
use super::start::{insert_execution, NewExecution};
use super::{check_size, check_wait, Tx};
use crate::clock;
use crate::errors::{error_record, from_json, to_json};
use crate::queries;
use crate::writer::Reply;

/// Finds the open step row of a wait, or records it (`waiting`, with `wake_at` and `output`)
/// on first reach. Returns its wake time and whether it was recorded now.
async fn open_wait(
    tx: &mut Tx<'_>,
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
        .first(queries::FIND_WAIT, p![id, name], "opening a wait")
        .await?;
    match found {
        None => {
            tx.exec(
                queries::OPEN_WAIT,
                p![id, name, seq, kind, wake_at, output, tx.now_text()],
                "opening a wait",
            )
            .await?;
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
async fn close_wait(
    tx: &mut Tx<'_>,
    id: &str,
    name: &str,
    status: &str,
    output: Option<String>,
    error: Option<String>,
) -> Result<(), Error> {
    tx.exec(
        queries::CLOSE_WAIT,
        p![id, name, status, output, error, tx.now_text()],
        "closing a wait",
    )
    .await?;
    Ok(())
}

pub(super) async fn sleep(tx: &mut Tx<'_>, p: &SleepParams) -> Result<Reply, Error> {
    let wake = match p.until {
        WakeAt::After(delay) => {
            let ms = clock::millis(delay);
            check_wait("sleep", ms)?;
            tx.now.saturating_add(ms)
        }
        WakeAt::At(time) => clock::system_ms(time),
    };
    hold(tx, &p.lease).await?;
    let (wake, _) = open_wait(
        tx,
        &p.lease,
        &p.name,
        p.seq,
        "sleep",
        Some(clock::format(wake)),
        None,
    )
    .await?;
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
        )
        .await?;
        return Ok(Reply::Slept(None));
    }
    suspend(
        tx,
        &p.lease,
        clock::format(wake),
        "sleeping",
        "sleep",
        &p.name,
    )
    .await?;
    tx.wake(Wakeup::Timer {
        queue: p.queue.clone(),
    });
    Ok(Reply::Slept(Some(clock::duration(wake - tx.now))))
}

/// Consumes the oldest buffered event `event_name` that arrived by `wake` (the wait's timeout)
/// into wait step `step`; returns its payload if there was one.
async fn take_event(
    tx: &mut Tx<'_>,
    id: &str,
    step: &str,
    event_name: &str,
    wake: Option<&str>,
) -> Result<Option<serde_json::Value>, Error> {
    let event: Option<(i64, String)> = tx
        .first(
            queries::OLDEST_EVENT,
            p![id, event_name, wake],
            "taking an event",
        )
        .await?;
    let Some((event_id, payload)) = event else {
        return Ok(None);
    };
    tx.exec(
        queries::CONSUME_EVENT,
        p![event_id, tx.now_text(), step],
        "taking an event",
    )
    .await?;
    let payload: serde_json::Value = from_json(&payload, "an event payload")?;
    let record = EventWaitRecord::Received {
        received: payload.clone(),
    };
    let output = to_json(&record.to_output(), "an event wait record")?;
    close_wait(tx, id, step, "completed", Some(output), None).await?;
    Ok(Some(payload))
}

pub(super) async fn await_event(tx: &mut Tx<'_>, p: &AwaitEventParams) -> Result<Reply, Error> {
    let timeout = p.timeout.map(clock::millis);
    if let Some(ms) = timeout {
        check_wait("event timeout", ms)?;
    }
    hold(tx, &p.lease).await?;
    let id = &p.lease.execution_id;
    let (wake, _) = open_wait(
        tx,
        &p.lease,
        &p.name,
        p.seq,
        "event",
        timeout.map(|ms| clock::format(tx.now.saturating_add(ms))),
        None,
    )
    .await?;
    if let Some(payload) = take_event(tx, id, &p.name, &p.event_name, wake.as_deref()).await? {
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
        close_wait(tx, id, &p.name, "completed", Some(output), None).await?;
        return Ok(Reply::Event(EventWait::TimedOut));
    }
    let run_at = wake.unwrap_or_else(|| clock::INFINITY.to_owned());
    suspend(tx, &p.lease, run_at, "waiting", "event", &p.event_name).await?;
    if wake_ms.is_some() {
        tx.wake(Wakeup::Timer {
            queue: p.queue.clone(),
        });
    }
    Ok(Reply::Event(EventWait::Waiting {
        timeout_in: wake_ms.map(|at| clock::duration(at - tx.now)),
    }))
}

pub(super) async fn send_event(tx: &mut Tx<'_>, p: &SendEventParams) -> Result<Reply, Error> {
    check_name("event name", &p.name)?;
    let payload = to_json(&p.payload, "an event payload")?;
    check_size(tx, "event payload", &payload)?;
    let id = &p.execution_id;
    // Serialised with a wait being registered on this execution (it holds the task row).
    lock_task(tx, id, "sending an event").await?;
    let status: Option<String> = tx
        .first::<(String, Option<String>)>(queries::EXECUTION_STATUS, p![id], "sending an event")
        .await?
        .map(|(status, _)| status);
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
    tx.exec(
        queries::INSERT_EVENT,
        p![id, p.name, payload, tx.now_text()],
        "sending an event",
    )
    .await?;
    let waiting: i64 = tx
        .one(queries::WAITS_FOR_EVENT, p![id, p.name], "sending an event")
        .await?;
    if waiting == 0 {
        return Ok(Reply::Done);
    }
    // Suspended on exactly this event: hand it over into the open wait step for the name
    // (TaskContext::wait_for_event's step), so the replay finds it completed.
    let open: Option<(String, Option<String>)> = tx
        .first(queries::OPEN_EVENT_WAIT, p![id, p.name], "sending an event")
        .await?;
    if let Some((step, wake)) = open {
        take_event(tx, id, &step, &p.name, wake.as_deref()).await?;
    }
    if let Some(queue) = wake_waiter(tx, id, "event", &p.name).await? {
        tx.wake(Wakeup::Work { queue });
    }
    Ok(Reply::Done)
}

pub(super) async fn start_child(tx: &mut Tx<'_>, p: &StartChildParams) -> Result<Reply, Error> {
    hold(tx, &p.lease).await?;
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
    )
    .await?;
    if wait == ChildWait::Waiting {
        suspend(
            tx,
            &p.lease,
            clock::INFINITY.to_owned(),
            "waiting",
            "child",
            &p.child_id,
        )
        .await?;
    }
    Ok(Reply::Child(wait))
}

/// `zart_start_children`: each child as `start_child` without suspending; then, if asked and
/// any is unfinished, suspends until the first unfinished one (in order) finishes.
pub(super) async fn start_children(
    tx: &mut Tx<'_>,
    p: &StartChildrenParams,
) -> Result<Reply, Error> {
    hold(tx, &p.lease).await?;
    let mut waits = Vec::with_capacity(p.children.len());
    let mut first_waiting = None;
    for child in &p.children {
        let wait = child_wait(tx, &p.lease, child, &p.queue, false).await?;
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
        )
        .await?;
    }
    Ok(Reply::Children(waits))
}

/// `zart_child_wait`: with the parent held, starts or finds `child` (recording the wait on
/// first reach) and records its outcome once it has finished. Suspends nothing.
async fn child_wait(
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
    let (_, first) = open_wait(tx, lease, &p.name, p.seq, "child", None, Some(marker)).await?;
    if first {
        if p.child_id == *id {
            return Err(Error::invalid(
                "child id",
                "an execution cannot be its own child",
            ));
        }
        // At the parent's priority.
        let priority: i64 = tx
            .one(queries::EXECUTION_PRIORITY, p![id], "starting a child")
            .await?;
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
        )
        .await?;
    }
    if detached {
        // Recorded at once: the parent goes on.
        let marker = to_json(
            &serde_json::json!({ "child_id": p.child_id }),
            "a detached child",
        )?;
        close_wait(tx, id, &p.name, "completed", Some(marker), None).await?;
        return Ok(ChildWait::Detached);
    }
    let child: Option<(String, Option<String>, Option<String>)> = tx
        .first(queries::CHILD_OUTCOME, p![&p.child_id], "starting a child")
        .await?;
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
                close_wait(tx, id, &p.name, "completed", text, None).await?;
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
                close_wait(tx, id, &p.name, "failed", None, Some(text)).await?;
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
