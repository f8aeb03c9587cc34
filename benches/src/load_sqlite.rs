//! `zart-load-sqlite`: the SQLite backend's figures (issue #15 item 5) in one run, on a scratch
//! database file in a temporary directory, each next to raw SQLite baselines measured in the
//! same run with the same settings (WAL, `synchronous` FULL unless `--synchronous normal`).
//!
//! Raw baselines (rusqlite, one connection): **S1** single-row insert commits, **SB**
//! claim-100 + delete. Zart at `WorkerConfig::default()`: **Q2** drain of one-step no-op
//! executions, **Q3** three-step workflows (steps per second), **S0** a raw commit after an
//! idle gap (the floor under Q4's `start()`), **Q4** pickup on an idle worker
//! in this process, **Q4x** pickup by a worker in another process, **Q6** and **Q6x** an idle
//! worker's statements and `data_version` polls per second, in this process and in another.
//!
//! Targets are printed with "met" / "not met" and never fail the run; it exits non-zero only
//! for real errors (a failed execution, a stuck drain, a worker process that misbehaves). See
//! `benches/README.md`, section "SQLite".

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use zart_sqlite::Synchronous;

use zart_benches::common::child as common_child;
use zart_benches::common::pickup::{self, PickupPlan, PickupRows, Pickups};
use zart_benches::progress::{stdout_is_terminal, Bar};
use zart_benches::report::{self, format_value, Metric};
use zart_benches::sqlite::idle::{self, IdleCost};
use zart_benches::sqlite::{child, drain, pragma_value, raw, scheduler, Blocking, ScratchFile};
use zart_benches::stats::{self, ms, Figure, Gap, Host, Rng, Summary};

/// `PRAGMA synchronous` for every connection of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Sync {
    /// Durable commits (Zart's default).
    Full,
    /// Faster commits; a power loss may lose the last ones.
    Normal,
}

impl From<Sync> for Synchronous {
    fn from(s: Sync) -> Synchronous {
        match s {
            Sync::Full => Synchronous::Full,
            Sync::Normal => Synchronous::Normal,
        }
    }
}

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "zart-load-sqlite",
    about = "The SQLite backend's figures (issue #15) next to raw SQLite baselines, in one run \
             on a scratch database file",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// `PRAGMA synchronous` of Zart and of the raw baselines.
    #[arg(long, value_enum, default_value_t = Sync::Full)]
    synchronous: Sync,
    /// Executions per drain (Q2; Q3 runs a third as many three-step workflows), and rows for
    /// S1 and SB.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(3..))]
    count: u32,
    /// Samples of Q4 and of Q4x (starts at random 100-300 ms gaps).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pickup_samples: u32,
    /// Seconds each idle worker is watched for Q6 and Q6x.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    idle_secs: u64,
    /// Worker slots of Q2 and Q3 instead of the default (for experiments).
    #[arg(long)]
    concurrency: Option<usize>,
    /// A tiny run of every phase (count 200, 5 pickups each, idle 2 s); numbers mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Where to write the results as JSON (default:
    /// `target/zart-load/zart-load-sqlite-<UTC time>.json`).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Where to write the report as markdown (default: next to the JSON, `.md`).
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// A `zart-load` (Postgres) run's JSON: show its figures next to these.
    #[arg(long, value_name = "ZART_LOAD.json")]
    compare_pg: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The worker process of Q4x and Q6x (started by the driver; a line protocol on stdio).
    #[command(hide = true)]
    Worker {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// `PRAGMA synchronous`.
        #[arg(long, value_enum)]
        synchronous: Sync,
    },
}

/// Sizes, samples and gaps of one run.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    synchronous: &'static str,
    count: u32,
    concurrency: Option<usize>,
    pickup_samples: usize,
    /// Unmeasured samples first in each pickup phase.
    warmup: usize,
    pickup_gap_ms: (u64, u64),
    idle_secs: u64,
    /// How long an idle worker runs before its window opens (past its first safety sweep).
    idle_settle_secs: u64,
}

