//! [`TaskContext`]: what a running workflow uses to take durable steps.
//!
//! Guarantees: a step body runs at least once (a crash between its side effect and its commit
//! repeats it); its recorded result is exactly once, and replay returns it without running the
//! body. A step reached in another order, under another name or as another kind than recorded
//! is a non-determinism error, never a silent mix of results.
//!
//! This module holds the step bodies; `waits` the durable waits (sleeps, events, children) and
//! `parallel` the concurrent steps.

mod parallel;
mod tx;
mod waits;

pub use parallel::Parallel;
pub use waits::EventOutcome;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::error::{error_chain, AppError, BoxError, FailureKind};
use crate::execution::ErrorRecord;
use crate::scheduler::{
    ClaimedTask, CommitStepParams, Lease, RecordedStep, RetryStepParams, StepKind, StepStatus,
};
use crate::{RetryConfig, Scheduler, TaskError};

/// The handle a workflow takes its steps through. One per run; given to
/// [`crate::TaskHandler::run`].
pub struct TaskContext<S: Scheduler> {
    scheduler: S,
    lease: Lease,
    task_name: String,
    queue: String,
    attempts: u32,
    recorded: HashMap<String, RecordedStep>,
    recorded_by_seq: HashMap<u32, String>,
    used: HashSet<String>,
    /// The patches asked about in this run, and their answers.
    patches: HashMap<String, bool>,
    /// How many waits for each event name this run has reached (their step names count up).
    event_waits: HashMap<String, u32>,
    /// How many times this run has published each state name (their step names count up).
    state_sets: HashMap<String, u32>,
    next_seq: u32,
    /// One past the highest position recorded before this run began (0 when none was).
    replay_until: u32,
    durable_backoff_threshold: Duration,
    suspended: bool,
    due_again_in: Option<Duration>,
}

impl<S: Scheduler> std::fmt::Debug for TaskContext<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("execution_id", &self.lease.execution_id)
            .field("task_name", &self.task_name)
            .field("attempts", &self.attempts)
            .field("recorded_steps", &self.recorded.len())
            .field("next_seq", &self.next_seq)
            .field("replaying", &self.is_replaying())
            .field("suspended", &self.suspended)
            .finish()
    }
}

/// How one run of a step body ended.
enum BodyOutcome<T> {
    Ok(T),
    Failed(String, FailureKind, Option<AppError>),
}

/// What follows one attempt of a retried step ([`TaskContext::after_attempt`]).
enum Attempt<T> {
    /// Record this outcome: the step is over.
    Final(BodyOutcome<T>),
    /// Run the next attempt now.
    Again,
}

/// What the recording says about a step body.
enum Replay<T> {
    Done(Result<T, TaskError>),
    Run { seq: u32, prior_attempts: u32 },
}

impl<S: Scheduler> TaskContext<S> {
    /// Builds the context for one claimed execution (used by workers and test harnesses).
    pub fn from_claim(
        scheduler: S,
        task: &ClaimedTask,
        durable_backoff_threshold: Duration,
    ) -> Self {
        TaskContext {
            scheduler,
            lease: task.lease.clone(),
            task_name: task.task_name.clone(),
            queue: task.queue.clone(),
            attempts: task.attempts,
            recorded: task
                .steps
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
            // Patch markers take no position: only the other rows are in the call order.
            recorded_by_seq: positioned(task).map(|s| (s.seq, s.name.clone())).collect(),
            used: HashSet::new(),
            patches: HashMap::new(),
            event_waits: HashMap::new(),
            state_sets: HashMap::new(),
            next_seq: 0,
            replay_until: positioned(task).map(|s| s.seq + 1).max().unwrap_or(0),
            durable_backoff_threshold,
            suspended: false,
            due_again_in: None,
        }
    }

    /// The execution id (the idempotency key given at start).
    pub fn execution_id(&self) -> &str {
        &self.lease.execution_id
    }

    /// The registered task name.
    pub fn task_name(&self) -> &str {
        &self.task_name
    }

    /// The queue this execution runs on.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// How many times this execution has been claimed, this run included (1 on the first run).
    pub fn attempt(&self) -> u32 {
        self.attempts
    }

