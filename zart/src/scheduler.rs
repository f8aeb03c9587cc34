//! The storage backend trait: one method per stored procedure, one params struct per method.
//!
//! The core never sees SQL or driver types. `zart-pg` implements [`Scheduler`] for PostgreSQL;
//! other adapters implement the same trait and pass the same conformance suite.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::execution::{ErrorRecord, Execution};
use crate::Error;

/// A storage backend for executions, tasks, steps and events.
///
/// Every method that writes for a claimed execution is fenced by its [`Lease`]: a write with a
/// stale fence fails with [`Error::LeaseLost`] (or [`Error::Cancelled`]) and changes nothing.
#[async_trait]
pub trait Scheduler: Send + Sync + 'static {
    /// Checks that the schema is present and recent enough for this build.
    ///
    /// # Errors
    /// [`Error::Schema`] with a message that says to run `zart migrate`.
    async fn check_schema(&self) -> Result<(), Error>;

    /// Starts an execution if its id is new (`zart_start_execution`).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the id exists with another task or input.
    async fn start_execution(&self, params: StartExecutionParams) -> Result<StartOutcome, Error>;

    /// Claims up to `limit` due tasks for a worker (`zart_claim_tasks`).
    async fn claim_tasks(&self, params: ClaimTasksParams) -> Result<Vec<ClaimedTask>, Error>;

    /// Records one step result (`zart_commit_step`).
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] for a stale lease.
    async fn commit_step(&self, params: CommitStepParams) -> Result<(), Error>;

    /// Records a failed attempt and suspends the execution for the back-off (`zart_retry_step`).
    async fn retry_step(&self, params: RetryStepParams) -> Result<(), Error>;

    /// Records the final output or error and removes the task (`zart_complete_execution`);
    /// wakes a parent waiting for it.
    async fn complete_execution(&self, params: CompleteExecutionParams) -> Result<(), Error>;

    /// A durable sleep (`zart_sleep`): records the wake time on first reach, then either
    /// completes it (`None`: the time has come) or suspends until it (`Some(time left)`).
    async fn sleep(&self, params: SleepParams) -> Result<Option<Duration>, Error>;

    /// Waits for an event (`zart_await_event`): consumes a buffered one, reports the timeout,
    /// or suspends until an event or the timeout.
    async fn await_event(&self, params: AwaitEventParams) -> Result<EventWait, Error>;

    /// Buffers an event for an execution and wakes it if it waits for it (`zart_send_event`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when no execution has the id.
    async fn send_event(&self, params: SendEventParams) -> Result<(), Error>;

    /// Starts a child execution (idempotently) and reports its verdict, or suspends the parent
    /// until the child finishes (`zart_start_child`).
    async fn start_child(&self, params: StartChildParams) -> Result<ChildWait, Error>;

    /// Cancels an execution and its unfinished descendants (`zart_cancel_execution`); returns
    /// the ids cancelled (empty if it had already finished).
    ///
    /// # Errors
    /// [`Error::NotFound`] when no execution has the id.
    async fn cancel_execution(&self, id: &str) -> Result<Vec<String>, Error>;

    /// Renews a worker's leases in one statement (`zart_heartbeat`); returns those still held.
    async fn heartbeat(&self, params: HeartbeatParams) -> Result<Vec<Lease>, Error>;

    /// Gives leases back so the tasks are due at once (`zart_release_tasks`).
    async fn release_tasks(&self, params: ReleaseTasksParams) -> Result<u64, Error>;

    /// How long until the next task of a queue is due, by the database clock
    /// (`zart_next_run_at`); `None` when the queue has no task.
    async fn next_run_at(&self, params: NextRunAtParams) -> Result<Option<Duration>, Error>;

    /// Reads one execution (`zart_executions`), or `None` if the id is unknown.
    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, Error>;

    /// Subscribes to wake-ups (new work, timers, finished executions) from this backend.
    fn subscribe(&self) -> broadcast::Receiver<Wakeup>;
}

#[async_trait]
impl<T: Scheduler + ?Sized> Scheduler for Arc<T> {
    async fn check_schema(&self) -> Result<(), Error> {
        (**self).check_schema().await
    }
    async fn start_execution(&self, params: StartExecutionParams) -> Result<StartOutcome, Error> {
        (**self).start_execution(params).await
    }
    async fn claim_tasks(&self, params: ClaimTasksParams) -> Result<Vec<ClaimedTask>, Error> {
        (**self).claim_tasks(params).await
    }
    async fn commit_step(&self, params: CommitStepParams) -> Result<(), Error> {
        (**self).commit_step(params).await
    }
    async fn retry_step(&self, params: RetryStepParams) -> Result<(), Error> {
        (**self).retry_step(params).await
    }
    async fn complete_execution(&self, params: CompleteExecutionParams) -> Result<(), Error> {
        (**self).complete_execution(params).await
    }
    async fn sleep(&self, params: SleepParams) -> Result<Option<Duration>, Error> {
        (**self).sleep(params).await
    }
    async fn await_event(&self, params: AwaitEventParams) -> Result<EventWait, Error> {
        (**self).await_event(params).await
    }
    async fn send_event(&self, params: SendEventParams) -> Result<(), Error> {
        (**self).send_event(params).await
    }
    async fn start_child(&self, params: StartChildParams) -> Result<ChildWait, Error> {
        (**self).start_child(params).await
    }
    async fn cancel_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        (**self).cancel_execution(id).await
    }
    async fn heartbeat(&self, params: HeartbeatParams) -> Result<Vec<Lease>, Error> {
        (**self).heartbeat(params).await
    }
    async fn release_tasks(&self, params: ReleaseTasksParams) -> Result<u64, Error> {
        (**self).release_tasks(params).await
    }
    async fn next_run_at(&self, params: NextRunAtParams) -> Result<Option<Duration>, Error> {
        (**self).next_run_at(params).await
    }
    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, Error> {
        (**self).get_execution(id).await
    }
    fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        (**self).subscribe()
    }
}