impl Plan {
    fn new(args: &Args) -> Plan {
        let synchronous = pragma_value(args.synchronous.into());
        if args.smoke {
            Plan {
                synchronous,
                count: 200,
                concurrency: args.concurrency,
                pickup_samples: 5,
                warmup: 2,
                pickup_gap_ms: (5, 15),
                idle_secs: 2,
                idle_settle_secs: 1,
            }
        } else {
            Plan {
                synchronous,
                count: args.count,
                concurrency: args.concurrency,
                pickup_samples: args.pickup_samples as usize,
                warmup: 10,
                pickup_gap_ms: (100, 300),
                idle_secs: args.idle_secs,
                idle_settle_secs: 6,
            }
        }
    }
}

/// The numbers gathered while measuring.
#[derive(Debug, Default)]
struct Results {
    s0: Option<Vec<std::time::Duration>>,
    s1: Option<f64>,
    sb: Option<f64>,
    q2: Option<f64>,
    q3: Option<f64>,
    q4: Option<Pickups>,
    q4x: Option<Pickups>,
    q6: Option<IdleCost>,
    q6x: Option<IdleCost>,
}

/// One figure of this run next to the same figure of a `zart-load` run.
#[derive(Debug, Clone, Serialize)]
struct PgRow {
    key: String,
    name: String,
    unit: String,
    sqlite: f64,
    /// The `zart-load` metric it is set against.
    pg_key: &'static str,
    postgres: Option<f64>,
    sqlite_over_postgres: Option<f64>,
}

/// Everything a run reports, as written by `--json`.
#[derive(Debug, Serialize)]
struct Report {
    /// Always `zart-load-sqlite`.
    tool: &'static str,
    /// Seconds since the Unix epoch when the run finished.
    unix_time: u64,
    /// The same, readable.
    finished: String,
    /// The bundled SQLite's version.
    sqlite_version: &'static str,
    /// Cores, platform and build profile.
    #[serde(flatten)]
    host: Host,
    /// Whether this was a `--smoke` run.
    smoke: bool,
    /// Sizes and samples.
    plan: Plan,
    /// One row per measured number, with baseline, ratio, target and outcome.
    metrics: Vec<Metric>,
    /// Percentiles of Q4 and Q4x.
    latencies: Vec<Figure>,
    /// The same figures from a `zart-load` run (`--compare-pg`).
    postgres: Option<Vec<PgRow>>,
    /// The `zart-load` JSON they came from.
    postgres_source: Option<String>,
    /// Where that run's setting differs from this one's.
    postgres_notes: Vec<String>,
}

impl Report {
    fn header(&self) -> String {
        format!(
            "zart-load-sqlite: SQLite {} | synchronous={}, WAL | {}{} | count {}, pickups {} \
             (+{} warm-up), idle {} s | {}",
            self.sqlite_version,
            self.plan.synchronous,
            self.host,
            if self.smoke { ", SMOKE" } else { "" },
            report::thousands(f64::from(self.plan.count)),
            self.plan.pickup_samples,
            self.plan.warmup,
            self.plan.idle_secs,
            self.finished,
        )
    }

    fn markdown(&self) -> String {
        let mut out = format!("# zart-load-sqlite report\n\n{}\n\n", self.header());
        out.push_str("## Figures\n\n");
        out.push_str(&report::metrics_markdown(&self.metrics));
        out.push_str(&format!("\n{STATEMENTS_NOTE}\n"));
        if !self.latencies.is_empty() {
            out.push_str("\n## Latency detail\n\n");
            out.push_str(&stats::markdown_table(&self.latencies));
        }
        if let Some(rows) = &self.postgres {
            out.push_str(&format!(
                "\n## Next to PostgreSQL ({})\n\n",
                self.postgres_source.as_deref().unwrap_or("-")
            ));
            out.push_str(&report::markdown(
                &PG_HEADERS,
                rows.iter().map(pg_cells),
                "lrrr",
            ));
            out.push_str(&format!("\n{PG_NOTE}\n"));
            for note in &self.postgres_notes {
                out.push_str(&format!("- note: {note}\n"));
            }
        }
        out
    }
}

