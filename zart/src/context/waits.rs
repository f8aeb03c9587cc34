//! Durable waits: sleeps, events and child workflows. Each is a step row of its own kind; while
//! it is open the execution is suspended and holds no worker slot, and replay after it ends
//! returns its recorded outcome.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{decode, recorded_failure, TaskContext};
use crate::error::FailureKind;
use crate::scheduler::{
    AwaitEventParams, ChildWait, RecordedStep, SleepParams, StartChildParams, StepKind, StepStatus,
    WakeAt,
};
use crate::{ExecutionStatus, Scheduler, TaskError};

/// The result of a child step recorded as finished (`None` while its wait is open).
pub(super) fn recorded_child<T: DeserializeOwned>(
    name: &str,
    child_id: &str,
    recorded: RecordedStep,
) -> Option<Result<T, TaskError>> {
    match recorded.status {
        StepStatus::Completed => Some(decode(recorded.output.unwrap_or_default(), || {
            format!("the output of child {child_id:?}")
        })),
        StepStatus::Failed => Some(Err(recorded_failure(name, &recorded))),
        StepStatus::Retrying | StepStatus::Waiting => None,
    }
}

/// The result of child step `name` once its child finished: its output, or a failure of kind
/// `child_failed` with the child's message.
pub(super) fn finished_child<T: DeserializeOwned>(
    name: &str,
    child_id: &str,
    status: ExecutionStatus,
    output: Option<serde_json::Value>,
    error: Option<crate::ErrorRecord>,
) -> Result<T, TaskError> {
    if status == ExecutionStatus::Completed {
        return decode(output.unwrap_or_default(), || {
            format!("the output of child {child_id:?}")
        });
    }
    Err(TaskError::StepFailed {
        step: name.to_owned(),
        message: match error {
            Some(e) => e.message,
            None => format!("child {child_id:?} ended {status}"),
        },
        attempts: 1,
        kind: FailureKind::Child,
        // As the recording says (kind child_failed); the child's own error, an application
        // error or not, is on the child's execution.
        app: None,
    })
}

/// How a [`TaskContext::wait_for_event`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome<T> {
    /// The event arrived with this payload.
    Received(T),
    /// The timeout passed first. The workflow carries on from here.
    TimedOut,
    /// An event arrived whose payload does not fit `T`. It was consumed (the next wait for
    /// the name takes the next event) and is recorded as received, so a replay returns this
    /// again; the workflow decides what a bad event means.
    Malformed {
        /// The payload as sent.
        payload: serde_json::Value,
        /// Why it does not fit `T`.
        error: String,
    },
}

impl<T> EventOutcome<T> {
    /// The payload, or `None` after a timeout or for a malformed event.
    pub fn received(self) -> Option<T> {
        match self {
            EventOutcome::Received(payload) => Some(payload),
            EventOutcome::TimedOut | EventOutcome::Malformed { .. } => None,
        }
    }
}

impl<T: DeserializeOwned> EventOutcome<T> {
    /// `Received` with the payload read as `T`, or `Malformed` when it does not fit.
    fn read(payload: serde_json::Value) -> Self {
        match T::deserialize(&payload) {
            Ok(value) => EventOutcome::Received(value),
            Err(err) => EventOutcome::Malformed {
                error: err.to_string(),
                payload,
            },
        }
    }
}

/// The step name of the `nth` wait (from 1) for `event_name` in one run: `event:<name>` for the
/// first, `event#<n>:<name>` after (the two forms cannot meet, whatever the name).
pub(crate) fn event_step_name(event_name: &str, nth: u32) -> String {
    if nth <= 1 {
        format!("event:{event_name}")
    } else {
        format!("event#{nth}:{event_name}")
    }
}

