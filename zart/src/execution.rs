//! What an execution looks like from outside: its status and its recorded result.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The lifecycle state of an execution, as stored in `zart_executions.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExecutionStatus {
    /// Waiting for a worker to claim it: just started, released by a worker that shut down,
    /// or retried after a failure.
    Scheduled,
    /// Claimed by a worker, which runs it under a lease (the status stays `running` after that
    /// worker dies, until the lease expires and another claim takes the execution over).
    Running,
    /// Suspended until a time: a durable sleep ([`crate::TaskContext::sleep`],
    /// [`crate::TaskContext::sleep_until`]) or a durable retry back-off.
    Sleeping,
    /// Suspended until something happens: an event ([`crate::TaskContext::wait_for_event`], or
    /// its timeout) or the end of a child execution ([`crate::TaskContext::child`]).
    Waiting,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled before it finished: by a cancel call, or because an ancestor was cancelled or
    /// failed.
    Cancelled,
}

impl ExecutionStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Scheduled => "scheduled",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Sleeping => "sleeping",
            ExecutionStatus::Waiting => "waiting",
            ExecutionStatus::Completed => "completed",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the name stored in the database.
    ///
    /// # Errors
    /// [`Error::Database`] for a name this build does not know.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Ok(match name {
            "scheduled" => ExecutionStatus::Scheduled,
            "running" => ExecutionStatus::Running,
            "sleeping" => ExecutionStatus::Sleeping,
            "waiting" => ExecutionStatus::Waiting,
            "completed" => ExecutionStatus::Completed,
            "failed" => ExecutionStatus::Failed,
            "cancelled" => ExecutionStatus::Cancelled,
            other => {
                return Err(Error::Database {
                    message: format!("unknown execution status {other:?} in the database"),
                    source: None,
                })
            }
        })
    }

    /// True once the execution can no longer change: completed, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed | ExecutionStatus::Failed | ExecutionStatus::Cancelled
        )
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The recorded error of a failed or cancelled execution, or of a failed step
/// (`zart_executions.error` or `zart_steps.error`, as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// A machine-readable kind: Zart's own (`step_failed`, `panic`, `timeout`, `failed`,
    /// `child_failed`, `non_determinism`, `duplicate_step`, `deadline_exceeded`, `cancelled`,
    /// `too_many_recoveries`, `unknown_task`, ...), or the kind of an application error
    /// ([`crate::AppError`]).
    pub kind: String,
    /// The message, with its source chain.
    pub message: String,
    /// The step that failed, if a step did (or the step where replay diverged, for
    /// `non_determinism` and `duplicate_step`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Attempts made by that step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// An application error's structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Set for an application error only: whether it said a retry could succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

impl ErrorRecord {
    /// A recorded error as a backend stored it, read leniently: JSON that is not an
    /// [`ErrorRecord`] is kept whole as the message (kind `unknown`).
    pub fn from_stored(value: serde_json::Value) -> ErrorRecord {
        serde_json::from_value::<ErrorRecord>(value.clone()).unwrap_or_else(|_| ErrorRecord {
            kind: "unknown".to_owned(),
            message: value.to_string(),
            ..Default::default()
        })
    }

    /// [`ErrorRecord::from_stored`] for JSON stored as text; text that is not JSON is the
    /// message.
    pub fn from_stored_text(text: &str) -> ErrorRecord {
        serde_json::from_str::<ErrorRecord>(text).unwrap_or_else(|_| ErrorRecord {
            kind: "unknown".to_owned(),
            message: text.to_owned(),
            ..Default::default()
        })
    }

    /// The application error this record holds, if it holds one (it has `retryable`).
    pub fn app_error(&self) -> Option<crate::AppError> {
        let retryable = self.retryable?;
        Some(crate::AppError {
            kind: self.kind.clone(),
            message: self.message.clone(),
            details: self.details.clone(),
            retryable,
        })
    }
}

impl std::fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "{} (step {step:?}, {})", self.message, self.kind),
            None => write!(f, "{} ({})", self.message, self.kind),
        }
    }
}

