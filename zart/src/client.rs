//! [`DurableScheduler`]: the client that starts executions and reads or awaits their results.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, OnceCell};

use crate::execution::Execution;
use crate::limits::{check_name, check_payload, DEFAULT_MAX_PAYLOAD_BYTES};
use crate::scheduler::{
    ReleaseTasksParams, SendEventParams, StartExecutionParams, StartOutcome, WakeAt, Wakeup,
};
use crate::{Error, Scheduler, TaskRegistry};

/// How often `wait` looks at the execution even without a wake-up, covering notifications
/// lost while the listener reconnects.
const WAIT_SWEEP: Duration = Duration::from_secs(5);

/// Options for [`DurableScheduler::start_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartOptions {
    /// The execution fails (kind `deadline_exceeded`) if it has not finished this long after
    /// it starts (its start time, for a delayed start), counted on the database clock; a wait
    /// in progress is cut short.
    pub deadline: Option<Duration>,
    /// A delayed start: the execution is stored now, `scheduled`, and no worker runs it before
    /// this time. `None` starts it at once.
    pub start: Option<WakeAt>,
    /// Within its queue, claims take higher priorities first; 0 by default. See
    /// [`StartOptions::with_priority`].
    pub priority: i16,
    /// The key the queue's per-key limits count this execution under (see [`crate::queues`]).
    pub limit_key: Option<String>,
    /// A dedup or debounce key (see [`StartOptions::with_dedup`]).
    pub start_key: Option<crate::queues::StartKey>,
}

impl StartOptions {
    /// No options.
    pub fn new() -> Self {
        StartOptions::default()
    }

    /// Sets [`StartOptions::deadline`].
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Starts the execution `delay` from now, by the database clock (at most 100 years).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use zart::StartOptions;
    ///
    /// // A reminder an hour from now, which must be done within ten minutes of that.
    /// let options = StartOptions::new()
    ///     .with_delay(Duration::from_secs(3600))
    ///     .with_deadline(Duration::from_secs(600));
    /// # assert!(options.start.is_some());
    /// ```
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.start = Some(WakeAt::After(delay));
        self
    }

    /// Starts the execution at `at` (a time already past means at once; at most 100 years
    /// ahead). The time is compared with the database clock.
    pub fn with_start_at(mut self, at: std::time::SystemTime) -> Self {
        self.start = Some(WakeAt::At(at));
        self
    }

    /// Claims within the queue take higher priorities first, and the same priority in the
    /// order the executions fell due. So that no priority starves, every tenth claim of a
    /// worker takes the longest due tasks whatever their priority. A child runs at its
    /// parent's priority.
    ///
    /// # Examples
    /// ```
    /// use zart::StartOptions;
    ///
    /// let urgent = StartOptions::new().with_priority(10);
    /// # assert_eq!(urgent.priority, 10);
    /// ```
    pub fn with_priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Counts this execution's runs under `key` for the queue's per-key limits (for example a
    /// customer id, with at most one run per customer at once); see [`crate::queues`].
    pub fn with_limit_key(mut self, key: impl Into<String>) -> Self {
        self.limit_key = Some(key.into());
        self
    }

    /// Deduplicates by `key`: for `window` after a start with this key, another start of the
    /// same task with the same key starts nothing and returns the first execution
    /// ([`StartOutcome::id`] names it, `created` is false), whatever its id and input. This is
    /// beside idempotency by id, which holds for ever and needs the same input.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use zart::StartOptions;
    ///
    /// // One welcome mail per user per day, however often sign-up is retried.
    /// let options = StartOptions::new().with_dedup("welcome:user-42", Duration::from_secs(86_400));
    /// # assert!(options.start_key.is_some());
    /// ```
    pub fn with_dedup(mut self, key: impl Into<String>, window: Duration) -> Self {
        self.start_key = Some(crate::queues::StartKey {
            key: key.into(),
            window,
            debounce: false,
        });
        self
    }

    /// Debounces by `key`: the execution starts `window` after the last start with this key.
    /// A start while the one the key names has not yet been claimed by a worker replaces its
    /// input and moves its start to `window` from now, and returns it; once it was claimed,
    /// the next start with the key creates a new execution. Cannot be combined with a delay
    /// or start time.
    pub fn with_debounce(mut self, key: impl Into<String>, window: Duration) -> Self {
        self.start_key = Some(crate::queues::StartKey {
            key: key.into(),
            window,
            debounce: true,
        });
        self
    }
}