impl<S: Scheduler> TaskContext<S> {
    /// Sleeps durably for `duration`, counted on the database clock from the first time the
    /// sleep is reached. The execution is suspended and resumes on any worker once the time has
    /// come; no worker slot is held meanwhile. A replay after the sleep returns at once.
    ///
    /// # Errors
    /// [`TaskError::Suspended`] while the sleep lasts (propagate it with `?`);
    /// [`TaskError::Failed`] for a bad step name or a sleep over 100 years
    /// ([`crate::limits::MAX_WAIT`]); [`TaskError::NonDeterminism`] and
    /// [`TaskError::DuplicateStep`] as for a step; the control-flow errors of
    /// [`TaskContext::step`].
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// ctx.sleep("cool-off", Duration::from_secs(24 * 3600)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn sleep(&mut self, name: &str, duration: Duration) -> Result<(), TaskError> {
        self.sleep_inner(name, WakeAt::After(duration)).await
    }

    /// Sleeps durably until `time` (compared with the database clock); see
    /// [`TaskContext::sleep`]. A time in the past returns at once (after recording the step).
    ///
    /// # Errors
    /// As [`TaskContext::sleep`].
    pub async fn sleep_until(&mut self, name: &str, time: SystemTime) -> Result<(), TaskError> {
        self.sleep_inner(name, WakeAt::At(time)).await
    }

    async fn sleep_inner(&mut self, name: &str, until: WakeAt) -> Result<(), TaskError> {
        crate::limits::check_name("step name", name).map_err(TaskError::failed)?;
        let length = match until {
            WakeAt::After(d) => d,
            WakeAt::At(t) => t
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        };
        crate::limits::check_wait("sleep", length).map_err(TaskError::failed)?;
        let (seq, recorded) = self.enter(name, StepKind::Sleep)?;
        if recorded.is_some_and(|r| r.status == StepStatus::Completed) {
            return Ok(());
        }
        let left = self
            .scheduler
            .sleep(SleepParams {
                lease: self.lease.clone(),
                queue: self.queue.clone(),
                name: name.to_owned(),
                seq,
                until,
            })
            .await?;
        match left {
            None => Ok(()),
            Some(left) => Err(self.suspend(Some(left))),
        }
    }

    /// Waits durably for the event `event_name` sent to this execution (from Rust with
    /// [`crate::DurableScheduler::send_event`], from SQL with `zart_emit_event`, from a
    /// trigger, or with `zart send-event`). Events are buffered: one sent before the workflow
    /// gets here is delivered, the oldest first, each to one wait only; one sent after the
    /// timeout is not. `timeout` counts from the first time the wait is reached, on the
    /// database clock; `None` waits forever. The execution holds no worker slot while it waits.
    ///
    /// An event name is a channel: the same name can be waited for again and again, each wait
    /// taking the next event in the order they were sent, none twice. The first wait for a
    /// name is recorded as the step `event:<name>`, the n-th as `event#<n>:<name>`. An event
    /// whose payload does not fit `T` comes back as [`EventOutcome::Malformed`], consumed.
    ///
    /// # Errors
    /// [`TaskError::Suspended`] while waiting (propagate it with `?`); [`TaskError::Failed`]
    /// for a bad event name or a timeout over 100 years; [`TaskError::NonDeterminism`] as for a step; the control-flow errors of
    /// [`TaskContext::step`].
    ///
    /// A loop over a channel, ending on a sentinel:
    /// ```no_run
    /// # use zart::{EventOutcome, Scheduler, TaskContext, TaskError};
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// let mut items: Vec<String> = Vec::new();
    /// loop {
    ///     match ctx.wait_for_event::<Option<String>>("item", None).await? {
    ///         EventOutcome::Received(Some(item)) => items.push(item),
    ///         EventOutcome::Received(None) => break, // the sender's "done"
    ///         EventOutcome::Malformed { error, .. } => eprintln!("skipped a bad item: {error}"),
    ///         EventOutcome::TimedOut => break, // no timeout here: never
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{EventOutcome, Scheduler, TaskContext, TaskError};
    /// # #[derive(serde::Deserialize)] struct Approval { approved: bool }
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// match ctx.wait_for_event::<Approval>("approval", Some(Duration::from_secs(3 * 86400))).await? {
    ///     EventOutcome::Received(a) if a.approved => { /* ship it */ }
    ///     EventOutcome::Received(_) => { /* rejected */ }
    ///     EventOutcome::TimedOut => { /* escalate */ }
    ///     EventOutcome::Malformed { .. } => { /* not an approval: ask again */ }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_event<T: DeserializeOwned>(
        &mut self,
        event_name: &str,
        timeout: Option<Duration>,
    ) -> Result<EventOutcome<T>, TaskError> {
        crate::limits::check_name("event name", event_name).map_err(TaskError::failed)?;
        if let Some(timeout) = timeout {
            crate::limits::check_wait("event timeout", timeout).map_err(TaskError::failed)?;
        }
        let nth = {
            let count = self.event_waits.entry(event_name.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        // Not checked as a step name: the event name is (up to 255 bytes), the prefix is ours.
        let name = event_step_name(event_name, nth);
        let (seq, recorded) = self.enter(&name, StepKind::Event)?;
        if let Some(recorded) = recorded.filter(|r| r.status == StepStatus::Completed) {
            let output = recorded.output.unwrap_or_default();
            return match crate::scheduler::EventWaitRecord::from_output(output) {
                crate::scheduler::EventWaitRecord::Received { received } => {
                    Ok(EventOutcome::read(received))
                }
                crate::scheduler::EventWaitRecord::TimedOut { .. } => Ok(EventOutcome::TimedOut),
            };
        }
        let wait = self
            .scheduler
            .await_event(AwaitEventParams {
                lease: self.lease.clone(),
                queue: self.queue.clone(),
                name,
                seq,
                event_name: event_name.to_owned(),
                timeout,
            })
            .await?;
        match wait {
            crate::scheduler::EventWait::Received(payload) => Ok(EventOutcome::read(payload)),
            crate::scheduler::EventWait::TimedOut => Ok(EventOutcome::TimedOut),
            crate::scheduler::EventWait::Waiting { timeout_in } => Err(self.suspend(timeout_in)),
        }
    }

    /// Runs a child workflow and waits durably for its result. The child is the execution
    /// `<this execution's id>/<name>` of task `task` with `input`, started once (replays and
    /// retries reuse it) on this execution's queue, and run by any worker that registers
    /// `task`. The parent holds no worker slot while it waits. Cancelling the parent cancels
    /// the child.
    ///
    /// # Errors
    /// [`TaskError::StepFailed`] (kind `child_failed`) when the child fails or is cancelled,
    /// with its error message; [`TaskError::Suspended`] while waiting;
    /// [`TaskError::Serialization`] when `input` does not serialize or the output does not fit
    /// `O`; [`TaskError::Failed`] for a bad name, a child id over 255 bytes, or a child id
    /// taken by an execution of another task, input or parent (the message is the conflict;
    /// trying again could not help); [`TaskError::NonDeterminism`] and
    /// [`TaskError::DuplicateStep`] as for a step; the control-flow errors of
    /// [`TaskContext::step`].
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// let invoice_id: String = ctx.child("invoice", "create-invoice", &serde_json::json!({"order": 7})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn child<I: Serialize, O: DeserializeOwned>(
        &mut self,
        name: &str,
        task: &str,
        input: &I,
    ) -> Result<O, TaskError> {
        let child_id = self.child_id(name)?;
        let (seq, recorded) = self.enter(name, StepKind::Child)?;
        if let Some(result) = recorded.and_then(|r| recorded_child(name, &child_id, r)) {
            return result;
        }
        let wait = self
            .start_child(name, seq, &child_id, task, input, false)
            .await?;
        match wait {
            ChildWait::Finished {
                status,
                output,
                error,
            } => finished_child(name, &child_id, status, output, error),
            ChildWait::Waiting => Err(self.suspend(None)),
            ChildWait::Detached => Err(TaskError::failed(crate::Error::Database {
                message: format!("the store started child {child_id:?} detached, not as asked"),
                source: None,
            })),
        }
    }

    /// Starts a detached child workflow and goes on without waiting for it: the execution
    /// `<this execution's id>/<name>` of task `task` with `input`, on this execution's queue,
    /// started once (replays and retries find it started) and returned by id. A detached child
    /// is an execution of its own: it has no parent (`parent_id` is empty), so **cancelling or
    /// failing this execution does not cancel it**, and its outcome wakes nobody; wait for it
    /// from a client (`DurableScheduler::wait`) if you need to. It runs in this execution's
    /// tenant, at its priority. The step is recorded at once, kind `child`, with the output
    /// `{"child_id": ..}`.
    ///
    /// # Errors
    /// As [`TaskContext::child`], less the child's own failure (nobody waits for it).
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// // The audit trail outlives this workflow, whatever becomes of it.
    /// let audit_id = ctx.start_detached("audit", "write-audit-trail", &serde_json::json!({"order": 7})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_detached<I: Serialize>(
        &mut self,
        name: &str,
        task: &str,
        input: &I,
    ) -> Result<String, TaskError> {
        let child_id = self.child_id(name)?;
        let (seq, recorded) = self.enter(name, StepKind::Child)?;
        if recorded.is_some_and(|r| r.status == StepStatus::Completed) {
            return Ok(child_id);
        }
        let started = self
            .start_child(name, seq, &child_id, task, input, true)
            .await?;
        match started {
            ChildWait::Detached => Ok(child_id),
            other => Err(TaskError::failed(crate::Error::Database {
                message: format!("the store did not start child {child_id:?} detached: {other:?}"),
                source: None,
            })),
        }
    }

    /// The id of this execution's child `name` (`<id>/<name>`), checked.
    pub(super) fn child_id(&self, name: &str) -> Result<String, TaskError> {
        crate::limits::check_name("step name", name).map_err(TaskError::failed)?;
        let child_id = format!("{}/{name}", self.lease.execution_id);
        crate::limits::check_name("child execution id", &child_id).map_err(TaskError::failed)?;
        Ok(child_id)
    }

    /// Starts (or finds) child `child_id` through the store, from the step `name` at `seq`.
    async fn start_child<I: Serialize>(
        &self,
        name: &str,
        seq: u32,
        child_id: &str,
        task: &str,
        input: &I,
        detached: bool,
    ) -> Result<ChildWait, TaskError> {
        let input = serde_json::to_value(input).map_err(|source| TaskError::Serialization {
            action: "serialize",
            what: format!("the input of child {child_id:?}"),
            source,
        })?;
        Ok(self
            .scheduler
            .start_child(StartChildParams {
                lease: self.lease.clone(),
                name: name.to_owned(),
                seq,
                child_id: child_id.to_owned(),
                task_name: task.to_owned(),
                input,
                queue: self.queue.clone(),
                detached,
            })
            .await?)
    }
}
