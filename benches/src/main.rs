//! `zart-bench`: Zart's wake-up latencies next to the raw PostgreSQL LISTEN/NOTIFY round trip
//! they are built on, measured in one run against one scratch database.
//!
//! - **F**: raw LISTEN/NOTIFY round trip (plain tokio-postgres), the baseline.
//! - **pickup**: `start` to the handler's first instant, on an idle worker.
//! - **end-to-end**: `start` to `wait` returning `Completed` for a one-step workflow.
//! - **timer lateness**: how long after its due time an overlapping `sleep(1 s)` returns.
//! - **event wake**: `send_event` to the suspended `wait_for_event` returning `Received`.
//!
//! Only this driver measures end-to-end; the other figures are also `zart-load`'s (F, Z4, Z5),
//! where their targets are judged.
//!
//! The run creates `zart_bench_<pid>` on the server, migrates it, measures, and drops it again
//! (also after a failure or Ctrl-C). Timings are printed, never judged. See `benches/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use zart_benches::progress::Bar;
use zart_benches::scratch::{server_config, unique_name, Scratch};
use zart_benches::stats::{self, Figure, Gap, Host, Rng, Summary};
use zart_benches::{raw, workflow};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "zart-bench",
    about = "Zart pickup, end-to-end, timer and event latency next to the raw LISTEN/NOTIFY \
             round trip (F)"
)]
struct Args {
    /// PostgreSQL server; a scratch database `zart_bench_<pid>` is created and dropped on it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Samples for each Zart figure (pickup, end-to-end).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    samples: u32,
    /// Samples for F, the raw LISTEN/NOTIFY round trip.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    notify_samples: u32,
    /// Overlapping `sleep(1 s)` workflows for the timer lateness.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    timer_samples: u32,
    /// Samples for the event wake-up latency.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    event_samples: u32,
    /// A tiny run (20 samples each, 5 for timers and events, short gaps) that exercises every
    /// code path in seconds.
    #[arg(long)]
    smoke: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Also write the results as a markdown table to this file.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
}

/// Sample counts and gaps of one run.
#[derive(Debug, Clone, Copy, Serialize)]
struct Plan {
    /// Measured F samples.
    notify_samples: usize,
    /// Measured samples of each Zart figure.
    samples: usize,
    /// Unmeasured samples run first in each phase (connections, listeners, caches).
    warmup: usize,
    /// Idle gap range between F samples, ms.
    f_gap_ms: (u64, u64),
    /// Idle gap range between Zart samples, ms.
    zart_gap_ms: (u64, u64),
    /// Measured `sleep(1 s)` workflows.
    timer_samples: usize,
    /// Measured event wake-ups.
    event_samples: usize,
    /// Gap range between timer workflow starts, and before each event is sent, ms.
    wait_gap_ms: (u64, u64),
}

impl Plan {
    fn new(args: &Args) -> Plan {
        if args.smoke {
            Plan {
                notify_samples: 20,
                samples: 20,
                warmup: 2,
                f_gap_ms: (1, 3),
                zart_gap_ms: (2, 8),
                timer_samples: 5,
                event_samples: 5,
                wait_gap_ms: (20, 60),
            }
        } else {
            Plan {
                notify_samples: args.notify_samples as usize,
                samples: args.samples as usize,
                warmup: 10,
                f_gap_ms: (5, 20),
                zart_gap_ms: (20, 80),
                timer_samples: args.timer_samples as usize,
                event_samples: args.event_samples as usize,
                wait_gap_ms: (20, 60),
            }
        }
    }
}

/// Everything a run reports, as written by `--json`.
#[derive(Debug, Serialize)]
struct Report {
    /// Seconds since the Unix epoch when the run finished.
    unix_time: u64,
    /// `server_version` of the PostgreSQL server.
    postgres_version: String,
    /// Cores, platform and build profile.
    #[serde(flatten)]
    host: Host,
    /// Whether this was a `--smoke` run.
    smoke: bool,
    /// Sample counts and gaps.
    plan: Plan,
    /// One entry per figure: F, pickup, end-to-end, timer lateness, event wake.
    figures: Vec<Figure>,
}

