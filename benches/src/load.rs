//! `zart-load`: every performance figure of issue #8 in one run, on one scratch database,
//! each next to its raw-PostgreSQL baseline measured in the same run.
//!
//! Raw baselines (tokio-postgres, `--clients` connections): **C** single-row insert commits,
//! **U** claim-one-row-with-SKIP-LOCKED-then-delete, **B** the same 100 rows a time, **F** the
//! LISTEN/NOTIFY round trip. Zart at `WorkerConfig::default()`: **Z1** `start_typed`
//! throughput, **Z2** drain of one-step no-op executions, **Z3** three-step workflows (steps
//! per second), **Z4** pickup latency on an idle worker, **Z5** timer lateness and event wake
//! latency, **Z6** an idle worker's transactions and statements per second, **Z7** the drain
//! again after a large history, **Z8** several worker processes draining one database, with
//! double claims counted. **ZR** drains while the worker's retention prunes the history,
//! against the same drain without it; **ZS** samples the tables' sizes under a steady load
//! with retention on (see [`zart_benches::retention`]). **Z1t** and **Z2t** run Z1 and Z2 as non-superuser logins made for
//! the run (a `zart_client` and a `zart_worker` member, granted one tenant), first with
//! tenancy off, then on, and report on / off (issue #14 item 3). For the throughput phases the
//! database's transactions, rows written and statements are counted per execution and per
//! step.
//!
//! Targets are printed with "met" / "not met" in the report and never fail the run; it exits
//! non-zero only for real errors (a failed execution, a double claim, a stuck drain). See
//! `benches/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use tokio_postgres::Config;
use zart::{DurableScheduler, Scheduler, TaskRegistry, Worker, WorkerConfig};
use zart_pg::{PgPool, PostgresScheduler};

use zart_benches::dbstats::{TopStatement, Watcher};
use zart_benches::drain::{self, Entries, NoOp};
use zart_benches::fleet::{self, FleetResult};
use zart_benches::history::{self, RelationSize};
use zart_benches::listing;

/// ZL's target: the list page's p95 over a million executions (issue #18).
const ZL_TARGET_MS: f64 = 100.0;
use zart_benches::progress::{stdout_is_terminal, Bar};
use zart_benches::report::{self, format_value, Metric, PhaseCounts};
use zart_benches::scratch::{server_config, unique_name, Scratch};
use zart_benches::stats::{self, Figure, Gap, Host, Rng, Summary};
use zart_benches::tenancy::{self, LoginNames, Logins, OTHER_TENANT, TENANT};
use zart_benches::{raw, retention, throughput, workflow};

/// Statements kept per phase from `pg_stat_statements`.
const TOP: i64 = 12;

