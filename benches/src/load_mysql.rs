//! `zart-load-mysql`: the MySQL/MariaDB backend's figures (issue #17 item 7) in one run, on a
//! scratch database `zart_load_<pid>_<nanos>` created on the server of `--url` /
//! `ZART_MYSQL_URL` and dropped at the end, each next to raw mysql_async baselines measured
//! in the same run on the same server with the same session settings.
//!
//! Raw baselines (one connection): **M0** a single-row commit after an idle gap (the floor
//! under Q4's `start()`), **M1** single-row insert commits, **MB** claim-100 with `SKIP
//! LOCKED` + delete. Zart at `WorkerConfig::default()`: **Q2** drain of one-step no-op
//! executions, **Q3** three-step workflows (steps per second), **Q4** pickup on an idle worker
//! in this process, **Q4x** pickup by a worker in another process (through the change-probe
//! poller), **Q6** and **Q6x** an idle worker's statements per second, in this process and in
//! another, counted by a relay on its connections.
//!
//! Targets are printed with "met" / "not met" and never fail the run; it exits non-zero only
//! for real errors (no server, a failed execution, a stuck drain, a worker process that
//! misbehaves). See `benches/README.md`, section "MySQL / MariaDB".

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use zart_benches::common::child as common_child;
use zart_benches::common::pickup::{self, PickupPlan, PickupRows, Pickups};
use zart_benches::mysql::idle::{self, IdleCost};
use zart_benches::mysql::{
    child, close, drain, raw, scheduler, Scratch, Server, ServerInfo, DEFAULT_SERVER,
};
use zart_benches::progress::{stdout_is_terminal, Bar};
use zart_benches::report::{self, format_value, Metric};
use zart_benches::stats::{self, ms, Figure, Gap, Host, Rng, Summary};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "zart-load-mysql",
    about = "The MySQL/MariaDB backend's figures (issue #17) next to raw MariaDB baselines, in \
             one run on a scratch database",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The server (mysql://user:password@host:port, or mariadb://); a database in it is
    /// ignored: the run creates `zart_load_<pid>_<nanos>` and drops it at the end.
    #[arg(long, env = "ZART_MYSQL_URL", hide_env_values = true, default_value = DEFAULT_SERVER)]
    url: String,
    /// Executions per drain (Q2; Q3 runs a third as many three-step workflows), and rows for
    /// M1 and MB.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(3..))]
    count: u32,
    /// Samples of M0, Q4 and Q4x (starts at random 100-300 ms gaps).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pickup_samples: u32,
    /// Seconds each idle worker is watched for Q6 and Q6x.
    #[arg(long, alias = "idle-secs", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_window: u64,
    /// Worker slots of Q2 and Q3 instead of the default (for experiments).
    #[arg(long)]
    concurrency: Option<usize>,
    /// A tiny run of every phase (count 200, 5 pickups each, idle window 2 s); numbers mean
    /// nothing.
    #[arg(long)]
    smoke: bool,
    /// Only the baselines and the drains (M1, MB, Q2, Q3): no pickup or idle phases (for
    /// working on throughput).
    #[arg(long)]
    drains_only: bool,
    /// Where to write the results as JSON (default:
    /// `target/zart-load/zart-load-mysql-<UTC time>.json`).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Where to write the report as markdown (default: next to the JSON, `.md`).
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The worker process of Q4x and Q6x (started by the driver, with the server's URL in
    /// `ZART_LOAD_MYSQL_SERVER`; a line protocol on stdio).
    #[command(hide = true)]
    Worker {
        /// The scratch database.
        #[arg(long)]
        db: String,
    },
}

/// Sizes, samples and gaps of one run.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    count: u32,
    drains_only: bool,
    concurrency: Option<usize>,
    pickup_samples: usize,
    /// Unmeasured samples first in each pickup phase.
    warmup: usize,
    pickup_gap_ms: (u64, u64),
    idle_window_secs: u64,
    /// How long an idle worker runs before its window opens (past its first safety sweep and
    /// its poller's back-off to the idle interval).
    idle_settle_secs: u64,
}

impl Plan {
    fn new(args: &Args) -> Plan {
        if args.smoke {
            Plan {
                count: 200,
                drains_only: args.drains_only,
                concurrency: args.concurrency,
                pickup_samples: 5,
                warmup: 2,
                pickup_gap_ms: (5, 15),
                idle_window_secs: 2,
                idle_settle_secs: 1,
            }
        } else {
            Plan {
                count: args.count,
                drains_only: args.drains_only,
                concurrency: args.concurrency,
                pickup_samples: args.pickup_samples as usize,
                warmup: 10,
                pickup_gap_ms: (100, 300),
                idle_window_secs: args.idle_window,
                idle_settle_secs: 6,
            }
        }
    }
}

