//! The storage backend trait: one method per stored procedure, one params struct per method.
//!
//! The core never sees SQL or driver types. `zart-pg` implements [`Scheduler`] for PostgreSQL
//! and `zart-sqlite` for SQLite; every backend implements the same trait and passes the same
//! conformance suite (`zart-conformance`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::execution::{ErrorRecord, Execution};
use crate::handoff::{HandoffClaim, Handoffs};
use crate::Error;

/// A storage backend for executions, tasks, steps and events.
///
/// # The contract
///
/// The conformance suite (`zart-conformance`) checks everything below; a backend is done when
/// it passes it. `zart-pg` is the reference: each method is one stored-function call of
/// `zart-pg/sql/zart.sql` (named on each method) in one transaction.
///
/// - **Atomic**: each call takes effect entirely or not at all. When a call returns an error,
///   nothing it would have written is stored.
/// - **Fencing**: a claim gives the run a [`Lease`] whose `fence` is new for every claim. Every
///   method that takes a lease (`commit_step`, `retry_step`, `complete_execution`, `sleep`,
///   `await_event`, `start_child`) writes only while that lease is *held*: the task exists, its
///   fence is this one, and the lease was not given up (by `release_tasks`, or by a suspension:
///   `retry_step`, or `sleep` / `await_event` / `start_child` returning a wait). Otherwise the
///   call changes nothing and fails with [`Error::Cancelled`] if the execution was cancelled,
///   else [`Error::LeaseLost`]. An expired lease is held until another claim takes the task
///   over; `heartbeat` and `release_tasks` silently skip leases not held.
/// - **Time**: every time a backend compares or stores (lease expiry, due times, sleeps, event
///   timeouts, back-offs, deadlines) is read from the backend's own clock, once per call, so
///   workers with skewed clocks agree, and tests can move one clock.
/// - **Errors**: [`Error::Unavailable`] (cannot reach the store) and [`Error::Contention`]
///   (the store gave up because of a concurrent transaction, e.g. a deadlock) are transient
///   ([`Error::is_transient`]): nothing was written, and the caller may try again. A refused
///   value is [`Error::InvalidInput`] naming the field; anything else unexpected is
///   [`Error::Database`].
#[async_trait]
pub trait Scheduler: Send + Sync + 'static {
    /// Checks that the schema is present and recent enough for this build. Reads only.
    ///
    /// # Errors
    /// [`Error::Schema`] with a message that says to run `zart migrate`.
    async fn check_schema(&self) -> Result<(), Error>;

    /// Starts an execution if its id is new (`zart_start_execution`).
    ///
    /// Atomic: the execution (status `scheduled`, due now, its deadline counted from now on
    /// the backend's clock) and its task are created together, or not at all. The id is the
    /// idempotency key: if it exists with the same task name, input, queue, parent and deadline
    /// (the same duration), nothing is written and the existing execution's status is returned
    /// with `created == false`, whatever that status (finished ones included). Concurrent
    /// starts of one id create it once. Not fenced. A `parent_id` must name an existing
    /// execution other than this one, so parents never form a cycle.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the id exists with another task name, input, queue, parent or
    /// deadline; [`Error::InvalidInput`] for an empty or over-long id, task name or queue
    /// (1-255 bytes), a null input or one over the backend's payload limit, a deadline outside
    /// 1 ms to 100 years, or a parent that does not exist or is the execution itself.
    async fn start_execution(&self, params: StartExecutionParams) -> Result<StartOutcome, Error>;

    /// Claims up to `limit` due tasks of the queue whose task names are in `task_names`
    /// (`zart_claim_tasks`).
    ///
    /// A task is due when its run time has come: new, woken, released, or leased with an
    /// expired lease. Each claimed task gets a new fence and a lease of `lease` from now; its
    /// execution becomes `running`, with `attempts` counting its claims so far, this one
    /// included. A claim that takes over an expired lease counts a recovery; a suspension
    /// resets the count. Concurrent claims never return the same task (tasks locked by another
    /// claim are skipped, not waited for). Each result carries the input, the time left before
    /// the deadline, and every recorded step in `seq` order, so a replay needs no other read;
    /// a sleep whose wake time has passed may already be returned `completed`. Atomic for all
    /// tasks returned. Not fenced (it makes the fences).
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn claim_tasks(&self, params: ClaimTasksParams) -> Result<Vec<ClaimedTask>, Error>;

    /// Records one step's final result, `completed` (with its output) or `failed` (with its
    /// error), at `seq` (`zart_commit_step`).
    ///
    /// Fenced. A step recorded `retrying` may be overwritten by its final result; a final
    /// result is never overwritten. The execution's status does not change. A step whose name
    /// starts with `patch:` is a versioning marker ([`crate::TaskContext::patched`]) and is
    /// stored with kind `patch`; every other is kind `step`.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] when the lease is not held;
    /// [`Error::StepAlreadyRecorded`] when the step already has a final result (nothing
    /// changes).
    async fn commit_step(&self, params: CommitStepParams) -> Result<(), Error>;

    /// Records a failed attempt and suspends the execution for the back-off
    /// (`zart_retry_step`).
    ///
    /// Fenced, and atomic: the step is recorded `retrying` with the error and attempt count,
    /// the execution becomes `sleeping`, and the lease is given up, with the task due `delay`
    /// after now (capped by the deadline). The next claim replays up to the step and runs its
    /// next attempt.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] when the lease is not held;
    /// [`Error::StepAlreadyRecorded`] when the step already has a final result;
    /// [`Error::InvalidInput`] for a delay over 100 years or an error over the payload limit.
    async fn retry_step(&self, params: RetryStepParams) -> Result<(), Error>;

    /// Records the final output or error and removes the task (`zart_complete_execution`).
    ///
    /// Fenced, and atomic: the task goes, the execution becomes `completed` or `failed` with
    /// its output or error and finish time, a parent waiting for it as a child is made due,
    /// and, when it failed, its unfinished descendants are cancelled as
    /// [`Scheduler::cancel_execution`] would. Subscribers are then told with
    /// [`Wakeup::Finished`]. Once recorded, any later write of any lease of this execution
    /// fails with [`Error::LeaseLost`].
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] when the lease is not held;
    /// [`Error::InvalidInput`] when the output or error is over the backend's payload limit
    /// (for an output, the worker then records the execution `failed` with that reason).
    async fn complete_execution(&self, params: CompleteExecutionParams) -> Result<(), Error>;

    /// A durable sleep (`zart_sleep`): records the wake time on first reach, then either
    /// completes it (`None`: the time has come) or suspends until it (`Some(time left)`).
    ///
    /// Fenced, and atomic. The first call records the step (kind `sleep`, status `waiting`)
    /// with its wake time, now plus the delay on the backend's clock or the given time; later
    /// calls keep that wake time. When it has passed the step is recorded `completed` and the
    /// lease is kept. Otherwise the execution becomes `sleeping`, the lease is given up, and the
    /// task is due at the wake time (capped by the deadline).
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] when the lease is not held;
    /// [`Error::StepAlreadyRecorded`] when a step of that name already has a final result;
    /// [`Error::InvalidInput`] for a delay over 100 years.
    async fn sleep(&self, params: SleepParams) -> Result<Option<Duration>, Error>;

    /// Waits for an event (`zart_await_event`): consumes a buffered one, reports the timeout,
    /// or suspends until an event or the timeout.
    ///
    /// Fenced, and atomic. The first call records the wait step (kind `event`, `waiting`) and
    /// its timeout, counted from now. Then, in this order: the oldest unconsumed event of that
    /// name sent no later than the timeout is consumed (one event, one wait) and the step
    /// recorded `completed` with `{"received": payload}`; else, if the timeout has passed, the
    /// step is recorded `completed` with `{"timed_out": true}`; else the execution becomes
    /// `waiting`, the lease is given up, and the task is due at the timeout (capped by the
    /// deadline) or when [`Scheduler::send_event`] sends the event. The lease is kept in the
    /// first two cases. An event sent concurrently is seen either here or by the sender's
    /// wake-up, never lost between them.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] when the lease is not held;
    /// [`Error::StepAlreadyRecorded`] when the step already has a final result;
    /// [`Error::InvalidInput`] for a timeout over 100 years.
    async fn await_event(&self, params: AwaitEventParams) -> Result<EventWait, Error>;

    /// Buffers an event for an execution and wakes it if it waits for it (`zart_send_event`).
    ///
    /// Not fenced (clients send events). Atomic: the event is stored, unconsumed, in arrival
    /// order; if the execution is suspended waiting for exactly this event name, it is made due
    /// (and a backend may hand the event over into its wait step at once, as zart-pg does).
    /// An event sent after the wait's timeout is stored and never delivered.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no execution has the id (nothing stored);
    /// [`Error::Finished`] when the execution has finished (nothing stored: nothing would
    /// ever consume it); [`Error::InvalidInput`] for an empty or over-long event name or a
    /// payload over the backend's payload limit.
    async fn send_event(&self, params: SendEventParams) -> Result<(), Error>;

    /// Starts a child execution (idempotently) and reports its outcome, or suspends the parent
    /// until the child finishes (`zart_start_child`).
    ///
    /// Fenced, and atomic. The first call records the wait step (kind `child`, `waiting`) and
    /// starts the child `child_id` with the parent's id as `parent_id`, by the rules of
    /// [`Scheduler::start_execution`] (an existing child with the same task, input, queue and
    /// parent is reused). If the child has finished, the step is recorded `completed` with its output, or
    /// `failed` (kind `child_failed`, the child's message) when it failed or was cancelled, and
    /// the lease is kept. Otherwise the parent becomes `waiting`, the lease is given up, and the
    /// child's outcome (or cancellation) makes the parent due.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] when the lease is not held;
    /// [`Error::Conflict`] when `child_id` exists with another task, input, queue or parent;
    /// [`Error::InvalidInput`] for an input over the backend's payload limit;
    /// [`Error::StepAlreadyRecorded`] when the step already has a final result.
    async fn start_child(&self, params: StartChildParams) -> Result<ChildWait, Error>;

    /// Starts several children (idempotently) and reports each one's outcome, in order; with
    /// `suspend`, suspends the parent while any is unfinished (`zart_start_children`).
    ///
    /// Fenced, and atomic. For each child, as [`Scheduler::start_child`] without suspending:
    /// the first call records its wait step and starts it; a finished child's outcome is
    /// recorded in its step (and later calls report it from the child's row again). If
    /// `suspend` is set and some child has not finished, the parent becomes `waiting`, the
    /// lease is given up, and the outcome of the **first** unfinished child in order makes the
    /// parent due (so a parent waiting for `n` children is woken at most `n` times); without
    /// `suspend` the lease is kept. Never [`ChildWait::Detached`].
    ///
    /// # Errors
    /// As [`Scheduler::start_child`], for any child (nothing is written then).
    async fn start_children(&self, params: StartChildrenParams) -> Result<Vec<ChildWait>, Error>;

    /// Cancels an execution and its unfinished descendants (`zart_cancel_execution`); returns
    /// the ids cancelled, the one asked for first (empty if it had already finished).
    ///
    /// Not fenced (clients cancel). Atomic: the tasks of the execution and of every unfinished
    /// descendant are removed and they become `cancelled` with the error kind `cancelled`; a
    /// parent waiting for the cancelled execution is made due. A run still holding a lease on
    /// one of them finds out at its next fenced write ([`Error::Cancelled`]) or heartbeat.
    /// Cancelling a finished execution changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no execution has the id.
    async fn cancel_execution(&self, id: &str) -> Result<Vec<String>, Error>;

    /// Runs a failed execution again from the step that failed it (`zart_retry_execution`);
    /// returns the ids made due, the one asked for first.
    ///
    /// Not fenced (clients retry). Atomic: the step row the execution's error names (its
    /// `step`) is deleted if that step failed, and so is every step row still in back-off; every
    /// other recorded step is kept, so a replay returns them and re-runs the failed step with
    /// fresh attempts. The execution becomes `scheduled` (output and error cleared, `attempts`
    /// kept) with a task due now, which no lease from before the failure can write to. The
    /// children it was waiting on that failed or were cancelled (the child of the failed step,
    /// and those of its open child waits, which its failure cancelled) are revived the same
    /// way, and theirs in turn. A completed or cancelled execution is never revived on its own.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no execution has the id; [`Error::NotRetryable`] when it is not
    /// `failed`, or its deadline has passed.
    async fn retry_execution(&self, id: &str) -> Result<Vec<String>, Error>;

    /// Renews a worker's leases in one statement (`zart_heartbeat`); returns those still held.
    ///
    /// Each lease still held by `worker_id` with that fence runs `lease` from now; the others
    /// (expired and taken over, cancelled, finished, suspended) are left out of the result and
    /// nothing is written for them. Atomic for the whole batch.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn heartbeat(&self, params: HeartbeatParams) -> Result<Vec<Lease>, Error>;

    /// Gives leases back so the tasks are due at once (`zart_release_tasks`); returns how many
    /// were released.
    ///
    /// Each lease still held by `worker_id` with that fence is given up: the task is due now
    /// and the execution `scheduled` again; its recorded steps stay. The next claim is not a
    /// recovery. Leases not held are skipped. Atomic for the whole batch.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn release_tasks(&self, params: ReleaseTasksParams) -> Result<u64, Error>;

    /// How long until the next task of the queue with one of `task_names` is due, by the
    /// backend's clock (`zart_next_run_at`); zero if one is due now, `None` when there is none
    /// (tasks waiting without a time, for an event or a child, do not count). A leased task
    /// counts at its lease expiry. Reads only.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn next_run_at(&self, params: NextRunAtParams) -> Result<Option<Duration>, Error>;

    /// Reads one execution (`zart_executions`), or `None` if the id is unknown. Reads only.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, Error>;

    /// Deletes one batch of finished executions of one status, with their steps and events,
    /// that finished longer ago than an age (`zart_prune`); or counts them (`dry_run`).
    ///
    /// Only executions with `params.status` (`completed`, `failed` or `cancelled`) whose finish
    /// time is more than `older_than` before now on the backend's clock are taken, oldest
    /// first, at most `limit`, and never a child whose parent has not finished (the parent's
    /// replay reads the child's outcome from its row). Each is deleted with every step row and
    /// every event addressed to it, in one transaction; unfinished executions are never
    /// touched. Only one prune runs at a time across every process of a store: a call that
    /// finds another one running returns [`PruneOutcome::Busy`] at once, without waiting or
    /// deleting. A dry run deletes nothing and counts every execution a prune would take
    /// (`limit` does not apply). After a prune an id can be started again as a new execution.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a status that is not finished, an age over 100 years, or a
    /// `limit` outside 1 to [`PRUNE_LIMIT_MAX`].
    async fn prune(&self, params: PruneParams) -> Result<PruneOutcome, Error>;

    /// Stores a cron schedule, or replaces the declaration of the one with its id
    /// (`zart_schedule`); returns true when it is new.
    ///
    /// Not fenced (clients declare schedules). The declaration is checked first
    /// ([`crate::schedule::Schedule::check`]). A new schedule, or one whose expression or time
    /// zone changed, has its next fire time computed again by the next worker that looks (from
    /// the time of this call: nothing fires for times before it); otherwise its next fire time,
    /// pause and history stay. Workers of its queue are woken.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    async fn upsert_schedule(&self, schedule: crate::schedule::Schedule) -> Result<bool, Error>;

    /// Pauses a schedule, or resumes it (`zart_pause_schedule`). A paused schedule does not
    /// fire; on resume, the times it missed follow its catch-up policy. Idempotent.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no schedule has the id.
    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<(), Error>;

    /// Deletes a schedule (`zart_delete_schedule`); returns false when there was none. The
    /// executions it started stay.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn delete_schedule(&self, id: &str) -> Result<bool, Error>;

    /// Every schedule, by id (`zart_schedules`). Reads only.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn list_schedules(&self) -> Result<Vec<crate::schedule::ScheduleRow>, Error>;

    /// Takes the schedules of the queue and task names that are due to fire within
    /// `params.ahead` (or whose next fire time is not computed yet), not paused and without an
    /// error, and not being fired by another worker; each is held by `worker_id` for `lease`
    /// (`zart_claim_schedules`).
    /// Returns them with the backend's current time.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn claim_schedules(
        &self,
        params: ClaimSchedulesParams,
    ) -> Result<Vec<DueSchedule>, Error>;

    /// Fires a held schedule (`zart_fire_schedule`), atomically: for each fire time, in
    /// order, applies the overlap policy against the execution it started last (skip the
    /// firing, allow it, or cancel that execution and its unfinished descendants) and starts
    /// the execution of the given id, idempotently (an id that exists is not started twice);
    /// then stores the next fire time (or the error that stops the schedule) and gives the
    /// hold up. Workers of its queue are woken when something started.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when `worker_id` no longer holds the schedule (its hold expired
    /// and another worker took it, or it was deleted): nothing changes.
    async fn fire_schedule(&self, params: FireScheduleParams) -> Result<FireOutcome, Error>;

    /// How long until the next schedule of the queue and task names is due (zero when one
    /// is due now, `None` when there is none), by the backend's clock
    /// (`zart_next_schedule_at`). Reads only.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn next_schedule_at(&self, params: NextRunAtParams) -> Result<Option<Duration>, Error>;

    /// Sets the limits of `queue`, replacing any it had; `None` (or empty limits) removes them
    /// (`zart_set_queue_limits`). Returns true when the queue now has limits. Workers of the
    /// queue are woken. Not fenced (an operator's act). The limits bind runs claimed from then
    /// on; see [`crate::queues`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad queue name or limits that fail
    /// [`crate::queues::QueueLimits::validate`]; zart-pg refuses a session limited to some
    /// tenants (limits bind every tenant).
    async fn set_queue_limits(
        &self,
        queue: &str,
        limits: Option<crate::queues::QueueLimits>,
    ) -> Result<bool, Error>;

    /// Every queue with limits, by name, with the runs counting against them now
    /// (`zart_list_queue_limits`). Reads only.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn list_queue_limits(&self) -> Result<Vec<crate::queues::QueueLimitsRow>, Error>;

    /// The values an execution published ([`crate::TaskContext::set_state`]), the latest of
    /// each name, by name (`zart_get_state`); empty for an unknown execution or one that
    /// published nothing. Reads only.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    async fn get_state(&self, id: &str) -> Result<Vec<StateValue>, Error>;

    /// Records a running worker (`zart_workers`): inserts or refreshes its record with the
    /// store's clock as `seen_at`, clearing `stopped_at`; when `starting`, also deletes the
    /// records of any worker not seen for [`crate::presence::FORGET_AFTER`]. Not fenced: a
    /// worker speaks only for itself.
    ///
    /// Backends without a workers table keep this default, which refuses (the worker then
    /// stops recording itself).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] from [`crate::presence::WorkerPresence::check`];
    /// [`Error::Unsupported`] from a backend without it; the transient and database errors of
    /// every call.
    async fn record_presence(
        &self,
        presence: &crate::presence::WorkerPresence,
    ) -> Result<(), Error> {
        let _ = presence;
        Err(no_presence(std::any::type_name::<Self>()))
    }

    /// Records that a worker stopped gracefully (`stopped_at`); false when it has no record.
    ///
    /// # Errors
    /// As [`Scheduler::record_presence`].
    async fn record_departure(&self, worker_id: &str) -> Result<bool, Error> {
        let _ = worker_id;
        Err(no_presence(std::any::type_name::<Self>()))
    }

    /// Opens a transaction on the backend's own database for [`crate::TaskContext::step_tx`]:
    /// the step body writes in it, and [`StepTransaction::commit_with_step`] records the
    /// step's result in it and commits both, or neither.
    ///
    /// Backends without such a transaction keep this default, which refuses.
    ///
    /// # Errors
    /// [`Error::Unsupported`] from a backend that does not offer it; the transient errors of
    /// every call.
    async fn begin_step_tx(&self) -> Result<Box<dyn StepTransaction>, Error> {
        Err(Error::Unsupported {
            feature: "ctx.step_tx".to_owned(),
            backend: std::any::type_name::<Self>().to_owned(),
            hint: "only a backend whose database holds your tables can commit a step with \
                   your writes; use ctx.step with an idempotent effect instead"
                .to_owned(),
        })
    }

    /// Subscribes to wake-ups (new work, timers, finished executions) from this backend.
    ///
    /// Wake-ups are hints, sent after the change they announce is stored: a subscriber looks
    /// at the store again and never trusts the wake-up alone. A backend that may have missed
    /// some sends [`Wakeup::Resync`].
    fn subscribe(&self) -> broadcast::Receiver<Wakeup>;

    /// The offers of free slots of the workers in this process that use this scheduler, for
    /// the in-process hand-off ([`crate::handoff`]); `None` (the default) for a backend that
    /// does not implement [`Scheduler::start_handed`].
    fn handoffs(&self) -> Option<&Arc<Handoffs>> {
        None
    }

    /// [`Scheduler::start_execution`] that, in the same transaction, leases the execution for
    /// `claim`'s worker when it created it and it is due, its queue has no limits and the
    /// worker may serve its tenant; returns the lease as a claim would. When it leases
    /// nothing, it wakes workers as a start does. The default starts and leases nothing.
    ///
    /// # Errors
    /// As [`Scheduler::start_execution`].
    async fn start_handed(
        &self,
        params: StartExecutionParams,
        claim: &HandoffClaim,
    ) -> Result<(StartOutcome, Option<ClaimedTask>), Error> {
        let _ = claim;
        Ok((self.start_execution(params).await?, None))
    }
}

