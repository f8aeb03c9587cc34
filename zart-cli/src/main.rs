//! The `zart` command: database migrations and a look at executions from the shell.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zart::Scheduler;
use zart_pg::{PgPool, PostgresScheduler};

/// Zart: durable workflows in PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "zart", version, about)]
struct Cli {
    /// PostgreSQL connection URL, e.g. postgres://user:pass@localhost/mydb
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the Zart tables and functions (idempotent; safe to run concurrently).
    Migrate,
    /// Show one execution as JSON.
    Status {
        /// The execution id.
        id: String,
    },
    /// Start an execution from the shell (through the SQL function zart_start).
    ///
    /// The task name is not checked against any registry here: a worker that registers it
    /// will run it.
    Start {
        /// The execution id (idempotency key).
        id: String,
        /// The task name.
        task: String,
        /// The input as JSON (default `{}`); `-` reads it from standard input, which also takes
        /// inputs too large for a command-line argument.
        #[arg(default_value = "{}")]
        input: String,
        /// The queue.
        #[arg(long, default_value = "default")]
        queue: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zart: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url.context(
        "no database given: set DATABASE_URL or pass --database-url postgres://user:pass@host/db",
    )?;
    match cli.command {
        Command::Migrate => {
            let pool = PgPool::connect_lazy(&url, 1)?;
            let report = zart_pg::migrate(&pool).await?;
            if report.applied.is_empty() {
                println!(
                    "zart: schema is up to date (version {})",
                    report.schema_version
                );
            } else {
                println!(
                    "zart: applied {} ({}); schema version {}",
                    report.applied.len(),
                    report.applied.join(", "),
                    report.schema_version
                );
            }
        }
        Command::Status { id } => {
            let scheduler = PostgresScheduler::new(PgPool::connect_lazy(&url, 1)?);
            scheduler.check_schema().await?;
            let execution = scheduler
                .get_execution(&id)
                .await?
                .with_context(|| format!("no execution has the id {id:?}"))?;
            let json = serde_json::json!({
                "id": execution.id,
                "task": execution.task_name,
                "queue": execution.queue,
                "status": execution.status.as_str(),
                "attempts": execution.attempts,
                "input": execution.input,
                "output": execution.output,
                "error": execution.error.map(|e| serde_json::json!({
                    "kind": e.kind, "message": e.message, "step": e.step, "attempts": e.attempts,
                })),
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::Start {
            id,
            task,
            input,
            queue,
        } => {
            let input = if input == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("invalid input: could not read standard input as UTF-8")?;
                text
            } else {
                input
            };
            let input: serde_json::Value = serde_json::from_str(&input).with_context(|| {
                let shown: String = input.chars().take(80).collect();
                format!("invalid input: {shown:?} is not valid JSON")
            })?;
            zart::limits::check_name("execution id", &id)?;
            zart::limits::check_name("task name", &task)?;
            zart::limits::check_name("queue", &queue)?;
            zart::limits::check_payload("input", &input, zart::limits::DEFAULT_MAX_PAYLOAD_BYTES)?;
            let pool = PgPool::connect_lazy(&url, 1)?;
            let scheduler = Arc::new(PostgresScheduler::new(pool.clone()));
            scheduler.check_schema().await?;
            let client = pool.pool().get().await.context("could not connect")?;
            let created: bool = client
                .query_one(zart_pg::queries::START, &[&id, &task, &input, &queue])
                .await
                .map_err(|e| match e.as_db_error() {
                    // Zart's own refusals (ZA...) already name the field and the limit.
                    Some(db) if db.code().code().starts_with("ZA") => {
                        anyhow::anyhow!("{}", db.message())
                    }
                    _ => anyhow::Error::new(e).context("start failed"),
                })?
                .get(0);
            println!(
                "zart: {} execution {id:?} of task {task:?}",
                if created { "started" } else { "already had" }
            );
        }
    }
    Ok(())
}
