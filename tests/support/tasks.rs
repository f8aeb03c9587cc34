//! Workflows shared by the test suites and the `zart-test-worker` process.
//!
//! Side effects are counted in the table `zart_test_side_effects`, so a test can tell how often
//! each step body really ran, across processes and crashes.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zart::{RetryConfig, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry};

/// Creates the side-effect table.
pub const SETUP_SQL: &str = "create table if not exists zart_test_side_effects (
    execution_id text not null,
    step text not null,
    pid integer not null,
    at timestamptz not null default clock_timestamp()
)";

/// The pids of the processes that recorded side effect `step` of `id`, oldest first.
pub async fn side_effect_pids(client: &tokio_postgres::Client, id: &str, step: &str) -> Vec<i32> {
    crate::column(
        client,
        "select pid from zart_test_side_effects where execution_id = $1 and step = $2
          order by at",
        &[&id, &step],
    )
    .await
}

/// Input of [`Counted`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountedInput {
    /// How many steps.
    pub steps: u32,
    /// How long each step body sleeps after its side effect.
    pub step_ms: u64,
}

/// `steps` steps; each records a side effect (a row) and then sleeps `step_ms`.
pub struct Counted {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl TaskHandler for Counted {
    type Data = CountedInput;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: CountedInput,
    ) -> Result<u32, TaskError> {
        let id = ctx.execution_id().to_owned();
        for i in 0..data.steps {
            let name = format!("step-{i}");
            let pool = self.pool.clone();
            let id = id.clone();
            let step = name.clone();
            let value: u32 = ctx
                .step(&name, || async move {
                    record_side_effect_patiently(&pool, &id, &step).await?;
                    tokio::time::sleep(Duration::from_millis(data.step_ms)).await;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(i * 10)
                })
                .await?;
            assert_eq!(
                value,
                i * 10,
                "a replayed step must return its recorded value"
            );
        }
        Ok(data.steps)
    }
}

/// Returns its input.
pub struct Echo;

#[async_trait]
impl TaskHandler for Echo {
    type Data = serde_json::Value;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        let data2 = data.clone();
        ctx.step("echo", || async move { Ok::<_, std::io::Error>(data2) })
            .await
    }
}

/// A step that panics with the message in its input.
pub struct Panicky;

#[async_trait]
impl TaskHandler for Panicky {
    type Data = String;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        message: String,
    ) -> Result<(), TaskError> {
        ctx.step("fine", || async { Ok::<_, std::io::Error>(1) })
            .await?;
        ctx.step("boom", || async move {
            if !message.is_empty() {
                panic!("{message}");
            }
            Ok::<_, std::io::Error>(())
        })
        .await?;
        Ok(())
    }
}

/// Input of [`Flaky`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlakyInput {
    /// The step fails this many times before it succeeds.
    pub failures: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Base back-off in milliseconds.
    pub base_ms: u64,
}

/// A step that fails `failures` times (counted in the side-effect table), then succeeds.
pub struct Flaky {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl TaskHandler for Flaky {
    type Data = FlakyInput;
    type Output = i64;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: FlakyInput,
    ) -> Result<i64, TaskError> {
        let id = ctx.execution_id().to_owned();
        let retry =
            RetryConfig::exponential(data.max_attempts, Duration::from_millis(data.base_ms));
        let pool = self.pool.clone();
        ctx.step_with_retry("flaky", retry, || {
            let pool = pool.clone();
            let id = id.clone();
            async move {
                let client = pool.get().await?;
                let n: i64 = client
                    .query_one(
                        "with i as (insert into zart_test_side_effects (execution_id, step, pid) values ($1, 'flaky', $2) returning 1)
                         select count(*) + 1 from zart_test_side_effects where execution_id = $1 and step = 'flaky'",
                        &[&id, &(std::process::id() as i32)],
                    )
                    .await?
                    .get(0);
                if n <= i64::from(data.failures) {
                    return Err(format!("attempt {n} failed on purpose").into());
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(n)
            }
        })
        .await
    }
}

/// Creates the business table `Ledger` writes in its step transactions.
pub const LEDGER_SQL: &str = "create table if not exists zart_test_ledger (
    execution_id text not null,
    step text not null,
    pid integer not null
)";

/// Input of [`Ledger`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerInput {
    /// How many transactional steps.
    pub steps: u32,
    /// How long each body holds its transaction open after its write.
    pub step_ms: u64,
}