    /// The lease this run holds.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// True while this run is re-running workflow code that an earlier run of the execution
    /// already got past: the step it will reach next, or a later one, was recorded before this
    /// run began.
    ///
    /// Precisely: with `n` the number of step positions this run has reached so far and `r`
    /// one past the highest position recorded when the run was claimed, it is `n < r`. Any kind
    /// of record counts: a result, a failed attempt waiting for its retry, an open sleep or
    /// wait. So it is true from the start of a resumed run up to the last recorded step, and
    /// false from there on; on a first run it is always false. Code after the last recorded
    /// step reads false even if a run that crashed before its next commit ran it once already:
    /// like a step body, it runs at least once.
    ///
    /// Use it to keep logs and metrics in workflow code to one per real run (the
    /// [`crate::durable_info!`] family does it for `tracing`). Never branch on it to take
    /// other steps: that is non-determinism.
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// let order: u64 = ctx.step("create-order", || async { Ok::<_, std::io::Error>(7) }).await?;
    /// if !ctx.is_replaying() {
    ///     metrics::counter!("orders_created_total").increment(1);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_replaying(&self) -> bool {
        self.next_seq < self.replay_until
    }

    /// True once the run has suspended itself (a durable back-off, sleep or wait).
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// If the run suspended itself until a known time, how long until then.
    pub fn due_again_in(&self) -> Option<Duration> {
        self.due_again_in
    }

    /// Marks the run suspended; `due_in` is when it is due again, if known.
    fn suspend(&mut self, due_in: Option<Duration>) -> TaskError {
        self.suspended = true;
        self.due_again_in = due_in;
        TaskError::Suspended
    }

    /// Runs `f` once and records its result under `name`; on replay returns the recorded result
    /// without running `f`.
    ///
    /// A step that fails is recorded as failed, and replay returns the same failure. A step that
    /// panics fails the same way, with the panic message. Step names must be unique within an
    /// execution (use `format!("charge-{i}")` in loops).
    ///
    /// # Errors
    /// [`TaskError::StepFailed`] when `f` fails or panics (and on replay of a recorded
    /// failure); [`TaskError::NonDeterminism`]; [`TaskError::DuplicateStep`];
    /// [`TaskError::Failed`] for a name that is empty, over 255 bytes, holds a NUL or starts
    /// with `patch:`; [`TaskError::Serialization`] when the output does not convert to or from
    /// JSON; and the control-flow errors ([`TaskError::LeaseLost`], [`TaskError::Cancelled`],
    /// [`TaskError::Storage`], and [`TaskError::Suspended`] once the run has suspended), which
    /// must be propagated with `?`.
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn send_welcome_email(_: &str) -> Result<(), std::io::Error> { Ok(()) }
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// ctx.step("send-email", || async { send_welcome_email("alice@example.com").await }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn step<T, E, F, Fut>(&mut self, name: &str, f: F) -> Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        self.step_once(name, None, f).await
    }

    /// Like [`TaskContext::step`], failing the step (kind `timeout`) when `f` runs longer than
    /// `timeout`; the body's future is dropped at the timeout.
    ///
    /// # Errors
    /// As [`TaskContext::step`].
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn call_partner() -> Result<u32, std::io::Error> { Ok(1) }
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// let quote: u32 = ctx
    ///     .step_with_timeout("quote", Duration::from_secs(10), || async { call_partner().await })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn step_with_timeout<T, E, F, Fut>(
        &mut self,
        name: &str,
        timeout: Duration,
        f: F,
    ) -> Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        self.step_once(name, Some(timeout), f).await
    }

    async fn step_once<T, E, F, Fut>(
        &mut self,
        name: &str,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let (seq, prior_attempts) = match self.begin_step(name)? {
            Replay::Done(result) => return result,
            Replay::Run {
                seq,
                prior_attempts,
            } => (seq, prior_attempts),
        };
        let attempt = prior_attempts + 1;
        let outcome = self.run_body(name, attempt, timeout, f()).await;
        self.record_outcome(name, seq, attempt, outcome).await
    }

    /// Like [`TaskContext::step`], retrying a failing `f` as `retry` says.
    ///
    /// Back-offs up to [`crate::WorkerConfig::durable_backoff_threshold`] sleep in the worker;
    /// longer ones are durable: the failed attempt is recorded, the execution is suspended and
    /// rescheduled, and no worker slot is held while it waits (the call then returns
    /// [`TaskError::Suspended`], which `?` must carry out of the handler). Attempts counted
    /// across suspensions are exact; attempts inside one in-process back-off sequence are
    /// recounted from the last recorded attempt if the worker crashes. A panic is not retried,
    /// nor an [`crate::AppError`] marked not retryable; a timeout
    /// ([`RetryConfig::with_attempt_timeout`]) is.
    ///
    /// # Errors
    /// As [`TaskContext::step`], once the attempts run out (or at a failure that is not
    /// retried); [`TaskError::Suspended`] when a durable back-off begins.
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{RetryConfig, Scheduler, TaskContext, TaskError};
    /// # async fn setup_billing() -> Result<String, std::io::Error> { Ok("cus_1".into()) }
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// let customer: String = ctx
    ///     .step_with_retry(
    ///         "setup-billing",
    ///         RetryConfig::exponential(3, Duration::from_secs(2)),
    ///         || async { setup_billing().await },
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn step_with_retry<T, E, F, Fut>(
        &mut self,
        name: &str,
        retry: RetryConfig,
        mut f: F,
    ) -> Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let (seq, mut attempts_done) = match self.begin_step(name)? {
            Replay::Done(result) => return result,
            Replay::Run {
                seq,
                prior_attempts,
            } => (seq, prior_attempts),
        };
        loop {
            let attempt = attempts_done + 1;
            let outcome = self
                .run_body(name, attempt, retry.attempt_timeout(), f())
                .await;
            match self
                .after_attempt(name, seq, attempt, &retry, outcome)
                .await?
            {
                Attempt::Final(outcome) => {
                    return self.record_outcome(name, seq, attempt, outcome).await
                }
                Attempt::Again => attempts_done = attempt,
            }
        }
    }

    /// Decides what follows one attempt of a retried step: the outcome to record (a success,
    /// a failure that is not retried, the last attempt's failure), or another attempt now
    /// (after an in-process back-off). A back-off longer than the durable threshold is
    /// recorded (`retry_step`) and suspends the run: `Err(TaskError::Suspended)`.
    async fn after_attempt<T>(
        &mut self,
        name: &str,
        seq: u32,
        attempt: u32,
        retry: &RetryConfig,
        outcome: BodyOutcome<T>,
    ) -> Result<Attempt<T>, TaskError> {
        let (message, kind, app) = match outcome {
            BodyOutcome::Failed(message, kind, app)
                if kind != FailureKind::Panic
                    && attempt < retry.max_attempts()
                    && app.as_ref().is_none_or(|a| a.retryable) =>
            {
                (message, kind, app)
            }
            last => return Ok(Attempt::Final(last)),
        };
        let delay = retry.jittered_delay_after(attempt);
        tracing::info!(
            step.name = name,
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %message,
            "step attempt failed; retrying"
        );
        if delay > self.durable_backoff_threshold {
            self.scheduler
                .retry_step(RetryStepParams {
                    lease: self.lease.clone(),
                    queue: self.queue.clone(),
                    name: name.to_owned(),
                    seq,
                    error: step_error(name, attempt, message, kind, app.as_ref()),
                    attempts: attempt,
                    delay,
                })
                .await?;
            return Err(self.suspend(Some(delay)));
        }
        tokio::time::sleep(delay).await;
        Ok(Attempt::Again)
    }

    /// Checks a step against the recording and gives it its position: returns `seq` and the
    /// recorded row, if any. Fails on a suspended run, a repeated name, and on any divergence
    /// from the recording (another name at this position, this name at another position, or
    /// another kind of step).
    fn enter(
        &mut self,
        name: &str,
        kind: StepKind,
    ) -> Result<(u32, Option<RecordedStep>), TaskError> {
        if self.suspended {
            return Err(TaskError::Suspended);
        }
        if !self.used.insert(name.to_owned()) {
            return Err(TaskError::DuplicateStep {
                step: name.to_owned(),
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let diverged = |detail: String| TaskError::NonDeterminism {
            step: name.to_owned(),
            detail,
        };
        let Some(recorded) = self.recorded.get(name) else {
            return match self.recorded_by_seq.get(&seq) {
                Some(other) => Err(diverged(format!(
                    "step {seq} was recorded as {other:?}, but the workflow now asks for {name:?}"
                ))),
                None => Ok((seq, None)),
            };
        };
        if recorded.seq != seq {
            return Err(diverged(format!(
                "it was recorded as step {}, but the workflow now reaches it as step {seq}",
                recorded.seq
            )));
        }
        if recorded.kind != kind {
            return Err(diverged(format!(
                "it was recorded as a {} step, but the workflow now takes it as a {} step",
                kind_name(recorded.kind),
                kind_name(kind)
            )));
        }
        Ok((seq, Some(recorded.clone())))
    }

    /// Whether this execution takes the new code path of patch `id`: the way to change a
    /// workflow's code while executions of the old code are still running.
    ///
    /// On an execution that reaches this call before any step after it was recorded (one
    /// started on the new code, or an old one that had not got this far), it is `true`; on an
    /// execution that already got past this point on code without the call, it is `false`, so
    /// its replay keeps meeting the steps it recorded. The answer is recorded on first reach (a
    /// step row `patch:<id>` of kind `patch`, output `true` or `false`) and every later run of
    /// the execution gets the same one, after a crash too. Asking twice in one run, from two
    /// places, gives the same answer. A patch marker takes no position among the steps, so
    /// adding the call does not shift the steps after it, and removing it later does not
    /// either.
    ///
    /// Retiring a patch: once no unfinished execution of the task can still take the old path,
    /// delete the call and the old branch. The executions that can are listed by the query in
    /// `docs/authoring.md` ("Versioning"): unfinished executions of the task without a `true`
    /// marker for the patch.
    ///
    /// # Errors
    /// [`TaskError::Failed`] for an empty `id`, one holding a NUL, or one that makes the
    /// marker's name longer than 255 bytes; [`TaskError::NonDeterminism`] when the name was
    /// recorded as another kind; the control-flow errors of every write
    /// ([`TaskError::LeaseLost`], [`TaskError::Cancelled`], [`TaskError::Storage`], and
    /// [`TaskError::Suspended`] once the run has suspended), to propagate with `?`.
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn charge_v1() -> Result<u64, std::io::Error> { Ok(1) }
    /// # async fn charge_v2() -> Result<u64, std::io::Error> { Ok(2) }
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<u64, TaskError> {
    /// let receipt = if ctx.patched("new-billing").await? {
    ///     ctx.step("charge-v2", || async { charge_v2().await }).await?
    /// } else {
    ///     ctx.step("charge", || async { charge_v1().await }).await?
    /// };
    /// # Ok(receipt) }
    /// ```
    pub async fn patched(&mut self, id: &str) -> Result<bool, TaskError> {
        if self.suspended {
            return Err(TaskError::Suspended);
        }
        if id.is_empty() {
            return Err(TaskError::failed(crate::Error::invalid(
                "patch id",
                "must not be empty",
            )));
        }
        let name = format!("{PATCH_PREFIX}{id}");
        crate::limits::check_name("patch marker name", &name).map_err(TaskError::failed)?;
        if let Some(answer) = self.patches.get(&name) {
            return Ok(*answer);
        }
        let answer = match self.recorded.get(&name) {
            Some(recorded) if recorded.kind != StepKind::Patch => {
                return Err(TaskError::NonDeterminism {
                    step: name,
                    detail: format!(
                        "it was recorded as a {} step, but the workflow now asks it as a patch",
                        kind_name(recorded.kind)
                    ),
                });
            }
            Some(recorded) => recorded.output.as_ref().and_then(|v| v.as_bool()) == Some(true),
            None => {
                let answer = !self.is_replaying();
                self.commit(&name, self.next_seq, 1, Ok(serde_json::Value::Bool(answer)))
                    .await?;
                answer
            }
        };
        self.patches.insert(name, answer);
        Ok(answer)
    }

    /// Publishes `value` under `name`, durably, for readers outside the workflow: a client's
    /// [`crate::DurableScheduler::state`], SQL (`zart_get_state`, the view `zart_state`) and
    /// `zart state ID` see the latest value of each name while the execution runs and after.
    /// It is recorded as a step (kind `state`: `state:<name>` the first time in the execution,
    /// `state#<n>:<name>` the n-th), so a replay does not publish again and readers never see
    /// a value go back. Committed with the next step commit (group commit), like a step.
    ///
    /// # Errors
    /// [`TaskError::Failed`] for a bad name; [`TaskError::Serialization`] when `value` does not
    /// serialize; [`TaskError::NonDeterminism`] as for a step; the control-flow errors of
    /// [`TaskContext::step`]. A value over the payload limit fails the execution, as a step
    /// output would.
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>, rows: Vec<u32>) -> Result<(), TaskError> {
    /// for (i, chunk) in rows.chunks(100).enumerate() {
    ///     ctx.step(&format!("import-{i}"), || async move { Ok::<_, std::io::Error>(chunk.len()) }).await?;
    ///     ctx.set_state("progress", &serde_json::json!({ "done": (i + 1) * 100, "of": rows.len() })).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn set_state<T: Serialize>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<(), TaskError> {
        crate::limits::check_name("state name", name).map_err(TaskError::failed)?;
        let nth = {
            let count = self.state_sets.entry(name.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        let step = if nth == 1 {
            format!("state:{name}")
        } else {
            format!("state#{nth}:{name}")
        };
        let value = serde_json::to_value(value).map_err(|source| TaskError::Serialization {
            action: "serialize",
            what: format!("the state {name:?}"),
            source,
        })?;
        let (seq, recorded) = self.enter(&step, StepKind::State)?;
        if recorded.is_some() {
            return Ok(());
        }
        self.commit(&step, seq, 1, Ok(value)).await
    }

    /// [`TaskContext::enter`] for a step body: its recorded result, or how to run it.
    fn begin_step<T: DeserializeOwned>(&mut self, name: &str) -> Result<Replay<T>, TaskError> {
        crate::limits::check_name("step name", name).map_err(TaskError::failed)?;
        if name.starts_with(PATCH_PREFIX) {
            return Err(TaskError::failed(crate::Error::invalid(
                "step name",
                format!("{name:?}: names starting with {PATCH_PREFIX:?} are ctx.patched's markers"),
            )));
        }
        if name.starts_with("state:") || name.starts_with("state#") {
            return Err(TaskError::failed(crate::Error::invalid(
                "step name",
                format!(
                    "{name:?}: names starting with \"state:\" or \"state#\" are ctx.set_state's"
                ),
            )));
        }
        let (seq, recorded) = self.enter(name, StepKind::Step)?;
        let Some(recorded) = recorded else {
            return Ok(Replay::Run {
                seq,
                prior_attempts: 0,
            });
        };
        Ok(match recorded.status {
            StepStatus::Completed => Replay::Done(decode(
                recorded.output.unwrap_or(serde_json::Value::Null),
                || format!("the recorded output of step {name:?}"),
            )),
            StepStatus::Failed => Replay::Done(Err(recorded_failure(name, &recorded))),
            StepStatus::Retrying | StepStatus::Waiting => Replay::Run {
                seq,
                prior_attempts: recorded.attempts,
            },
        })
    }

    /// Runs one attempt of a step body, catching its error, panic or timeout.
    async fn run_body<T, E, Fut>(
        &self,
        name: &str,
        attempt: u32,
        timeout: Option<Duration>,
        fut: Fut,
    ) -> BodyOutcome<T>
    where
        E: Into<BoxError>,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let span = tracing::info_span!(
            "zart.task.step",
            execution.id = %self.lease.execution_id,
            step.name = name,
            step.attempt = attempt,
        );
        let started = Instant::now();
        let guarded = AssertUnwindSafe(fut).catch_unwind().instrument(span);
        let result = match timeout {
            Some(limit) => match tokio::time::timeout(limit, guarded).await {
                Ok(result) => result,
                Err(_) => {
                    return BodyOutcome::Failed(
                        format!("step timed out after {limit:?}"),
                        FailureKind::Timeout,
                        None,
                    )
                }
            },
            None => guarded.await,
        };
        metrics::histogram!(crate::telemetry::STEP_DURATION)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(value)) => BodyOutcome::Ok(value),
            Ok(Err(err)) => {
                let err: BoxError = err.into();
                match err.downcast::<AppError>() {
                    Ok(app) => {
                        BodyOutcome::Failed(app.message.clone(), FailureKind::Error, Some(*app))
                    }
                    Err(err) => {
                        BodyOutcome::Failed(error_chain(err.as_ref()), FailureKind::Error, None)
                    }
                }
            }
            Err(panic) => BodyOutcome::Failed(
                format!("step panicked: {}", panic_message(&*panic)),
                FailureKind::Panic,
                None,
            ),
        }
    }

    /// Records how a body ended and returns it as the step's result.
    async fn record_outcome<T>(
        &self,
        name: &str,
        seq: u32,
        attempt: u32,
        outcome: BodyOutcome<T>,
    ) -> Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned,
    {
        match outcome {
            BodyOutcome::Ok(value) => {
                let json =
                    serde_json::to_value(&value).map_err(|source| TaskError::Serialization {
                        action: "serialize",
                        what: format!("the output of step {name:?}"),
                        source,
                    })?;
                self.commit(name, seq, attempt, Ok(json.clone())).await?;
                // Return what replay would return, so the first run and every replay agree.
                decode(json, || format!("the output of step {name:?}"))
            }
            BodyOutcome::Failed(message, kind, app) => {
                let error = step_error(name, attempt, message.clone(), kind, app.as_ref());
                self.commit(name, seq, attempt, Err(error)).await?;
                Err(TaskError::StepFailed {
                    step: name.to_owned(),
                    message,
                    attempts: attempt,
                    kind,
                    app: app.map(Box::new),
                })
            }
        }
    }

    /// Records a step's final result: its output, or its error.
    async fn commit(
        &self,
        name: &str,
        seq: u32,
        attempts: u32,
        result: Result<serde_json::Value, ErrorRecord>,
    ) -> Result<(), TaskError> {
        let (status, output, error) = match result {
            Ok(output) => (StepStatus::Completed, Some(output), None),
            Err(error) => (StepStatus::Failed, None, Some(error)),
        };
        let params = CommitStepParams {
            lease: self.lease.clone(),
            name: name.to_owned(),
            seq,
            status,
            output,
            error,
            attempts,
        };
        // A serialization failure or a deadlock rolled the write back, so trying it again is
        // safe (a dropped connection is not: the write may have committed, and the run is
        // abandoned to its lease instead).
        let mut backoff = crate::backoff::Backoff::new();
        for _ in 1..CONTENTION_RETRIES {
            match self.scheduler.commit_step(params.clone()).await {
                Err(crate::Error::Contention { .. }) => {
                    tokio::time::sleep(backoff.next()).await;
                }
                other => return Ok(other?),
            }
        }
        self.scheduler.commit_step(params).await?;
        Ok(())
    }
}

/// The recorded rows that take a position in the call order: all but patch markers.
fn positioned(task: &ClaimedTask) -> impl Iterator<Item = &RecordedStep> {
    task.steps.iter().filter(|s| s.kind != StepKind::Patch)
}

/// The prefix of a patch marker's step name; refused for step bodies.
pub(crate) const PATCH_PREFIX: &str = "patch:";

/// How many times a step commit is tried when it keeps failing on contention.
const CONTENTION_RETRIES: u32 = 5;

fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Step => "plain",
        StepKind::Sleep => "sleep",
        StepKind::Event => "event-wait",
        StepKind::Child => "child-workflow",
        StepKind::Patch => "patch",
        StepKind::State => "state",
    }
}