/// How the statements of Q6 and Q6x are counted, printed under the figures.
const STATEMENTS_NOTE: &str = "Q6/Q6x statements: counted by the scheduler \
     (`SqliteOptions::count_statements`, an SQLite trace hook on its write and read \
     connections); statements naming a `zart_` table count, `begin`/`commit`/savepoints do \
     not (shown as `control`); `data_version` reads are the polls.";

/// What the Postgres comparison is, printed under it.
const PG_NOTE: &str = "PostgreSQL's C and B use `--clients` connections (8 by default); S1 and \
     SB one connection. Compare figures only between runs on the same machine.";

const PG_HEADERS: [&str; 4] = ["figure", "SQLite", "PostgreSQL", "SQLite / PostgreSQL"];

fn pg_cells(r: &PgRow) -> Vec<String> {
    vec![
        format!("{} {}", report::figure_of(&r.key), r.name),
        format_value(r.sqlite, &r.unit),
        r.postgres.map_or_else(
            || format!("{}: not in the file", r.pg_key),
            |v| format!("{} = {}", r.pg_key, format_value(v, &r.unit)),
        ),
        r.sqlite_over_postgres
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}×")),
    ]
}

/// Our metric key and the `zart-load` metric key it is compared with.
const PG_PAIRS: [(&str, &str); 7] = [
    ("s1", "c"),
    ("sb", "b"),
    ("q2", "z2"),
    ("q3", "z3"),
    ("q4.p50", "z4.p50"),
    ("q4.p99", "z4.p99"),
    ("q6.statements", "z6.statements"),
];

fn main() -> ExitCode {
    let args = Args::parse();
    zart_benches::common::main("zart-load-sqlite", || async {
        match &args.command {
            Some(Command::Worker { db, synchronous }) => {
                child::run_child(db, (*synchronous).into()).await
            }
            // Ctrl-C drops the run, and with it the scratch directory and the worker process.
            None => tokio::select! {
                r = run(&args) => r,
                _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
            },
        }
    })
}

