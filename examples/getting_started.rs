//! The getting-started workflow, end to end: register a task, run a worker, start an
//! execution, wait for it. Run it with `ci/example` (it brings up PostgreSQL if needed), or
//! on SQLite with `DATABASE_URL=sqlite://zart-example.db ci/example`: only
//! `common::scheduler_from_env` depends on the backend. `getting_started_macros.rs` is the same
//! task written with `#[zart_durable]`.
//!
//! The billing call fails on its first attempt, so the run shows a durable retry: the attempt
//! is recorded, the execution sleeps 2 s without holding a worker slot, and resumes.

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{send_welcome_email, setup_stripe_customer};
use serde::{Deserialize, Serialize};
use zart::{
    DurableScheduler, RetryConfig, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry,
    Worker, WorkerConfig,
};

#[derive(Debug, Serialize, Deserialize)]
struct OnboardingData {
    user_id: String,
    email: String,
}

// 1. Define your workflow
struct OnboardingTask;

#[async_trait]
impl TaskHandler for OnboardingTask {
    type Data = OnboardingData;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: OnboardingData,
    ) -> Result<(), TaskError> {
        // Each step's result is stored; a replay after a crash skips it.
        ctx.step("send-email", || async {
            send_welcome_email(&data.email).await
        })
        .await?;

        // Up to 3 attempts with exponential back-off if billing fails.
        ctx.step_with_retry(
            "setup-billing",
            RetryConfig::exponential(3, Duration::from_secs(2)),
            || async { setup_stripe_customer(&data.email).await },
        )
        .await?;

        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing("warn");
    // PostgreSQL or SQLite, by the URL: the only code that depends on the backend.
    let scheduler = common::scheduler_from_env().await?;

    // 2. Register and run a worker
    let mut registry = TaskRegistry::new();
    registry.register("onboarding", OnboardingTask)?;
    let registry = Arc::new(registry);
    let worker = Worker::new(scheduler.clone(), registry.clone(), WorkerConfig::default());
    let stop = worker.shutdown_handle();
    let worker = tokio::spawn(worker.run());

    // 3. Schedule an execution (idempotent: safe to call twice with the same id)
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    let id = std::env::var("ZART_EXAMPLE_ID").unwrap_or_else(|_| "signup-user-42".to_owned());
    let data = OnboardingData {
        user_id: "u-42".into(),
        email: "alice@example.com".into(),
    };
    let first = durable.start_typed(&id, "onboarding", &data).await?;
    let again = durable.start_typed(&id, "onboarding", &data).await?;
    println!(
        "started {id:?}: created={} (the same call again: created={})",
        first.created, again.created
    );

    let finished = durable.wait(&id, Some(Duration::from_secs(60))).await?;
    println!(
        "execution {:?} finished: status={} attempts={}",
        finished.id, finished.status, finished.attempts
    );

    stop.shutdown();
    worker.await??;
    if finished.status != zart::ExecutionStatus::Completed {
        anyhow::bail!("the workflow did not complete: {:?}", finished.error);
    }
    Ok(())
}
