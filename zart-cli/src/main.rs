//! The `zart` command: database migrations and a look at executions from the shell.
//!
//! The backend is chosen by the URL's scheme: `postgres://` (or `postgresql://`) for
//! zart-pg, `sqlite://path.db` (or `sqlite::memory:`) for zart-sqlite.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zart::scheduler::StartExecutionParams;
use zart::Scheduler;
use zart_pg::{PgPool, PostgresScheduler};
use zart_sqlite::SqliteScheduler;

/// Zart: durable workflows in PostgreSQL or SQLite.
#[derive(Debug, Parser)]
#[command(name = "zart", version, about)]
struct Cli {
    /// Database URL: postgres://user:pass@localhost/mydb, or sqlite://path/to/zart.db
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
    /// Start an execution from the shell (on PostgreSQL through the SQL function zart_start).
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

/// The backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn of(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            anyhow::bail!(
                "unsupported database URL scheme {scheme:?}: use postgres://user:pass@host/db \
                 or sqlite://path/to/zart.db"
            )
        }
    }
}

/// The scheduler of a URL, checked against the schema.
async fn scheduler(url: &str) -> anyhow::Result<Arc<dyn Scheduler>> {
    let scheduler: Arc<dyn Scheduler> = match Backend::of(url)? {
        Backend::Postgres => Arc::new(PostgresScheduler::new(PgPool::connect_lazy(url, 1)?)),
        Backend::Sqlite => Arc::new(SqliteScheduler::connect(url).await?),
    };
    scheduler.check_schema().await?;
    Ok(scheduler)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url.context(
        "no database given: set DATABASE_URL or pass --database-url (postgres://user:pass@host/db \
         or sqlite://path/to/zart.db)",
    )?;
    let backend = Backend::of(&url)?;
    match cli.command {
        Command::Migrate => {
            let (applied, version) = match backend {
                Backend::Postgres => {
                    let pool = PgPool::connect_lazy(&url, 1)?;
                    let report = zart_pg::migrate(&pool).await?;
                    (report.applied, i64::from(report.schema_version))
                }
                Backend::Sqlite => {
                    let report = zart_sqlite::migrate(&url).await?;
                    (report.applied, report.schema_version)
                }
            };
            if applied.is_empty() {
                println!("zart: schema is up to date (version {version})");
            } else {
                println!(
                    "zart: applied {} ({}); schema version {version}",
                    applied.len(),
                    applied.join(", ")
                );
            }
        }
        Command::Status { id } => {
            let scheduler = scheduler(&url).await?;
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
            let created = match backend {
                Backend::Postgres => start_postgres(&url, &id, &task, &input, &queue).await?,
                Backend::Sqlite => {
                    // Workers in other processes see it through their change poller.
                    let scheduler = scheduler(&url).await?;
                    scheduler
                        .start_execution(StartExecutionParams {
                            id: id.clone(),
                            task_name: task.clone(),
                            input,
                            queue,
                            parent_id: None,
                            deadline: None,
                        })
                        .await?
                        .created
                }
            };
            println!(
                "zart: {} execution {id:?} of task {task:?}",
                if created { "started" } else { "already had" }
            );
        }
    }
    Ok(())
}

/// Starts through the SQL function `zart_start`, which also wakes workers (NOTIFY).
async fn start_postgres(
    url: &str,
    id: &str,
    task: &str,
    input: &serde_json::Value,
    queue: &str,
) -> anyhow::Result<bool> {
    let pool = PgPool::connect_lazy(url, 1)?;
    let scheduler = Arc::new(PostgresScheduler::new(pool.clone()));
    scheduler.check_schema().await?;
    let client = pool.pool().get().await.context("could not connect")?;
    let created: bool = client
        .query_one(zart_pg::queries::START, &[&id, &task, input, &queue])
        .await
        .map_err(|e| match e.as_db_error() {
            // Zart's own refusals (ZA...) already name the field and the limit.
            Some(db) if db.code().code().starts_with("ZA") => {
                anyhow::anyhow!("{}", db.message())
            }
            _ => anyhow::Error::new(e).context("start failed"),
        })?
        .get(0);
    Ok(created)
}
