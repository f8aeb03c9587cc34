//! What the two getting-started examples share: the step bodies they call (printing what they
//! do; billing fails on its first call, to show a durable retry), logging, and the scheduler
//! chosen by `DATABASE_URL`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use zart::scheduler::DynScheduler;
use zart_mysql::MySqlScheduler;
use zart_pg::{PgPool, PostgresScheduler};
use zart_sqlite::SqliteScheduler;

/// Pretends to send the welcome email.
pub async fn send_welcome_email(email: &str) -> Result<(), std::io::Error> {
    println!("  [step] sending the welcome email to {email}");
    Ok(())
}

static BILLING_CALLS: AtomicU32 = AtomicU32::new(0);

/// Pretends to create the billing customer; the first call in the process fails.
pub async fn setup_stripe_customer(email: &str) -> Result<String, std::io::Error> {
    let call = BILLING_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if call == 1 {
        println!("  [step] billing for {email}: attempt {call} fails (simulated outage)");
        return Err(std::io::Error::other("billing API unavailable (simulated)"));
    }
    println!("  [step] billing for {email}: attempt {call} creates the customer");
    Ok(format!("cus_{}", email.len()))
}

/// Logs to stderr: `RUST_LOG` if set, else `default`.
pub fn init_tracing(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .init();
}

/// The scheduler for `DATABASE_URL`: the only code that depends on the backend, PostgreSQL,
/// MySQL/MariaDB, or SQLite embedded in this process.
pub async fn scheduler_from_env() -> anyhow::Result<Arc<DynScheduler>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("set DATABASE_URL (or run ci/example, which does)"))?;
    let scheduler: DynScheduler = if url.starts_with("sqlite:") {
        Arc::new(SqliteScheduler::connect(&url).await?)
    } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        Arc::new(MySqlScheduler::connect(&url).await?)
    } else {
        Arc::new(PostgresScheduler::new(PgPool::connect(&url).await?))
    };
    Ok(Arc::new(scheduler))
}