#[async_trait]
impl<T: Scheduler + ?Sized> Scheduler for Arc<T> {
    async fn check_schema(&self) -> Result<(), Error> {
        (**self).check_schema().await
    }
    async fn start_execution(&self, params: StartExecutionParams) -> Result<StartOutcome, Error> {
        (**self).start_execution(params).await
    }
    fn handoffs(&self) -> Option<&Arc<Handoffs>> {
        (**self).handoffs()
    }
    async fn start_handed(
        &self,
        params: StartExecutionParams,
        claim: &HandoffClaim,
    ) -> Result<(StartOutcome, Option<ClaimedTask>), Error> {
        (**self).start_handed(params, claim).await
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
    async fn start_children(&self, params: StartChildrenParams) -> Result<Vec<ChildWait>, Error> {
        (**self).start_children(params).await
    }
    async fn cancel_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        (**self).cancel_execution(id).await
    }
    async fn retry_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        (**self).retry_execution(id).await
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
    async fn prune(&self, params: PruneParams) -> Result<PruneOutcome, Error> {
        (**self).prune(params).await
    }
    async fn upsert_schedule(&self, schedule: crate::schedule::Schedule) -> Result<bool, Error> {
        (**self).upsert_schedule(schedule).await
    }
    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<(), Error> {
        (**self).pause_schedule(id, paused).await
    }
    async fn delete_schedule(&self, id: &str) -> Result<bool, Error> {
        (**self).delete_schedule(id).await
    }
    async fn list_schedules(&self) -> Result<Vec<crate::schedule::ScheduleRow>, Error> {
        (**self).list_schedules().await
    }
    async fn claim_schedules(
        &self,
        params: ClaimSchedulesParams,
    ) -> Result<Vec<DueSchedule>, Error> {
        (**self).claim_schedules(params).await
    }
    async fn fire_schedule(&self, params: FireScheduleParams) -> Result<FireOutcome, Error> {
        (**self).fire_schedule(params).await
    }
    async fn next_schedule_at(&self, params: NextRunAtParams) -> Result<Option<Duration>, Error> {
        (**self).next_schedule_at(params).await
    }
    async fn set_queue_limits(
        &self,
        queue: &str,
        limits: Option<crate::queues::QueueLimits>,
    ) -> Result<bool, Error> {
        (**self).set_queue_limits(queue, limits).await
    }
    async fn list_queue_limits(&self) -> Result<Vec<crate::queues::QueueLimitsRow>, Error> {
        (**self).list_queue_limits().await
    }
    async fn get_state(&self, id: &str) -> Result<Vec<StateValue>, Error> {
        (**self).get_state(id).await
    }
    async fn record_presence(
        &self,
        presence: &crate::presence::WorkerPresence,
    ) -> Result<(), Error> {
        (**self).record_presence(presence).await
    }
    async fn record_departure(&self, worker_id: &str) -> Result<bool, Error> {
        (**self).record_departure(worker_id).await
    }
    async fn begin_step_tx(&self) -> Result<Box<dyn StepTransaction>, Error> {
        (**self).begin_step_tx().await
    }
    fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        (**self).subscribe()
    }
}

