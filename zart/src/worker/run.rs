//! Running one claimed execution: the pre-run checks, the handler call and the outcome write.
//!
//! A run fails the execution, rather than running it, when its task is unknown, its deadline
//! has passed or it was recovered too often; a handler that panics or overruns its deadline
//! fails it too. The outcome write is retried while its error is transient (up to five tries);
//! a suspended or abandoned run writes no outcome. However a run ends, even aborted, the
//! worker is told.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{lock, Core, Running};
use crate::backoff::Backoff;
use crate::context::panic_message;
use crate::execution::ErrorRecord;
use crate::scheduler::{ClaimedTask, CompleteExecutionParams, DynScheduler, Outcome};
use crate::{telemetry, Error, TaskContext, TaskError, TaskRegistry};

/// Sent when a run ends, however it ends (even when aborted: it is sent from `Drop`).
pub(super) struct RunEnded {
    pub(super) execution_id: String,
    pub(super) due_again_in: Option<Duration>,
}

struct EndGuard {
    tx: mpsc::UnboundedSender<RunEnded>,
    execution_id: String,
    due_again_in: Option<Duration>,
    /// The queue, for the in-flight gauge (raised when the run is spawned, lowered here).
    queue: String,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        metrics::gauge!(telemetry::RUNS_IN_FLIGHT, "queue" => std::mem::take(&mut self.queue))
            .decrement(1.0);
        let _ = self.tx.send(RunEnded {
            execution_id: std::mem::take(&mut self.execution_id),
            due_again_in: self.due_again_in,
        });
    }
}

impl Core {
    pub(super) fn spawn_run(&self, task: ClaimedTask) {
        let execution_id = task.lease.execution_id.clone();
        let guard = EndGuard {
            tx: self.ended.0.clone(),
            execution_id: execution_id.clone(),
            due_again_in: None,
            queue: self.config.queue.clone(),
        };
        metrics::gauge!(telemetry::RUNS_IN_FLIGHT, "queue" => self.config.queue.clone())
            .increment(1.0);
        let run = run_execution(
            self.scheduler.clone(),
            self.registry.clone(),
            task.clone(),
            RunLimits {
                durable_backoff_threshold: self.config.durable_backoff_threshold,
                max_recoveries: self.config.max_recoveries,
            },
            guard,
        );
        // Hold the map lock across the spawn so the run cannot end before it is registered.
        let mut running = lock(&self.running);
        let handle = tokio::spawn(run);
        running.insert(
            execution_id,
            Running {
                lease: task.lease,
                abort: handle.abort_handle(),
            },
        );
    }
}

/// The per-run settings taken from [`WorkerConfig`](super::WorkerConfig).
#[derive(Debug, Clone, Copy)]
struct RunLimits {
    durable_backoff_threshold: Duration,
    max_recoveries: u32,
}

