//! `ctx.step_tx` on MySQL/MariaDB: the step body runs in a transaction on a pooled connection,
//! and the step's result is recorded in that same transaction (fenced as `commit_step`, the
//! task row locked) just before it commits.
//!
//! - The body gets a [`StepTx`] by value and runs its statements on [`StepTx::conn`]; at commit
//!   the scheduler must hold the only handle, so a handle kept past the body fails the step and
//!   rolls back.
//! - On MariaDB, a body that ended the transaction itself (`COMMIT`, `ROLLBACK`, or a
//!   statement that commits implicitly, such as DDL) is caught before anything is recorded
//!   (`@@in_transaction` is 0). MySQL 8 has no such variable: there the check is skipped, so a
//!   body must not end the transaction itself.
//! - A transaction never goes back to the pool open: one abandoned mid-way (the run's future
//!   dropped) or whose rollback failed has its connection closed instead, and the server rolls
//!   it back.
//! - At most half the pool is in step transactions at once, so the writer and reads always
//!   find a connection; a step transaction beyond that waits for one to end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};
use tokio::sync::{Mutex, MutexGuard, OwnedSemaphorePermit, Semaphore};
use zart::scheduler::{CommitStepParams, StepTransaction};
use zart::Error;

use crate::errors::from_mysql;
use crate::ops::Tx;
use crate::writer::{Op, Reply};
use crate::Settings;

/// The handle a `ctx.step_tx` body writes through: [`StepTx::conn`] gives the connection whose
/// statements run inside the step's transaction. Run any statement but `COMMIT`, `ROLLBACK`
/// and statements that commit implicitly (DDL); the step commits the transaction with its
/// recorded result when the body returns `Ok`.
///
/// The transaction runs as the scheduler's database user, so that user needs the privileges
/// on your tables that the body uses.
pub struct StepTx {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StepTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepTx").finish_non_exhaustive()
    }
}

/// The transaction's connection, locked for the caller (see [`StepTx::conn`]).
pub type StepConn<'a> = tokio::sync::MappedMutexGuard<'a, Conn>;

impl StepTx {
    /// The connection of the step's transaction, for the body's statements.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] once the transaction has ended (a handle kept past the body).
    pub async fn conn(&self) -> Result<StepConn<'_>, Error> {
        MutexGuard::try_map(self.inner.conn.lock().await, Option::as_mut).map_err(|_| {
            Error::invalid(
                "ctx.step_tx",
                "the step's transaction has ended; use the handle only inside the step body",
            )
        })
    }
}

/// The connection in a step transaction, shared by the scheduler's side and the body's handle.
struct Inner {
    /// `Some` until the transaction ends or is abandoned.
    conn: Mutex<Option<Conn>>,
    /// Set once the transaction was committed or rolled back: the connection may go back to
    /// the pool.
    ended: AtomicBool,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let conn = self.conn.get_mut().take();
        if let Some(conn) = conn {
            if self.ended.load(Ordering::Acquire) {
                drop(conn); // back to the pool, no transaction open
            } else if let Ok(handle) = tokio::runtime::Handle::try_current() {
                // Abandoned open: close the connection, so the server rolls it back.
                handle.spawn(async move {
                    let _ = conn.disconnect().await;
                });
            }
            // Without a runtime the connection is dropped with its socket: the server sees the
            // connection go and rolls the transaction back.
        }
    }
}

/// The scheduler's side of a step transaction.
pub(crate) struct MySqlStepTransaction {
    inner: Arc<Inner>,
    settings: Settings,
}

/// Limits step transactions to half the pool.
pub(crate) fn slots(max_connections: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new((max_connections / 2).max(1)))
}

/// Opens a step transaction on a pooled connection.
pub(crate) async fn begin(
    pool: &Pool,
    slots: &Arc<Semaphore>,
    settings: &Settings,
) -> Result<Box<dyn StepTransaction>, Error> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| crate::errors::internal("the step transaction slots were closed"))?;
    let mut conn = pool
        .get_conn()
        .await
        .map_err(|e| from_mysql(e, "opening a step transaction"))?;
    conn.query_drop("start transaction")
        .await
        .map_err(|e| from_mysql(e, "opening a step transaction"))?;
    Ok(Box::new(MySqlStepTransaction {
        inner: Arc::new(Inner {
            conn: Mutex::new(Some(conn)),
            ended: AtomicBool::new(false),
            _slot: slot,
        }),
        settings: settings.clone(),
    }))
}

impl MySqlStepTransaction {
    /// Rolls back; a connection that cannot is closed instead (never pooled with the
    /// transaction open).
    async fn end_with_rollback(&self) {
        let mut guard = self.inner.conn.lock().await;
        if let Some(conn) = guard.as_mut() {
            match conn.query_drop("rollback").await {
                Ok(()) => self.inner.ended.store(true, Ordering::Release),
                Err(err) => tracing::warn!(
                    error = %err,
                    "could not roll back a step transaction; its connection is closed instead"
                ),
            }
        }
    }

    /// Records the step and commits; the caller rolls back on error.
    async fn record_and_commit(&self, params: CommitStepParams) -> Result<(), Error> {
        let mut guard = self.inner.conn.lock().await;
        let Some(conn) = guard.as_mut() else {
            return Err(crate::errors::internal(
                "a step transaction without a connection",
            ));
        };
        let open: Result<Option<i64>, _> = conn.query_first("select @@in_transaction").await;
        if let Ok(Some(0)) = open {
            return Err(Error::invalid(
                "ctx.step_tx",
                "the step body ended its transaction itself (COMMIT, ROLLBACK or a statement \
                 that commits implicitly); the step was not recorded",
            ));
        }
        let mut tx = Tx::new(conn, &self.settings).await?;
        match crate::ops::run(&mut tx, &Op::Commit(params)).await? {
            Reply::Done => {}
            other => {
                return Err(crate::errors::internal(format!(
                    "recording a step answered {other:?}"
                )))
            }
        }
        conn.query_drop("commit")
            .await
            .map_err(|e| from_mysql(e, "committing a step transaction"))?;
        self.inner.ended.store(true, Ordering::Release);
        Ok(())
    }
}

#[async_trait]
impl StepTransaction for MySqlStepTransaction {
    fn handle(&self) -> Box<dyn std::any::Any + Send> {
        Box::new(StepTx {
            inner: self.inner.clone(),
        })
    }

    fn handle_type(&self) -> &'static str {
        std::any::type_name::<StepTx>()
    }

    async fn commit_with_step(self: Box<Self>, params: CommitStepParams) -> Result<(), Error> {
        if Arc::strong_count(&self.inner) > 1 {
            self.end_with_rollback().await;
            return Err(Error::invalid(
                "ctx.step_tx",
                "the step body kept its transaction handle past its end (moved into a task?); \
                 rolled back",
            ));
        }
        let result = self.record_and_commit(params).await;
        if result.is_err() && !self.inner.ended.load(Ordering::Acquire) {
            self.end_with_rollback().await;
        }
        result
    }

    async fn rollback(self: Box<Self>) {
        self.end_with_rollback().await;
    }
}
