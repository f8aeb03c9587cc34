//! The `zart` command: database migrations, a look at executions, events and cancellation
//! from the shell, and a check of a database and login (`doctor`).
//!
//! The backend is chosen by the URL's scheme: `postgres://` (or `postgresql://`) for
//! zart-pg, `sqlite://path.db` (or `sqlite::memory:`) for zart-sqlite, `mysql://` (or
//! `mariadb://`) for zart-mysql; `doctor` checks PostgreSQL and MySQL, and says so on
//! SQLite. Every command prints text for people, or JSON with `--json`; the exit codes are in
//! [`exit`] and `docs/cli.md`.

mod exit;
mod inspect;
mod list;
mod prune;
mod text;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use zart::admin::{Admin, ListExecutionsParams};
use zart::scheduler::{SendEventParams, StartExecutionParams};
use zart::{ExecutionStatus, Scheduler};
use zart_mysql::MySqlScheduler;
use zart_pg::{PgPool, PostgresScheduler};
use zart_sqlite::SqliteScheduler;

use exit::Usage;

/// `print!` that ends the process quietly when standard output is closed (`zart ... | head`)
/// instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_out(&format!($($arg)*)) };
}

/// `println!` as [`out!`] does it.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::write_out(&format!("{}\n", format_args!($($arg)*))) };
}

// After the macros above, which it uses.
mod limits;
mod schedules;

fn write_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("zart: could not write to standard output: {e}");
            std::process::exit(i32::from(exit::ERROR));
        }
        std::process::exit(i32::from(exit::OK));
    }
}

/// Zart: durable workflows in PostgreSQL, SQLite or MySQL/MariaDB.
#[derive(Debug, Parser)]
#[command(name = "zart", version, about, after_help = exit::HELP)]
struct Cli {
    /// Database URL: postgres://user:pass@localhost/mydb, sqlite://path/to/zart.db, or
    /// mysql://user:pass@localhost:3306/mydb
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,