/// The numbers gathered while measuring.
#[derive(Debug, Default)]
struct Results {
    m0: Option<Vec<Duration>>,
    m1: Option<f64>,
    mb: Option<f64>,
    q2: Option<f64>,
    q3: Option<f64>,
    q4: Option<Pickups>,
    q4x: Option<Pickups>,
    q6: Option<IdleCost>,
    q6x: Option<IdleCost>,
}

/// The idle workers' rates in full.
#[derive(Debug, Serialize)]
struct Idle {
    q6: Option<IdleCost>,
    q6x: Option<IdleCost>,
}

/// Everything a run reports, as written by `--json`.
#[derive(Debug, Serialize)]
struct Report {
    /// Always `zart-load-mysql`.
    tool: &'static str,
    /// Seconds since the Unix epoch when the run finished.
    unix_time: u64,
    /// The same, readable.
    finished: String,
    /// The server's version and settings.
    server: ServerInfo,
    /// Cores, platform and build profile.
    #[serde(flatten)]
    host: Host,
    /// Whether this was a `--smoke` run.
    smoke: bool,
    /// Sizes and samples.
    plan: Plan,
    /// One row per measured number, with baseline, ratio, target and outcome.
    metrics: Vec<Metric>,
    /// Percentiles of M0, Q4 and Q4x.
    latencies: Vec<Figure>,
    /// Q6 and Q6x in full.
    idle: Idle,
}

impl Report {
    fn header(&self) -> String {
        format!(
            "zart-load-mysql: {} | {}{} | count {}, pickups {} (+{} warm-up), idle window {} s \
             | {}",
            self.server,
            self.host,
            if self.smoke { ", SMOKE" } else { "" },
            report::thousands(f64::from(self.plan.count)),
            self.plan.pickup_samples,
            self.plan.warmup,
            self.plan.idle_window_secs,
            self.finished,
        )
    }

    fn markdown(&self) -> String {
        let mut out = format!("# zart-load-mysql report\n\n{}\n\n", self.header());
        out.push_str("## Figures\n\n");
        out.push_str(&report::metrics_markdown(&self.metrics));
        out.push_str(&format!("\n{STATEMENTS_NOTE}\n"));
        if !self.latencies.is_empty() {
            out.push_str("\n## Latency detail\n\n");
            out.push_str(&stats::markdown_table(&self.latencies));
        }
        out
    }
}

/// How the statements of Q6 and Q6x are counted, printed under the figures.
const STATEMENTS_NOTE: &str = "Q6/Q6x statements: every query and prepared-statement execution \
     the idle worker's scheduler sent, counted by a relay on its connections (the change probe, \
     transaction control and clock reads included); `protocol` is commands that run no \
     statement (prepare, close, ping, quit); `polls` is the scheduler's poll_count(); `server` \
     is the server's Questions counter over the window, everything any client ran (a \
     cross-check on a quiet server only).";

fn main() -> ExitCode {
    let args = Args::parse();
    zart_benches::common::main("zart-load-mysql", || async {
        match &args.command {
            Some(Command::Worker { db }) => child::run_child(db).await,
            // Ctrl-C is handled by the scratch database's run, which drops the database.
            None => run(&args).await,
        }
    })
}

/// Measures on a scratch database (dropped afterwards), then prints and writes the report.
async fn run(args: &Args) -> Result<()> {
    let plan = Plan::new(args);
    let server = Server::parse(&args.url)?;
    let scratch = Scratch::create(&server).await?;
    println!(
        "zart-load-mysql: scratch database {} on {}",
        scratch.name(),
        server.display()
    );
    let measured = scratch
        .run(async {
            zart_mysql::migrate(&scratch.url())
                .await
                .context("migrating the scratch database")?;
            let info = scratch.server_info().await?;
            println!("zart-load-mysql: server {info}");
            let mut rng = Rng::from_clock();
            let nonce = format!("{:08x}", rng.next_u64() as u32);
            let r = measure(&plan, &scratch, &args.url, &nonce, &mut rng).await?;
            Ok((info, r))
        })
        .await;
    scratch.close().await;
    let (info, r) = measured?;
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let report = Report {
        tool: "zart-load-mysql",
        unix_time: unix,
        finished: report::utc_stamps(unix).1,
        server: info,
        host: Host::this(),
        smoke: args.smoke,
        plan,
        latencies: latency_figures(&r)?,
        metrics: metrics(&r),
        idle: Idle {
            q6: r.q6,
            q6x: r.q6x,
        },
    };
    println!();
    println!("{}", report.header());
    println!();
    println!("{}", report::metrics_text(&report.metrics));
    println!("{STATEMENTS_NOTE}");
    println!("\nLatency detail:");
    println!("{}", stats::text_table(&report.latencies));
    let (json_path, md_path) = report::output_paths(
        "zart-load-mysql",
        args.json.as_deref(),
        args.markdown.as_deref(),
        report.unix_time,
    );
    report::write_files(&[
        (&json_path, serde_json::to_string_pretty(&report)? + "\n"),
        (&md_path, report.markdown()),
    ])
}