/// `steps` transactional steps (`ctx.step_tx`). Each body first records an attempt in the
/// side-effect table (autocommit, on its own connection: every run of a body counts), then
/// writes a `zart_test_ledger` row in the step's transaction, then holds it open `step_ms`,
/// so a kill often lands between the write and the commit.
pub struct Ledger {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl TaskHandler for Ledger {
    type Data = LedgerInput;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: LedgerInput,
    ) -> Result<u32, TaskError> {
        let id = ctx.execution_id().to_owned();
        for i in 0..data.steps {
            let name = format!("entry-{i}");
            let (pool, id, step) = (self.pool.clone(), id.clone(), name.clone());
            let value: u32 = ctx
                .step_tx(&name, |tx: zart_pg::StepTx| async move {
                    record_side_effect(&pool, &id, &step).await?;
                    tx.execute(
                        "insert into zart_test_ledger (execution_id, step, pid) values ($1, $2, $3)",
                        &[&id, &step, &(std::process::id() as i32)],
                    )
                    .await?;
                    tokio::time::sleep(Duration::from_millis(data.step_ms)).await;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(i)
                })
                .await?;
            assert_eq!(value, i, "a replayed step must return its recorded value");
        }
        Ok(data.steps)
    }
}

/// How long a `counted` step body keeps trying to record its side effect while the database
/// is unreachable: `ZART_TEST_EFFECT_RETRY_S` seconds (0, the default: it fails at once). The
/// chaos driver sets it, so a step body that runs during a restart records its effect once the
/// server is back instead of failing its workflow. A retried insert that had committed is a
/// second row: an extra run, which the driver explains by the fault.
fn effect_retry() -> Duration {
    Duration::from_secs(
        std::env::var("ZART_TEST_EFFECT_RETRY_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// [`record_side_effect`], tried again for [`effect_retry`] while it fails.
async fn record_side_effect_patiently(
    pool: &deadpool_postgres::Pool,
    execution_id: &str,
    step: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let give_up = std::time::Instant::now() + effect_retry();
    loop {
        match record_side_effect(pool, execution_id, step).await {
            Err(e) if std::time::Instant::now() < give_up => {
                tracing::debug!(error = %e, "recording a side effect failed; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Records one side effect row for `step` of `execution_id`, from this process.
async fn record_side_effect(
    pool: &deadpool_postgres::Pool,
    execution_id: &str,
    step: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = pool.get().await?;
    client
        .execute(
            "insert into zart_test_side_effects (execution_id, step, pid) values ($1, $2, $3)",
            &[&execution_id, &step, &(std::process::id() as i32)],
        )
        .await?;
    Ok(())
}

/// Step `before` (a side effect), a durable sleep `nap` of the input's seconds, step `after`
/// (a side effect). Returns the seconds slept.
pub struct Sleeper {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl TaskHandler for Sleeper {
    type Data = u64;
    type Output = u64;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        secs: u64,
    ) -> Result<u64, TaskError> {
        let id = ctx.execution_id().to_owned();
        let pool = &self.pool;
        ctx.step("before", || record_side_effect(pool, &id, "before"))
            .await?;
        ctx.sleep("nap", Duration::from_secs(secs)).await?;
        ctx.step("after", || record_side_effect(pool, &id, "after"))
            .await?;
        Ok(secs)
    }
}

/// Step `before` (a side effect), a wait for the event `approval` (no timeout), step `after`
/// (a side effect) returning the payload, which is the output.
///
/// With the input `{"hold_after_ms": n}`, the first run of step `after` holds for `n` ms after
/// its side effect (a window for crash tests); later runs do not.
pub struct Approver {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl TaskHandler for Approver {
    type Data = serde_json::Value;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        let id = ctx.execution_id().to_owned();
        let pool = &self.pool;
        let hold_ms = input
            .get("hold_after_ms")
            .and_then(serde_json::Value::as_u64);
        ctx.step("before", || record_side_effect(pool, &id, "before"))
            .await?;
        let payload = ctx
            .wait_for_event::<serde_json::Value>("approval", None)
            .await?
            .received()
            .unwrap_or(serde_json::Value::Null);
        ctx.step("after", || async {
            record_side_effect(pool, &id, "after").await?;
            if let Some(ms) = hold_ms {
                let runs: i64 = pool
                    .get()
                    .await?
                    .query_one(
                        "select count(*) from zart_test_side_effects where execution_id = $1 and step = 'after'",
                        &[&id],
                    )
                    .await?
                    .get(0);
                if runs == 1 {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(payload)
        })
        .await
    }
}

/// A workflow whose code changes between releases (`tests/versioning.rs`). The release is the
/// process's `ZART_TEST_CODE`: `old` (the default) runs step `order`, step `charge`, a sleep
/// `settle` of an hour, step `receipt`; `new` asks `ctx.patched("new-billing")` after
/// `order` and runs step `charge-v2` on the new path, `charge` on the old. Every step records
/// a side effect. With `ZART_TEST_HOLD_MS`, the first run of `charge-v2` holds that long after
/// its side effect (a window to kill the process in). The output is the charge's `v1`/`v2`.
pub struct Billing {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl TaskHandler for Billing {
    type Data = serde_json::Value;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _: serde_json::Value,
    ) -> Result<String, TaskError> {
        let id = ctx.execution_id().to_owned();
        let pool = &self.pool;
        let new_code = std::env::var("ZART_TEST_CODE").as_deref() == Ok("new");
        ctx.step("order", || record_side_effect(pool, &id, "order"))
            .await?;
        let charged = if new_code && ctx.patched("new-billing").await? {
            let hold_ms: Option<u64> = std::env::var("ZART_TEST_HOLD_MS")
                .ok()
                .and_then(|v| v.parse().ok());
            ctx.step("charge-v2", || async {
                record_side_effect(pool, &id, "charge-v2").await?;
                if let Some(ms) = hold_ms {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>("v2".to_owned())
            })
            .await?
        } else {
            ctx.step("charge", || async {
                record_side_effect(pool, &id, "charge").await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>("v1".to_owned())
            })
            .await?
        };
        ctx.sleep("settle", Duration::from_secs(3600)).await?;
        ctx.step("receipt", || record_side_effect(pool, &id, "receipt"))
            .await?;
        Ok(charged)
    }
}

/// A step that kills its own process every time it runs (a poison workflow).
pub struct Poison;

#[async_trait]
impl TaskHandler for Poison {
    type Data = ();
    type Output = ();

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<(), TaskError> {
        ctx.step("fine", || async { Ok::<_, std::io::Error>(()) })
            .await?;
        ctx.step("kills-the-process", || async {
            // Long enough for quick work claimed beside it to finish first.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            eprintln!("poison step: aborting the worker process");
            std::process::abort();
            #[allow(unreachable_code)]
            Ok::<_, std::io::Error>(())
        })
        .await
    }
}

/// Input of [`Held`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldInput {
    /// How long each run holds, in milliseconds.
    pub ms: u64,
}

/// Records `enter` when a run begins and `exit` just before it returns (side-effect rows, on
/// the database clock), holding `ms` in between: every run of the handler is an interval, so a
/// test can count how many ran at once across processes.
pub struct Held {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl TaskHandler for Held {
    type Data = HeldInput;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: HeldInput,
    ) -> Result<(), TaskError> {
        let id = ctx.execution_id().to_owned();
        record_side_effect(&self.pool, &id, "enter")
            .await
            .map_err(|e| TaskError::from(zart::AppError::new("side_effect", e.to_string())))?;
        tokio::time::sleep(Duration::from_millis(data.ms)).await;
        record_side_effect(&self.pool, &id, "exit")
            .await
            .map_err(|e| TaskError::from(zart::AppError::new("side_effect", e.to_string())))?;
        Ok(())
    }
}

/// The registry of every test task. `pool` reaches the database the side effects go to.
pub fn registry(pool: deadpool_postgres::Pool) -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    registry
        .register("counted", Counted { pool: pool.clone() })
        .unwrap()
        .register("echo", Echo)
        .unwrap()
        .register("panicky", Panicky)
        .unwrap()
        .register("flaky", Flaky { pool: pool.clone() })
        .unwrap()
        .register("sleeper", Sleeper { pool: pool.clone() })
        .unwrap()
        .register("approver", Approver { pool: pool.clone() })
        .unwrap()
        .register("poison", Poison)
        .unwrap()
        .register("held", Held { pool: pool.clone() })
        .unwrap()
        .register("ledger", Ledger { pool: pool.clone() })
        .unwrap()
        .register("billing", Billing { pool })
        .unwrap();
    registry
}