/// An open transaction on a backend's database that a step body writes in
/// ([`Scheduler::begin_step_tx`], [`crate::TaskContext::step_tx`]).
///
/// Dropping it without [`StepTransaction::commit_with_step`] or
/// [`StepTransaction::rollback`] must roll it back (a backend may do so by closing the
/// connection).
#[async_trait]
pub trait StepTransaction: Send {
    /// A new handle to the transaction, given to the step body (`TaskContext::step_tx` downcasts
    /// it to the type the body takes). The backend may refuse to commit while a handle is
    /// still held.
    fn handle(&self) -> Box<dyn std::any::Any + Send>;

    /// The type name of [`StepTransaction::handle`]'s value, for the error when a body takes
    /// another type.
    fn handle_type(&self) -> &'static str;

    /// Records the step, fenced as [`Scheduler::commit_step`], in this transaction, and
    /// commits. Either the body's writes and the step's record are both stored, or neither.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] or [`Error::Cancelled`] when the lease is not held (rolled back);
    /// [`Error::Contention`] when the database rolled the transaction back for a concurrent
    /// one; [`Error::Unavailable`] when the connection failed, in which case the commit may or
    /// may not have happened; [`Error::InvalidInput`] when the body misused the transaction (it
    /// ended it itself, or kept a handle past its end) or the output is refused (rolled back);
    /// [`Error::Database`] for any other refusal at commit (a deferred constraint; rolled back).
    async fn commit_with_step(self: Box<Self>, params: CommitStepParams) -> Result<(), Error>;