/// Starts executions and reads or awaits their results. Cheap to clone.
///
/// # Examples
/// ```no_run
/// # use std::sync::Arc;
/// # use serde::Serialize;
/// # use zart::{DurableScheduler, Scheduler, TaskRegistry};
/// # #[derive(Serialize)] struct OnboardingData { user_id: String, email: String }
/// # async fn example<S: Scheduler>(scheduler: Arc<S>, registry: Arc<TaskRegistry>) -> Result<(), zart::Error> {
/// let durable = DurableScheduler::new(scheduler, registry);
/// durable
///     .start_typed(
///         "signup-user-42",
///         "onboarding",
///         &OnboardingData { user_id: "u-42".into(), email: "alice@example.com".into() },
///     )
///     .await?;
/// let finished = durable.wait("signup-user-42", None).await?;
/// println!("{}", finished.status);
/// # Ok(()) }
/// ```
pub struct DurableScheduler<S: Scheduler> {
    scheduler: Arc<S>,
    registry: Arc<TaskRegistry>,
    queue: String,
    max_payload_bytes: usize,
    schema_checked: Arc<OnceCell<()>>,
}

impl<S: Scheduler> Clone for DurableScheduler<S> {
    fn clone(&self) -> Self {
        DurableScheduler {
            scheduler: self.scheduler.clone(),
            registry: self.registry.clone(),
            queue: self.queue.clone(),
            max_payload_bytes: self.max_payload_bytes,
            schema_checked: self.schema_checked.clone(),
        }
    }
}

impl<S: Scheduler> std::fmt::Debug for DurableScheduler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableScheduler")
            .field("queue", &self.queue)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("registry", &self.registry)
            .finish()
    }
}

