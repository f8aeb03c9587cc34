//! The [`TaskHandler`] trait: a workflow written as plain async Rust.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Scheduler, TaskContext, TaskError};

/// A durable workflow. `run` is plain async Rust; every [`TaskContext::step`] inside it is
/// checkpointed, so after a crash another worker replays `run` and completed steps return their
/// recorded results instead of running again.
///
/// `run` must be deterministic in the steps it takes: given the same input and the same step
/// results, it must call the same steps in the same order. Put anything non-deterministic
/// (clocks, random numbers, I/O) inside a step.
///
/// # Examples
/// ```
/// use async_trait::async_trait;
/// use serde::{Deserialize, Serialize};
/// use zart::{Scheduler, TaskContext, TaskError, TaskHandler};
///
/// #[derive(Serialize, Deserialize)]
/// struct Signup { email: String }
///
/// struct Onboarding;
///
/// #[async_trait]
/// impl TaskHandler for Onboarding {
///     type Data = Signup;
///     type Output = String;
///
///     async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, data: Signup) -> Result<String, TaskError> {
///         let id: u64 = ctx.step("create-account", || async { Ok::<_, std::io::Error>(42) }).await?;
///         Ok(format!("{} is account {id}", data.email))
///     }
/// }
/// ```
#[async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    /// The input, stored as JSON in `zart_executions.input`.
    type Data: Serialize + DeserializeOwned + Send + 'static;
    /// The output, stored as JSON in `zart_executions.output`.
    type Output: Serialize + Send + 'static;

    /// Runs (or replays) the workflow.
    ///
    /// # Errors
    /// Return [`TaskError`] to fail the execution; propagate step errors with `?` (a
    /// [`TaskError::Suspended`] from a step must be propagated, not swallowed).
    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: Self::Data,
    ) -> Result<Self::Output, TaskError>;
}
