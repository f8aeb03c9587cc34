//! zart-soak: a steady mix of workflows for a long time, a burst far beyond what the workers
//! drain, and the recovery after it, sampled at fixed intervals: throughput, pickup p50/p99,
//! backlog, the most executions any worker holds, connections, worker RSS and the size of
//! Zart's tables. At the end every execution must have completed with its steps, no worker may
//! have exited, no worker may have held more executions than its slots, and memory and tables
//! must not drift upwards.
//!
//! ```text
//! cargo run --release -p zart-tests --bin zart-soak -- --steady-s 3600 --sample-s 60
//! ```
//!
//! The workload is the test tasks' `counted` workflow (1 to 5 steps of 2 ms, each recording a
//! side effect), started with plain SQL `zart_start` in batches every 100 ms. Workers keep
//! completed executions for `--retention-s` (their retention deletes older ones), so the tables
//! reach a plateau. Exit status: 0 when every check holds, 1 when one does not, 2 when the run
//! could not finish.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use tokio::io::AsyncBufReadExt;

const HELP: &str = "\
zart-soak: a steady mix of workflows, a 10x burst, and the recovery, sampled over time

Options:
  --steady-s S         steady phase before the burst (default 3600)
  --rate N             workflows started per second in the steady phases (default 200)
  --overload-s S       the burst (default 60)
  --overload-factor F  the burst starts F times the steady rate (default 10)
  --recovery-s S       steady phase after the burst (default 120)
  --sample-s S         sampling interval (default 60)
  --workers N          worker processes (default 2)
  --concurrency N      slots per worker (default 32)
  --retention-s S      completed executions are kept S seconds (default 120)
  --json PATH          also write every sample and the checks as JSON to PATH
  --database-url URL   server to use (default $DATABASE_URL); the run creates and drops its
                       own database there
";

#[derive(Debug, Clone)]
struct Options {
    steady_s: u64,
    rate: u64,
    overload_s: u64,
    overload_factor: u64,
    recovery_s: u64,
    sample_s: u64,
    workers: usize,
    concurrency: usize,
    retention_s: u64,
    json: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o = Options {
        steady_s: 3600,
        rate: 200,
        overload_s: 60,
        overload_factor: 10,
        recovery_s: 120,
        sample_s: 60,
        workers: 2,
        concurrency: 32,
        retention_s: 120,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    fn value<T: FromStr>(name: &str, v: Option<String>) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let v = v.ok_or_else(|| anyhow!("{name} needs a value"))?;
        v.parse()
            .map_err(|e| anyhow!("{name}: cannot parse {v:?}: {e}"))
    }
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut next = || inline.clone().or_else(|| args.next());
        match name.as_str() {
            "--steady-s" => o.steady_s = value(&name, next())?,
            "--rate" => o.rate = value(&name, next())?,
            "--overload-s" => o.overload_s = value(&name, next())?,
            "--overload-factor" => o.overload_factor = value(&name, next())?,
            "--recovery-s" => o.recovery_s = value(&name, next())?,
            "--sample-s" => o.sample_s = value(&name, next())?,
            "--workers" => o.workers = value(&name, next())?,
            "--concurrency" => o.concurrency = value(&name, next())?,
            "--retention-s" => o.retention_s = value(&name, next())?,
            "--json" => o.json = Some(PathBuf::from(value::<String>(&name, next())?)),
            "--database-url" => {
                // TestDb reads the server from DATABASE_URL.
                std::env::set_var("DATABASE_URL", value::<String>(&name, next())?);
            }
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?} (see --help)"),
        }
    }
    if o.rate == 0 || o.sample_s == 0 || o.workers == 0 || o.concurrency == 0 {
        bail!("--rate, --sample-s, --workers and --concurrency must be > 0");
    }
    if std::env::var("DATABASE_URL").is_err() {
        bail!("set DATABASE_URL or pass --database-url (eval \"$(ci/pg-up)\" starts a server)");
    }
    Ok(o)
}

/// One sample of the run.
#[derive(Debug, Clone, serde::Serialize)]
struct Sample {
    phase: &'static str,
    at_s: f64,
    started: i64,
    completed_per_s: f64,
    pickup_p50_ms: Option<f64>,
    pickup_p99_ms: Option<f64>,
    backlog: i64,
    most_held_by_a_worker: i64,
    connections: i64,
    worker_rss_mb: Vec<f64>,
    zart_tables_mb: f64,
    executions_stored: i64,
}

