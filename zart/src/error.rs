//! Error types: [`Error`] for client and backend calls, [`TaskError`] for workflow code.
//!
//! Suspension is control flow, not failure: it travels as [`TaskError::Suspended`] so that `?`
//! carries it out of a handler, but retries never see it and it never fails an execution.

use std::time::Duration;

/// A boxed error that keeps its source chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a [`crate::DurableScheduler`] call or a [`crate::Scheduler`] backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The id is already used by an execution with another task name, input, queue, parent or
    /// deadline.
    #[error("start conflict: {detail}")]
    Conflict {
        /// The execution id that was started twice.
        id: String,
        /// What differs, as the backend reported it.
        detail: String,
    },
    /// The task name is not registered in the [`crate::TaskRegistry`].
    #[error("unknown task {name:?}: register it with TaskRegistry::register before starting it")]
    UnknownTask {
        /// The name that was asked for.
        name: String,
    },
    /// A second handler was registered under a task name that already has one.
    #[error("task {name:?} is registered twice: a task name takes exactly one handler")]
    DuplicateTask {
        /// The task name registered twice.
        name: String,
    },
    /// An argument was refused before anything was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field that was wrong (`execution id`, `task name`, `input`, ...).
        field: String,
        /// Why it was refused, with the limit where there is one.
        reason: String,
    },
    /// No execution has this id.
    #[error("execution {id:?} not found")]
    NotFound {
        /// The id that was looked up.
        id: String,
    },
    /// The execution ended failed or cancelled where its output was asked for (a typed wait
    /// of a `#[zart_durable]` task, or [`crate::Execution::result_as`]).
    #[error("execution {id:?} ended {status}{}", error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    ExecutionFailed {
        /// The execution.
        id: String,
        /// Its final status (`failed` or `cancelled`).
        status: crate::ExecutionStatus,
        /// Its recorded error, if one was recorded (boxed: it may carry JSON details).
        error: Option<Box<crate::ErrorRecord>>,
    },
    /// [`crate::DurableScheduler::wait`] gave up before the execution finished.
    #[error("execution {id:?} did not finish within {waited:?}")]
    WaitTimeout {
        /// The execution waited on.
        id: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// The worker's lease on the execution was taken over; its late write was refused.
    #[error("lease lost on execution {id:?}: another worker owns it now")]
    LeaseLost {
        /// The execution whose lease was lost.
        id: String,
    },
    /// The execution was cancelled; its late write was refused.
    #[error("execution {id:?} was cancelled")]
    Cancelled {
        /// The cancelled execution.
        id: String,
    },
    /// A step result for this name is already recorded (a bug or a non-deterministic workflow).
    #[error("step {step:?} of execution {id:?} is already recorded")]
    StepAlreadyRecorded {
        /// The execution.
        id: String,
        /// The step name.
        step: String,
    },
    /// The execution has finished, so the call has nothing to act on (an event sent to it is
    /// refused rather than stored where nothing would ever consume it).
    #[error("execution {id:?} has finished ({status}): {what}")]
    Finished {
        /// The finished execution.
        id: String,
        /// Its final status (`completed`, `failed` or `cancelled`).
        status: String,
        /// What was refused.
        what: String,
    },
    /// A retry was refused: only a failed execution can be retried, and not once its deadline
    /// has passed (it would fail again at once).
    #[error("execution {id:?} cannot be retried: {reason}")]
    NotRetryable {
        /// The execution.
        id: String,
        /// Why, with its status or its deadline.
        reason: String,
    },
    /// The backend does not offer what was asked for (`ctx.step_tx` on a backend without a
    /// transaction a step can share). Nothing was written.
    #[error("{feature} is not offered by the {backend} backend: {hint}")]
    Unsupported {
        /// What was asked for (`ctx.step_tx`).
        feature: String,
        /// The backend that was asked (`sqlite`).
        backend: String,
        /// What to do instead.
        hint: String,
    },
    /// The database has no Zart schema, or an older one than this build needs.
    #[error("{0}")]
    Schema(String),
    /// A value could not be converted to or from JSON.
    #[error("could not {action} {what} as JSON")]
    Serialization {
        /// `serialize` or `deserialize`.
        action: &'static str,
        /// What was being converted (`input of task "x"`, `output of step "y"`).
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The database could not be reached (connection refused, dropped, pool timeout).
    #[error("database unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The database gave up on the call because of a concurrent transaction (a serialization
    /// failure or a deadlock). Nothing was written; the same call may pass if tried again.
    #[error("database contention: {message}")]
    Contention {
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other database error.
    #[error("database error: {message}")]
    Database {
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// True for errors that may pass if the call is tried again: the database was unreachable
    /// ([`Error::Unavailable`]) or gave up on the call because of a concurrent transaction
    /// ([`Error::Contention`]: a serialization failure or a deadlock). Workers retry these with
    /// back-off; every other error is final for the call that returned it.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Contention { .. })
    }

    /// A stable, short, machine-readable name of the error's kind (`"lease_lost"`,
    /// `"unavailable"`, ...), for logs, metrics and programs that branch on it. Codes never
    /// change once released; a new kind gets a new code.
    ///
    /// # Examples
    /// ```
    /// let err = zart::Error::NotFound { id: "order-7".into() };
    /// assert_eq!(err.code(), "not_found");
    /// assert!(!err.is_transient());
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::Conflict { .. } => "conflict",
            Error::UnknownTask { .. } => "unknown_task",
            Error::DuplicateTask { .. } => "duplicate_task",
            Error::InvalidInput { .. } => "invalid_input",
            Error::NotFound { .. } => "not_found",
            Error::ExecutionFailed { .. } => "execution_failed",
            Error::WaitTimeout { .. } => "wait_timeout",
            Error::LeaseLost { .. } => "lease_lost",
            Error::Cancelled { .. } => "cancelled",
            Error::StepAlreadyRecorded { .. } => "step_already_recorded",
            Error::Finished { .. } => "finished",
            Error::NotRetryable { .. } => "not_retryable",
            Error::Unsupported { .. } => "unsupported",
            Error::Schema(_) => "schema",
            Error::Serialization { .. } => "serialization",
            Error::Unavailable { .. } => "unavailable",
            Error::Contention { .. } => "contention",
            Error::Database { .. } => "database",
        }
    }
}