    /// Print JSON instead of text (one document on standard output).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the Zart tables and functions (idempotent; safe to run concurrently).
    Migrate {
        /// Print the SQL that would run (pending migrations, sql/zart.sql, sql/roles.sql)
        /// without running it (PostgreSQL only).
        #[arg(long)]
        dry_run: bool,
    },
    /// List executions, newest first.
    List {
        /// Only this status (scheduled, running, sleeping, waiting, completed, failed,
        /// cancelled); repeat or separate with commas for several.
        #[arg(long, value_delimiter = ',', value_parser = parse_status)]
        status: Vec<ExecutionStatus>,
        /// Only this task name.
        #[arg(long)]
        task: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only executions created at or after this time: 2026-12-06, 2026-12-06T22:00:00Z
        /// (UTC), or an age such as 90s, 15m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// Only executions created before this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Only executions whose id starts with this text (case-sensitive, no wildcards).
        #[arg(long = "id")]
        id_prefix: Option<String>,
        /// The most to print (1 to 10000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The page after this execution id (printed under a full page as `more: --after`).
        #[arg(long)]
        after: Option<String>,
    },
    /// List the workers seen in the last day: alive, stopped, or lost (not seen for three of
    /// their intervals), with host, queue, tasks and running executions.
    Workers,
    /// Show one execution: its steps as a timeline, children, unconsumed events, and why it
    /// is waiting.
    Show {
        /// The execution id.
        id: String,
    },
    /// Send an event to an execution; a wait for it resumes.
    SendEvent {
        /// The execution id.
        id: String,
        /// The event name.
        name: String,
        /// The payload as JSON (default null); `-` reads it from standard input.
        #[arg(default_value = "null")]
        payload: String,
    },
    /// Cancel an execution and its unfinished children.
    Cancel {
        /// The execution id.
        id: String,
    },
    /// Run a failed execution again from the step that failed it, keeping the steps recorded
    /// before it (children it waited on that failed or were cancelled are revived too).
    Retry {
        /// The execution id.
        id: String,
    },
    /// Declare, list, pause, resume and delete cron schedules.
    Schedule {
        #[command(subcommand)]
        command: schedules::ScheduleCommand,
    },
    /// Set, list and clear the limits of a queue (runs at once, runs started per interval,
    /// and both per limit key), enforced across the fleet.
    Limits {
        #[command(subcommand)]
        command: limits::LimitsCommand,
    },
    /// Check the database and login: schema version, roles and grants, clock skew,
    /// LISTEN/NOTIFY (PostgreSQL only).
    Doctor,
    /// Serve the admin web UI and HTTP API (docs/admin-api.md) until interrupted.
    ///
    /// Requests need a bearer token from --token or ZART_UI_TOKENS (comma-separated), unless
    /// --anonymous is given. A token written `name:secret` is named in the audit log of
    /// actions; a bare secret is named by its position (`token-1`, ...).
    Ui {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// An API token, `name:secret` or a bare secret (repeatable); ZART_UI_TOKENS adds
        /// more, comma-separated.
        #[arg(long = "token")]
        tokens: Vec<String>,
        /// Refuse every action (cancel, retry, events); reads work.
        #[arg(long)]
        read_only: bool,
        /// No token needed: for a trusted local setup only.
        #[arg(long, conflicts_with = "tokens")]
        anonymous: bool,
    },
    /// Show one execution as JSON.
    Status {
        /// The execution id.
        id: String,
    },
    /// Show the values an execution published with `ctx.set_state`, the latest of each name.
    State {
        /// The execution id.
        id: String,
        /// Only this name: prints its value as JSON (exit 3 when it has none).
        name: Option<String>,
    },
    /// Delete finished executions (with their steps and events) older than an age per status,
    /// in batches; unfinished executions, and finished children of unfinished parents, stay.
    Prune {
        /// Completed executions that finished longer ago than this: 90s, 15m, 2h, 7d, or
        /// never.
        #[arg(long, default_value = "7d", allow_hyphen_values = true)]
        completed_older_than: String,
        /// Failed executions that finished longer ago than this (or never).
        #[arg(long, default_value = "30d", allow_hyphen_values = true)]
        failed_older_than: String,
        /// Cancelled executions that finished longer ago than this (or never).
        #[arg(long, default_value = "30d", allow_hyphen_values = true)]
        cancelled_older_than: String,
        /// Executions deleted per transaction (1 to 100000).
        #[arg(long, default_value_t = 1000)]
        batch: u32,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
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
        /// Start it this long from now (90s, 15m, 2h, 7d), by the database clock.
        #[arg(long, conflicts_with = "at")]
        delay: Option<String>,
        /// Start it at this time (2026-12-06T22:00:00Z, UTC); a time already past means now.
        #[arg(long)]
        at: Option<String>,
        /// Within the queue, higher priorities are claimed first (default 0).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        priority: i16,
        /// The key the queue's per-key limits count it under (a customer id, say).
        #[arg(long)]
        limit_key: Option<String>,
        /// Deduplicate: within --window of a start with this key, a start of the same task
        /// with the key starts nothing and names the first execution.
        #[arg(long, requires = "window", conflicts_with = "debounce")]
        dedup: Option<String>,
        /// Debounce: start --window after the last start with this key, with the last input.
        #[arg(long, requires = "window", conflicts_with_all = ["delay", "at"])]
        debounce: Option<String>,
        /// How long a --dedup or --debounce key holds: 90s, 15m, 2h, 7d.
        #[arg(long)]
        window: Option<String>,
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
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit::code_of(&err);
            eprintln!("zart: {err:#}");
            if let Some(hint) = exit::hint(code) {
                eprintln!("zart: {hint}");
            }
            ExitCode::from(code)
        }
    }
}

fn parse_status(text: &str) -> Result<ExecutionStatus, String> {
    ExecutionStatus::parse(text).map_err(|_| {
        "one of scheduled, running, sleeping, waiting, completed, failed, cancelled".to_owned()
    })
}