/// The resident set of a process, in MiB (from /proc).
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Worker {
    child: tokio::process::Child,
    pid: u32,
}

async fn spawn_worker(bin: &PathBuf, url: &str, o: &Options) -> anyhow::Result<Worker> {
    let mut child = tokio::process::Command::new(bin)
        .env("DATABASE_URL", url)
        .env("ZART_TEST_LEASE_MS", "5000")
        .env("ZART_TEST_CONCURRENCY", o.concurrency.to_string())
        .env("ZART_TEST_RETENTION_S", o.retention_s.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id().ok_or_else(|| anyhow!("worker exited at once"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
        Ok(Ok(Some(line))) if line.starts_with("ready") => {}
        other => bail!("worker {pid} did not start: {other:?}"),
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Worker { child, pid })
}

/// Starts `count` workflows from id `from` (`soak-<i>`, 1 to 5 steps by id).
async fn start_batch(client: &tokio_postgres::Client, from: i64, count: i64) -> anyhow::Result<()> {
    client
        .execute(
            "select count(public.zart_start('soak-' || i, 'counted',
                    jsonb_build_object('steps', 1 + i % 5, 'step_ms', 2)))
               from generate_series($1::bigint, $2::bigint - 1) i",
            &[&from, &(from + count)],
        )
        .await
        .context("starting workflows")?;
    Ok(())
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<f64> {
    let row = client
        .query_one(sql, &[])
        .await
        .with_context(|| format!("running {sql}"))?;
    Ok(row.try_get::<_, Option<f64>>(0)?.unwrap_or(0.0))
}

async fn sample(
    client: &tokio_postgres::Client,
    phase: &'static str,
    begin: Instant,
    window_s: f64,
    started: i64,
    workers: &[Worker],
) -> anyhow::Result<Sample> {
    let window = format!("interval '{window_s} seconds'");
    let completed = one(
        client,
        &format!(
            "select count(*)::float8 from zart_executions
              where finished_at > now() - {window} and status = 'completed'"
        ),
    )
    .await?;
    let pickup = client
        .query_one(
            &format!(
                "select (percentile_cont(0.5) within group (order by ms))::float8,
                        (percentile_cont(0.99) within group (order by ms))::float8
                   from (select extract(epoch from started_at - created_at) * 1000 as ms
                           from zart_executions
                          where started_at > now() - {window}) p"
            ),
            &[],
        )
        .await?;
    Ok(Sample {
        phase,
        at_s: begin.elapsed().as_secs_f64(),
        started,
        completed_per_s: completed / window_s,
        pickup_p50_ms: pickup.get(0),
        pickup_p99_ms: pickup.get(1),
        backlog: one(
            client,
            "select count(*)::float8 from zart_tasks where locked_by is null and run_at <= now()",
        )
        .await? as i64,
        most_held_by_a_worker: one(
            client,
            "select coalesce(max(n), 0)::float8 from (select count(*) n from zart_tasks
              where locked_by is not null group by locked_by) h",
        )
        .await? as i64,
        connections: one(
            client,
            "select count(*)::float8 from pg_stat_activity where datname = current_database()",
        )
        .await? as i64,
        worker_rss_mb: workers.iter().map(|w| rss_mb(w.pid)).collect(),
        zart_tables_mb: one(
            client,
            "select sum(pg_total_relation_size(c.oid))::float8 / 1048576 from pg_class c
              where c.relkind = 'r' and c.relname like 'zart\\_%'
                and c.relname not like 'zart\\_test\\_%'
                and c.relnamespace = 'public'::regnamespace",
        )
        .await?,
        executions_stored: one(client, "select count(*)::float8 from zart_executions").await?
            as i64,
    })
}

fn print_sample(s: &Sample) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "{:<9} {:>7.0} {:>9} {:>9.0} {:>9} {:>9} {:>8} {:>6} {:>6} {:>16} {:>8.1} {:>9}",
        s.phase,
        s.at_s,
        s.started,
        s.completed_per_s,
        ms(s.pickup_p50_ms),
        ms(s.pickup_p99_ms),
        s.backlog,
        s.most_held_by_a_worker,
        s.connections,
        s.worker_rss_mb
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join("/"),
        s.zart_tables_mb,
        s.executions_stored
    );
}

