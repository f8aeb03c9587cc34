//! Steps whose body writes in the backend's own database transaction, committed together with
//! the step's record ([`TaskContext::step_tx`]).

use std::any::Any;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{decode, Attempt, BodyOutcome, Replay, TaskContext};
use crate::error::{error_chain, BoxError, FailureKind};
use crate::scheduler::{CommitStepParams, StepStatus};
use crate::{Error, RetryConfig, Scheduler, TaskError};

/// How one attempt of a transactional step ended.
enum TxAttempt<T> {
    /// The body's writes and the step's result committed together; the output as recorded.
    Committed(serde_json::Value),
    /// Nothing committed: the body failed, or the commit was refused.
    RolledBack(BodyOutcome<T>),
}

impl<S: Scheduler> TaskContext<S> {
    /// Runs `f` in a transaction on the backend's own database and commits its writes together
    /// with the step's recorded result: both are stored, or neither. So the effect of the
    /// writes happens exactly once, across crashes and lost leases, where [`TaskContext::step`]
    /// gives at least once. On replay the recorded result is returned and `f` does not run.
    ///
    /// `f` takes the backend's transaction handle by value; with zart-pg it is
    /// `zart_pg::StepTx`, which dereferences to a `tokio_postgres::Client` inside the
    /// transaction (name the type on the closure's argument). The handle must not outlive the
    /// body, nor be used to end the transaction (`COMMIT`, `ROLLBACK`): either fails the step
    /// and rolls back. If `f` fails, panics or times out, everything it wrote is rolled back
    /// and the failure is recorded as for [`TaskContext::step`].
    ///
    /// Only writes through the handle are covered: an email sent or an API called from `f` may
    /// still happen more than once, as from any step.
    ///
    /// # Errors
    /// As [`TaskContext::step`]; also [`TaskError::Failed`] when the backend has no such
    /// transaction (SQLite: [`Error::Unsupported`]) or `f` takes another handle type than the
    /// backend's; a commit the database refuses (a deferred constraint, a serialization failure)
    /// fails the step with the database's message; a connection lost during the commit ends
    /// the run as [`TaskError::Storage`], and the next run finds the step recorded or not.
    ///
    /// # Examples
    /// ```no_run
    /// # use zart::{Scheduler, TaskContext, TaskError};
    /// # struct StepTx;
    /// # impl StepTx { async fn execute(&self, _: &str, _: &[&i64]) -> Result<u64, std::io::Error> { Ok(1) } }
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// // With zart-pg: `use zart_pg::StepTx;`
    /// let order_id: i64 = 42;
    /// ctx.step_tx("mark-paid", |tx: StepTx| async move {
    ///     tx.execute("update orders set paid = true where id = $1", &[&order_id]).await
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn step_tx<Tx, T, E, F, Fut>(&mut self, name: &str, f: F) -> Result<T, TaskError>
    where
        Tx: Any + Send,
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnOnce(Tx) -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let mut f = Some(f);
        self.tx_step(name, RetryConfig::none(), move |tx| f.take().map(|f| f(tx)))
            .await
    }

    /// Like [`TaskContext::step_tx`], retrying as `retry` says; each attempt runs in a new
    /// transaction, after the previous one rolled back. A commit refused for a concurrent
    /// transaction (serialization failure, deadlock) is a failed attempt like any other, so
    /// this is the way to run a `SERIALIZABLE` body.
    ///
    /// # Errors
    /// As [`TaskContext::step_tx`], once the attempts run out; [`TaskError::Suspended`] when
    /// a durable back-off begins (as [`TaskContext::step_with_retry`]).
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # use zart::{RetryConfig, Scheduler, TaskContext, TaskError};
    /// # struct StepTx;
    /// # impl StepTx { async fn batch_execute(&self, _: &str) -> Result<(), std::io::Error> { Ok(()) } }
    /// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    /// // With zart-pg: `use zart_pg::StepTx;`
    /// ctx.step_tx_with_retry(
    ///     "rebalance",
    ///     RetryConfig::exponential(5, Duration::from_millis(20)),
    ///     |tx: StepTx| async move {
    ///         tx.batch_execute("set transaction isolation level serializable").await?;
    ///         tx.batch_execute("update accounts set balance = balance - 10 where id = 1;
    ///                           update accounts set balance = balance + 10 where id = 2").await
    ///     },
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn step_tx_with_retry<Tx, T, E, F, Fut>(
        &mut self,
        name: &str,
        retry: RetryConfig,
        mut f: F,
    ) -> Result<T, TaskError>
    where
        Tx: Any + Send,
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnMut(Tx) -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        self.tx_step(name, retry, move |tx| Some(f(tx))).await
    }

    /// The attempts of a transactional step. `f` gives the body's future for an attempt, or
    /// `None` once a body that runs once has run (never asked: such a step has one attempt).
    async fn tx_step<Tx, T, E, F, Fut>(
        &mut self,
        name: &str,
        retry: RetryConfig,
        mut f: F,
    ) -> Result<T, TaskError>
    where
        Tx: Any + Send,
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnMut(Tx) -> Option<Fut> + Send,
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
            let outcome = match self.tx_attempt(name, seq, attempt, &retry, &mut f).await? {
                TxAttempt::Committed(output) => {
                    return decode(output, || format!("the output of step {name:?}"))
                }
                TxAttempt::RolledBack(outcome) => outcome,
            };
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

    /// One attempt: opens the transaction, runs the body in it, and commits the body's writes
    /// with the step's record, or rolls back.
    async fn tx_attempt<Tx, T, E, F, Fut>(
        &self,
        name: &str,
        seq: u32,
        attempt: u32,
        retry: &RetryConfig,
        f: &mut F,
    ) -> Result<TxAttempt<T>, TaskError>
    where
        Tx: Any + Send,
        T: Serialize + DeserializeOwned + Send,
        E: Into<BoxError>,
        F: FnMut(Tx) -> Option<Fut> + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let tx = self.scheduler.begin_step_tx().await?;
        let handle = match tx.handle().downcast::<Tx>() {
            Ok(handle) => *handle,
            Err(_) => {
                let offered = tx.handle_type();
                tx.rollback().await;
                return Err(TaskError::failed(Error::invalid(
                    "ctx.step_tx body",
                    format!(
                        "step {name:?} takes a {}, but this backend's step transaction is a \
                         {offered}",
                        std::any::type_name::<Tx>()
                    ),
                )));
            }
        };
        let Some(body) = f(handle) else {
            tx.rollback().await;
            return Err(TaskError::failed(format!(
                "step {name:?}: a ctx.step_tx body runs once, but attempt {attempt} was asked for"
            )));
        };
        let value = match self
            .run_body(name, attempt, retry.attempt_timeout(), body)
            .await
        {
            BodyOutcome::Ok(value) => value,
            failed => {
                tx.rollback().await;
                return Ok(TxAttempt::RolledBack(failed));
            }
        };
        let output = match serde_json::to_value(&value) {
            Ok(output) => output,
            Err(source) => {
                tx.rollback().await;
                return Err(TaskError::Serialization {
                    action: "serialize",
                    what: format!("the output of step {name:?}"),
                    source,
                });
            }
        };
        let params = CommitStepParams {
            lease: self.lease.clone(),
            name: name.to_owned(),
            seq,
            status: StepStatus::Completed,
            output: Some(output.clone()),
            error: None,
            attempts: attempt,
        };
        match tx.commit_with_step(params).await {
            Ok(()) => Ok(TxAttempt::Committed(output)),
            // Not the step's doing: the run ends, and the next one sees whether it committed.
            Err(
                err @ (Error::LeaseLost { .. }
                | Error::Cancelled { .. }
                | Error::Unavailable { .. }
                | Error::StepAlreadyRecorded { .. }),
            ) => Err(err.into()),
            // Rolled back: the attempt failed, with the database's reason.
            Err(err) => Ok(TxAttempt::RolledBack(BodyOutcome::Failed(
                format!(
                    "the step's transaction did not commit: {}",
                    error_chain(&err)
                ),
                FailureKind::Error,
                None,
            ))),
        }
    }
}