impl<S: Scheduler> DurableScheduler<S> {
    /// A client for `registry`'s tasks on `scheduler`, starting on the `"default"` queue with a
    /// 1 MiB input limit.
    pub fn new(scheduler: Arc<S>, registry: Arc<TaskRegistry>) -> Self {
        DurableScheduler {
            scheduler,
            registry,
            queue: "default".to_owned(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            schema_checked: Arc::new(OnceCell::new()),
        }
    }

    /// Starts executions on `queue` instead of `"default"`.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Refuses inputs and event payloads larger than `bytes` of JSON (default 1 MiB). The
    /// backend may hold a limit of its own (zart-pg: `zart_settings.max_payload_bytes`).
    pub fn with_max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// The backend.
    pub fn scheduler(&self) -> &Arc<S> {
        &self.scheduler
    }

    /// Starts an execution of `task` with a JSON `input`, unless `id` was started before.
    ///
    /// Idempotent: the same id with the same task, input, queue and deadline returns the
    /// existing execution's status (`created == false`), whatever that status.
    ///
    /// # Errors
    /// [`Error::UnknownTask`] for a task not in the registry; [`Error::InvalidInput`] for a bad
    /// id, task name or queue (empty, over 255 bytes, holding a NUL) or an input over the size
    /// limit or holding a NUL; [`Error::Conflict`] when the id exists with another task,
    /// input, queue, parent or deadline; [`Error::Schema`] when the database is not migrated.
    /// Nothing is written when an error is returned.
    pub async fn start(
        &self,
        id: &str,
        task: &str,
        input: serde_json::Value,
    ) -> Result<StartOutcome, Error> {
        self.start_with(id, task, input, StartOptions::default())
            .await
    }

    /// [`DurableScheduler::start`] with options (a deadline).
    ///
    /// # Errors
    /// As [`DurableScheduler::start`]; [`Error::InvalidInput`] for a deadline under 1 ms or
    /// over 100 years.
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{DurableScheduler, Scheduler, StartOptions};
    /// # async fn example<S: Scheduler>(durable: DurableScheduler<S>) -> Result<(), zart::Error> {
    /// durable
    ///     .start_with(
    ///         "report-2026-11",
    ///         "monthly-report",
    ///         serde_json::json!({"month": "2026-11"}),
    ///         StartOptions::new().with_deadline(Duration::from_secs(3600)),
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_with(
        &self,
        id: &str,
        task: &str,
        input: serde_json::Value,
        options: StartOptions,
    ) -> Result<StartOutcome, Error> {
        if let Some(deadline) = options.deadline {
            if deadline.as_millis() == 0 {
                return Err(Error::invalid("deadline", "must be at least 1 ms"));
            }
            crate::limits::check_wait("deadline", deadline)?;
        }
        match options.start {
            Some(WakeAt::After(delay)) => crate::limits::check_wait("start delay", delay)?,
            Some(WakeAt::At(at)) => {
                let ahead = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                if ahead > crate::limits::MAX_WAIT {
                    return Err(Error::invalid("start time", "is more than 100 years ahead"));
                }
            }
            None => {}
        }
        if let Some(key) = &options.start_key {
            key.validate()?;
            if key.debounce && options.start.is_some() {
                return Err(Error::invalid(
                    "start",
                    "a debounced start begins when its window ends; give no delay or start time",
                ));
            }
        }
        if let Some(key) = &options.limit_key {
            check_name("limit key", key)?;
        }
        check_name("execution id", id)?;
        check_name("task name", task)?;
        check_name("queue", &self.queue)?;
        if !self.registry.contains(task) {
            return Err(Error::UnknownTask {
                name: task.to_owned(),
            });
        }
        check_payload("input", &input, self.max_payload_bytes)?;
        self.ensure_schema().await?;
        // A start due now, without a start key, may go straight to an idle worker of this
        // process (crate::handoff).
        let reservation = match (&options.start, &options.start_key) {
            (None, None) => self
                .scheduler
                .handoffs()
                .and_then(|handoffs| handoffs.reserve(&self.queue, task)),
            _ => None,
        };
        let params = StartExecutionParams {
            id: id.to_owned(),
            task_name: task.to_owned(),
            input,
            queue: self.queue.clone(),
            parent_id: None,
            deadline: options.deadline,
            start: options.start,
            priority: options.priority,
            limit_key: options.limit_key,
            start_key: options.start_key,
        };
        let outcome = match reservation {
            None => self.scheduler.start_execution(params).await?,
            Some(reservation) => {
                let claim = reservation.claim().clone();
                let (outcome, leased) = self.scheduler.start_handed(params, &claim).await?;
                if let Some(task) = leased {
                    if let Err(task) = reservation.hand(task) {
                        // The worker stopped meanwhile: give the lease back at once.
                        let released = self
                            .scheduler
                            .release_tasks(ReleaseTasksParams {
                                worker_id: claim.worker_id,
                                queue: self.queue.clone(),
                                leases: vec![task.lease],
                            })
                            .await;
                        if let Err(err) = released {
                            tracing::warn!(execution.id = %id, error = %err,
                                "could not release a lease taken for a stopped worker; it expires");
                        }
                    }
                }
                outcome
            }
        };
        if outcome.created {
            metrics::counter!(crate::telemetry::EXECUTIONS_STARTED).increment(1);
        }
        Ok(outcome)
    }

    /// Starts an execution with a typed input; see [`DurableScheduler::start`].
    ///
    /// # Errors
    /// As [`DurableScheduler::start`]; [`Error::InvalidInput`] when `T` is not the registered
    /// handler's `Data` type; [`Error::Serialization`] when `input` does not serialize.
    pub async fn start_typed<T: Serialize + 'static>(
        &self,
        id: &str,
        task: &str,
        input: &T,
    ) -> Result<StartOutcome, Error> {
        if let Some((expected, expected_name)) = self.registry.data_type(task) {
            if expected != std::any::TypeId::of::<T>() {
                return Err(Error::invalid(
                    "input",
                    format!(
                        "task {task:?} takes {expected_name}, not {}",
                        std::any::type_name::<T>()
                    ),
                ));
            }
        }
        let json = serde_json::to_value(input).map_err(|source| Error::Serialization {
            action: "serialize",
            what: format!("the input of task {task:?}"),
            source,
        })?;
        self.start(id, task, json).await
    }

    /// Sends the event `name` with `payload` to execution `id`. It is buffered until the
    /// workflow waits for it with [`crate::TaskContext::wait_for_event`] (at once, if it is
    /// waiting now); each event is delivered to one wait. An event sent after the wait's
    /// timeout is stored and never delivered.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown execution; [`Error::Finished`] when the execution
    /// has finished (the event is refused, not stored); [`Error::InvalidInput`] for a bad id or
    /// name or a payload over the size limit; [`Error::Serialization`] when `payload` does not
    /// serialize. Nothing is written when an error is returned.
    pub async fn send_event<T: Serialize>(
        &self,
        id: &str,
        name: &str,
        payload: &T,
    ) -> Result<(), Error> {
        check_name("execution id", id)?;
        check_name("event name", name)?;
        let payload = serde_json::to_value(payload).map_err(|source| Error::Serialization {
            action: "serialize",
            what: format!("the payload of event {name:?}"),
            source,
        })?;
        check_payload("event payload", &payload, self.max_payload_bytes)?;
        self.ensure_schema().await?;
        self.scheduler
            .send_event(SendEventParams {
                execution_id: id.to_owned(),
                name: name.to_owned(),
                payload,
            })
            .await
    }