    /// Rolls the transaction back. Failures are the backend's to handle (a connection it
    /// cannot roll back is closed, never reused).
    async fn rollback(self: Box<Self>);
}

/// A value an execution published ([`crate::TaskContext::set_state`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StateValue {
    /// Its name.
    pub name: String,
    /// The latest value published under it.
    pub value: serde_json::Value,
    /// When that value was recorded.
    pub set_at: std::time::SystemTime,
}

/// Arguments of [`Scheduler::claim_schedules`].
#[derive(Debug, Clone)]
pub struct ClaimSchedulesParams {
    /// The claiming worker.
    pub worker_id: String,
    /// Its queue.
    pub queue: String,
    /// The task names it runs: it fires only their schedules.
    pub task_names: Vec<String>,
    /// At most this many.
    pub limit: u32,
    /// How long each is held.
    pub lease: Duration,
    /// Also take schedules due within this much of now: the worker claims a little ahead and
    /// waits for the fire time itself, so the firing is not late by the claim's round trip.
    pub ahead: Duration,
}

/// A schedule taken by [`Scheduler::claim_schedules`].
#[derive(Debug, Clone)]
pub struct DueSchedule {
    /// The schedule as stored.
    pub row: crate::schedule::ScheduleRow,
    /// When it was last declared (the first fire time comes after it).
    pub declared_at: std::time::SystemTime,
    /// The backend's time of the claim.
    pub now: std::time::SystemTime,
}