/// Every figure, in the order a run measures them.
const FIGURES: [&str; 21] = [
    "c", "u", "b", "bz", "bz3", "f", "z1", "z1t", "z2", "z2p", "z2t", "z3", "z8", "z4", "z4x",
    "z5", "zc", "z6", "z7", "zr", "zs",
];

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "zart-load",
    about = "Every Zart performance figure (issue #8) next to raw PostgreSQL baselines, in one \
             run on one scratch database",
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// PostgreSQL server; a scratch database `zart_load_<pid>` is created and dropped on it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, required = true)]
    database_url: Option<String>,
    /// Run only these figures (comma-separated: c,u,b,bz,bz3,f,z1,z1t,z2,z2p,z2t,z3,...,z8; z2p is Z2
    /// with 4 priorities and a concurrency limit that never binds; z1t and z2t
    /// are Z1 and Z2 as logins made for the run, tenancy off then on). Ratios to a baseline
    /// that was not run show as n/a.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    only: Vec<String>,
    /// Executions per drain (Z2, Z7, Z8; Z3 runs a third as many three-step workflows), starts
    /// for Z1, and rows for C, U and B.
    #[arg(long, default_value_t = 20_000)]
    count: u32,
    /// Rounds of the throughput figures (C, U, B, Z1, Z2, Z2p, Z3), interleaved (each round
    /// runs the baselines, then the figures), so a figure and its baseline share the machine's
    /// drift; the report gives each one's median with its min-max. F, Z1t, Z2t and Z8 run in
    /// the first round only.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    repeat: u32,
    /// Finished executions in the history before Z7's drain.
    #[arg(long, default_value_t = 1_000_000)]
    history: u64,
    /// Worker processes for Z8.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Concurrent connections of the raw baselines, and concurrent callers of Z1.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    clients: u32,
    /// Worker slots instead of `WorkerConfig::default()`'s (for experiments; the targets are
    /// about the defaults).
    #[arg(long)]
    concurrency: Option<usize>,
    /// SQL run on the scratch database right after it is migrated, for experiments (drop an
    /// index, change a setting): the report header shows it, and its figures are not the
    /// schema's.
    #[arg(long, value_name = "SQL")]
    setup_sql: Option<String>,
    /// Samples of F, the raw LISTEN/NOTIFY round trip.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    notify_samples: u32,
    /// Samples of Z4, the pickup latency (starts at random 100-300 ms gaps).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pickup_samples: u32,
    /// Overlapping `sleep(1 s)` workflows for Z5's timer lateness.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    timer_samples: u32,
    /// Samples of Z5's event wake latency.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    event_samples: u32,
    /// Seconds ZC's every-second cron schedule runs.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..))]
    cron_secs: u64,
    /// Seconds of ZS's steady load.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    steady_secs: u64,
    /// Starts per second of ZS's steady load.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..))]
    steady_rate: u32,
    /// How long ZS's retention keeps completed executions, in seconds.
    #[arg(long, default_value_t = 10)]
    steady_keep_secs: u64,
    /// Seconds the idle worker is watched for Z6.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    idle_secs: u64,
    /// A tiny run that exercises every code path (count 200, history 2,000, pickup 20,
    /// timer/event 5, idle 2 s); its numbers mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Where to write the results as JSON (default: `target/zart-load/zart-load-<UTC time>.json`).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Where to write the report as markdown (default: next to the JSON, `.md`).
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// A previous run's JSON: print old, new and new/old for every figure at the end.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare two saved runs (their JSON files) figure by figure: old, new, new/old.
    Compare {
        /// The older run's JSON.
        old: PathBuf,
        /// The newer run's JSON.
        new: PathBuf,
    },
    /// One Z8 worker process (started by the driver; speaks a line protocol on stdin/stdout).
    #[command(hide = true)]
    Worker {
        /// The server.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// The scratch database on it.
        #[arg(long)]
        dbname: String,
        /// The task to run.
        #[arg(long)]
        task: String,
        /// Worker slots instead of the default.
        #[arg(long)]
        concurrency: Option<usize>,
    },
}

/// Sizes, sample counts and gaps of one run.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    /// The figures run, in order.
    figures: Vec<&'static str>,
    count: u32,
    /// Rounds of the throughput figures (`--repeat`).
    repeat: u32,
    clients: u32,
    history: u64,
    workers: u32,
    concurrency: Option<usize>,
    setup_sql: Option<String>,
    notify_samples: usize,
    pickup_samples: usize,
    timer_samples: usize,
    event_samples: usize,
    /// Unmeasured samples first in each latency phase.
    warmup: usize,
    f_gap_ms: (u64, u64),
    pickup_gap_ms: (u64, u64),
    /// Between timer starts, and before each event is sent.
    wait_gap_ms: (u64, u64),
    idle_secs: u64,
    /// ZC: seconds the every-second schedule runs.
    cron_secs: u64,
    /// ZS: seconds, starts per second, seconds completed executions are kept.
    steady: (u64, u32, u64),
    /// How long the idle worker runs before Z6's window opens (PostgreSQL flushes an idle
    /// backend's statistics up to 10 s late).
    idle_settle_secs: u64,
}

