//! [`TaskContext`]: what a running workflow uses to take durable steps.
//!
//! Guarantees: a step body runs at least once (a crash between its side effect and its commit
//! repeats it); its recorded result is exactly once, and replay returns it without running the
//! body. A step reached in another order or under another name than recorded is a
//! non-determinism error, never a silent mix of results.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::error::{error_chain, BoxError};
use crate::execution::ErrorRecord;
use crate::scheduler::{
    ClaimedTask, CommitStepParams, Lease, RecordedStep, RetryStepParams, StepStatus,
};
use crate::{RetryConfig, Scheduler, TaskError};

/// The handle a workflow takes its steps through. One per run; given to
/// [`crate::TaskHandler::run`].
pub struct TaskContext<S: Scheduler> {
    scheduler: S,
    lease: Lease,
    task_name: String,
    claims: u32,
    recorded: HashMap<String, RecordedStep>,
    recorded_by_seq: HashMap<u32, String>,
    used: HashSet<String>,
    next_seq: u32,
    durable_backoff_threshold: Duration,
    suspended_for: Option<Duration>,
}

impl<S: Scheduler> std::fmt::Debug for TaskContext<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("execution_id", &self.lease.execution_id)
            .field("task_name", &self.task_name)
            .field("claims", &self.claims)
            .field("recorded_steps", &self.recorded.len())
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

/// How one run of a step body ended.
enum BodyOutcome<T> {
    Ok(T),
    Err(String),
    Panicked(String),
}