/// Measures on a scratch file (deleted afterwards), then prints and writes the report.
async fn run(args: &Args) -> Result<()> {
    let plan = Plan::new(args);
    let pg = args
        .compare_pg
        .as_deref()
        .map(report::read_json)
        .transpose()?;
    let mut rng = Rng::from_clock();
    let nonce = format!("{:08x}", rng.next_u64() as u32);
    let r = {
        let scratch = ScratchFile::create(&nonce)?;
        println!(
            "zart-load-sqlite: scratch database {}",
            scratch.path().display()
        );
        measure(&plan, args.synchronous.into(), &scratch, &nonce, &mut rng).await?
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let metrics = metrics(&r);
    let postgres = pg.as_ref().map(|pg| pg_rows(&metrics, pg));
    let host = Host::this();
    let postgres_notes = pg.as_ref().map_or_else(Vec::new, |pg| {
        let mut notes = Vec::new();
        if pg["profile"].as_str() != Some(host.profile) {
            notes.push(format!(
                "the PostgreSQL run's build profile is {}",
                pg["profile"]
            ));
        }
        if pg["smoke"].as_bool() != Some(args.smoke) {
            notes.push(format!("the PostgreSQL run's smoke is {}", pg["smoke"]));
        }
        notes
    });
    let report = Report {
        tool: "zart-load-sqlite",
        unix_time: unix,
        finished: report::utc_stamps(unix).1,
        sqlite_version: rusqlite::version(),
        host,
        smoke: args.smoke,
        plan,
        latencies: latency_figures(&r)?,
        metrics,
        postgres,
        postgres_source: args.compare_pg.as_ref().map(|p| p.display().to_string()),
        postgres_notes,
    };
    println!();
    println!("{}", report.header());
    println!();
    println!("{}", report::metrics_text(&report.metrics));
    println!("{STATEMENTS_NOTE}");
    println!("\nLatency detail:");
    println!("{}", stats::text_table(&report.latencies));
    if let Some(rows) = &report.postgres {
        println!(
            "\nNext to PostgreSQL ({}):",
            report.postgres_source.as_deref().unwrap_or("-")
        );
        println!(
            "{}",
            report::text(&PG_HEADERS, rows.iter().map(pg_cells), "lrrr")
        );
        println!("{PG_NOTE}");
        for note in &report.postgres_notes {
            println!("note: {note}");
        }
    }
    let (json_path, md_path) = report::output_paths(
        "zart-load-sqlite",
        args.json.as_deref(),
        args.markdown.as_deref(),
        report.unix_time,
    );
    report::write_files(&[
        (&json_path, serde_json::to_string_pretty(&report)? + "\n"),
        (&md_path, report.markdown()),
    ])
}

/// Runs every phase on the scratch file.
async fn measure(
    plan: &Plan,
    sync: Synchronous,
    scratch: &ScratchFile,
    nonce: &str,
    rng: &mut Rng,
) -> Result<Results> {
    let bars = stdout_is_terminal();
    let url = scratch.url();
    let path = scratch.path().to_path_buf();
    zart_sqlite::migrate(&url)
        .await
        .context("migrating the scratch database")?;
    let mut r = Results::default();
    let count = plan.count;

    let bar = Bar::new(bars, 1, "S1", "raw single-row inserts");
    let took = blocking({
        let path = path.clone();
        move || raw::inserts(&path, sync, count)
    })
    .await?;
    let s1 = f64::from(count) / took.as_secs_f64();
    bar.done(&format!(
        "S1  raw single-row inserts, 1 writer: {}",
        format_value(s1, "commits/s")
    ));
    r.s1 = Some(s1);

    let bar = Bar::new(bars, 1, "SB", "raw claim-100 + delete");
    let (rows, took) = blocking({
        let path = path.clone();
        move || raw::claims(&path, sync, count)
    })
    .await?;
    let sb = rows as f64 / took.as_secs_f64();
    bar.done(&format!(
        "SB  raw claim-100 + delete, 1 writer: {}",
        format_value(sb, "rows/s")
    ));
    r.sb = Some(sb);

    let watch = Blocking::new(zart_benches::sqlite::raw_connection(&path, sync)?);
    for (key, steps, n) in [("q2", 1u32, count), ("q3", 3, count / 3)] {
        let task = format!("{key}-drain");
        drain::prefill(&url, sync, &task, n, steps).await?;
        let bar = Bar::new(
            bars,
            n.into(),
            &key.to_uppercase(),
            &format!("drain, {steps}-step no-op"),
        );
        let took = drain::drain(&url, sync, &watch, &task, n, plan.concurrency, &bar).await?;
        let rate = f64::from(n * steps) / took.as_secs_f64();
        let unit = if steps == 1 {
            "executions/s"
        } else {
            "steps/s"
        };
        bar.done(&format!(
            "{:<3} drain, {steps}-step no-op, 1 worker: {}",
            key.to_uppercase(),
            format_value(rate, unit)
        ));
        if steps == 1 {
            r.q2 = Some(rate);
        } else {
            r.q3 = Some(rate);
        }
    }
    drop(watch);

    let pickups = PickupPlan {
        nonce,
        warmup: plan.warmup,
        samples: plan.pickup_samples,
        gap: Gap::ms(plan.pickup_gap_ms.0, plan.pickup_gap_ms.1),
    };
    let samples = (plan.warmup + plan.pickup_samples) as u64;
    let bar = Bar::new(bars, 1, "S0", "raw idle commits");
    let s0 = raw::idle_commits(
        &path,
        sync,
        plan.warmup,
        plan.pickup_samples,
        pickups.gap,
        rng,
    )
    .await?;
    let s0_summary = Summary::of(&s0)?;
    bar.done(&format!(
        "S0  raw commit after an idle gap: p50 {:.3} ms, p99 {:.3} ms",
        ms(s0_summary.p50),
        ms(s0_summary.p99)
    ));
    r.s0 = Some(s0);
    let bar = Bar::new(bars, samples, "Q4", "pickup, in-process");
    let q4 = pickup::in_process(
        scheduler(&url, sync, false).await?,
        "q4",
        pickups,
        rng,
        &bar,
    )
    .await?;
    bar.done(&pickup_line("Q4 ", "in-process", &q4)?);
    r.q4 = Some(q4);

    let idle_len = plan.idle_settle_secs + plan.idle_secs;
    let bar = Bar::new(bars, idle_len, "Q6", "idle worker, in-process");
    let q6 = idle::in_process(&url, sync, plan.idle_settle_secs, plan.idle_secs, &bar).await?;
    bar.done(&idle_line("Q6 ", "in-process", &q6));
    r.q6 = Some(q6);

    let mut process = child::spawn(&path, sync).await?;
    let bar = Bar::new(bars, samples, "Q4x", "pickup, other process");
    let client = scheduler(&url, sync, false).await?;
    let q4x = common_child::pickups(client, &mut process, "q4x", pickups, rng, &bar).await?;
    bar.done(&pickup_line("Q4x", "other process", &q4x)?);
    r.q4x = Some(q4x);
    let bar = Bar::new(bars, idle_len, "Q6x", "idle worker, other process");
    let q6x =
        idle::other_process(&mut process, plan.idle_settle_secs, plan.idle_secs, &bar).await?;
    bar.done(&idle_line("Q6x", "other process", &q6x));
    r.q6x = Some(q6x);
    process.stop().await?;
    Ok(r)
}

/// Runs blocking rusqlite work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a raw baseline's task failed")?
}