/// Deserializes a recorded or returned JSON value into the step's type.
fn decode<T: DeserializeOwned>(
    value: serde_json::Value,
    what: impl FnOnce() -> String,
) -> Result<T, TaskError> {
    serde_json::from_value(value).map_err(|source| TaskError::Serialization {
        action: "deserialize",
        what: what(),
        source,
    })
}

/// The error a recorded failed step replays as.
fn recorded_failure(name: &str, recorded: &RecordedStep) -> TaskError {
    let (message, kind) = recorded
        .error
        .as_ref()
        .map(|e| (e.message.clone(), FailureKind::parse(&e.kind)))
        .unwrap_or_else(|| ("failed (no error recorded)".to_owned(), FailureKind::Error));
    TaskError::StepFailed {
        step: name.to_owned(),
        message,
        attempts: recorded.attempts,
        kind,
        app: recorded
            .error
            .as_ref()
            .and_then(ErrorRecord::app_error)
            .map(Box::new),
    }
}

fn step_error(
    name: &str,
    attempts: u32,
    message: String,
    kind: FailureKind,
    app: Option<&AppError>,
) -> ErrorRecord {
    match app {
        Some(app) => app.record(Some((name, attempts))),
        None => ErrorRecord {
            kind: kind.as_str().to_owned(),
            message,
            step: Some(name.to_owned()),
            attempts: Some(attempts),
            ..ErrorRecord::default()
        },
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic payload that is not a string)".to_owned()
    }
}