/// A business failure of the application's own kind, with structured details: what a step
/// body or a workflow returns to fail in a way callers can tell apart (`card_declined` rather
/// than a message to parse).
///
/// Returned from a step body (as its error type, or inside any error boxed into
/// [`BoxError`]), it is recorded on the step and, if the workflow lets it end the execution,
/// on the execution: `kind`, `message`, `details` and `retryable` are fields of the stored
/// [`crate::ErrorRecord`], so `status()`, `wait()` and plain SQL see them
/// (`error->>'kind' = 'card_declined'`). A step under `step_with_retry` is not tried again
/// after a failure that is not retryable. A workflow fails with one through
/// `Err(AppError::new(..).into())`.
///
/// Zart's own kinds (`step_failed`, `panic`, `timeout`, `failed`, `child_failed`,
/// `non_determinism`, `duplicate_step`, `deadline_exceeded`, `cancelled`, and the others
/// listed at [`crate::ErrorRecord::kind`]) stay Zart's: an application error is told apart by
/// its `retryable` field, which only it records.
///
/// # Examples
/// ```
/// use zart::{AppError, TaskError};
///
/// let declined = AppError::new("card_declined", "the card was declined")
///     .with_details(serde_json::json!({ "decline_code": "insufficient_funds" }))
///     .not_retryable();
/// assert!(!declined.retryable);
/// let failure: TaskError = declined.into();
/// assert_eq!(failure.to_string(), "the card was declined (card_declined)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{message} ({kind})")]
#[non_exhaustive]
pub struct AppError {
    /// The application's name for this failure (`card_declined`).
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Structured details, stored as JSON.
    pub details: Option<serde_json::Value>,
    /// Whether trying again could succeed (default true); a step under `step_with_retry`
    /// stops at a failure that is not retryable.
    pub retryable: bool,
}

impl AppError {
    /// A retryable failure of `kind` with `message` and no details.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        AppError {
            kind: kind.into(),
            message: message.into(),
            details: None,
            retryable: true,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Marks the failure as one a retry cannot fix.
    pub fn not_retryable(mut self) -> Self {
        self.retryable = false;
        self
    }

    /// The record stored for it, at `step` after `attempts` when a step failed.
    pub(crate) fn record(&self, step: Option<(&str, u32)>) -> crate::ErrorRecord {
        crate::ErrorRecord {
            kind: self.kind.clone(),
            message: self.message.clone(),
            step: step.map(|(name, _)| name.to_owned()),
            attempts: step.map(|(_, attempts)| attempts),
            details: self.details.clone(),
            retryable: Some(self.retryable),
        }
    }
}

