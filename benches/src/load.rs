//! `zart-load`: throughput of Zart next to raw PostgreSQL queue baselines, in one run on one
//! scratch database.
//!
//! - **C**: raw single-row insert commits per second from `--clients` connections.
//! - **Z1**: idempotent `DurableScheduler::start` calls per second from `--clients` callers.
//! - **B**: raw queue baseline: claim 100 rows with `FOR UPDATE SKIP LOCKED` (one statement,
//!   one commit), then delete them (one commit), by `--clients` connections at once.
//! - **Z2**: drain of pre-filled one-step no-op executions by one worker at its defaults.
//! - **Z3**: three-step no-op workflows pre-filled and drained the same way (steps per second).
//! - **Z6**: transactions per second on the database while one default worker sits idle.
//!
//! Figures are printed with their ratio to B; nothing is judged.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use clap::Parser;
use tokio_postgres::NoTls;
use zart::{Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry, Worker, WorkerConfig};
use zart_pg::{PgPool, PostgresScheduler};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "zart-load",
    about = "Zart drain throughput next to a raw SKIP LOCKED queue"
)]
struct Args {
    /// PostgreSQL server; a scratch database `zart_load_<pid>` is created and dropped on it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Executions (and raw rows) per figure.
    #[arg(long, default_value_t = 20_000)]
    count: u32,
    /// Concurrent connections for the raw baseline.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Worker concurrency (default: `WorkerConfig::default()`'s).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds the idle worker is watched for Z6.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// A tiny run for CI.
    #[arg(long)]
    smoke: bool,
}

/// A step-less no-op beyond `steps` no-op steps.
struct NoOp;