impl<S: Scheduler> TaskContext<S> {
    /// Builds the context for one claimed execution (used by workers and test harnesses).
    pub fn from_claim(
        scheduler: S,
        task: &ClaimedTask,
        durable_backoff_threshold: Duration,
    ) -> Self {
        let recorded_by_seq = task.steps.iter().map(|s| (s.seq, s.name.clone())).collect();
        let recorded = task
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        TaskContext {
            scheduler,
            lease: task.lease.clone(),
            task_name: task.task_name.clone(),
            claims: task.claims,
            recorded,
            recorded_by_seq,
            used: HashSet::new(),
            next_seq: 0,
            durable_backoff_threshold,
            suspended_for: None,
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

    /// How many times this execution has been claimed, this run included (1 on the first run).
    pub fn attempt(&self) -> u32 {
        self.claims
    }

    /// The lease this run holds.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// If the run suspended itself, how long until it is due again.
    pub fn suspended_for(&self) -> Option<Duration> {
        self.suspended_for
    }

    /// Runs `f` once and records its result under `name`; on replay returns the recorded result
    /// without running `f`.
    ///
    /// A step that fails is recorded as failed, and replay returns the same failure. A step that
    /// panics fails the same way, with the panic message. Step names must be unique within an
    /// execution (use `format!("charge-{i}")` in loops).
    ///
    /// # Errors
    /// [`TaskError::StepFailed`] when `f` fails or panics; [`TaskError::NonDeterminism`],
    /// [`TaskError::DuplicateStep`], and the control-flow errors ([`TaskError::LeaseLost`],
    /// [`TaskError::Cancelled`], [`TaskError::Storage`]) that must be propagated with `?`.
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
        let (seq, prior_attempts) = match self.begin_step(name)? {
            Replay::Done(result) => return result,
            Replay::Run {
                seq,
                prior_attempts,
            } => (seq, prior_attempts),
        };
        let attempt = prior_attempts + 1;
        match self.run_body(name, attempt, f()).await {
            BodyOutcome::Ok(value) => self.record_success(name, seq, attempt, value).await,
            BodyOutcome::Err(message) => {
                self.record_failure(name, seq, attempt, message, false)
                    .await
            }
            BodyOutcome::Panicked(message) => {
                self.record_failure(name, seq, attempt, message, true).await
            }
        }
    }

    /// Like [`TaskContext::step`], retrying a failing `f` as `retry` says.
    ///
    /// Back-offs up to [`crate::WorkerConfig::durable_backoff_threshold`] sleep in the worker;
    /// longer ones are durable: the failed attempt is recorded, the execution is suspended and
    /// rescheduled, and no worker slot is held while it waits (the call then returns
    /// [`TaskError::Suspended`], which `?` must carry out of the handler). Attempts counted
    /// across suspensions are exact; attempts inside one in-process back-off sequence are
    /// recounted from the last recorded attempt if the worker crashes. A panic is not retried.
    ///
    /// # Errors
    /// As [`TaskContext::step`], once the attempts run out.
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
            let message = match self.run_body(name, attempt, f()).await {
                BodyOutcome::Ok(value) => {
                    return self.record_success(name, seq, attempt, value).await
                }
                BodyOutcome::Panicked(message) => {
                    return self.record_failure(name, seq, attempt, message, true).await
                }
                BodyOutcome::Err(message) => message,
            };
            if attempt >= retry.max_attempts() {
                return self
                    .record_failure(name, seq, attempt, message, false)
                    .await;
            }
            let delay = retry.jittered_delay_after(attempt);
            tracing::info!(
                step.name = name,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %message,
                "step attempt failed; retrying"
            );
            if delay > self.durable_backoff_threshold {
                let error = step_error(name, attempt, message, false);
                self.scheduler
                    .retry_step(RetryStepParams {
                        lease: self.lease.clone(),
                        name: name.to_owned(),
                        seq,
                        error,
                        attempts: attempt,
                        delay,
                    })
                    .await?;
                self.suspended_for = Some(delay);
                return Err(TaskError::Suspended);
            }
            tokio::time::sleep(delay).await;
            attempts_done = attempt;
        }
    }

    /// Checks the step against the recording: returns its recorded result, or the position and
    /// prior attempts to run it with.
    fn begin_step<T: DeserializeOwned>(&mut self, name: &str) -> Result<Replay<T>, TaskError> {
        if self.suspended_for.is_some() {
            return Err(TaskError::Suspended);
        }
        crate::limits::check_name("step name", name).map_err(TaskError::failed)?;
        if !self.used.insert(name.to_owned()) {
            return Err(TaskError::DuplicateStep {
                step: name.to_owned(),
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;

        let Some(recorded) = self.recorded.get(name) else {
            if let Some(other) = self.recorded_by_seq.get(&seq) {
                return Err(TaskError::NonDeterminism {
                    step: name.to_owned(),
                    detail: format!(
                        "step {seq} was recorded as {other:?}, but the workflow now asks for {name:?}"
                    ),
                });
            }
            return Ok(Replay::Run {
                seq,
                prior_attempts: 0,
            });
        };
        if recorded.seq != seq {
            return Err(TaskError::NonDeterminism {
                step: name.to_owned(),
                detail: format!(
                    "it was recorded as step {}, but the workflow now reaches it as step {seq}",
                    recorded.seq
                ),
            });
        }
        match recorded.status {
            StepStatus::Completed => {
                let value = recorded.output.clone().unwrap_or(serde_json::Value::Null);
                let result =
                    serde_json::from_value(value).map_err(|source| TaskError::Serialization {
                        action: "deserialize",
                        what: format!("the recorded output of step {name:?}"),
                        source,
                    });
                Ok(Replay::Done(result))
            }
            StepStatus::Failed => {
                let (message, panicked) = recorded
                    .error
                    .as_ref()
                    .map(|e| (e.message.clone(), e.kind == "panic"))
                    .unwrap_or_else(|| ("failed (no error recorded)".to_owned(), false));
                Ok(Replay::Done(Err(TaskError::StepFailed {
                    step: name.to_owned(),
                    message,
                    attempts: recorded.attempts,
                    panicked,
                })))
            }
            StepStatus::Retrying => Ok(Replay::Run {
                seq,
                prior_attempts: recorded.attempts,
            }),
        }
    }

    /// Runs one attempt of a step body, catching its error or panic.
    async fn run_body<T, E, Fut>(&self, name: &str, attempt: u32, fut: Fut) -> BodyOutcome<T>
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
        let result = AssertUnwindSafe(fut).catch_unwind().instrument(span).await;
        metrics::histogram!("zart_step_duration_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(value)) => BodyOutcome::Ok(value),
            Ok(Err(err)) => {
                let err: BoxError = err.into();
                BodyOutcome::Err(error_chain(err.as_ref()))
            }
            Err(panic) => {
                BodyOutcome::Panicked(format!("step panicked: {}", panic_message(&*panic)))
            }
        }
    }

    async fn record_success<T>(
        &mut self,
        name: &str,
        seq: u32,
        attempt: u32,
        value: T,
    ) -> Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned,
    {
        let json = serde_json::to_value(&value).map_err(|source| TaskError::Serialization {
            action: "serialize",
            what: format!("the output of step {name:?}"),
            source,
        })?;
        self.scheduler
            .commit_step(CommitStepParams {
                lease: self.lease.clone(),
                name: name.to_owned(),
                seq,
                status: StepStatus::Completed,
                output: Some(json.clone()),
                error: None,
                attempts: attempt,
            })
            .await?;
        // Return what replay would return, so the first run and every replay see the same value.
        serde_json::from_value(json).map_err(|source| TaskError::Serialization {
            action: "deserialize",
            what: format!("the output of step {name:?}"),
            source,
        })
    }

    async fn record_failure<T>(
        &mut self,
        name: &str,
        seq: u32,
        attempt: u32,
        message: String,
        panicked: bool,
    ) -> Result<T, TaskError> {
        let error = step_error(name, attempt, message.clone(), panicked);
        self.scheduler
            .commit_step(CommitStepParams {
                lease: self.lease.clone(),
                name: name.to_owned(),
                seq,
                status: StepStatus::Failed,
                output: None,
                error: Some(error),
                attempts: attempt,
            })
            .await?;
        Err(TaskError::StepFailed {
            step: name.to_owned(),
            message,
            attempts: attempt,
            panicked,
        })
    }
}

enum Replay<T> {
    Done(Result<T, TaskError>),
    Run { seq: u32, prior_attempts: u32 },
}

fn step_error(name: &str, attempts: u32, message: String, panicked: bool) -> ErrorRecord {
    ErrorRecord {
        kind: if panicked { "panic" } else { "step_failed" }.to_owned(),
        message,
        step: Some(name.to_owned()),
        attempts: Some(attempts),
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