fn pickup_line(key: &str, where_: &str, p: &Pickups) -> Result<String> {
    let s = Summary::of(&p.pickups)?;
    Ok(format!(
        "{key} pickup, {where_}: p50 {:.3} ms, p99 {:.3} ms",
        stats::ms(s.p50),
        stats::ms(s.p99)
    ))
}

fn idle_line(key: &str, where_: &str, c: &IdleCost) -> String {
    format!(
        "{key} idle worker, {where_}: {:.2} statements/s on Zart's tables, {:.2} control/s, \
         {:.1} data_version polls/s",
        c.statements, c.control, c.polls
    )
}

/// The report's figure rows, each with its baseline from this run and its target.
fn metrics(r: &Results) -> Vec<Metric> {
    let ms = stats::ms;
    let mut m = Vec::new();
    let s0_p50 =
        r.s0.as_deref()
            .and_then(|s| Summary::of(s).ok())
            .map(|s| ms(s.p50));
    if let Some(p50) = s0_p50 {
        m.push(Metric::new(
            "s0.p50",
            "raw single-row commit after an idle gap, p50",
            p50,
            "ms",
        ));
    }
    if let Some(s1) = r.s1 {
        m.push(Metric::new(
            "s1",
            "raw single-row inserts, 1 writer",
            s1,
            "commits/s",
        ));
    }
    if let Some(sb) = r.sb {
        m.push(Metric::new(
            "sb",
            "raw claim-100 + delete, 1 writer",
            sb,
            "rows/s",
        ));
    }
    if let Some(q2) = r.q2 {
        m.push(
            Metric::new("q2", "drain, one-step no-op, 1 worker", q2, "executions/s")
                .against("SB", r.sb),
        );
    }
    if let Some(q3) = r.q3 {
        m.push(
            Metric::new("q3", "drain, three-step no-op, 1 worker", q3, "steps/s")
                .against("SB", r.sb)
                .at_least(0.2, None),
        );
    }
    for (key, what, pickups) in [
        ("q4", "in-process", &r.q4),
        ("q4x", "other process", &r.q4x),
    ] {
        let Some(p) = pickups else { continue };
        let (Ok(s), Ok(start)) = (Summary::of(&p.pickups), Summary::of(&p.starts)) else {
            continue;
        };
        let p50 = Metric::new(
            &format!("{key}.p50"),
            &format!("pickup p50, idle worker, {what}"),
            ms(s.p50),
            "ms",
        );
        let p99 = Metric::new(
            &format!("{key}.p99"),
            &format!("pickup p99, idle worker, {what}"),
            ms(s.p99),
            "ms",
        );
        if key == "q4" {
            m.push(p50.against("S0 p50", s0_p50).at_most(1.0));
            m.push(p99);
        } else {
            m.push(p50);
            m.push(p99.at_most(60.0));
        }
        m.push(Metric::new(
            &format!("{key}.start.p50"),
            &format!("start() returns p50 (its commit, inside every pickup), {what}"),
            ms(start.p50),
            "ms",
        ));
    }
    for (key, what, cost) in [("q6", "in-process", r.q6), ("q6x", "other process", r.q6x)] {
        let Some(c) = cost else { continue };
        m.push(
            Metric::new(
                &format!("{key}.statements"),
                &format!("idle worker, {what}, statements on Zart's tables"),
                c.statements,
                "statements/s",
            )
            .at_most(1.0),
        );
        m.push(Metric::new(
            &format!("{key}.control"),
            &format!("idle worker, {what}, begin/commit/savepoints"),
            c.control,
            "statements/s",
        ));
        m.push(Metric::new(
            &format!("{key}.polls"),
            &format!("idle worker, {what}, data_version polls"),
            c.polls,
            "polls/s",
        ));
    }
    m
}

