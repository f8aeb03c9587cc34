//! `ctx.step_tx` on PostgreSQL: the step body runs in a transaction on a pooled connection, and
//! the step's result is recorded in that same transaction (`zart_commit_step`, fenced by the
//! lease) just before it commits.
//!
//! - The transaction is marked with a transaction-local setting (`zart.step_tx`) when it
//!   begins; the statement that records the step runs only while the mark is still there, so
//!   a body that ended the transaction itself (`COMMIT`, `ROLLBACK`) is caught before anything
//!   is recorded outside the transaction it expected.
//! - The body gets a [`StepTx`] by value; at commit the scheduler must hold the only handle, so
//!   a handle kept past the body (moved into a spawned task) fails the step and rolls back.
//! - A transaction never goes back to the pool open: one abandoned mid-way (the run's future
//!   dropped) or whose rollback failed has its connection closed instead, and the server rolls
//!   it back.
//! - At most half the pool (at least one connection) is in step transactions at once, so
//!   heartbeats, claims and step commits always find a connection; a step transaction beyond
//!   that waits for one to end.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use postgres_types::Type;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zart::scheduler::{CommitStepParams, StepStatus, StepTransaction};
use zart::Error;

use crate::errors::{from_pg, from_pool, Call};
use crate::{bucket_of, error_json, int4, queries};

/// The handle a `ctx.step_tx` body writes through: a `tokio_postgres::Client` (by `Deref`)
/// whose statements run inside the step's transaction. Run any statement but `COMMIT` and
/// `ROLLBACK` (and `SAVEPOINT` handling of your own is fine); the step commits the transaction
/// with its recorded result when the body returns `Ok`.
///
/// The transaction runs as the worker's database role (the scheduler's pool), so that role
/// needs the privileges on your tables that the body uses, besides `zart_worker`.
pub struct StepTx {
    inner: Arc<Inner>,
}

impl Deref for StepTx {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        self.inner.client()
    }
}

impl std::fmt::Debug for StepTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepTx").finish_non_exhaustive()
    }
}

/// The connection in a step transaction, shared by the scheduler's side and the body's handle.
struct Inner {
    /// Always `Some` until dropped (taken in `Drop`).
    client: Option<deadpool_postgres::Object>,
    /// Set once the transaction was committed or rolled back: the connection may go back to
    /// the pool.
    ended: AtomicBool,
    _slot: OwnedSemaphorePermit,
}

impl Inner {
    fn client(&self) -> &tokio_postgres::Client {
        match &self.client {
            Some(client) => client,
            None => unreachable!("the connection is taken only when the transaction is dropped"),
        }
    }

    /// Ends the transaction with `ROLLBACK`; on failure the connection is closed when dropped.
    async fn rollback(&self) {
        match self.client().batch_execute("rollback").await {
            Ok(()) => self.ended.store(true, Ordering::Release),
            Err(err) => tracing::warn!(
                error = %err,
                "could not roll back a step transaction; its connection is closed instead"
            ),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.ended.load(Ordering::Acquire) {
            if let Some(object) = self.client.take() {
                // Out of the pool, then dropped: the connection closes and the server rolls
                // the transaction back.
                drop(deadpool_postgres::Object::take(object));
            }
        }
    }
}

/// The scheduler's side of a step transaction.
pub(crate) struct PgStepTransaction {
    inner: Arc<Inner>,
}

/// The mark `begin` sets; the step is recorded only while it is still set.
const MARK: &str = "zart.step_tx";

/// Opens a step transaction on a connection of `pool`, once `slots` has room.
pub(crate) async fn begin(
    pool: &deadpool_postgres::Pool,
    slots: Arc<Semaphore>,
) -> Result<PgStepTransaction, Error> {
    let call = Call::new("opening a step transaction");
    let slot = slots
        .acquire_owned()
        .await
        .map_err(|_| Error::Unavailable {
            message: "opening a step transaction: the scheduler is shutting down".to_owned(),
            source: None,
        })?;
    let client = pool.get().await.map_err(|e| from_pool(e, call))?;
    // Not ended until committed or rolled back: dropped before that (here too, if `begin`
    // fails half-way), the connection is closed rather than pooled.
    let inner = Arc::new(Inner {
        client: Some(client),
        ended: AtomicBool::new(false),
        _slot: slot,
    });
    inner
        .client()
        .batch_execute(&format!("begin; set local {MARK} = 'on'"))
        .await
        .map_err(|e| from_pg(e, call))?;
    Ok(PgStepTransaction { inner })
}

/// The limit on concurrent step transactions for a pool of `max_size` connections.
pub(crate) fn slots_for(max_size: usize) -> usize {
    (max_size / 2).max(1)
}

#[async_trait]
impl StepTransaction for PgStepTransaction {
    fn handle(&self) -> Box<dyn std::any::Any + Send> {
        Box::new(StepTx {
            inner: Arc::clone(&self.inner),
        })
    }

    fn handle_type(&self) -> &'static str {
        std::any::type_name::<StepTx>()
    }

    async fn commit_with_step(self: Box<Self>, p: CommitStepParams) -> Result<(), Error> {
        let inner = self.inner;
        let call =
            Call::execution("committing a step transaction", &p.lease.execution_id).step(&p.name);
        if Arc::strong_count(&inner) > 1 {
            inner.rollback().await;
            return Err(Error::invalid(
                "ctx.step_tx body",
                format!(
                    "step {:?} kept its StepTx after it returned (moved into a spawned task?); \
                     its transaction was rolled back",
                    p.name
                ),
            ));
        }
        let (output, error) = match p.status {
            StepStatus::Completed => (p.output, None),
            _ => (None, p.error.as_ref().map(error_json).transpose()?),
        };
        let seq = int4(p.seq);
        let attempts = int4(p.attempts);
        let recorded = inner
            .client()
            .query_typed(
                queries::COMMIT_STEP_IN_TX,
                &[
                    (&bucket_of(&p.lease)?, Type::INT2),
                    (&p.lease.execution_id, Type::TEXT),
                    (&p.lease.fence, Type::INT8),
                    (&p.name, Type::TEXT),
                    (&seq, Type::INT4),
                    (&p.status.as_str(), Type::TEXT),
                    (&output, Type::JSONB),
                    (&error, Type::JSONB),
                    (&attempts, Type::INT4),
                ],
            )
            .await;
        match recorded {
            Ok(rows) if rows.is_empty() => {
                inner.rollback().await;
                return Err(Error::invalid(
                    "ctx.step_tx body",
                    format!(
                        "step {:?} ended its transaction itself (COMMIT or ROLLBACK); what it \
                         wrote before that is not covered by the step, and the rest was rolled \
                         back",
                        p.name
                    ),
                ));
            }
            Ok(_) => {}
            Err(err) => {
                inner.rollback().await;
                return Err(from_pg(err, call));
            }
        }
        match inner.client().batch_execute("commit").await {
            Ok(()) => {
                inner.ended.store(true, Ordering::Release);
                Ok(())
            }
            // Refused at commit (a deferred constraint, a serialization failure): the server
            // rolled back and the connection is fine. Without a server error the connection
            // broke, and whether the commit happened is unknown: it is closed, not reused.
            Err(err) => {
                if err.as_db_error().is_some() {
                    inner.ended.store(true, Ordering::Release);
                }
                Err(from_pg(err, call))
            }
        }
    }

    async fn rollback(self: Box<Self>) {
        self.inner.rollback().await;
    }
}