/// A JSON argument, or standard input for `-`.
fn json_arg(field: &str, text: String) -> anyhow::Result<serde_json::Value> {
    let text = if text == "-" {
        let mut input = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut input).map_err(|_| {
            Usage(format!(
                "invalid {field}: could not read standard input as UTF-8"
            ))
        })?;
        input
    } else {
        text
    };
    serde_json::from_str(&text).map_err(|e| {
        let shown: String = text.chars().take(80).collect();
        Usage(format!("invalid {field}: {shown:?} is not valid JSON: {e}")).into()
    })
}

/// Prints a JSON document (pretty) on standard output.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
    MySql,
}

impl Backend {
    fn of(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Backend::MySql)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            anyhow::bail!(
                "unsupported database URL scheme {scheme:?}: use postgres://user:pass@host/db, \
                 sqlite://path/to/zart.db or mysql://user:pass@host:3306/db"
            )
        }
    }
}

/// The operator reads of a URL's backend, checked against the schema.
async fn admin(url: &str) -> anyhow::Result<Box<dyn Admin>> {
    Ok(match Backend::of(url)? {
        Backend::Postgres => {
            let scheduler = PostgresScheduler::new(PgPool::connect_lazy(url, 1)?);
            scheduler.check_schema().await?;
            Box::new(scheduler)
        }
        Backend::Sqlite => {
            let scheduler = SqliteScheduler::connect(url).await?;
            scheduler.check_schema().await?;
            Box::new(scheduler)
        }
        Backend::MySql => {
            let scheduler = MySqlScheduler::connect(url).await?;
            scheduler.check_schema().await?;
            Box::new(scheduler)
        }
    })
}

/// The scheduler of a URL, checked against the schema.
async fn scheduler(url: &str) -> anyhow::Result<Arc<dyn Scheduler>> {
    let scheduler: Arc<dyn Scheduler> = match Backend::of(url)? {
        Backend::Postgres => Arc::new(PostgresScheduler::new(PgPool::connect_lazy(url, 1)?)),
        Backend::Sqlite => Arc::new(SqliteScheduler::connect(url).await?),
        Backend::MySql => Arc::new(MySqlScheduler::connect(url).await?),
    };
    scheduler.check_schema().await?;
    Ok(scheduler)
}

/// The `--token` values as (name, secret): `name:secret` is named, a bare secret is named by
/// its position (`token-1`, ...).
fn named_tokens(tokens: &[String]) -> Vec<(String, String)> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| match t.split_once(':') {
            Some((name, secret)) if !name.is_empty() => (name.to_owned(), secret.to_owned()),
            _ => (format!("token-{}", i + 1), t.clone()),
        })
        .collect()
}