/// Arguments of [`Scheduler::fire_schedule`].
#[derive(Debug, Clone)]
pub struct FireScheduleParams {
    /// The worker holding the schedule.
    pub worker_id: String,
    /// The schedule.
    pub id: String,
    /// The fire times to fire, oldest first, each with the id of its execution
    /// ([`crate::schedule::execution_id`]).
    pub fires: Vec<(std::time::SystemTime, String)>,
    /// The next fire time after these (`None` with `error`).
    pub next_fire_at: Option<std::time::SystemTime>,
    /// Why its fire times cannot be computed: stored, and the schedule stops firing until it
    /// is declared again.
    pub error: Option<String>,
}

/// What [`Scheduler::fire_schedule`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FireOutcome {
    /// The executions started (ids that existed already are not in it).
    pub started: Vec<String>,
    /// The executions not started because the previous one was unfinished (overlap skip).
    pub skipped: Vec<String>,
    /// The executions cancelled first (overlap cancel-previous), with their descendants.
    pub cancelled: Vec<String>,
}

/// The largest [`PruneParams::limit`]: a batch stays one short transaction.
pub const PRUNE_LIMIT_MAX: u32 = 100_000;

/// Arguments of [`Scheduler::prune`].
#[derive(Debug, Clone)]
pub struct PruneParams {
    /// Which finished executions: `completed`, `failed` or `cancelled`.
    pub status: crate::ExecutionStatus,
    /// Only those that finished longer ago than this, by the backend's clock.
    pub older_than: Duration,
    /// At most this many in one call (1 to [`PRUNE_LIMIT_MAX`]).
    pub limit: u32,
    /// Count instead of deleting.
    pub dry_run: bool,
}