/// One execution as stored: what [`crate::DurableScheduler::status`] and `wait` return.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Execution {
    /// The id given at start (the idempotency key).
    pub id: String,
    /// The registered task name.
    pub task_name: String,
    /// The queue it runs on.
    pub queue: String,
    /// Its current status.
    pub status: ExecutionStatus,
    /// The input given at start.
    pub input: serde_json::Value,
    /// The handler's output, once completed.
    pub output: Option<serde_json::Value>,
    /// The recorded error, once failed or cancelled.
    pub error: Option<ErrorRecord>,
    /// How many times a worker has claimed it (a retry keeps counting).
    pub attempts: u32,
    /// When it was started.
    pub created_at: SystemTime,
    /// When a worker first claimed it.
    pub started_at: Option<SystemTime>,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
    /// The parent execution, for a child workflow.
    pub parent_id: Option<String>,
    /// Its priority within its queue (see [`crate::StartOptions::with_priority`]).
    pub priority: i16,
}

impl Execution {
    /// An execution record with the given identity and status and every other field empty;
    /// for backends, which fill in the rest.
    pub fn new(id: String, task_name: String, status: ExecutionStatus) -> Self {
        Execution {
            id,
            task_name,
            queue: String::new(),
            status,
            input: serde_json::Value::Null,
            output: None,
            error: None,
            attempts: 0,
            created_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            parent_id: None,
            priority: 0,
        }
    }

    /// The execution's result as `T`: its output once completed, its error once failed or
    /// cancelled. A completed execution without a stored output reads as JSON `null` (the
    /// output of a task returning `()`).
    ///
    /// # Errors
    /// [`Error::ExecutionFailed`] with the recorded error when it failed or was cancelled;
    /// [`Error::InvalidInput`] when it has not finished; [`Error::Serialization`] when the
    /// output does not fit `T`.
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{DurableScheduler, Scheduler};
    /// # async fn example<S: Scheduler>(durable: DurableScheduler<S>) -> Result<(), zart::Error> {
    /// let finished = durable.wait("invoice-7", Some(Duration::from_secs(30))).await?;
    /// let total: u64 = finished.result_as()?;
    /// # Ok(()) }
    /// ```
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self.status {
            ExecutionStatus::Completed => {
                serde_json::from_value(self.output.clone().unwrap_or(serde_json::Value::Null))
                    .map_err(|source| Error::Serialization {
                        action: "deserialize",
                        what: format!("output of execution {:?}", self.id),
                        source,
                    })
            }
            ExecutionStatus::Failed | ExecutionStatus::Cancelled => Err(Error::ExecutionFailed {
                id: self.id.clone(),
                status: self.status,
                error: self.error.clone().map(Box::new),
            }),
            status => Err(Error::invalid(
                "execution",
                format!("execution {:?} has not finished (status {status})", self.id),
            )),
        }
    }

    /// Deserializes the stored output into `T` (the task's `Output` type). See also
    /// [`Execution::result_as`], which gives a failed execution's error instead.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there is no output (not completed yet, failed, cancelled);
    /// [`Error::Serialization`] when it does not fit `T`.
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let value = self.output.clone().ok_or_else(|| {
            Error::invalid(
                "output",
                format!(
                    "execution {:?} has no output (status {})",
                    self.id, self.status
                ),
            )
        })?;
        serde_json::from_value(value).map_err(|source| Error::Serialization {
            action: "deserialize",
            what: format!("output of execution {:?}", self.id),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn execution(status: ExecutionStatus, output: Option<serde_json::Value>) -> Execution {
        let mut e = Execution::new("e-1".into(), "t".into(), status);
        e.output = output;
        e
    }

    #[test]
    fn result_as_gives_the_output_or_the_recorded_failure() {
        let done = execution(ExecutionStatus::Completed, Some(serde_json::json!(7)));
        assert_eq!(done.result_as::<u64>().unwrap(), 7);
        let unit = execution(ExecutionStatus::Completed, None);
        unit.result_as::<()>().unwrap();

        let mut failed = execution(ExecutionStatus::Failed, None);
        failed.error = Some(ErrorRecord {
            kind: "step_failed".into(),
            message: "card declined".into(),
            step: Some("charge".into()),
            attempts: Some(3),
            ..Default::default()
        });
        let err = failed.result_as::<u64>().unwrap_err();
        assert_eq!(err.code(), "execution_failed");
        assert_eq!(
            err.to_string(),
            "execution \"e-1\" ended failed: card declined (step \"charge\", step_failed)"
        );
        let running = execution(ExecutionStatus::Running, None);
        assert_eq!(
            running.result_as::<u64>().unwrap_err().to_string(),
            "invalid execution: execution \"e-1\" has not finished (status running)"
        );
    }
}