/// Runs a command; the exit code on success (doctor's is 1 when a check failed).
async fn run(cli: Cli) -> anyhow::Result<u8> {
    let url = cli.database_url.ok_or_else(|| {
        Usage(
            "no database given: set DATABASE_URL or pass --database-url \
             (postgres://user:pass@host/db, sqlite://path/to/zart.db or \
             mysql://user:pass@host:3306/db)"
                .to_owned(),
        )
    })?;
    let backend = Backend::of(&url)?;
    let json = cli.json;
    match cli.command {
        Command::Migrate { dry_run: true } => {
            if backend != Backend::Postgres {
                return Err(Usage(
                    "migrate --dry-run reads PostgreSQL only; a SQLite file or a MySQL \
                     database is migrated by `zart migrate` alone"
                        .to_owned(),
                )
                .into());
            }
            let pool = PgPool::connect_lazy(&url, 1)?;
            let plan = zart_pg::migration_plan(&pool).await?;
            if json {
                print_json(&json!({
                    "pending": plan.pending.iter().map(|m| &m.name).collect::<Vec<_>>(),
                    "sql": plan.sql(),
                }))?;
            } else {
                let names: Vec<&str> = plan.pending.iter().map(|m| m.name.as_str()).collect();
                outln!(
                    "-- zart migrate --dry-run: pending migrations: {}; then sql/zart.sql and \
                     sql/roles.sql, in one transaction",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                );
                out!("{}", plan.sql());
            }
        }
        Command::Migrate { dry_run: false } => {
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
                Backend::MySql => {
                    let report = zart_mysql::migrate(&url).await?;
                    (report.applied, report.schema_version)
                }
            };
            if json {
                print_json(&json!({"applied": applied, "schema_version": version}))?;
            } else if applied.is_empty() {
                outln!("zart: schema is up to date (version {version})");
            } else {
                outln!(
                    "zart: applied {} ({}); schema version {version}",
                    applied.len(),
                    applied.join(", ")
                );
            }
        }
        Command::State { id, name } => {
            zart::limits::check_name("execution id", &id)?;
            let scheduler = scheduler(&url).await?;
            if scheduler.get_execution(&id).await?.is_none() {
                return Err(zart::Error::NotFound { id }.into());
            }
            let values = scheduler.get_state(&id).await?;
            match name {
                Some(name) => {
                    let value = values.into_iter().find(|v| v.name == name).ok_or_else(|| {
                        zart::Error::NotFound {
                            id: format!("{id} state {name}"),
                        }
                    })?;
                    print_json(&value.value)?;
                }
                None if json => print_json(&serde_json::json!({
                    "id": id,
                    "state": values.iter().map(|v| serde_json::json!({
                        "name": v.name, "value": v.value, "set_at": text::time(v.set_at),
                    })).collect::<Vec<_>>(),
                }))?,
                None if values.is_empty() => outln!("zart: execution {id:?} published no state"),
                None => {
                    let lines: Vec<Vec<String>> = values
                        .iter()
                        .map(|v| vec![v.name.clone(), v.value.to_string(), text::time(v.set_at)])
                        .collect();
                    out!("{}", text::table(&["NAME", "VALUE", "SET AT"], &lines));
                }
            }
        }
        Command::Status { id } => {
            let scheduler = scheduler(&url).await?;
            let execution = scheduler
                .get_execution(&id)
                .await?
                .ok_or_else(|| zart::Error::NotFound { id: id.clone() })?;
            let json = serde_json::json!({
                "id": execution.id,
                "task": execution.task_name,
                "queue": execution.queue,
                "status": execution.status.as_str(),
                "attempts": execution.attempts,
                "parent_id": execution.parent_id,
                "priority": execution.priority,
                "input": execution.input,
                "output": execution.output,
                "error": execution.error.map(|e| serde_json::json!({
                    "kind": e.kind, "message": e.message, "step": e.step, "attempts": e.attempts,
                })),
            });
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::List {
            status,
            task,
            queue,
            since,
            until,
            id_prefix,
            limit,
            after,
        } => {
            let now = SystemTime::now();
            let time = |flag: &str, text: Option<String>| -> anyhow::Result<_> {
                text.map(|t| {
                    text::parse_time(&t, now).map_err(|e| Usage(format!("invalid --{flag}: {e}")))
                })
                .transpose()
                .map_err(anyhow::Error::from)
            };
            let mut params = ListExecutionsParams::new(limit);
            params.statuses = status;
            params.task_name = task;
            params.queue = queue;
            params.created_since = time("since", since)?;
            params.created_until = time("until", until)?;
            params.after = after;
            params.id_prefix = id_prefix;
            params.check()?;
            let page = list::read(&*admin(&url).await?, params, !json).await?;
            if json {
                print_json(&inspect::page_json(&page))?;
            } else {
                out!("{}", inspect::page_text(&page));
            }
        }
        Command::Workers => {
            let seen = admin(&url).await?.list_workers().await?;
            let views = zart::view::WorkerView::all(&seen);
            if json {
                print_json(&serde_json::json!({ "workers": views }))?;
            } else if views.is_empty() {
                outln!("zart: no worker has recorded itself in the last day");
            } else {
                let rows: Vec<Vec<String>> = views
                    .iter()
                    .map(|w| {
                        vec![
                            w.worker_id.clone(),
                            w.state.clone(),
                            format!("{} ({})", w.host, w.pid),
                            w.queue.clone(),
                            format!("{}/{}", w.running, w.concurrency),
                            w.seen_at.clone(),
                            w.tasks.join(","),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    text::table(
                        &["WORKER", "STATE", "HOST", "QUEUE", "RUNNING", "SEEN", "TASKS"],
                        &rows
                    )
                );
            }
        }
        Command::Show { id } => {
            let detail = admin(&url)
                .await?
                .describe_execution(&id)
                .await?
                .ok_or(zart::Error::NotFound { id })?;
            if json {
                print_json(&inspect::detail_json(&detail))?;
            } else {
                out!("{}", inspect::detail_text(&detail));
            }
        }
        Command::SendEvent { id, name, payload } => {
            let payload = json_arg("payload", payload)?;
            zart::limits::check_name("execution id", &id)?;
            zart::limits::check_name("event name", &name)?;
            zart::limits::check_payload(
                "payload",
                &payload,
                zart::limits::DEFAULT_MAX_PAYLOAD_BYTES,
            )?;
            // A lone send from a fresh process NOTIFYs inside its own statement (zart-pg), so
            // the waiting worker is woken at commit, before this process exits.
            scheduler(&url)
                .await?
                .send_event(SendEventParams {
                    execution_id: id.clone(),
                    name: name.clone(),
                    payload,
                })
                .await?;
            if json {
                print_json(&json!({"id": id, "event": name, "sent": true}))?;
            } else {
                outln!("zart: sent event {name:?} to execution {id:?}");
            }
        }
        Command::Schedule { command } => {
            schedules::run(scheduler(&url).await?, command, json).await?;
        }
        Command::Limits { command } => {
            limits::run(scheduler(&url).await?, command, json).await?;
        }
        Command::Cancel { id } => {
            zart::limits::check_name("execution id", &id)?;
            let cancelled = match backend {
                Backend::Postgres => cancel_postgres(&url, &id).await?,
                Backend::Sqlite | Backend::MySql => {
                    scheduler(&url).await?.cancel_execution(&id).await?
                }
            };
            if json {
                print_json(&json!({"id": id, "cancelled": cancelled}))?;
            } else if cancelled.is_empty() {
                outln!("zart: execution {id:?} had already finished; nothing cancelled");
            } else {
                outln!(
                    "zart: cancelled {} execution(s): {}",
                    cancelled.len(),
                    cancelled.join(", ")
                );
            }
        }
        Command::Retry { id } => {
            zart::limits::check_name("execution id", &id)?;
            let revived = match backend {
                Backend::Postgres => retry_postgres(&url, &id).await?,
                Backend::Sqlite | Backend::MySql => {
                    scheduler(&url).await?.retry_execution(&id).await?
                }
            };
            if json {
                print_json(&json!({"id": id, "retried": revived}))?;
            } else {
                outln!(
                    "zart: execution {id:?} is scheduled again from its failed step{}",
                    match &revived[1..] {
                        [] => String::new(),
                        children => format!(", with {}", children.join(", ")),
                    }
                );
            }
        }
        Command::Ui {
            listen,
            mut tokens,
            read_only,
            anonymous,
        } => {
            if let Ok(more) = std::env::var("ZART_UI_TOKENS") {
                tokens.extend(
                    more.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                );
            }
            if tokens.is_empty() && !anonymous {
                return Err(Usage(
                    "zart ui needs a token (--token or ZART_UI_TOKENS), or --anonymous for a \
                     trusted local setup"
                        .to_owned(),
                )
                .into());
            }
            let backend: Arc<dyn zart_ui::Backend> = match backend {
                Backend::Postgres => {
                    Arc::new(PostgresScheduler::new(PgPool::connect_lazy(&url, 4)?))
                }
                Backend::Sqlite => Arc::new(SqliteScheduler::connect(&url).await?),
                Backend::MySql => Arc::new(MySqlScheduler::connect(&url).await?),
            };
            backend.check_schema().await?;
            let config = if anonymous {
                zart_ui::UiConfig::anonymous()
            } else {
                zart_ui::UiConfig::with_named_tokens(named_tokens(&tokens))
            }
            .read_only(read_only);
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| Usage(format!("cannot listen on {listen}: {e}")))?;
            eprintln!(
                "zart ui: serving http://{}/{}",
                listener
                    .local_addr()
                    .map_or(listen.clone(), |a| a.to_string()),
                if read_only { " (read-only)" } else { "" }
            );
            axum::serve(listener, zart_ui::router(backend, config))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Command::Doctor => {
            let report = match backend {
                Backend::Postgres => {
                    let pool = PgPool::connect_lazy(&url, 1)?;
                    zart_pg::doctor::doctor(&pool).await?
                }
                Backend::MySql => zart_mysql::doctor(&url).await?,
                Backend::Sqlite => {
                    return Err(Usage(
                        "zart doctor checks PostgreSQL, MySQL and MariaDB databases (not \
                         supported on sqlite)"
                            .to_owned(),
                    )
                    .into());
                }
            };
            if json {
                print_json(&json!({
                    "passed": report.passed(),
                    "checks": report.checks.iter().map(|c| json!({
                        "name": c.name, "level": c.level.as_str(), "detail": c.detail,
                    })).collect::<Vec<_>>(),
                }))?;
            } else {
                for c in &report.checks {
                    outln!("{:<5} {:<7} {}", c.level.as_str(), c.name, c.detail);
                }
            }
            if !report.passed() {
                return Ok(exit::ERROR);
            }
        }
        Command::Prune {
            completed_older_than,
            failed_older_than,
            cancelled_older_than,
            batch,
            dry_run,
        } => {
            let age = |flag: &str, text: &str| {
                text::parse_retention_age(text).map_err(|e| Usage(format!("invalid --{flag}: {e}")))
            };
            let ages = [
                age("completed-older-than", &completed_older_than)?,
                age("failed-older-than", &failed_older_than)?,
                age("cancelled-older-than", &cancelled_older_than)?,
            ];
            if batch == 0 || batch > zart::scheduler::PRUNE_LIMIT_MAX {
                return Err(Usage(format!(
                    "invalid --batch: {batch} is outside 1 to {}",
                    zart::scheduler::PRUNE_LIMIT_MAX
                ))
                .into());
            }
            let args = prune::PruneArgs::new(ages, batch, dry_run, json);
            let scheduler = scheduler(&url).await?;
            let report = prune::run(&*scheduler, &args).await?;
            if json {
                print_json(&prune::json(&report))?;
            } else {
                outln!("{}", prune::text(&report));
            }
        }
        Command::Start {
            id,
            task,
            input,
            queue,
            delay,
            at,
            priority,
            limit_key,
            dedup,
            debounce,
            window,
        } => {
            let input = json_arg("input", input)?;
            let keyed = match (dedup, debounce) {
                (Some(key), _) => Some((key, false)),
                (None, Some(key)) => Some((key, true)),
                (None, None) => None,
            };
            let start_key = match (keyed, window) {
                (Some((key, debounce)), Some(window)) => {
                    let key = zart::queues::StartKey {
                        key,
                        window: text::parse_delay(&window)
                            .map_err(|e| Usage(format!("--window: {e}")))?,
                        debounce,
                    };
                    key.validate()?;
                    Some(key)
                }
                (None, None) => None,
                _ => {
                    return Err(Usage("--window goes with --dedup or --debounce".to_owned()).into())
                }
            };
            if let Some(key) = &limit_key {
                zart::limits::check_name("limit key", key)?;
            }
            let start = match (delay, at) {
                (Some(delay), _) => Some(zart::scheduler::WakeAt::After(
                    text::parse_delay(&delay).map_err(|e| Usage(format!("--delay: {e}")))?,
                )),
                (None, Some(at)) => Some(zart::scheduler::WakeAt::At(
                    text::parse_start_time(&at).map_err(|e| Usage(format!("--at: {e}")))?,
                )),
                (None, None) => None,
            };
            zart::limits::check_name("execution id", &id)?;
            zart::limits::check_name("task name", &task)?;
            zart::limits::check_name("queue", &queue)?;
            zart::limits::check_payload("input", &input, zart::limits::DEFAULT_MAX_PAYLOAD_BYTES)?;
            let params = StartExecutionParams {
                id: id.clone(),
                task_name: task.clone(),
                input,
                queue,
                parent_id: None,
                deadline: None,
                start,
                priority,
                limit_key,
                start_key,
            };
            let outcome = match backend {
                Backend::Postgres => start_postgres(&url, &params).await?,
                // Workers in other processes see it through their change poller.
                Backend::Sqlite | Backend::MySql => {
                    scheduler(&url).await?.start_execution(params).await?
                }
            };
            let named = outcome.id;
            if json {
                print_json(&json!({
                    "id": named,
                    "task": task,
                    "created": outcome.created,
                    "status": outcome.status.as_str(),
                }))?;
            } else if named != id {
                outln!("zart: the start key names execution {named:?} of task {task:?}; nothing new started");
            } else {
                outln!(
                    "zart: {} execution {id:?} of task {task:?}",
                    if outcome.created {
                        "started"
                    } else {
                        "already had"
                    }
                );
            }
        }
    }
    Ok(exit::OK)
}

/// Cancels with the wake-ups sent in the cancelling statement (as `zart_cancel` does), so
/// `wait()` callers and a waiting parent's workers hear of it even though this process exits
/// at once; returns the ids cancelled, the one asked for first.
async fn cancel_postgres(url: &str, id: &str) -> anyhow::Result<Vec<String>> {
    let pool = PgPool::connect_lazy(url, 1)?;
    PostgresScheduler::new(pool.clone()).check_schema().await?;
    Ok(zart_pg::admin::cancel(&pool, id).await?)
}

/// Retries with the wake-ups sent in the retrying statement (as `zart_retry` does), so workers
/// hear of it even though this process exits at once; returns the ids made due, the one asked
/// for first.
async fn retry_postgres(url: &str, id: &str) -> anyhow::Result<Vec<String>> {
    let pool = PgPool::connect_lazy(url, 1)?;
    PostgresScheduler::new(pool.clone()).check_schema().await?;
    Ok(zart_pg::admin::retry(&pool, id).await?)
}

/// Starts through the SQL function `zart_start`, which also wakes workers (NOTIFY).
async fn start_postgres(
    url: &str,
    p: &StartExecutionParams,
) -> anyhow::Result<zart::scheduler::StartOutcome> {
    let (at, delay_ms): (Option<SystemTime>, Option<i64>) = match p.start {
        None => (None, None),
        Some(zart::scheduler::WakeAt::At(at)) => (Some(at), None),
        Some(zart::scheduler::WakeAt::After(delay)) => (
            None,
            Some(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        ),
    };
    let (key, key_ms, debounce) = match &p.start_key {
        Some(k) => (
            Some(k.key.as_str()),
            Some(i64::try_from(k.window.as_millis()).unwrap_or(i64::MAX)),
            k.debounce,
        ),
        None => (None, None, false),
    };
    let pool = PgPool::connect_lazy(url, 1)?;
    let scheduler = Arc::new(PostgresScheduler::new(pool.clone()));
    scheduler.check_schema().await?;
    let client = pool.pool().get().await.context("could not connect")?;
    // The wake-up goes out in the starting statement: this process exits at once.
    let row = client
        .query_one(
            zart_pg::queries::START_EXECUTION_NOTIFY,
            &[
                &p.id,
                &p.task_name,
                &p.input,
                &p.queue,
                &p.parent_id,
                &None::<i64>,
                &delay_ms,
                &at,
                &p.priority,
                &p.limit_key,
                &key,
                &key_ms,
                &debounce,
            ],
        )
        .await
        .map_err(|e| match e.as_db_error() {
            // Zart's own refusals (ZA...) already name the field and the limit; a refused
            // value is bad input (exit 2), as it is on every other command.
            Some(db) if db.code().code() == zart_pg::sqlstate::INVALID_INPUT => {
                Usage(db.message().to_owned()).into()
            }
            Some(db) if db.code().code().starts_with("ZA") => {
                anyhow::anyhow!("{}", db.message())
            }
            _ => anyhow::Error::new(e).context("start failed"),
        })?;
    Ok(zart::scheduler::StartOutcome {
        created: row.get(0),
        status: ExecutionStatus::parse(row.get(1))?,
        id: row.get(2),
    })
}