impl PruneParams {
    /// Refuses a status that is not finished or a limit out of range, naming the field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`].
    pub fn check(&self) -> Result<(), Error> {
        if !self.status.is_terminal() {
            return Err(Error::invalid(
                "status",
                format!(
                    "{} is not finished: only completed, failed and cancelled executions are pruned",
                    self.status
                ),
            ));
        }
        if self.older_than > crate::limits::MAX_WAIT {
            return Err(Error::invalid("age", "must be at most 100 years"));
        }
        if self.limit == 0 || self.limit > PRUNE_LIMIT_MAX {
            return Err(Error::invalid(
                "batch",
                format!("{} is outside 1 to {PRUNE_LIMIT_MAX}", self.limit),
            ));
        }
        Ok(())
    }
}

/// What one [`Scheduler::prune`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PruneOutcome {
    /// This many executions were deleted; fewer than the limit means none of that age is left.
    Deleted(u64),
    /// A dry run: this many executions would be deleted.
    Counted(u64),
    /// Another prune was running; nothing was done.
    Busy,
}

/// The type-erased backend handle that workflow code sees as `TaskContext<impl Scheduler>`.
pub type DynScheduler = Arc<dyn Scheduler>;

/// A worker's hold on one claimed execution. Every write for the run carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Where the backend keeps the execution, as the backend chose at claim time; it gets it
    /// back with every write of the run and the core never reads it (zart-pg: the
    /// execution's bucket, `zart_bucket(id)`, which routes a call to one shard on Citus;
    /// backends that need nothing here use 0).
    pub backend_key: i64,
    /// The execution id.
    pub execution_id: String,
    /// The fencing token, drawn at random by every claim.
    pub fence: i64,
}