    /// Cancels execution `id` and its unfinished descendants (children, their children, ...).
    /// A running execution stops at its next write (refused with [`Error::Cancelled`]) or
    /// heartbeat; a scheduled, sleeping or waiting one ends at once. A parent waiting for `id`
    /// as a child is woken and sees a `child_failed` step. Returns the ids cancelled, `id`
    /// first; empty when it had already finished.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown execution; [`Error::InvalidInput`] for a bad id.
    pub async fn cancel(&self, id: &str) -> Result<Vec<String>, Error> {
        check_name("execution id", id)?;
        self.ensure_schema().await?;
        self.scheduler.cancel_execution(id).await
    }

    /// Runs failed execution `id` again from the step that failed it, keeping every step
    /// recorded before; for example after deploying a fix, or once a service it called is back.
    /// The failed step runs again with fresh attempts; children the execution was waiting on
    /// that failed or were cancelled are revived too. Returns the ids made due, `id` first.
    /// Waiting on `id` afterwards waits for the new outcome.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown execution; [`Error::NotRetryable`] when it is not
    /// failed (not finished yet, completed or cancelled), or its deadline has passed;
    /// [`Error::InvalidInput`] for a bad id.
    pub async fn retry(&self, id: &str) -> Result<Vec<String>, Error> {
        check_name("execution id", id)?;
        self.ensure_schema().await?;
        self.scheduler.retry_execution(id).await
    }

    /// Declares a cron schedule, or replaces the declaration of the one with its id; returns
    /// true when it is new. Workers that register its task fire it: each fire time starts the
    /// execution `<id>@<fire time>` once across the fleet. See [`crate::schedule`].
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{DurableScheduler, Scheduler};
    /// # async fn example<S: Scheduler>(durable: DurableScheduler<S>) -> Result<(), zart::Error> {
    /// use zart::schedule::Schedule;
    ///
    /// durable
    ///     .schedule(Schedule::new("nightly-report", "0 2 * * *", "build-report").time_zone("Europe/Paris"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field (the cron expression, the time zone, ...);
    /// [`Error::UnknownTask`] when this client's registry does not have the task.
    pub async fn schedule(&self, schedule: crate::schedule::Schedule) -> Result<bool, Error> {
        schedule.check()?;
        if !self.registry.contains(&schedule.task_name) {
            return Err(Error::UnknownTask {
                name: schedule.task_name.clone(),
            });
        }
        check_payload("input", &schedule.input, self.max_payload_bytes)?;
        self.ensure_schema().await?;
        self.scheduler.upsert_schedule(schedule).await
    }

    /// Sets the limits of `queue` for the whole fleet, replacing any it had (see
    /// [`crate::queues`]); empty limits remove them. Returns true when the queue now has
    /// limits.
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{DurableScheduler, Scheduler};
    /// # async fn example<S: Scheduler>(durable: DurableScheduler<S>) -> Result<(), zart::Error> {
    /// use zart::queues::{QueueLimits, Rate};
    ///
    /// durable
    ///     .set_queue_limits("partner-api", QueueLimits::new().with_max_running(4).with_rate(Rate::new(10, Duration::from_secs(1))))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad queue name or limits
    /// ([`crate::queues::QueueLimits::validate`]).
    pub async fn set_queue_limits(
        &self,
        queue: &str,
        limits: crate::queues::QueueLimits,
    ) -> Result<bool, Error> {
        check_name("queue", queue)?;
        limits.validate()?;
        self.ensure_schema().await?;
        let limits = (!limits.is_empty()).then_some(limits);
        self.scheduler.set_queue_limits(queue, limits).await
    }

    /// Removes the limits of `queue`; returns false (as it always does).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad queue name.
    pub async fn clear_queue_limits(&self, queue: &str) -> Result<bool, Error> {
        check_name("queue", queue)?;
        self.ensure_schema().await?;
        self.scheduler.set_queue_limits(queue, None).await
    }

