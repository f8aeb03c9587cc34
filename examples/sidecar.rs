//! Sidecar mode: the getting-started task as a complete worker process, in one call.
//!
//! `zart_sidecar::run` reads `DATABASE_URL` and the `ZART_*` variables (`--help` lists them),
//! logs as text or JSON, serves `/livez`, `/readyz` and `/metrics`, runs a worker per queue,
//! stops gracefully on SIGTERM or SIGINT, and exits with a code that says what happened
//! (docs/deployment.md). Try it on SQLite, no server needed:
//!
//! ```sh
//! DATABASE_URL=sqlite://zart-sidecar.db ZART_MIGRATE=true ZART_LISTEN=127.0.0.1:9464 \
//!     cargo run -p zart-examples --bin sidecar
//! zart start --database-url sqlite://zart-sidecar.db signup-1 onboarding \
//!     '{"user_id": "u-1", "email": "ann@example.com"}'
//! curl -s 127.0.0.1:9464/metrics | grep zart_executions_finished_total
//! ```

#[path = "common.rs"]
#[allow(dead_code)] // the backend choice and logging of common.rs are the sidecar's here
mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::{send_welcome_email, setup_stripe_customer};
use serde::{Deserialize, Serialize};
use zart::{zart_durable, RetryConfig, Scheduler, TaskContext, TaskError, TaskRegistry};

#[derive(Debug, Serialize, Deserialize)]
struct OnboardingData {
    user_id: String,
    email: String,
}

/// The getting-started workflow: the task "onboarding".
#[zart_durable]
async fn onboarding(
    ctx: &mut TaskContext<impl Scheduler>,
    data: OnboardingData,
) -> Result<String, TaskError> {
    ctx.step("send-email", || async {
        send_welcome_email(&data.email).await
    })
    .await?;
    ctx.step_with_retry(
        "setup-billing",
        RetryConfig::exponential(3, Duration::from_secs(2)),
        || async { setup_stripe_customer(&data.email).await },
    )
    .await
}

fn main() -> ExitCode {
    let mut registry = TaskRegistry::new();
    if let Err(err) = Onboarding::register(&mut registry) {
        eprintln!("sidecar: {err}");
        return ExitCode::from(zart_sidecar::exit::CONFIG);
    }
    zart_sidecar::run(registry)
}