/// Arguments of [`Scheduler::start_execution`]. `..Default::default()` fills the options.
#[derive(Debug, Clone, Default)]
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
    /// When it starts: `None` at once; a delay (by the backend's clock) or a time. A time
    /// already past means at once.
    pub start: Option<WakeAt>,
    /// Claims within the queue take higher priorities first (default 0).
    pub priority: i16,
    /// The key the queue's per-key limits count this execution under.
    pub limit_key: Option<String>,
    /// A dedup or debounce key (see [`crate::queues::StartKey`]).
    pub start_key: Option<crate::queues::StartKey>,
}

/// What [`Scheduler::start_execution`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOutcome {
    /// True if this call created the execution; false if it already existed (same input), or
    /// a start key named another one.
    pub created: bool,
    /// The execution's status after the call.
    pub status: crate::ExecutionStatus,
    /// The execution the start refers to: the id asked for, or the one a start key named.
    pub id: String,
}

/// Arguments of [`Scheduler::claim_tasks`]. `..Default::default()` fills `oldest_first`.
#[derive(Debug, Clone, Default)]
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
    /// Take the longest due tasks first whatever their priority (a worker's every tenth
    /// claim), so low priorities do not starve.
    pub oldest_first: bool,
}

/// A step row recorded before the claim (a result, an attempt in back-off, an open or ended
/// wait, a patch marker), returned with it for replay.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RecordedStep {
    /// The step name.
    pub name: String,
    /// Its position in the execution (0-based call order; a patch marker holds the position of
    /// the step after it and takes none of its own).
    pub seq: u32,
    /// `completed`, `failed`, `retrying` or `waiting`.
    pub status: StepStatus,
    /// The output, when completed (an open child wait holds `{"child_id": ..}` here).
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
    /// A versioning marker ([`crate::TaskContext::patched`]): whether the execution takes a
    /// patch's new code path. Named `patch:<id>`; it takes no position in the call order.
    Patch,
    /// A published value ([`crate::TaskContext::set_state`]), readable from outside while the
    /// execution runs. Named `state:<name>` (the first time), `state#<n>:<name>` after.
    State,
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
    /// How many times it has been claimed (its attempts), this claim included.
    pub attempts: u32,
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
    /// The execution failed with this error: the handler's, or one the worker recorded for it
    /// (an unknown task, a passed deadline, too many recoveries, a panic).
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