/// The type-erased backend handle that workflow code sees as `TaskContext<impl Scheduler>`.
pub type DynScheduler = Arc<dyn Scheduler>;

/// A worker's hold on one claimed execution. Every write for the run carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The execution's bucket (`zart_bucket(id)`).
    pub bucket: i16,
    /// The execution id.
    pub execution_id: String,
    /// The fencing token, drawn at random by every claim.
    pub fence: i64,
}

/// Arguments of [`Scheduler::start_execution`].
#[derive(Debug, Clone)]
pub struct StartExecutionParams {
    /// The execution id (idempotency key).
    pub id: String,
    /// The registered task name.
    pub task_name: String,
    /// The JSON input.
    pub input: serde_json::Value,
    /// The queue to run on.
    pub queue: String,
    /// The parent execution, for child workflows.
    pub parent_id: Option<String>,
    /// The execution fails if it has not finished this long after it starts.
    pub deadline: Option<Duration>,
}

/// What [`Scheduler::start_execution`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartOutcome {
    /// True if this call created the execution; false if it already existed (same input).
    pub created: bool,
    /// The execution's status after the call.
    pub status: crate::ExecutionStatus,
}

/// Arguments of [`Scheduler::claim_tasks`].
#[derive(Debug, Clone)]
pub struct ClaimTasksParams {
    /// Who claims (recorded as the lease owner).
    pub worker_id: String,
    /// The queue to claim from.
    pub queue: String,
    /// Only these task names are claimed: the ones the worker has registered.
    pub task_names: Vec<String>,
    /// At most this many (the worker's free slots).
    pub limit: u32,
    /// How long the lease lasts unless renewed.
    pub lease: Duration,
}

/// A step result recorded before the claim, returned with it for replay.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RecordedStep {
    /// The step name.
    pub name: String,
    /// Its position in the execution (0-based call order).
    pub seq: u32,
    /// `completed`, `failed` or `retrying`.
    pub status: StepStatus,
    /// The output, when completed.
    #[serde(default)]
    pub output: Option<serde_json::Value>,
    /// The error, when failed or retrying.
    #[serde(default)]
    pub error: Option<ErrorRecord>,
    /// Attempts made so far.
    pub attempts: u32,
    /// What the step stands for.
    #[serde(default)]
    pub kind: StepKind,
}

/// What a step row stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A step body ([`crate::TaskContext::step`]).
    #[default]
    Step,
    /// A durable sleep.
    Sleep,
    /// A wait for an event.
    Event,
    /// A child workflow.
    Child,
}

/// The state of a recorded step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Finished with an output.
    Completed,
    /// Failed for good.
    Failed,
    /// Failed an attempt and waits for the next.
    Retrying,
    /// A wait (sleep, event, child) that has not ended yet.
    Waiting,
}

impl StepStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Retrying => "retrying",
            StepStatus::Waiting => "waiting",
        }
    }
}

/// One claimed execution, with everything needed to replay it.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    /// The lease the run holds.
    pub lease: Lease,
    /// The task name.
    pub task_name: String,
    /// The queue it runs on.
    pub queue: String,
    /// The parent execution, for a child workflow.
    pub parent_id: Option<String>,
    /// How many times it has been claimed, this claim included.
    pub claims: u32,
    /// How many of those claims took it over from an expired lease (a worker that died or
    /// stalled) since it last suspended.
    pub recoveries: u32,
    /// The JSON input.
    pub input: serde_json::Value,
    /// Time left until the execution's deadline (zero if it has passed), if it has one.
    pub deadline_in: Option<Duration>,
    /// Recorded steps, in call order.
    pub steps: Vec<RecordedStep>,
}

/// Arguments of [`Scheduler::commit_step`].
#[derive(Debug, Clone)]
pub struct CommitStepParams {
    /// The run's lease.
    pub lease: Lease,
    /// The step name.
    pub name: String,
    /// Its call-order position.
    pub seq: u32,
    /// `Completed` or `Failed`.
    pub status: StepStatus,
    /// The output, when completed.
    pub output: Option<serde_json::Value>,
    /// The error, when failed.
    pub error: Option<ErrorRecord>,
    /// Attempts made.
    pub attempts: u32,
}

