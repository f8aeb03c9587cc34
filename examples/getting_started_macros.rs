//! The getting-started workflow written with `#[zart_durable]`: the same task as
//! `getting_started.rs`, as one `async fn`. The macro generates the `Onboarding` struct, its
//! `TaskHandler` impl, `Onboarding::NAME` and a typed client, so the task name is written once
//! and the input and output types are checked where the task is started and awaited. Run it
//! with `ci/example` (it runs both versions), or on its own with
//! `cargo run -p zart-examples --bin getting-started-macros` and `DATABASE_URL` set.
//!
//! It also shows replay-aware logging: `zart::durable_info!` logs once per real run, not again
//! when the execution resumes after its durable retry and re-runs the code before it.

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{send_welcome_email, setup_stripe_customer};
use serde::{Deserialize, Serialize};
use zart::{
    zart_durable, DurableScheduler, RetryConfig, Scheduler, TaskContext, TaskError, TaskRegistry,
    Worker, WorkerConfig,
};

#[derive(Debug, Serialize, Deserialize)]
struct OnboardingData {
    user_id: String,
    email: String,
}

// 1. Define your workflow: the task "onboarding", struct `Onboarding`.
#[zart_durable]
async fn onboarding(
    ctx: &mut TaskContext<impl Scheduler>,
    data: OnboardingData,
) -> Result<String, TaskError> {
    // Each step's result is stored; a replay after a crash skips it.
    ctx.step("send-email", || async {
        send_welcome_email(&data.email).await
    })
    .await?;
    // Logged on the first run only: after the retry below suspends the execution, the resumed
    // run replays up to here quietly.
    zart::durable_info!(ctx, user = %data.user_id, "welcome email sent");
    println!(
        "  [workflow] after send-email: replaying={}",
        ctx.is_replaying()
    );

    // Up to 3 attempts with exponential back-off if billing fails.
    let customer: String = ctx
        .step_with_retry(
            "setup-billing",
            RetryConfig::exponential(3, Duration::from_secs(2)),
            || async { setup_stripe_customer(&data.email).await },
        )
        .await?;
    Ok(customer)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing("warn,getting_started_macros=info");
    // PostgreSQL or SQLite, by the URL: the only code that depends on the backend.
    let scheduler = common::scheduler_from_env().await?;

    // 2. Register and run a worker: the name comes from the task.
    let mut registry = TaskRegistry::new();
    Onboarding::register(&mut registry)?;
    let registry = Arc::new(registry);
    let worker = Worker::new(scheduler.clone(), registry.clone(), WorkerConfig::default());
    let stop = worker.shutdown_handle();
    let worker = tokio::spawn(worker.run());

    // 3. Schedule an execution (idempotent) and wait for its typed output.
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    // Its own id, so it never meets the trait version's execution in a shared database.
    let id = format!(
        "{}-macros",
        std::env::var("ZART_EXAMPLE_ID").unwrap_or_else(|_| "signup-user-42".to_owned())
    );
    let data = OnboardingData {
        user_id: "u-42".into(),
        email: "alice@example.com".into(),
    };
    let first = Onboarding::start(&durable, &id, &data).await?;
    println!(
        "started {id:?} as task {:?}: created={}",
        Onboarding::NAME,
        first.created
    );

    let customer: String = Onboarding::wait(&durable, &id, Some(Duration::from_secs(60))).await?;
    println!("execution {id:?} completed: customer {customer}");

    stop.shutdown();
    worker.await??;
    Ok(())
}