/// A point in time given relatively or absolutely: when a sleep ends, when a delayed start is
/// due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeAt {
    /// This long after the call (for a sleep: after the sleep is first reached), by the
    /// backend's clock.
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

/// What an event wait's step records as its output once the wait has ended, in the shape every
/// backend stores (`{"received": <payload>}` or `{"timed_out": true}`), so a replay reads any
/// backend's record the same way. zart-pg writes it in SQL; other backends serialise this type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum EventWaitRecord {
    /// The event arrived.
    Received {
        /// Its payload.
        received: serde_json::Value,
    },
    /// The timeout passed first.
    TimedOut {
        /// Always `true`.
        timed_out: bool,
    },
}

impl EventWaitRecord {
    /// The record of a wait that timed out.
    pub fn timed_out() -> Self {
        EventWaitRecord::TimedOut { timed_out: true }
    }

    /// Reads a recorded output; anything that is not a received event reads as a timeout.
    pub fn from_output(output: serde_json::Value) -> Self {
        serde_json::from_value(output).unwrap_or_else(|_| EventWaitRecord::timed_out())
    }

    /// The JSON to store.
    pub fn to_output(&self) -> serde_json::Value {
        match self {
            EventWaitRecord::Received { received } => serde_json::json!({ "received": received }),
            EventWaitRecord::TimedOut { .. } => serde_json::json!({ "timed_out": true }),
        }
    }
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
    /// Start it detached: an execution of its own (no parent: not cancelled with the parent,
    /// its outcome wakes nobody), recorded in the parent as a completed step at once.
    pub detached: bool,
}

/// Arguments of [`Scheduler::start_children`].
#[derive(Debug, Clone)]
pub struct StartChildrenParams {
    /// The parent run's lease.
    pub lease: Lease,
    /// The queue the children run on.
    pub queue: String,
    /// The children, in call order.
    pub children: Vec<ChildSpec>,
    /// Suspend the parent while any child is unfinished.
    pub suspend: bool,
}

/// One child of [`StartChildrenParams`].
#[derive(Debug, Clone)]
pub struct ChildSpec {
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
    /// A detached child was started (or found started by an earlier run); the parent goes on.
    Detached,
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
    /// Work became due on this queue: a start, a release, a retry, or a waiter woken by an
    /// event or a child's outcome.
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
    /// Wake-ups may have been missed, so look again: the listener (re)connected, a polling
    /// backend saw another process write, or a test clock moved.
    Resync,
}

/// What a backend without a workers table answers to the presence calls.
fn no_presence(backend: &str) -> Error {
    Error::Unsupported {
        feature: "workers seen (zart_workers)".to_owned(),
        backend: backend.to_owned(),
        hint: "this backend does not record its workers".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::EventWaitRecord;
    use serde_json::json;

    #[test]
    fn event_wait_records_read_back_as_written() {
        for record in [
            EventWaitRecord::Received {
                received: json!({"ok": true}),
            },
            EventWaitRecord::Received {
                received: json!(null),
            },
            EventWaitRecord::timed_out(),
        ] {
            assert_eq!(EventWaitRecord::from_output(record.to_output()), record);
        }
        // The shapes zart-pg's SQL writes.
        assert_eq!(
            EventWaitRecord::Received { received: json!(1) }.to_output(),
            json!({"received": 1})
        );
        assert_eq!(
            EventWaitRecord::timed_out().to_output(),
            json!({"timed_out": true})
        );
        assert_eq!(
            EventWaitRecord::from_output(json!("garbage")),
            EventWaitRecord::timed_out()
        );
    }
}