    /// Every queue with limits, with the runs counting against them now.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    pub async fn queue_limits(&self) -> Result<Vec<crate::queues::QueueLimitsRow>, Error> {
        self.ensure_schema().await?;
        self.scheduler.list_queue_limits().await
    }

    /// The values execution `id` published with [`crate::TaskContext::set_state`], the latest
    /// of each name, by name; readable while it runs. Empty when it published nothing (or
    /// there is no such execution).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad id.
    pub async fn state(&self, id: &str) -> Result<Vec<crate::scheduler::StateValue>, Error> {
        check_name("execution id", id)?;
        self.ensure_schema().await?;
        self.scheduler.get_state(id).await
    }

    /// The latest value execution `id` published under `name`, read as `T`; `None` when it
    /// has published none.
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{DurableScheduler, Scheduler};
    /// # #[derive(serde::Deserialize)] struct Progress { done: u64, of: u64 }
    /// # async fn example<S: Scheduler>(durable: DurableScheduler<S>) -> Result<(), zart::Error> {
    /// if let Some(p) = durable.state_value::<Progress>("import-7", "progress").await? {
    ///     println!("{} of {}", p.done, p.of);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`DurableScheduler::state`]; [`Error::Serialization`] when the value does not fit
    /// `T`.
    pub async fn state_value<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<T>, Error> {
        let Some(found) = self.state(id).await?.into_iter().find(|s| s.name == name) else {
            return Ok(None);
        };
        serde_json::from_value(found.value)
            .map(Some)
            .map_err(|source| Error::Serialization {
                action: "deserialize",
                what: format!("the state {name:?} of execution {id:?}"),
                source,
            })
    }

    /// Pauses a schedule: it does not fire until resumed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown schedule.
    pub async fn pause_schedule(&self, id: &str) -> Result<(), Error> {
        check_name("schedule id", id)?;
        self.ensure_schema().await?;
        self.scheduler.pause_schedule(id, true).await
    }

    /// Resumes a paused schedule; the fire times it missed follow its catch-up policy.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown schedule.
    pub async fn resume_schedule(&self, id: &str) -> Result<(), Error> {
        check_name("schedule id", id)?;
        self.ensure_schema().await?;
        self.scheduler.pause_schedule(id, false).await
    }

    /// Deletes a schedule (its executions stay); false when there was none.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    pub async fn delete_schedule(&self, id: &str) -> Result<bool, Error> {
        check_name("schedule id", id)?;
        self.ensure_schema().await?;
        self.scheduler.delete_schedule(id).await
    }

    /// Every schedule, by id, with its next and last fire times.
    ///
    /// # Errors
    /// Only the transient and database errors of every call.
    pub async fn schedules(&self) -> Result<Vec<crate::schedule::ScheduleRow>, Error> {
        self.ensure_schema().await?;
        self.scheduler.list_schedules().await
    }

    /// Reads an execution's current state.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn status(&self, id: &str) -> Result<Execution, Error> {
        check_name("execution id", id)?;
        self.ensure_schema().await?;
        self.scheduler
            .get_execution(id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })
    }

    /// Waits until the execution is completed, failed or cancelled, and returns it. Wakes on
    /// the backend's finish notification, not by polling (a slow safety check runs every 5 s).
    /// A store briefly out of reach (a restart, a dropped connection) does not end the wait: it
    /// looks again after a back-off, within the timeout.
    ///
    /// # Errors
    /// [`Error::WaitTimeout`] when `timeout` passes first; [`Error::NotFound`] for an unknown
    /// id; the transient error ([`Error::Unavailable`], [`Error::Contention`]) when the store
    /// is still out of reach at the timeout.
    pub async fn wait(&self, id: &str, timeout: Option<Duration>) -> Result<Execution, Error> {
        let mut finished = self.wait_for(&[id], 1, timeout).await?;
        Ok(finished.remove(0))
    }

    /// Waits until every execution of `ids` has finished, or `timeout` passes; returns them
    /// in the order of `ids`. One subscription and one look per wake-up serve them all (no
    /// task per id); a repeated id is waited for once and returned at each place.
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{DurableScheduler, Scheduler};
    /// # async fn example<S: Scheduler>(durable: DurableScheduler<S>) -> Result<(), zart::Error> {
    /// let all = durable
    ///     .wait_all(&["import-1", "import-2", "import-3"], Some(Duration::from_secs(600)))
    ///     .await?;
    /// let failed = all.iter().filter(|e| e.status == zart::ExecutionStatus::Failed).count();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`DurableScheduler::wait`]; [`Error::WaitTimeout`] names the first of `ids` still
    /// unfinished.
    pub async fn wait_all(
        &self,
        ids: &[&str],
        timeout: Option<Duration>,
    ) -> Result<Vec<Execution>, Error> {
        self.wait_for(ids, ids.len(), timeout).await
    }

    /// Waits until one execution of `ids` has finished, or `timeout` passes; returns the first
    /// found finished (the earliest in `ids` when several are).
    ///
    /// # Errors
    /// As [`DurableScheduler::wait_all`]; [`Error::InvalidInput`] for no ids.
    pub async fn wait_any(
        &self,
        ids: &[&str],
        timeout: Option<Duration>,
    ) -> Result<Execution, Error> {
        if ids.is_empty() {
            return Err(Error::invalid(
                "ids",
                "wait_any needs at least one execution",
            ));
        }
        let mut finished = self.wait_for(ids, 1, timeout).await?;
        Ok(finished.remove(0))
    }

    /// Waits until `need` of `ids` (counted once each) have finished; returns the finished
    /// ones in the order of `ids` (with repeats), all of them once `need` is every id.
    async fn wait_for(
        &self,
        ids: &[&str],
        need: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Execution>, Error> {
        let started = tokio::time::Instant::now();
        let deadline = timeout.map(|t| started + t);
        let mut distinct: Vec<&str> = Vec::with_capacity(ids.len());
        for id in ids {
            check_name("execution id", id)?;
            if !distinct.contains(id) {
                distinct.push(id);
            }
        }
        let need = need.min(distinct.len());
        // Subscribe before the first look, so a finish in between is not missed.
        let mut wakeups = self.scheduler.subscribe();
        let mut done: std::collections::HashMap<String, Execution> =
            std::collections::HashMap::new();
        // Which ids to look at: all at first, after a sweep and after a lagged stream; else the
        // ones a wake-up named.
        let mut look: Vec<&str> = distinct.clone();
        // The store being briefly out of reach (a restart, a dropped connection) does not end
        // the wait: the ids are looked at again after a back-off, within the timeout.
        let mut backoff = crate::backoff::Backoff::new();
        loop {
            let mut unreachable: Vec<&str> = Vec::new();
            let mut last_error = None;
            for id in look.drain(..) {
                if done.contains_key(id) {
                    continue;
                }
                match self.status(id).await {
                    Ok(execution) if execution.status.is_terminal() => {
                        done.insert(id.to_owned(), execution);
                    }
                    Ok(_) => {}
                    Err(err) if err.is_transient() => {
                        unreachable.push(id);
                        last_error = Some(err);
                    }
                    Err(err) => return Err(err),
                }
            }
            if done.len() >= need {
                return Ok(ids.iter().filter_map(|id| done.get(*id).cloned()).collect());
            }
            if let Some(err) = last_error {
                let retry_at = tokio::time::Instant::now() + backoff.next();
                match deadline {
                    Some(deadline) if retry_at >= deadline => return Err(err),
                    _ => {}
                }
                tracing::debug!(error = %err, "wait: the store is out of reach; looking again");
                tokio::time::sleep_until(retry_at).await;
                look = unreachable;
                continue;
            }
            backoff = crate::backoff::Backoff::new();
            if let Some(deadline) = deadline {
                if tokio::time::Instant::now() >= deadline {
                    let pending = distinct.iter().find(|id| !done.contains_key(**id));
                    return Err(Error::WaitTimeout {
                        id: pending.map_or_else(String::new, |id| (*id).to_owned()),
                        waited: started.elapsed(),
                    });
                }
            }
            let sweep = tokio::time::Instant::now() + WAIT_SWEEP;
            let wake = deadline.map_or(sweep, |d| d.min(sweep));
            while look.is_empty() {
                tokio::select! {
                    msg = wakeups.recv() => match msg {
                        Ok(Wakeup::Finished { execution_ids }) => look.extend(
                            distinct.iter().filter(|id| execution_ids.iter().any(|e| e == **id)),
                        ),
                        Ok(Wakeup::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            look.clone_from(&distinct);
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            wakeups = self.scheduler.subscribe();
                            look.clone_from(&distinct);
                        }
                        Ok(_) => {}
                    },
                    _ = tokio::time::sleep_until(wake) => {
                        look.clone_from(&distinct);
                        // A deadline reached: one last look, then the timeout above.
                    }
                }
            }
        }
    }

    async fn ensure_schema(&self) -> Result<(), Error> {
        self.schema_checked
            .get_or_try_init(|| self.scheduler.check_schema())
            .await
            .map(|_| ())
    }
}