/// Runs every phase on the scratch database.
async fn measure(
    plan: &Plan,
    scratch: &Scratch,
    server_url: &str,
    nonce: &str,
    rng: &mut Rng,
) -> Result<Results> {
    let bars = stdout_is_terminal();
    let url = scratch.url();
    let mut r = Results::default();
    let count = plan.count;
    let pool = scratch.pool()?;

    let bar = Bar::new(bars, 1, "M1", "raw single-row inserts");
    let took = raw::inserts(&pool, count).await?;
    let m1 = f64::from(count) / took.as_secs_f64();
    bar.done(&format!(
        "M1  raw single-row inserts, 1 connection: {}",
        format_value(m1, "commits/s")
    ));
    r.m1 = Some(m1);

    let bar = Bar::new(bars, 1, "MB", "raw claim-100 + delete");
    let (rows, took) = raw::claims(&pool, count).await?;
    let mb = rows as f64 / took.as_secs_f64();
    bar.done(&format!(
        "MB  raw claim-100 skip locked + delete, 1 connection: {}",
        format_value(mb, "rows/s")
    ));
    r.mb = Some(mb);

    for (key, steps, n) in [("q2", 1u32, count), ("q3", 3, count / 3)] {
        let task = format!("{key}-drain");
        drain::prefill(&url, &task, n, steps).await?;
        let bar = Bar::new(
            bars,
            n.into(),
            &key.to_uppercase(),
            &format!("drain, {steps}-step no-op"),
        );
        let took = drain::drain(&url, &pool, &task, n, plan.concurrency, &bar).await?;
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

    if plan.drains_only {
        pool.disconnect().await?;
        return Ok(r);
    }
    let pickups = PickupPlan {
        nonce,
        warmup: plan.warmup,
        samples: plan.pickup_samples,
        gap: Gap::ms(plan.pickup_gap_ms.0, plan.pickup_gap_ms.1),
    };
    let samples = (plan.warmup + plan.pickup_samples) as u64;
    let bar = Bar::new(bars, 1, "M0", "raw idle commits");
    let m0 = raw::idle_commits(&pool, plan.warmup, plan.pickup_samples, pickups.gap, rng).await?;
    bar.done(&latency_line("M0 ", "raw commit after an idle gap", &m0)?);
    r.m0 = Some(m0);
    pool.disconnect().await?;

    let bar = Bar::new(bars, samples, "Q4", "pickup, in-process");
    let shared = scheduler(&url).await?;
    let q4 = pickup::in_process(shared.clone(), "q4", pickups, rng, &bar).await;
    close(shared).await;
    let q4 = q4?;
    bar.done(&latency_line("Q4 ", "pickup, in-process", &q4.pickups)?);
    r.q4 = Some(q4);

    let idle_len = plan.idle_settle_secs + plan.idle_window_secs;
    let bar = Bar::new(bars, idle_len, "Q6", "idle worker, in-process");
    let q6 = idle::in_process(scratch, plan.idle_settle_secs, plan.idle_window_secs, &bar).await?;
    bar.done(&idle_line("Q6 ", "in-process", &q6));
    r.q6 = Some(q6);

    let mut process = child::spawn(scratch, server_url).await?;
    let bar = Bar::new(bars, samples, "Q4x", "pickup, other process");
    let client = scheduler(&url).await?;
    let q4x = common_child::pickups(client.clone(), &mut process, "q4x", pickups, rng, &bar).await;
    close(client).await;
    let q4x = q4x?;
    bar.done(&latency_line("Q4x", "pickup, other process", &q4x.pickups)?);
    r.q4x = Some(q4x);
    let bar = Bar::new(bars, idle_len, "Q6x", "idle worker, other process");
    let q6x = idle::other_process(
        scratch,
        &mut process,
        plan.idle_settle_secs,
        plan.idle_window_secs,
        &bar,
    )
    .await?;
    bar.done(&idle_line("Q6x", "other process", &q6x));
    r.q6x = Some(q6x);
    process.stop().await?;
    Ok(r)
}

fn latency_line(key: &str, what: &str, samples: &[Duration]) -> Result<String> {
    let s = Summary::of(samples)?;
    Ok(format!(
        "{key} {what}: p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms",
        ms(s.p50),
        ms(s.p95),
        ms(s.max)
    ))
}

fn idle_line(key: &str, where_: &str, c: &IdleCost) -> String {
    format!(
        "{key} idle worker, {where_}: {:.2} statements/s ({:.2} change probes, {:.2} other on \
         Zart's tables, {:.2} control/clock), {:.2} protocol/s, {} connections opened; \
         server-wide {:.2} questions/s",
        c.statements,
        c.probes,
        c.zart_tables,
        c.other,
        c.protocol,
        c.connections,
        c.server_questions
    )
}

/// The report's figure rows, each with its baseline from this run and its target.
fn metrics(r: &Results) -> Vec<Metric> {
    let mut m = Vec::new();
    let m0 = r.m0.as_deref().and_then(|s| Summary::of(s).ok());
    if let Some(s) = m0 {
        for (key, name, value) in [
            ("m0.p50", "p50", s.p50),
            ("m0.p95", "p95", s.p95),
            ("m0.max", "max", s.max),
        ] {
            m.push(Metric::new(
                key,
                &format!("raw single-row commit after an idle gap, {name}"),
                ms(value),
                "ms",
            ));
        }
    }
    if let Some(m1) = r.m1 {
        m.push(Metric::new(
            "m1",
            "raw single-row inserts, 1 connection",
            m1,
            "commits/s",
        ));
    }
    if let Some(mb) = r.mb {
        m.push(Metric::new(
            "mb",
            "raw claim-100 skip locked + delete, 1 connection",
            mb,
            "rows/s",
        ));
    }
    if let Some(q2) = r.q2 {
        m.push(
            Metric::new("q2", "drain, one-step no-op, 1 worker", q2, "executions/s")
                .against("MB", r.mb),
        );
    }
    if let Some(q3) = r.q3 {
        m.push(
            Metric::new("q3", "drain, three-step no-op, 1 worker", q3, "steps/s")
                .against("MB", r.mb)
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
        for (part, value, base) in [
            ("p50", s.p50, m0.map(|b| b.p50)),
            ("p95", s.p95, m0.map(|b| b.p95)),
            ("max", s.max, m0.map(|b| b.max)),
        ] {
            m.push(
                Metric::new(
                    &format!("{key}.{part}"),
                    &format!("pickup {part}, idle worker, {what}"),
                    ms(value),
                    "ms",
                )
                .against(&format!("M0 {part}"), base.map(ms)),
            );
        }
        m.push(
            Metric::new(
                &format!("{key}.start.p50"),
                &format!("start() returns p50 (its commit, inside every pickup), {what}"),
                ms(start.p50),
                "ms",
            )
            .against("M0 p50", m0.map(|b| ms(b.p50))),
        );
    }
    for (key, what, cost) in [("q6", "in-process", r.q6), ("q6x", "other process", r.q6x)] {
        let Some(c) = cost else { continue };
        m.push(
            Metric::new(
                &format!("{key}.statements"),
                &format!("idle worker, {what}, statements (all)"),
                c.statements,
                "statements/s",
            )
            .at_most(1.0),
        );
        for (part, name, value, unit) in [
            ("probes", "of which change probes", c.probes, "statements/s"),
            (
                "zart",
                "of which others on Zart's tables",
                c.zart_tables,
                "statements/s",
            ),
            (
                "other",
                "of which transaction control, clock, session",
                c.other,
                "statements/s",
            ),
            ("protocol", "protocol commands", c.protocol, "commands/s"),
            ("polls", "scheduler poll_count()", c.polls, "polls/s"),
            (
                "server",
                "whole server's Questions",
                c.server_questions,
                "questions/s",
            ),
        ] {
            m.push(Metric::new(
                &format!("{key}.{part}"),
                &format!("idle worker, {what}, {name}"),
                value,
                unit,
            ));
        }
    }
    m
}

/// The percentiles of M0, Q4 and Q4x, and of their `start()` calls.
fn latency_figures(r: &Results) -> Result<Vec<Figure>> {
    let m0 = r
        .m0
        .as_deref()
        .map(|m0| {
            Summary::of(m0).map(|s| Figure::new("m0", "M0: raw commit after an idle gap", &s, None))
        })
        .transpose()?;
    pickup::figures(
        m0,
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