impl Plan {
    fn new(args: &Args) -> Result<Plan> {
        let mut figures = Vec::new();
        for want in &args.only {
            let want = want.trim().to_lowercase();
            match FIGURES.iter().find(|f| **f == want) {
                Some(f) => figures.push(*f),
                None => bail!(
                    "--only: unknown figure {want:?} (known: {})",
                    FIGURES.join(",")
                ),
            }
        }
        let figures = if figures.is_empty() {
            FIGURES.to_vec()
        } else {
            FIGURES
                .iter()
                .copied()
                .filter(|f| figures.contains(f))
                .collect()
        };
        let plan = if args.smoke {
            Plan {
                figures,
                count: 200,
                repeat: args.repeat,
                clients: args.clients,
                history: 2_000,
                workers: args.workers,
                concurrency: args.concurrency,
                setup_sql: args.setup_sql.clone(),
                notify_samples: 20,
                pickup_samples: 20,
                timer_samples: 5,
                event_samples: 5,
                warmup: 2,
                f_gap_ms: (1, 3),
                pickup_gap_ms: (5, 15),
                wait_gap_ms: (20, 60),
                idle_secs: 2,
                cron_secs: 4,
                steady: (6, 200, 2),
                idle_settle_secs: 1,
            }
        } else {
            Plan {
                figures,
                count: args.count,
                repeat: args.repeat,
                clients: args.clients,
                history: args.history,
                workers: args.workers,
                concurrency: args.concurrency,
                setup_sql: args.setup_sql.clone(),
                notify_samples: args.notify_samples as usize,
                pickup_samples: args.pickup_samples as usize,
                timer_samples: args.timer_samples as usize,
                event_samples: args.event_samples as usize,
                warmup: 10,
                f_gap_ms: (5, 20),
                pickup_gap_ms: (100, 300),
                wait_gap_ms: (20, 60),
                idle_secs: args.idle_secs,
                cron_secs: args.cron_secs,
                steady: (args.steady_secs, args.steady_rate, args.steady_keep_secs),
                idle_settle_secs: 11,
            }
        };
        if plan.count < plan.clients.max(3) {
            bail!(
                "--count {} is too small: at least --clients ({}) and 3",
                plan.count,
                plan.clients
            );
        }
        Ok(plan)
    }

    fn has(&self, figure: &str) -> bool {
        self.figures.contains(&figure)
    }
}

/// Everything a run reports, as written by `--json`.
#[derive(Debug, Serialize)]
struct Report {
    /// Always `zart-load`.
    tool: &'static str,
    /// Seconds since the Unix epoch when the run finished.
    unix_time: u64,
    /// The same, readable.
    finished: String,
    /// `server_version` of the PostgreSQL server.
    postgres_version: String,
    /// Cores, platform and build profile.
    #[serde(flatten)]
    host: Host,
    /// Whether this was a `--smoke` run.
    smoke: bool,
    /// Whether `pg_stat_statements` counted statements.
    pg_stat_statements: bool,
    /// Sizes and samples.
    plan: Plan,
    /// One row per measured number, with baseline, ratio, target and outcome.
    metrics: Vec<Metric>,
    /// Percentiles of the latency figures (F, Z4, Z5).
    latencies: Vec<Figure>,
    /// The database's work per phase.
    db_counts: Vec<PhaseCounts>,
    /// The statements of each throughput phase by total time (`pg_stat_statements`).
    top_statements: BTreeMap<&'static str, Vec<TopStatement>>,
    /// Table and index sizes after Z7.
    sizes: Vec<RelationSize>,
    /// ZL: the admin list page over Z7's history, by query shape.
    zl: Vec<listing::ListShape>,
    /// What Z8's worker processes did.
    z8: Option<FleetResult>,
    /// ZR: drains with and without retention pruning the history.
    zr: Option<retention::PruneDrain>,
    /// ZS: the tables' sizes under a steady load with retention on.
    zs: Vec<retention::SizeSample>,
    /// Z1t and Z2t: tenancy on against off, the logins that ran them.
    tenancy: Option<tenancy::TenancyReport>,
    /// Real errors found (double claims, missing executions); the run exits non-zero.
    problems: Vec<String>,
}

impl Report {
    fn header(&self) -> String {
        let p = &self.plan;
        format!(
            "zart-load: PostgreSQL {} | {}{} | count {}, clients {}, \
             history {}, Z8 workers {}{} | pg_stat_statements: {} | {}",
            self.postgres_version,
            self.host,
            if self.smoke { ", SMOKE" } else { "" },
            report::thousands(f64::from(p.count)),
            p.clients,
            report::thousands(p.history as f64),
            p.workers,
            p.concurrency.map_or_else(String::new, |c| format!(
                ", concurrency {c} (not the default)"
            )) + &p.setup_sql.as_ref().map_or_else(String::new, |sql| format!(
                ", setup SQL `{sql}` (not the schema's)"
            )),
            if self.pg_stat_statements {
                "yes"
            } else {
                "n/a"
            },
            self.finished,
        )
    }