/// Runs one claimed execution to an outcome (or to a suspension or abandonment).
async fn run_execution(
    scheduler: DynScheduler,
    registry: Arc<TaskRegistry>,
    task: ClaimedTask,
    limits: RunLimits,
    mut guard: EndGuard,
) {
    let span = tracing::info_span!(
        "zart.task.run",
        execution.id = %task.lease.execution_id,
        task.name = %task.task_name,
        attempts = task.attempts,
    );
    let lease = task.lease.clone();
    let started = Instant::now();
    let outcome = async {
        let Some(handler) = registry.get(&task.task_name) else {
            return Some(Outcome::Failed(ErrorRecord {
                kind: "unknown_task".to_owned(),
                message: format!("no handler is registered for task {:?}", task.task_name),
                step: None,
                attempts: None,
                ..Default::default()
            }));
        };
        if task.deadline_in.is_some_and(|left| left.is_zero()) {
            return Some(Outcome::Failed(deadline_error()));
        }
        if task.recoveries > limits.max_recoveries {
            return Some(Outcome::Failed(ErrorRecord {
                kind: "too_many_recoveries".to_owned(),
                message: format!(
                    "the execution was taken over {} times from a worker that died or stalled \
                     while running it; giving up (WorkerConfig::max_recoveries is {})",
                    task.recoveries, limits.max_recoveries
                ),
                step: None,
                attempts: None,
                ..Default::default()
            }));
        }
        let mut ctx =
            TaskContext::from_claim(scheduler.clone(), &task, limits.durable_backoff_threshold);
        let run = AssertUnwindSafe(handler.run(&mut ctx, task.input.clone())).catch_unwind();
        let result = match task.deadline_in {
            Some(left) => match tokio::time::timeout(left, run).await {
                Ok(result) => result,
                Err(_) => return Some(Outcome::Failed(deadline_error())),
            },
            None => run.await,
        };
        guard.due_again_in = ctx.due_again_in();
        if ctx.is_suspended() && !matches!(result, Ok(Err(TaskError::Suspended))) {
            // The handler swallowed a suspension instead of propagating it: the execution is
            // suspended all the same, and its outcome must not be recorded now.
            tracing::warn!("the handler did not propagate TaskError::Suspended; use `?` on waits");
            return None;
        }
        match result {
            Ok(Ok(output)) => Some(Outcome::Completed(output)),
            Ok(Err(err)) if err.is_control_flow() => {
                match &err {
                    TaskError::Suspended => tracing::debug!("execution suspended"),
                    TaskError::Storage(e) => tracing::warn!(
                        error = %crate::error::error_chain(e),
                        "could not record a step; abandoning this run (its lease will expire)"
                    ),
                    TaskError::LeaseLost => {
                        lease_lost("write");
                        tracing::info!(reason = %err, "run stopped");
                    }
                    other => tracing::info!(reason = %other, "run stopped"),
                }
                None
            }
            Ok(Err(err)) => Some(Outcome::Failed(error_record(&err))),
            Err(panic) => Some(Outcome::Failed(ErrorRecord {
                kind: "panic".to_owned(),
                message: format!("task panicked: {}", panic_message(&*panic)),
                step: None,
                attempts: None,
                ..Default::default()
            })),
        }
    }
    .instrument(span.clone())
    .await;

    let Some(outcome) = outcome else {
        return;
    };
    let mut backoff = Backoff::new();
    let mut outcome = outcome;
    for attempt in 1..=5 {
        let params = CompleteExecutionParams {
            lease: lease.clone(),
            outcome: outcome.clone(),
        };
        match scheduler.complete_execution(params).await {
            // The backend refused the output itself (over the payload limit): running the
            // workflow again would produce it again, so the execution fails with the reason.
            Err(err @ Error::InvalidInput { .. }) if matches!(outcome, Outcome::Completed(_)) => {
                outcome = Outcome::Failed(ErrorRecord {
                    kind: "error".to_owned(),
                    message: format!("the output could not be recorded: {err}"),
                    step: None,
                    attempts: None,
                    ..Default::default()
                });
            }
            Ok(()) => {
                let status = match &outcome {
                    Outcome::Completed(_) => "completed",
                    Outcome::Failed(_) => "failed",
                };
                metrics::counter!(telemetry::EXECUTIONS_FINISHED, "status" => status).increment(1);
                metrics::histogram!(telemetry::RUN_DURATION)
                    .record(started.elapsed().as_secs_f64());
                span.in_scope(|| tracing::debug!(status, "execution finished"));
                return;
            }
            Err(err) if err.is_transient() && attempt < 5 => {
                tokio::time::sleep(backoff.next()).await;
            }
            Err(err) => {
                if matches!(err, Error::LeaseLost { .. }) {
                    lease_lost("write");
                }
                span.in_scope(|| {
                    tracing::warn!(
                        error = %crate::error::error_chain(&err),
                        "could not record the outcome; another run will redo it"
                    )
                });
                return;
            }
        }
    }
}

/// Counts a run stopped because its lease was lost, by who noticed (`heartbeat`, `write`).
pub(super) fn lease_lost(detected_by: &'static str) {
    metrics::counter!(telemetry::LEASE_LOSSES, "detected_by" => detected_by).increment(1);
}

fn deadline_error() -> ErrorRecord {
    ErrorRecord {
        kind: "deadline_exceeded".to_owned(),
        message: "the execution's deadline passed before it finished".to_owned(),
        step: None,
        attempts: None,
        ..Default::default()
    }
}

/// The recorded form of a failure that ends an execution.
fn error_record(err: &TaskError) -> ErrorRecord {
    match err {
        TaskError::Application(app) => app.record(None),
        TaskError::StepFailed {
            step,
            attempts,
            app: Some(app),
            ..
        } => app.record(Some((step, *attempts))),
        TaskError::StepFailed {
            step,
            message,
            attempts,
            ..
        } => ErrorRecord {
            kind: err.kind().to_owned(),
            message: message.clone(),
            step: Some(step.clone()),
            attempts: Some(*attempts),
            ..ErrorRecord::default()
        },
        TaskError::NonDeterminism { step, .. } | TaskError::DuplicateStep { step } => ErrorRecord {
            kind: err.kind().to_owned(),
            message: err.to_string(),
            step: Some(step.clone()),
            attempts: None,
            ..Default::default()
        },
        other => ErrorRecord {
            kind: other.kind().to_owned(),
            message: crate::error::error_chain(other),
            step: None,
            attempts: None,
            ..Default::default()
        },
    }
}
