//! Zart: durable workflows as plain async Rust, checkpointed in your database.
//!
//! A workflow is a [`TaskHandler`]. Each [`TaskContext::step`] result is stored by the
//! backend (PostgreSQL through `zart-pg`, SQLite through `zart-sqlite`); if a process dies,
//! another worker resumes the execution and completed steps are not run again. Step bodies run
//! at least once; their recorded results are exactly once.
//!
//! This crate is the core API and never sees SQL or driver types: it talks to storage only
//! through the [`Scheduler`] trait.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use serde::{Deserialize, Serialize};
//! use zart::{DurableScheduler, RetryConfig, Scheduler, TaskContext, TaskError, TaskHandler,
//!            TaskRegistry, Worker, WorkerConfig};
//!
//! #[derive(Serialize, Deserialize)]
//! struct OnboardingData { user_id: String, email: String }
//!
//! struct OnboardingTask;
//!
//! #[async_trait]
//! impl TaskHandler for OnboardingTask {
//!     type Data = OnboardingData;
//!     type Output = ();
//!
//!     async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, data: OnboardingData) -> Result<(), TaskError> {
//!         ctx.step("send-email", || async { send_welcome_email(&data.email).await }).await?;
//!         ctx.step_with_retry(
//!             "setup-billing",
//!             RetryConfig::exponential(3, Duration::from_secs(2)),
//!             || async { setup_stripe_customer(&data.email).await },
//!         ).await?;
//!         Ok(())
//!     }
//! }
//! # async fn send_welcome_email(_: &str) -> Result<(), std::io::Error> { Ok(()) }
//! # async fn setup_stripe_customer(_: &str) -> Result<(), std::io::Error> { Ok(()) }
//!
//! # async fn example<S: Scheduler>(scheduler: Arc<S>) -> Result<(), zart::Error> {
//! let mut registry = TaskRegistry::new();
//! registry.register("onboarding", OnboardingTask)?;
//! let registry = Arc::new(registry);
//!
//! let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
//! durable.start_typed("signup-user-42", "onboarding", &OnboardingData {
//!     user_id: "u-42".into(),
//!     email: "alice@example.com".into(),
//! }).await?;
//!
//! tokio::spawn(Worker::new(scheduler, registry, WorkerConfig::default()).run());
//! let finished = durable.wait("signup-user-42", None).await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod audit;
mod backoff;
mod client;
mod context;
pub mod doctor;
pub mod error;
mod execution;
pub mod group_commit;
mod handler;
pub mod handoff;
pub mod limits;
mod log;
pub mod presence;
pub mod queues;
pub mod reference;
mod registry;
pub mod retention;
mod retry;
pub mod schedule;
pub mod scheduler;
pub mod stored_time;
pub mod telemetry;
pub mod view;
pub mod wakeups;
mod worker;

pub use backoff::Backoff;
pub use client::{DurableScheduler, StartOptions};
pub use context::{EventOutcome, Parallel, TaskContext};
pub use error::{AppError, Error, FailureKind, TaskError};
pub use execution::{ErrorRecord, Execution, ExecutionStatus};
pub use handler::TaskHandler;
pub use registry::TaskRegistry;
pub use retry::RetryConfig;
pub use scheduler::{Scheduler, StartOutcome};
pub use worker::{ShutdownHandle, Worker, WorkerConfig};

/// Re-exported so handlers can write `#[zart::async_trait]` without naming the crate.
pub use async_trait::async_trait;

/// Re-exported with the `macros` feature: `#[zart_durable]` turns an `async fn` into a task
/// (see the `zart-macros` crate and docs/authoring.md).
#[cfg(feature = "macros")]
pub use zart_macros::zart_durable;

/// What the exported macros expand to; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use tracing;

    /// The output of `execution` as `T`, if it is an execution of `task` (the typed `wait` of
    /// `#[zart_durable]` tasks).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for another task's execution; as
    /// [`crate::Execution::result_as`] otherwise.
    pub fn output_of<T: serde::de::DeserializeOwned>(
        execution: &crate::Execution,
        task: &str,
    ) -> Result<T, crate::Error> {
        if execution.task_name != task {
            return Err(crate::Error::invalid(
                "execution",
                format!(
                    "execution {:?} runs task {:?}, not {task:?}",
                    execution.id, execution.task_name
                ),
            ));
        }
        execution.result_as()
    }
}