/// Arguments of [`Scheduler::retry_step`].
#[derive(Debug, Clone)]
pub struct RetryStepParams {
    /// The run's lease; released by the call.
    pub lease: Lease,
    /// The execution's queue (its workers are told about the new due time).
    pub queue: String,
    /// The step name.
    pub name: String,
    /// Its call-order position.
    pub seq: u32,
    /// The error of the failed attempt.
    pub error: ErrorRecord,
    /// Attempts made so far.
    pub attempts: u32,
    /// The back-off before the next attempt, counted on the database clock.
    pub delay: Duration,
}

/// How a run ended, for [`Scheduler::complete_execution`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler returned this output.
    Completed(serde_json::Value),
    /// The handler failed with this error.
    Failed(ErrorRecord),
}

/// Arguments of [`Scheduler::complete_execution`].
#[derive(Debug, Clone)]
pub struct CompleteExecutionParams {
    /// The run's lease; the task row goes with it.
    pub lease: Lease,
    /// The final outcome.
    pub outcome: Outcome,
}

/// Arguments of [`Scheduler::sleep`].
#[derive(Debug, Clone)]
pub struct SleepParams {
    /// The run's lease.
    pub lease: Lease,
    /// The execution's queue (its workers are told about the new due time).
    pub queue: String,
    /// The step name of the sleep.
    pub name: String,
    /// Its call-order position.
    pub seq: u32,
    /// When to wake: a delay from now (database clock) or a point in time.
    pub until: WakeAt,
}

/// When a sleep ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeAt {
    /// This long after the sleep is first reached, by the database clock.
    After(Duration),
    /// At this time.
    At(std::time::SystemTime),
}

/// Arguments of [`Scheduler::await_event`].
#[derive(Debug, Clone)]
pub struct AwaitEventParams {
    /// The run's lease.
    pub lease: Lease,
    /// The execution's queue (its workers are told about the new due time).
    pub queue: String,
    /// The step name of the wait.
    pub name: String,
    /// Its call-order position.
    pub seq: u32,
    /// The event name waited for.
    pub event_name: String,
    /// How long to wait, counted from the first time the wait is reached; `None`: forever.
    pub timeout: Option<Duration>,
}

/// What [`Scheduler::await_event`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum EventWait {
    /// An event arrived; this is its payload.
    Received(serde_json::Value),
    /// The timeout passed first.
    TimedOut,
    /// Suspended until an event arrives or, if set, the timeout passes.
    Waiting {
        /// Time left until the timeout.
        timeout_in: Option<Duration>,
    },
}

/// Arguments of [`Scheduler::send_event`].
#[derive(Debug, Clone)]
pub struct SendEventParams {
    /// The execution addressed.
    pub execution_id: String,
    /// The event name.
    pub name: String,
    /// The payload.
    pub payload: serde_json::Value,
}

/// Arguments of [`Scheduler::start_child`].
#[derive(Debug, Clone)]
pub struct StartChildParams {
    /// The parent run's lease.
    pub lease: Lease,
    /// The step name in the parent.
    pub name: String,
    /// Its call-order position.
    pub seq: u32,
    /// The child's execution id.
    pub child_id: String,
    /// The child's task name.
    pub task_name: String,
    /// The child's input.
    pub input: serde_json::Value,
    /// The queue the child runs on.
    pub queue: String,
}

/// What [`Scheduler::start_child`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildWait {
    /// The child has finished.
    Finished {
        /// Its final status.
        status: crate::ExecutionStatus,
        /// Its output, when completed.
        output: Option<serde_json::Value>,
        /// Its error, when failed or cancelled.
        error: Option<ErrorRecord>,
    },
    /// The parent is suspended until the child finishes.
    Waiting,
}

/// Arguments of [`Scheduler::heartbeat`].
#[derive(Debug, Clone)]
pub struct HeartbeatParams {
    /// The worker renewing.
    pub worker_id: String,
    /// The new lease length, from now.
    pub lease: Duration,
    /// The leases to renew.
    pub leases: Vec<Lease>,
}

/// Arguments of [`Scheduler::release_tasks`].
#[derive(Debug, Clone)]
pub struct ReleaseTasksParams {
    /// The worker releasing.
    pub worker_id: String,
    /// The queue the tasks belong to (its workers are woken).
    pub queue: String,
    /// The leases to give back.
    pub leases: Vec<Lease>,
}

/// Arguments of [`Scheduler::next_run_at`].
#[derive(Debug, Clone)]
pub struct NextRunAtParams {
    /// The queue.
    pub queue: String,
    /// The task names the asking worker runs.
    pub task_names: Vec<String>,
}

/// A wake-up delivered by the backend's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wakeup {
    /// New work was started on this queue.
    Work {
        /// The queue.
        queue: String,
    },
    /// A task of this queue was rescheduled to a later time.
    Timer {
        /// The queue.
        queue: String,
    },
    /// Executions finished (completed, failed or cancelled). A backend may announce many in
    /// one wake-up.
    Finished {
        /// The execution ids.
        execution_ids: std::sync::Arc<[String]>,
    },
    /// The listener reconnected: notifications may have been missed, so look again.
    Resync,
}