/// The error type of workflow code: what [`crate::TaskHandler::run`] and the step functions
/// return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A step failed for good (after its retries); the error is recorded with the step.
    #[error("step {step:?} failed: {message}")]
    StepFailed {
        /// The step name.
        step: String,
        /// The step's error message (its whole source chain, joined by `: `).
        message: String,
        /// Attempts made.
        attempts: u32,
        /// How it failed: an error, a panic, a timeout, a failed child.
        kind: FailureKind,
        /// The application error the body returned, if it returned one.
        app: Option<Box<AppError>>,
    },
    /// The workflow failed with an application error of its own (see [`AppError`]).
    #[error("{0}")]
    Application(Box<AppError>),
    /// The workflow itself decided to fail (see [`TaskError::failed`]); Zart fails a run the
    /// same way for a value it refuses (an empty or over-long step name, a wait over 100
    /// years, a value the database refused), since running it again cannot help.
    #[error("{message}")]
    Failed {
        /// Why the workflow failed.
        message: String,
    },
    /// Replay met steps in another order or under other names than recorded: the workflow code
    /// changed under a running execution. The execution fails instead of mixing results.
    #[error("non-deterministic workflow at step {step:?}: {detail}")]
    NonDeterminism {
        /// The step where replay diverged.
        step: String,
        /// What was recorded against what was asked for.
        detail: String,
    },
    /// A step name was used twice in one execution.
    #[error("step name {step:?} is used twice in one execution; step names must be unique")]
    DuplicateStep {
        /// The repeated name.
        step: String,
    },
    /// Control flow, not failure: the execution is suspended (a durable sleep, an event wait, a
    /// child wait or a durable retry back-off) and will resume on some worker. Return it with
    /// `?`; never retry it.
    #[error("execution suspended")]
    Suspended,
    /// The lease was lost; another worker now owns the execution. This run stops.
    #[error("lease lost; another worker owns this execution now")]
    LeaseLost,
    /// The execution was cancelled. This run stops.
    #[error("execution cancelled")]
    Cancelled,
    /// A value could not be converted to or from JSON.
    #[error("could not {action} {what} as JSON: {source}")]
    Serialization {
        /// `serialize` or `deserialize`.
        action: &'static str,
        /// What was being converted.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A call to the backend failed (a step result or a wait could not be recorded). The run
    /// stops without an outcome; the lease expires and another claim resumes from the last
    /// recorded step.
    #[error("storage error: {0}")]
    Storage(#[source] Error),
}

impl From<AppError> for TaskError {
    fn from(err: AppError) -> Self {
        TaskError::Application(Box::new(err))
    }
}

impl TaskError {
    /// The application error behind this failure: the workflow's own, or the one a failed
    /// step's body returned.
    pub fn app_error(&self) -> Option<&AppError> {
        match self {
            TaskError::Application(app) => Some(app),
            TaskError::StepFailed { app, .. } => app.as_deref(),
            _ => None,
        }
    }

    /// Fails the workflow with a message; the execution ends `failed` with it.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        TaskError::Failed {
            message: message.to_string(),
        }
    }

    /// True for the control-flow outcomes that end a run without an outcome on the execution:
    /// suspension, lease loss, cancellation and storage failures.
    pub fn is_control_flow(&self) -> bool {
        matches!(
            self,
            TaskError::Suspended
                | TaskError::LeaseLost
                | TaskError::Cancelled
                | TaskError::Storage(_)
        )
    }

    /// A short machine-readable kind, recorded as `error.kind` when this error fails the
    /// execution; an application error records its own kind instead ([`AppError::kind`]).
    pub fn kind(&self) -> &'static str {
        match self {
            TaskError::StepFailed { kind, .. } => kind.as_str(),
            TaskError::Failed { .. } => "failed",
            TaskError::Application(_) => "application",
            TaskError::NonDeterminism { .. } => "non_determinism",
            TaskError::DuplicateStep { .. } => "duplicate_step",
            TaskError::Suspended => "suspended",
            TaskError::LeaseLost => "lease_lost",
            TaskError::Cancelled => "cancelled",
            TaskError::Serialization { .. } => "serialization",
            TaskError::Storage(_) => "storage",
        }
    }
}

/// How a step failed, recorded as `error.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The step body returned an error.
    Error,
    /// The step body panicked.
    Panic,
    /// The step body ran past its timeout.
    Timeout,
    /// A child workflow failed or was cancelled.
    Child,
}

