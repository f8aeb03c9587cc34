//! Human in the loop: a workflow waits for an approval that arrives as a plain SQL `INSERT`.
//!
//! The `approvals` table has a trigger that calls `zart_emit_event`, so whatever inserts a row
//! (an admin screen, a psql session, another service) resumes the waiting workflow, in the same
//! transaction as the insert: a rolled-back insert delivers nothing. While it waits, the
//! execution holds no worker slot.
//!
//! Run it against a migrated database:
//! `DATABASE_URL=postgres://... cargo run -p zart-examples --bin approval`

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zart::{
    DurableScheduler, EventOutcome, ExecutionStatus, Scheduler, TaskContext, TaskError,
    TaskHandler, TaskRegistry, Worker, WorkerConfig,
};
use zart_pg::{PgPool, PostgresScheduler};

/// The business table and its trigger; created if missing.
const SETUP_SQL: &str = "
    create table if not exists approvals (
        order_id    text primary key,
        approved    boolean not null,
        approved_by text not null
    );
    create or replace function approvals_notify_zart() returns trigger language plpgsql as $$
    begin
        perform zart_emit_event('order-' || new.order_id, 'approval',
            jsonb_build_object('approved', new.approved, 'by', new.approved_by));
        return new;
    end
    $$;
    create or replace trigger approvals_notify_zart after insert on approvals
        for each row execute function approvals_notify_zart();";

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    order_id: String,
}

/// The payload the trigger builds.
#[derive(Debug, Serialize, Deserialize)]
struct Approval {
    approved: bool,
    by: String,
}

struct ApproveOrder;

#[async_trait]
impl TaskHandler for ApproveOrder {
    type Data = Order;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        order: Order,
    ) -> Result<String, TaskError> {
        let id = order.order_id;
        ctx.step("reserve-stock", || async {
            println!("  [step] stock reserved for order {id}");
            Ok::<_, std::io::Error>(())
        })
        .await?;

        // Suspends the execution (no worker slot held) until the event or the timeout.
        let three_days = Duration::from_secs(3 * 24 * 3600);
        let decision = match ctx
            .wait_for_event::<Approval>("approval", Some(three_days))
            .await?
        {
            EventOutcome::Received(a) if a.approved => format!("shipped (approved by {})", a.by),
            EventOutcome::Received(a) => format!("cancelled (rejected by {})", a.by),
            EventOutcome::TimedOut => "escalated (nobody decided within 3 days)".to_owned(),
            EventOutcome::Malformed { error, .. } => {
                format!("escalated (a decision did not read: {error})")
            }
        };
        ctx.step("record-decision", || async {
            println!("  [step] order {id}: {decision}");
            Ok::<_, std::io::Error>(decision.clone())
        })
        .await
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        anyhow::anyhow!("set DATABASE_URL to a database migrated with `zart migrate`")
    })?;
    let pool = PgPool::connect(&url).await?;
    let scheduler = Arc::new(PostgresScheduler::new(pool.clone()));

    // A plain tokio-postgres client, as the rest of an application would use.
    let sql = pool.pool().get().await?;
    sql.batch_execute(SETUP_SQL).await?;

    let mut registry = TaskRegistry::new();
    registry.register("approve-order", ApproveOrder)?;
    let registry = Arc::new(registry);
    let worker = Worker::new(scheduler.clone(), registry.clone(), WorkerConfig::default());
    let stop = worker.shutdown_handle();
    let worker = tokio::spawn(worker.run());

    // A new order each run (set ZART_EXAMPLE_ORDER to choose one).
    let order_id = match std::env::var("ZART_EXAMPLE_ORDER") {
        Ok(id) => id,
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .as_millis()
            .to_string(),
    };
    let execution_id = format!("order-{order_id}");
    let durable = DurableScheduler::new(scheduler, registry);
    durable
        .start_typed(
            &execution_id,
            "approve-order",
            &Order {
                order_id: order_id.clone(),
            },
        )
        .await?;

    // The workflow reaches its wait and suspends.
    while durable.status(&execution_id).await?.status != ExecutionStatus::Waiting {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{execution_id} is waiting for approval; approving it with a plain INSERT");

    sql.execute(
        "insert into approvals (order_id, approved, approved_by) values ($1, true, 'alice')",
        &[&order_id],
    )
    .await?;

    let finished = durable
        .wait(&execution_id, Some(Duration::from_secs(30)))
        .await?;
    println!(
        "{execution_id} finished: status={} output={}",
        finished.status,
        finished.output.unwrap_or_default()
    );

    stop.shutdown();
    worker.await??;
    if finished.status != ExecutionStatus::Completed {
        anyhow::bail!("the workflow did not complete: {:?}", finished.error);
    }
    Ok(())
}