#[tokio::main]
async fn main() {
    zart_tests::init_tracing();
    let code = match parse_args() {
        Err(e) => {
            eprintln!("zart-soak: {e:#}");
            2
        }
        Ok(o) => match run(&o).await {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("zart-soak: error: {e:#}");
                2
            }
        },
    };
    std::process::exit(code);
}

async fn run(o: &Options) -> anyhow::Result<bool> {
    let bin = zart_tests::sibling_binary("zart-test-worker")?;
    let db = zart_tests::TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(zart_tests::tasks::SETUP_SQL)
        .await
        .context("creating the side-effect table")?;
    let mut workers = Vec::new();
    for _ in 0..o.workers {
        workers.push(spawn_worker(&bin, &db.url, o).await?);
    }
    eprintln!(
        "zart-soak: {} workers x {} slots, {} workflows/s for {} s, then {}x for {} s, then {} s \
         of recovery; samples every {} s; completed executions kept {} s",
        o.workers,
        o.concurrency,
        o.rate,
        o.steady_s,
        o.overload_factor,
        o.overload_s,
        o.recovery_s,
        o.sample_s,
        o.retention_s
    );
    println!(
        "{:<9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6} {:>16} {:>8} {:>9}",
        "phase",
        "t (s)",
        "started",
        "done/s",
        "p50 ms",
        "p99 ms",
        "backlog",
        "held",
        "conns",
        "worker RSS MB",
        "zart MB",
        "stored"
    );
    let begin = Instant::now();
    // The recovery lasts at least its time and until a sample finds no backlog; then one more
    // sample window at the steady rate ("recovered") measures the pickup of fresh work.
    let phases = [
        ("steady", o.steady_s, o.rate),
        ("overload", o.overload_s, o.rate * o.overload_factor),
        ("recovery", o.recovery_s, o.rate),
        ("recovered", o.sample_s, o.rate),
    ];
    let mut started = 0i64;
    let mut samples: Vec<Sample> = Vec::new();
    let tick = Duration::from_millis(100);
    for (phase, secs, rate) in phases {
        let phase_start = Instant::now();
        let min_end = phase_start + Duration::from_secs(secs);
        let mut next_sample = phase_start + Duration::from_secs(o.sample_s);
        let mut owed = 0.0f64;
        loop {
            let now = Instant::now();
            // Every phase ends on a sample of its own; the recovery on one without backlog.
            let sampled = samples.last().filter(|s| s.phase == phase);
            let done =
                now >= min_end && sampled.is_some_and(|s| phase != "recovery" || s.backlog == 0);
            if done || now > min_end + Duration::from_secs(600) {
                break;
            }
            let tick_start = Instant::now();
            owed += rate as f64 * tick.as_secs_f64();
            let n = owed.floor() as i64;
            if n > 0 {
                start_batch(&client, started, n).await?;
                started += n;
                owed -= n as f64;
            }
            for w in &mut workers {
                if let Some(status) = w.child.try_wait()? {
                    bail!("worker {} exited by itself: {status}", w.pid);
                }
            }
            if Instant::now() >= next_sample {
                let s = sample(&client, phase, begin, o.sample_s as f64, started, &workers).await?;
                print_sample(&s);
                samples.push(s);
                next_sample += Duration::from_secs(o.sample_s);
            }
            tokio::time::sleep(tick.saturating_sub(tick_start.elapsed())).await;
        }
    }
    // Retention keeps up: no completed execution stays long past its age.
    let overdue = one(
        &client,
        &format!(
            "select count(*)::float8 from zart_executions
              where status = 'completed' and finished_at < now() - interval '{} seconds'",
            o.retention_s + (o.retention_s / 10).max(1) + 10
        ),
    )
    .await? as i64;

    // Drain: everything started must complete.
    let drain_deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left = one(&client, "select count(*)::float8 from zart_tasks").await?;
        if left == 0.0 {
            break;
        }
        if Instant::now() > drain_deadline {
            bail!("{left} executions still unfinished 600 s after the last start");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end = sample(
        &client,
        "drained",
        begin,
        o.sample_s as f64,
        started,
        &workers,
    )
    .await?;
    print_sample(&end);
    samples.push(end.clone());
    for w in &mut workers {
        if let Some(status) = w.child.try_wait()? {
            bail!("worker {} exited by itself: {status}", w.pid);
        }
    }

    // Checks.
    let not_completed = one(
        &client,
        "select count(*)::float8 from zart_executions where status <> 'completed'",
    )
    .await? as i64;
    // Retention deletes old executions with their steps; the effects table keeps every run.
    // One pass over the effects (no index there: a lookup per execution would take hours
    // after a long run).
    let effects_missing = one(
        &client,
        "select count(*)::float8 from zart_executions e
           left join (select execution_id, count(distinct step) n
                        from zart_test_side_effects group by 1) r on r.execution_id = e.id
          where coalesce(r.n, 0) <> (e.input->>'steps')::int",
    )
    .await? as i64;
    let ran = one(
        &client,
        "select count(distinct execution_id)::float8 from zart_test_side_effects",
    )
    .await? as i64;
    let most_held = samples
        .iter()
        .map(|s| s.most_held_by_a_worker)
        .max()
        .unwrap_or(0);
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.phase == "steady").collect();
    let recovered: Vec<&Sample> = samples.iter().filter(|s| s.phase == "recovered").collect();
    let rss = |s: &Sample| s.worker_rss_mb.iter().copied().fold(0.0, f64::max);
    let steady_rss = steady.first().map_or(0.0, |s| rss(s));
    let max_rss = samples.iter().map(rss).fold(0.0, f64::max);
    let end_rss = rss(&end);
    let steady_p99 = steady
        .iter()
        .filter_map(|s| s.pickup_p99_ms)
        .fold(0.0, f64::max);
    let recovered_p99 = recovered.last().and_then(|s| s.pickup_p99_ms);
    let peak_tables = samples.iter().map(|s| s.zart_tables_mb).fold(0.0, f64::max);
    let max_conns = samples.iter().map(|s| s.connections).max().unwrap_or(0);
    // Each worker: its pool (16) and its LISTEN connection; plus this driver.
    let conn_bound = (o.workers * 17 + 2) as i64;
    let checks: Vec<(&str, String, bool)> = vec![
        (
            "every execution completed (none lost)",
            format!("{started} started, {ran} ran, {not_completed} not completed"),
            not_completed == 0 && ran == started,
        ),
        (
            "each stored execution ran each of its steps",
            format!("{effects_missing} without"),
            effects_missing == 0,
        ),
        (
            "no worker held more than its slots",
            format!("{most_held} (slots {})", o.concurrency),
            most_held <= o.concurrency as i64,
        ),
        (
            "connections stay bounded",
            format!("{max_conns} at most (bound {conn_bound})"),
            max_conns <= conn_bound,
        ),
        (
            "worker memory bounded after the burst",
            format!("first {steady_rss:.0} MB, max {max_rss:.0} MB, end {end_rss:.0} MB"),
            end_rss <= (steady_rss * 2.0).max(steady_rss + 64.0),
        ),
        (
            "pickup recovers after the burst",
            format!(
                "steady p99 {steady_p99:.1} ms, after the backlog drained p99 {}",
                recovered_p99.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"))
            ),
            recovered_p99.is_some_and(|p| p <= (steady_p99 * 3.0).max(250.0)),
        ),
        (
            "retention keeps up (completed, past age + slack)",
            format!(
                "{overdue} overdue; tables peak {peak_tables:.1} MB, end {:.1} MB",
                end.zart_tables_mb
            ),
            overdue == 0,
        ),
    ];
    println!();
    let mut ok = true;
    for (name, value, pass) in &checks {
        ok &= pass;
        println!(
            "{name:<45} {value:<55} {}",
            if *pass { "ok" } else { "FAILED" }
        );
    }
    println!(
        "{}",
        if ok {
            "all checks hold"
        } else {
            "CHECKS FAILED"
        }
    );
    if let Some(path) = &o.json {
        let json = serde_json::json!({
            "ok": ok,
            "options": {
                "steady_s": o.steady_s, "rate": o.rate, "overload_s": o.overload_s,
                "overload_factor": o.overload_factor, "recovery_s": o.recovery_s,
                "sample_s": o.sample_s, "workers": o.workers, "concurrency": o.concurrency,
                "retention_s": o.retention_s,
            },
            "started": started,
            "samples": samples,
            "checks": checks.iter().map(|(n, v, p)| serde_json::json!({"name": n, "value": v, "ok": p})).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for mut w in workers {
        let _ = w.child.start_kill();
        let _ = w.child.wait().await;
    }
    Ok(ok)
}