impl FailureKind {
    /// The name recorded in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "step_failed",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
            FailureKind::Child => "child_failed",
        }
    }

    /// Parses a recorded kind; unknown kinds read as [`FailureKind::Error`].
    pub fn parse(kind: &str) -> Self {
        match kind {
            "panic" => FailureKind::Panic,
            "timeout" => FailureKind::Timeout,
            "child_failed" => FailureKind::Child,
            _ => FailureKind::Error,
        }
    }
}

impl From<Error> for TaskError {
    fn from(err: Error) -> Self {
        match err {
            Error::LeaseLost { .. } => TaskError::LeaseLost,
            Error::Cancelled { .. } => TaskError::Cancelled,
            // The database refused the value itself, or a child's id is taken by another
            // execution: trying again cannot help, so the execution fails with the reason
            // instead of being retried until its recovery limit.
            Error::InvalidInput { .. } | Error::Conflict { .. } | Error::Unsupported { .. } => {
                TaskError::failed(err)
            }
            other => TaskError::Storage(other),
        }
    }
}

impl From<serde_json::Error> for TaskError {
    fn from(source: serde_json::Error) -> Self {
        TaskError::Serialization {
            action: "convert",
            what: "a value".into(),
            source,
        }
    }
}

/// A value as JSON text, for a backend that stores JSON as text (zart-sqlite, zart-mysql).
///
/// # Errors
/// [`Error::Serialization`] naming `what`.
pub fn to_json_text<T: serde::Serialize>(value: &T, what: &str) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|source| Error::Serialization {
        action: "serialize",
        what: what.to_owned(),
        source,
    })
}

/// JSON text a backend stored, read back as `T`.
///
/// # Errors
/// [`Error::Serialization`] naming `what`.
pub fn from_json_text<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Serialization {
        action: "deserialize",
        what: what.to_owned(),
        source,
    })
}

/// Joins an error and its sources into one line: `outer: inner: root`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn every_kind() -> Vec<Error> {
        let json = || serde_json::from_str::<u8>("x").unwrap_err();
        vec![
            Error::Conflict {
                id: "a".into(),
                detail: "d".into(),
            },
            Error::UnknownTask { name: "t".into() },
            Error::DuplicateTask { name: "t".into() },
            Error::invalid("f", "r"),
            Error::NotFound { id: "a".into() },
            Error::ExecutionFailed {
                id: "a".into(),
                status: crate::ExecutionStatus::Failed,
                error: None,
            },
            Error::WaitTimeout {
                id: "a".into(),
                waited: Duration::from_secs(1),
            },
            Error::LeaseLost { id: "a".into() },
            Error::Cancelled { id: "a".into() },
            Error::StepAlreadyRecorded {
                id: "a".into(),
                step: "s".into(),
            },
            Error::Finished {
                id: "a".into(),
                status: "completed".into(),
                what: "w".into(),
            },
            Error::NotRetryable {
                id: "a".into(),
                reason: "r".into(),
            },
            Error::Unsupported {
                feature: "f".into(),
                backend: "b".into(),
                hint: "h".into(),
            },
            Error::Schema("old".into()),
            Error::Serialization {
                action: "serialize",
                what: "w".into(),
                source: json(),
            },
            Error::Unavailable {
                message: "m".into(),
                source: None,
            },
            Error::Contention {
                message: "m".into(),
                source: None,
            },
            Error::Database {
                message: "m".into(),
                source: None,
            },
        ]
    }

    #[test]
    fn every_kind_has_its_own_stable_code() {
        let codes: Vec<&str> = every_kind().iter().map(Error::code).collect();
        assert_eq!(
            codes,
            [
                "conflict",
                "unknown_task",
                "duplicate_task",
                "invalid_input",
                "not_found",
                "execution_failed",
                "wait_timeout",
                "lease_lost",
                "cancelled",
                "step_already_recorded",
                "finished",
                "not_retryable",
                "unsupported",
                "schema",
                "serialization",
                "unavailable",
                "contention",
                "database",
            ]
        );
    }

    #[test]
    fn only_unavailable_and_contention_are_transient() {
        let transient: Vec<&str> = every_kind()
            .iter()
            .filter(|e| e.is_transient())
            .map(Error::code)
            .collect();
        assert_eq!(transient, ["unavailable", "contention"]);
    }

    #[test]
    fn contention_is_a_storage_failure_in_workflow_code_not_a_outcome() {
        let err = TaskError::from(Error::Contention {
            message: "m".into(),
            source: None,
        });
        assert!(err.is_control_flow(), "{err:?}");
        assert_eq!(err.kind(), "storage");
    }
}