impl Report {
    fn header(&self) -> String {
        let p = &self.plan;
        format!(
            "zart-bench: PostgreSQL {} | {}{} | samples: F {}, pickup {}, \
             end-to-end {}, timer {}, event {} (+{} warm-up each) | gaps: F {}-{} ms, Zart {}-{} \
             ms, timer/event {}-{} ms",
            self.postgres_version,
            self.host,
            if self.smoke { ", SMOKE" } else { "" },
            p.notify_samples,
            p.samples,
            p.samples,
            p.timer_samples,
            p.event_samples,
            p.warmup,
            p.f_gap_ms.0,
            p.f_gap_ms.1,
            p.zart_gap_ms.0,
            p.zart_gap_ms.1,
            p.wait_gap_ms.0,
            p.wait_gap_ms.1,
        )
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zart-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Creates the scratch database, measures, writes the results, and drops the database.
async fn run(args: &Args) -> Result<()> {
    let plan = Plan::new(args);
    let server = server_config(&args.database_url, "zart-bench")?;
    let scratch = Scratch::create(&server, &unique_name("zart_bench")).await?;
    let version = scratch.server_version().to_owned();
    scratch
        .run(|config| async move { measure(args, plan, &config, version).await })
        .await
}

/// Runs the five phases on the scratch database and reports them.
async fn measure(
    args: &Args,
    plan: Plan,
    scratch: &tokio_postgres::Config,
    postgres_version: String,
) -> Result<()> {
    let mut report = Report {
        unix_time: 0,
        postgres_version,
        host: Host::this(),
        smoke: args.smoke,
        plan,
        figures: Vec::new(),
    };
    println!("{}", report.header());
    let mut rng = Rng::from_clock();
    let nonce = format!("{:08x}", rng.next_u64() as u32);
    let f_gap = Gap::ms(plan.f_gap_ms.0, plan.f_gap_ms.1);
    let zart_gap = Gap::ms(plan.zart_gap_ms.0, plan.zart_gap_ms.1);
    let wait_gap = Gap::ms(plan.wait_gap_ms.0, plan.wait_gap_ms.1);

    println!("migrating the scratch database");
    zart_pg::migrate(scratch)
        .await
        .context("migrating the scratch database")?;

    println!("[1/5] F: raw LISTEN/NOTIFY round trip");
    let f = raw::round_trips(
        scratch,
        &nonce,
        plan.warmup,
        plan.notify_samples,
        f_gap,
        &mut rng,
        &Bar::hidden(),
    )
    .await?;

    let mut harness = workflow::Harness::start(scratch.clone())?;
    let measured = async {
        println!("[2/5] pickup: start -> handler entry (idle worker)");
        let pickup = harness
            .pickup(
                &nonce,
                plan.warmup,
                plan.samples,
                zart_gap,
                &mut rng,
                None,
                workflow::StartFrom {
                    local: true,
                    remote: false,
                },
            )
            .await?;
        println!("[3/5] end-to-end: start -> wait() = Completed, one-step workflow");
        let e2e = harness
            .end_to_end(&nonce, plan.warmup, plan.samples, zart_gap, &mut rng)
            .await?;
        println!(
            "[4/5] timer lateness: sleep(1 s) returning minus its due time, overlapping timers"
        );
        let timer = harness
            .timer_elapsed(&nonce, plan.warmup, plan.timer_samples, wait_gap, &mut rng)
            .await?;
        println!("[5/5] event wake: send_event -> wait_for_event = Received (suspended workflow)");
        let (event, _) = harness
            .event_wake(&nonce, plan.warmup, plan.event_samples, wait_gap, &mut rng)
            .await?;
        Ok::<_, anyhow::Error>((pickup, e2e, timer, event))
    }
    .await;
    let stopped = harness.stop().await;
    let (pickup, e2e, timer, event) = match (measured, stopped) {
        (Ok(samples), Ok(())) => samples,
        (Ok(_), Err(w)) => return Err(w),
        (Err(e), Ok(())) => return Err(e),
        (Err(e), Err(w)) => return Err(e.context(format!("and then: {w:#}"))),
    };

    let f = Summary::of(&f)?;
    let pickup = Summary::of(&pickup.pickups)?;
    let e2e = Summary::of(&e2e)?;
    // Timer samples are the elapsed time since the sleep was first reached; the lateness is
    // that minus the nominal sleep, which `Figure::shifted` subtracts (keeping the sign).
    let timer = Summary::of(&timer)?;
    let event = Summary::of(&event)?;
    report.figures = vec![
        Figure::new("f", "F: LISTEN/NOTIFY round trip", &f, None),
        Figure::new("pickup", "pickup: start -> handler", &pickup, Some(&f)),
        Figure::new("end_to_end", "end-to-end: 1-step workflow", &e2e, Some(&f)),
        Figure::shifted(
            "timer_lateness",
            "timer: sleep(1 s) lateness",
            &timer,
            workflow::NAP,
            Some(&f),
        ),
        Figure::new(
            "event_wake",
            "event: send -> wait returns",
            &event,
            Some(&f),
        ),
    ];
    report.unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    println!();
    println!("{}", stats::text_table(&report.figures));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.markdown {
        let md = format!(
            "{}\n\n{}",
            report.header(),
            stats::markdown_table(&report.figures)
        );
        std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