    fn markdown(&self) -> String {
        let mut out = format!("# zart-load report\n\n{}\n\n", self.header());
        out.push_str("## Figures\n\n");
        out.push_str(&report::metrics_markdown(&self.metrics));
        if let Some(t) = &self.tenancy {
            out.push_str("\n## Tenancy on against off (Z1t, Z2t)\n\n");
            out.push_str(&t.legend());
            out.push_str("\n\n");
            out.push_str(&t.markdown());
        }
        if !self.db_counts.is_empty() {
            out.push_str(
                "\n## Database work per unit\n\nDeltas of `pg_stat_database` (transactions, \
                 rows inserted + updated + deleted) and `pg_stat_statements` (top-level \
                 statements = round trips) around each phase, divided per unit (row, start, \
                 execution) and per step.\n\n",
            );
            out.push_str(&report::counts_markdown(&self.db_counts));
        }
        if let Some(top) = self.top_statements.get("z2").filter(|t| !t.is_empty()) {
            out.push_str("\n## Top statements of Z2 (by total time)\n\n");
            out.push_str(&report::top_markdown(top));
        }
        if !self.latencies.is_empty() {
            out.push_str("\n## Latency detail\n\n");
            out.push_str(&stats::markdown_table(&self.latencies));
        }
        if !self.sizes.is_empty() {
            out.push_str("\n## Sizes after Z7\n\n");
            out.push_str(&report::sizes_markdown(&self.sizes));
        }
        if !self.zl.is_empty() {
            out.push_str(&format!(
                "\n## ZL: the list page over Z7's history (target p95 <= {ZL_TARGET_MS} ms)\n\n\
                 | query | rows | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|\n"
            ));
            for z in &self.zl {
                out.push_str(&format!(
                    "| {} | {} | {:.2} | {:.2} | {:.2} |\n",
                    z.shape, z.rows, z.p50_ms, z.p95_ms, z.max_ms
                ));
            }
        }
        if let Some(z8) = &self.z8 {
            out.push_str(&format!(
                "\n## Z8\n\n{} worker processes, entries per process: {:?}; double claims: {}; \
                 never entered: {}.\n",
                z8.workers, z8.entries_per_worker, z8.double_claimed, z8.missing
            ));
        }
        if !self.problems.is_empty() {
            out.push_str("\n## Problems\n\n");
            for p in &self.problems {
                out.push_str(&format!("- {p}\n"));
            }
        }
        out
    }
}

/// The numbers gathered while measuring.
#[derive(Debug, Default)]
struct Results {
    c: Option<f64>,
    u: Option<f64>,
    b: Option<f64>,
    /// BZ: Z2's writes in plain SQL, executions/s.
    bz: Option<f64>,
    /// BZ3: Z3's writes in plain SQL, steps/s.
    bz3: Option<f64>,
    f: Option<Summary>,
    z1: Option<f64>,
    z2: Option<f64>,
    z3: Option<f64>,
    z4: Option<Summary>,
    /// Z4's floor: how long `start` took to return in the same samples.
    z4_start: Option<Summary>,
    /// Z4x: the pickup of a start made from another scheduler (no in-process hand-off).
    z4x: Option<Summary>,
    /// Z4x's floor.
    z4x_start: Option<Summary>,
    /// F again, paired with Z4's samples at Z4's idle gaps: the like-for-like baseline.
    f_idle: Option<Summary>,
    /// A raw durable single-row insert, paired with Z4's samples at Z4's idle gaps.
    c_idle: Option<Summary>,
    /// Zart's start statement sent alone, paired with Z4's samples at Z4's idle gaps.
    s_idle: Option<Summary>,
    timer: Option<Summary>,
    event: Option<Summary>,
    /// Z5's event floor: how long `send_event` took to return in the same samples.
    event_send: Option<Summary>,
    /// ZC: how late an every-second schedule's executions were created, and began to run.
    zc: Option<(Summary, Summary)>,
    /// Transactions/s and statements/s of the idle worker.
    z6: Option<(f64, Option<f64>)>,
    z7: Option<f64>,
    z8: Option<FleetResult>,
    zr: Option<retention::PruneDrain>,
    zs: Vec<retention::SizeSample>,
    /// The logins made for Z1t and Z2t.
    logins: Option<LoginNames>,
    /// Z1t: starts/s as the client login, tenancy off and on.
    z1t: Option<(f64, f64)>,
    /// Z2t: executions/s drained by the worker login, tenancy off and on.
    z2t: Option<(f64, f64)>,
    z2p: Option<f64>,
    counts: Vec<PhaseCounts>,
    top: BTreeMap<&'static str, Vec<TopStatement>>,
    sizes: Vec<RelationSize>,
    zl: Vec<listing::ListShape>,
    problems: Vec<String>,
    /// Every round's value of each repeated throughput figure (`--repeat`).
    rounds: BTreeMap<&'static str, Vec<f64>>,
}