/// Our figures next to the same figures of a `zart-load` JSON.
fn pg_rows(metrics: &[Metric], pg: &serde_json::Value) -> Vec<PgRow> {
    let empty = Vec::new();
    let theirs = pg["metrics"].as_array().unwrap_or(&empty);
    PG_PAIRS
        .iter()
        .filter_map(|(ours, pg_key)| {
            let m = metrics.iter().find(|m| m.key == *ours)?;
            let postgres = theirs
                .iter()
                .find(|t| t["key"].as_str() == Some(pg_key))
                .and_then(|t| t["value"].as_f64());
            Some(PgRow {
                key: m.key.clone(),
                name: m.name.clone(),
                unit: m.unit.clone(),
                sqlite: m.value,
                pg_key,
                postgres,
                sqlite_over_postgres: postgres.filter(|p| *p != 0.0).map(|p| m.value / p),
            })
        })
        .collect()
}

/// The percentiles of S0, Q4 and Q4x, and of their `start()` calls.
fn latency_figures(r: &Results) -> Result<Vec<Figure>> {
    let s0 = r
        .s0
        .as_deref()
        .map(|s0| {
            Summary::of(s0).map(|s| Figure::new("s0", "S0: raw commit after an idle gap", &s, None))
        })
        .transpose()?;
    pickup::figures(
        s0,
        &[
            PickupRows {
                key: "q4",
                name: "Q4: pickup start -> first step, in-process",
                start_key: "q4_start",
                start_name: "Q4 floor: start() returns",
                pickups: r.q4.as_ref(),
            },
            PickupRows {
                key: "q4x",
                name: "Q4x: pickup start -> first step, other process",
                start_key: "q4x_start",
                start_name: "Q4x floor: start() returns",
                pickups: r.q4x.as_ref(),
            },
        ],
    )
}