#[async_trait]
impl TaskHandler for NoOp {
    type Data = u32;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        steps: u32,
    ) -> Result<(), TaskError> {
        for i in 0..steps {
            ctx.step(&format!("s{i}"), || async { Ok::<_, std::io::Error>(()) })
                .await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let count = if args.smoke { 200 } else { args.count };
    let server = tokio_postgres::Config::from_str(&args.database_url)
        .context("--database-url does not parse")?;
    let mut admin = server.clone();
    admin.dbname("postgres");
    let db = format!("zart_load_{}", std::process::id());
    let mut scratch = server.clone();
    scratch.dbname(&db);
    let admin_client = connect(&admin).await?;
    admin_client
        .batch_execute(&format!("drop database if exists {db} with (force)"))
        .await?;
    admin_client
        .batch_execute(&format!("create database {db}"))
        .await?;
    let idle = Duration::from_secs(if args.smoke { 2 } else { args.idle_secs });
    let result = measure(&scratch, count, args.clients, args.concurrency, idle).await;
    admin_client
        .batch_execute(&format!("drop database if exists {db} with (force)"))
        .await?;
    result
}

async fn measure(
    config: &tokio_postgres::Config,
    count: u32,
    clients: u32,
    concurrency: Option<usize>,
    idle: Duration,
) -> Result<()> {
    zart_pg::migrate(config).await?;
    println!("zart-load: {count} per figure, raw baseline with {clients} clients");

    let c = raw_inserts(config, count, clients).await?;
    println!("C  raw single-row inserts     {c:>10.0} commits/s");
    let z1 = starts(config, count, clients).await?;
    println!(
        "Z1 start, {clients} callers            {z1:>10.0} starts/s      ({:.2} x C)",
        z1 / c
    );
    let b = raw_batches(config, count, clients).await?;
    println!("B  raw claim-100 + delete     {b:>10.0} rows/s");

    let z2 = drain(config, count, 1, concurrency).await?;
    println!(
        "Z2 drain, one-step            {z2:>10.0} executions/s  ({:.2} x B)",
        z2 / b
    );
    let z3 = drain(config, count / 3, 3, concurrency).await? * 3.0;
    println!(
        "Z3 drain, three-step          {z3:>10.0} steps/s       ({:.2} x B)",
        z3 / b
    );
    let z6 = idle_rate(config, idle).await?;
    println!(
        "Z6 idle worker                {z6:>10.2} transactions/s over {} s",
        idle.as_secs()
    );
    Ok(())
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, conn) = config.connect(NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Z6: transactions per second on the database while one default worker is idle (the
/// watcher's own two reads are subtracted).
async fn idle_rate(config: &tokio_postgres::Config, idle: Duration) -> Result<f64> {
    let pool = PgPool::from_config(config.clone(), zart_pg::DEFAULT_POOL_SIZE)?;
    let scheduler = Arc::new(PostgresScheduler::new(pool));
    let mut registry = TaskRegistry::new();
    registry.register("idle", NoOp);
    let worker = Worker::new(
        scheduler,
        Arc::new(registry),
        WorkerConfig::default().with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let handle = tokio::spawn(worker.run());
    // Let it start (schema check, first claim, LISTEN) before watching.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let watcher = connect(config).await?;
    let xacts = "select pg_stat_force_next_flush(), xact_commit + xact_rollback
                   from pg_stat_database where datname = current_database()";
    let before: i64 = watcher.query_one(xacts, &[]).await?.get(1);
    tokio::time::sleep(idle).await;
    let after: i64 = watcher.query_one(xacts, &[]).await?.get(1);
    stop.shutdown();
    handle.await??;
    Ok((after - before - 1).max(0) as f64 / idle.as_secs_f64())
}

/// C: single-row autocommit inserts per second, `clients` connections at once.
async fn raw_inserts(config: &tokio_postgres::Config, count: u32, clients: u32) -> Result<f64> {
    connect(config)
        .await?
        .batch_execute(
            "create table bench_inserts (id bigserial primary key, payload jsonb not null)",
        )
        .await?;
    let per_client = count / clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = connect(config).await?;
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare("insert into bench_inserts (payload) values ($1)")
                .await?;
            for i in 0..per_client {
                client
                    .execute(&insert, &[&serde_json::json!({ "n": i })])
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(f64::from(per_client * clients) / started.elapsed().as_secs_f64())
}

/// Z1: `DurableScheduler::start` calls per second, `clients` callers at once.
async fn starts(config: &tokio_postgres::Config, count: u32, clients: u32) -> Result<f64> {
    let pool = PgPool::from_config(config.clone(), clients as usize)?;
    let scheduler = Arc::new(PostgresScheduler::new(pool));
    let mut registry = TaskRegistry::new();
    registry.register("start-only", NoOp);
    let durable = zart::DurableScheduler::new(scheduler, Arc::new(registry));
    let per_client = count / clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let durable = durable.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                durable
                    .start(
                        &format!("start-{c}-{i}"),
                        "start-only",
                        serde_json::json!(0),
                    )
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(f64::from(per_client * clients) / started.elapsed().as_secs_f64())
}

/// B: rows per second through claim-100-with-SKIP-LOCKED then delete.
async fn raw_batches(config: &tokio_postgres::Config, count: u32, clients: u32) -> Result<f64> {
    let setup = connect(config).await?;
    setup
        .batch_execute(
            "create table bench_jobs (id bigserial primary key, run_at timestamptz not null default now(),
                                      locked_by text);
             create index bench_jobs_run_at_idx on bench_jobs (run_at);",
        )
        .await?;
    setup
        .execute(
            "insert into bench_jobs (run_at) select now() from generate_series(1, $1::int)",
            &[&(count as i32)],
        )
        .await?;
    setup.batch_execute("vacuum analyze bench_jobs").await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = connect(config).await?;
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{c}");
            loop {
                let rows = client
                    .query(
                        "update bench_jobs j set locked_by = $1
                           from (select id from bench_jobs where locked_by is null and run_at <= now()
                                  order by run_at limit 100 for update skip locked) c
                          where j.id = c.id returning j.id",
                        &[&worker],
                    )
                    .await?;
                if rows.is_empty() {
                    return Ok::<_, anyhow::Error>(());
                }
                let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                client
                    .execute("delete from bench_jobs where id = any($1)", &[&ids])
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(f64::from(count) / started.elapsed().as_secs_f64())
}

/// Z2/Z3: executions per second drained by one default worker from a pre-filled queue.
async fn drain(
    config: &tokio_postgres::Config,
    count: u32,
    steps: u32,
    concurrency: Option<usize>,
) -> Result<f64> {
    let client = connect(config).await?;
    let task = format!("noop-{steps}");
    client
        .execute(
            "select public.zart_start_execution(public.zart_bucket(id), id, $1, to_jsonb($2::int),
                                                'default', null, null)
               from (select $1 || '-' || g as id from generate_series(1, $3::int) g) ids",
            &[&task, &(steps as i32), &(count as i32)],
        )
        .await
        .context("pre-filling executions")?;
    client.batch_execute("vacuum analyze").await?;

    let pool = PgPool::from_config(config.clone(), zart_pg::DEFAULT_POOL_SIZE)?;
    let scheduler = Arc::new(PostgresScheduler::new(pool));
    let mut registry = TaskRegistry::new();
    registry.register(task.clone(), NoOp);
    let mut worker_config = WorkerConfig::default().with_handle_signals(false);
    if let Some(concurrency) = concurrency {
        worker_config = worker_config.with_concurrency(concurrency);
    }
    let worker = Worker::new(scheduler, Arc::new(registry), worker_config);
    let stop = worker.shutdown_handle();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run());
    loop {
        let done: i64 = client
            .query_one(
                "select count(*) from zart_executions where task_name = $1 and status = 'completed'",
                &[&task],
            )
            .await?
            .get(0);
        if done >= i64::from(count) {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(anyhow!(
                "drain did not finish in 10 minutes ({done}/{count})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = f64::from(count) / started.elapsed().as_secs_f64();
    stop.shutdown();
    handle.await??;
    Ok(rate)
}