impl Results {
    /// Records one round's `value` of figure `key`; returns the median of its rounds so far.
    fn record(&mut self, key: &'static str, value: f64) -> f64 {
        let values = self.rounds.entry(key).or_default();
        values.push(value);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        }
    }
}

#[path = "load/baselines.rs"]
mod baselines;
#[path = "load/drains.rs"]
mod drains;
#[path = "load/figures.rs"]
mod figures;
#[path = "load/histories.rs"]
mod histories;
#[path = "load/retain.rs"]
mod retain;
#[path = "load/starts.rs"]
mod starts;
#[path = "load/waits.rs"]
mod waits;

/// One run's state, shared by its phases (each phase module's `run`).
struct Run<'a> {
    plan: &'a Plan,
    config: &'a Config,
    url: &'a str,
    dbname: &'a str,
    logins: &'a Logins,
    watcher: Watcher,
    r: Results,
    rng: Rng,
    nonce: String,
    bars: bool,
    /// The round of the throughput figures (0 first; see `--repeat`).
    round: u32,
}

/// `task`, or in a later round a task name of that round's own (its execution ids are new).
fn round_task(task: &str, round: u32) -> String {
    if round == 0 {
        task.to_owned()
    } else {
        format!("{task}-r{round}")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("zart-load: error: building the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.command {
        Some(Command::Worker {
            database_url,
            dbname,
            task,
            concurrency,
        }) => runtime.block_on(async {
            let mut config = server_config(database_url, "zart-load-worker")?;
            config.dbname(dbname);
            fleet::run_child(config, task, *concurrency).await
        }),
        Some(Command::Compare { old, new }) => compare_files(old, new),
        None => runtime.block_on(run(&args)),
    };
    // A worker process may still have a blocking stdin read in flight: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zart-load: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `zart-load compare OLD NEW`.
fn compare_files(old: &Path, new: &Path) -> Result<()> {
    println!(
        "{}",
        report::compare(&report::read_json(old)?, &report::read_json(new)?)
    );
    Ok(())
}

/// Creates the scratch database, measures, drops it, and writes and prints the report.
async fn run(args: &Args) -> Result<()> {
    let plan = Plan::new(args)?;
    let url = args
        .database_url
        .clone()
        .context("--database-url or DATABASE_URL is required")?;
    let old = args.compare.as_deref().map(report::read_json).transpose()?;
    let server = server_config(&url, "zart-load")?;
    let name = unique_name("zart_load");
    // The logins of Z1t and Z2t, made once the scratch database is migrated (the group roles
    // exist then) and dropped after it, whatever happened: roles outlive databases.
    let logins = Logins::new(&server, &mut Rng::from_clock());
    let scratch = Scratch::create(&server, &name).await?;
    let version = scratch.server_version().to_owned();
    let measured = scratch
        .run(|config| {
            measure(
                plan,
                args.smoke,
                url.clone(),
                name.clone(),
                config,
                version,
                &logins,
            )
        })
        .await;
    let dropped = logins.drop_all().await;
    let report = match (measured, dropped) {
        (Ok(report), Ok(())) => report,
        (Ok(_), Err(d)) => return Err(d),
        (Err(e), Ok(())) => return Err(e),
        (Err(e), Err(d)) => return Err(e.context(format!("and then: {d:#}"))),
    };

    println!();
    println!("{}", report.header());
    println!();
    println!("{}", report::metrics_text(&report.metrics));
    if let Some(t) = &report.tenancy {
        println!("\nTenancy on against off (Z1t, Z2t):");
        println!("{}", t.text());
        println!("{}", t.legend());
    }
    if !report.db_counts.is_empty() {
        println!("\nDatabase work per unit (pg_stat_database, pg_stat_statements):");
        println!("{}", report::counts_text(&report.db_counts));
    }
    if let Some(top) = report.top_statements.get("z2").filter(|t| !t.is_empty()) {
        println!("\nTop statements of Z2 (by total time):");
        println!("{}", report::top_text(top));
    }
    if !report.latencies.is_empty() {
        println!("\nLatency detail:");
        println!("{}", stats::text_table(&report.latencies));
    }
    if !report.sizes.is_empty() {
        println!("\nSizes after Z7:");
        println!("{}", report::sizes_text(&report.sizes));
    }

    let mut markdown = report.markdown();
    if let Some(old) = &old {
        let new = serde_json::to_value(&report)?;
        let comparison = report::compare(old, &new);
        println!(
            "\nCompared with {}:",
            args.compare.as_deref().unwrap_or(Path::new("-")).display()
        );
        println!("{comparison}");
        markdown.push_str(&format!(
            "\n## Compared with {}\n\n{comparison}",
            args.compare.as_deref().unwrap_or(Path::new("-")).display()
        ));
    }
    let (json_path, md_path) = report::output_paths(
        "zart-load",
        args.json.as_deref(),
        args.markdown.as_deref(),
        report.unix_time,
    );
    report::write_files(&[
        (&json_path, serde_json::to_string_pretty(&report)? + "\n"),
        (&md_path, markdown),
    ])?;
    if !report.problems.is_empty() {
        bail!("{}", report.problems.join("; "));
    }
    Ok(())
}

/// Prints a phase's result line (after its bar is gone).
fn say(bar: &Bar, line: String) {
    bar.finish();
    println!("{line}");
}

/// Runs the planned phases and assembles the report.
async fn measure(
    plan: Plan,
    smoke: bool,
    url: String,
    dbname: String,
    config: Config,
    postgres_version: String,
    logins: &Logins,
) -> Result<Report> {
    let bars = stdout_is_terminal();
    println!(
        "zart-load: scratch database {dbname}, figures {}",
        plan.figures.join(",")
    );
    zart_pg::migrate(&config)
        .await
        .context("migrating the scratch database")?;
    let watcher = Watcher::connect(&config).await?;
    if let Some(sql) = &plan.setup_sql {
        watcher
            .client()
            .batch_execute(sql)
            .await
            .with_context(|| format!("running --setup-sql {sql:?}"))?;
    }
    if !watcher.has_statements() {
        println!(
            "pg_stat_statements: n/a (not installed or not in shared_preload_libraries); \
             statement counts are reported as n/a"
        );
    }
    let mut rng = Rng::from_clock();
    let nonce = format!("{:08x}", rng.next_u64() as u32);
    let mut run = Run {
        plan: &plan,
        config: &config,
        url: &url,
        dbname: &dbname,
        logins,
        watcher,
        r: Results::default(),
        rng,
        nonce,
        bars,
        round: 0,
    };

    for round in 0..plan.repeat {
        run.round = round;
        if plan.repeat > 1 {
            println!("round {} of {}", round + 1, plan.repeat);
        }
        baselines::run(&mut run).await?;
        starts::run(&mut run).await?;
        drains::run(&mut run).await?;
    }
    waits::run(&mut run).await?;
    histories::run(&mut run).await?;
    retain::run(&mut run).await?;
    let Run { watcher, r, .. } = run;
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let metrics = figures::metrics(&plan, &r);
    let latencies = figures::latency_figures(&r);
    let tenancy = figures::tenancy_report(&plan, &r);
    Ok(Report {
        tool: "zart-load",
        unix_time,
        finished: report::utc_stamps(unix_time).1,
        postgres_version,
        host: Host::this(),
        smoke,
        pg_stat_statements: watcher.has_statements(),
        plan,
        metrics,
        latencies,
        db_counts: r.counts,
        top_statements: r.top,
        sizes: r.sizes,
        zl: r.zl,
        z8: r.z8,
        zr: r.zr,
        zs: r.zs,
        tenancy,
        problems: r.problems,
    })
}
