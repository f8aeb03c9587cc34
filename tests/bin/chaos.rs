//! zart-chaos: fault injection against real worker processes. Starts `counted` workflows,
//! runs `zart-test-worker` processes, kills a random one with SIGKILL every few hundred
//! milliseconds (and starts a replacement) while work remains, then checks in SQL that every
//! execution completed, every step has exactly one recorded result and every step body ran,
//! with re-runs only for steps that were in flight in a killed process.
//!
//! ```text
//! cargo run --release -p zart-tests --bin zart-chaos -- --workflows 20000 --kill-every-ms 300
//! ```
//!
//! Run with `--help` for the options. Exit status: 0 when every invariant holds, 1 when one
//! does not, 2 when the run could not finish (timeout, setup error).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use tokio::io::AsyncBufReadExt;
use tokio_postgres::NoTls;

const HELP: &str = "\
zart-chaos: kill worker processes at random while workflows run, then check nothing was lost

Options:
  --workflows N        workflows to start (default 200)
  --steps N            steps per workflow (default 5)
  --workers N          worker processes running at once (default 3)
  --concurrency N      executions each worker runs at once (default 8)
  --kill-every-ms MS   mean time between kills; each gap is random in [MS/2, 3*MS/2] (default 300)
  --step-ms MS         how long each step body sleeps after its side effect (default 5)
  --min-kills N        keep the run going (more workflows, 10% of N each time the queue runs
                       low) until at least N kills happened (default: one per 40 workflows,
                       so 500 for --workflows 20000)
  --lease-ms MS        worker lease (ZART_TEST_LEASE_MS, default 1000)
  --max-recoveries N   worker WorkerConfig::max_recoveries (default 10, the library default)
  --timeout-s S        give up after S seconds (default 120 + 1 s per 50 workflows started)
  --seed N             random seed (default: from the clock; printed)
  --json PATH          also write the figures as JSON to PATH
  --database-url URL   server to use (default $DATABASE_URL); the run creates and drops its
                       own database zart_chaos_<pid> there
  --keep-db            do not drop the database at the end (for inspection)
";

#[derive(Debug, Clone)]
struct Options {
    workflows: u64,
    steps: u32,
    workers: usize,
    concurrency: usize,
    kill_every_ms: u64,
    step_ms: u64,
    min_kills: u64,
    lease_ms: u64,
    max_recoveries: u32,
    timeout_s: Option<u64>,
    seed: u64,
    json: Option<PathBuf>,
    database_url: String,
    keep_db: bool,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut workflows = 200;
    let mut steps = 5;
    let mut workers = 3;
    let mut concurrency = 8;
    let mut kill_every_ms = 300;
    let mut step_ms = 5;
    let mut min_kills = None;
    let mut lease_ms = 1000;
    let mut max_recoveries = 10;
    let mut timeout_s = None;
    let mut seed = None;
    let mut json = None;
    let mut database_url = None;
    let mut keep_db = false;
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
            "--workflows" => workflows = value(&name, next())?,
            "--steps" => steps = value(&name, next())?,
            "--workers" => workers = value(&name, next())?,
            "--concurrency" => concurrency = value(&name, next())?,
            "--kill-every-ms" => kill_every_ms = value(&name, next())?,
            "--step-ms" => step_ms = value(&name, next())?,
            "--min-kills" => min_kills = Some(value(&name, next())?),
            "--lease-ms" => lease_ms = value(&name, next())?,
            "--max-recoveries" => max_recoveries = value(&name, next())?,
            "--timeout-s" => timeout_s = Some(value(&name, next())?),
            "--seed" => seed = Some(value(&name, next())?),
            "--json" => json = Some(PathBuf::from(value::<String>(&name, next())?)),
            "--database-url" => database_url = Some(value::<String>(&name, next())?),
            "--keep-db" => keep_db = true,
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?} (see --help)"),
        }
    }
    if workflows == 0 || steps == 0 || workers == 0 || concurrency == 0 || kill_every_ms == 0 {
        bail!("--workflows, --steps, --workers, --concurrency and --kill-every-ms must be > 0");
    }
    let database_url = match database_url {
        Some(url) => url,
        None => std::env::var("DATABASE_URL").map_err(|_| {
            anyhow!(
                "set DATABASE_URL or pass --database-url (eval \"$(ci/pg-up)\" starts a server)"
            )
        })?,
    };
    let seed = seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    Ok(Options {
        workflows,
        steps,
        workers,
        concurrency,
        kill_every_ms,
        step_ms,
        min_kills: min_kills.unwrap_or(workflows.div_ceil(40)),
        lease_ms,
        max_recoveries,
        timeout_s,
        seed,
        json,
        database_url,
        keep_db,
    })
}

/// xorshift64*: enough randomness for kill timing and victims, and reproducible by seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Where `zart-test-worker` is: next to this executable. When it is missing and this run was
/// launched by `cargo run` (which builds only the selected binary), it is built with the same
/// profile first, so the documented command works on a fresh checkout.
fn worker_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the zart-chaos executable")?;
    let path = exe.with_file_name(format!("zart-test-worker{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        return Ok(path);
    }
    let profile = exe
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
        .unwrap_or("debug")
        .to_owned();
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "zart-tests", "--bin", "zart-test-worker"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        eprintln!(
            "zart-chaos: {} is missing; building it: {cmd:?}",
            path.display()
        );
        let status = cmd.status().context("running cargo build")?;
        if status.success() && path.exists() {
            return Ok(path);
        }
    }
    let release = if profile == "release" {
        " --release"
    } else {
        ""
    };
    bail!(
        "the worker binary {} does not exist: build it first with \
         `cargo build{release} -p zart-tests --bins`",
        path.display()
    )
}

/// A running `zart-test-worker` process.
struct WorkerProc {
    child: tokio::process::Child,
    pid: u32,
}

#[derive(Debug, Clone)]
struct WorkerEnv {
    bin: PathBuf,
    url: String,
    lease_ms: u64,
    concurrency: usize,
    max_recoveries: u32,
}

impl WorkerEnv {
    /// Starts a worker and waits for its `ready` line; retries a few times (a new process can
    /// fail to connect while the server is busy).
    async fn spawn(&self) -> anyhow::Result<WorkerProc> {
        let mut last = None;
        for attempt in 0..5u64 {
            match self.spawn_once().await {
                Ok(w) => return Ok(w),
                Err(e) => {
                    eprintln!("zart-chaos: starting a worker failed (attempt {attempt}): {e:#}");
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt")))
    }

    async fn spawn_once(&self) -> anyhow::Result<WorkerProc> {
        let mut child = tokio::process::Command::new(&self.bin)
            .env("DATABASE_URL", &self.url)
            .env("ZART_TEST_LEASE_MS", self.lease_ms.to_string())
            .env("ZART_TEST_CONCURRENCY", self.concurrency.to_string())
            .env("ZART_TEST_MAX_RECOVERIES", self.max_recoveries.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("worker exited at once"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| anyhow!("worker {pid} printed nothing within 30 s"))??;
        match line {
            Some(l) if l.starts_with("ready") => {}
            other => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("worker {pid} did not start: its first line was {other:?}");
            }
        }
        // Keep draining stdout (logs go there when RUST_LOG is set) so the worker never
        // blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[worker {pid}] {line}");
            }
        });
        Ok(WorkerProc { child, pid })
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(conn);
    Ok(client)
}

fn redact(url: &str) -> String {
    // postgres://user:secret@host -> postgres://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &url[s + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    Ok(client
        .query_one(sql, &[])
        .await
        .with_context(|| format!("running {sql}"))?
        .get(0))
}

/// Starts workflows `from..to` (ids `chaos-<i>`) with plain SQL `zart_start`, in batches.
async fn start_workflows(
    client: &tokio_postgres::Client,
    from: u64,
    to: u64,
    input: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        let created: i64 = client
            .query_one(
                "select count(*) filter (where public.zart_start('chaos-' || i, 'counted', $3::jsonb))
                   from generate_series($1::bigint, $2::bigint - 1) i",
                &[&(i as i64), &(end as i64), input],
            )
            .await
            .context("starting workflows with zart_start")?
            .get(0);
        if created != (end - i) as i64 {
            bail!("zart_start created {created} of {} workflows", end - i);
        }
        i = end;
    }
    Ok(())
}

/// What the run did, for the verification.
struct RunFacts {
    started: u64,
    kills: u64,
    killed_pids: HashSet<i32>,
    worker_starts: u64,
    unexpected_exits: u64,
    elapsed: Duration,
}

#[tokio::main]
async fn main() {
    zart_tests::init_tracing();
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("zart-chaos: {e:#}");
            std::process::exit(2);
        }
    };
    let code = match run(&options).await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("zart-chaos: error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// Sets up the database, runs the chaos and verifies; true when every invariant held.
async fn run(o: &Options) -> anyhow::Result<bool> {
    let bin = worker_binary()?;
    let db_name = format!("zart_chaos_{}", std::process::id());
    let admin = connect(&o.database_url).await?;
    // Two calls: CREATE DATABASE cannot share a (implicit) transaction with another statement.
    admin
        .batch_execute(&format!("drop database if exists {db_name} with (force)"))
        .await
        .with_context(|| format!("dropping a stale {db_name}"))?;
    admin
        .batch_execute(&format!("create database {db_name}"))
        .await
        .with_context(|| format!("creating database {db_name}"))?;
    let url = zart_tests::url_with_db(&o.database_url, &db_name);
    let result = async {
        let config = tokio_postgres::Config::from_str(&url).context("parsing the database url")?;
        zart_pg::migrate(&config)
            .await
            .map_err(|e| anyhow!("migrating {db_name}: {e:#}"))?;
        let client = connect(&url).await?;
        client
            .batch_execute(zart_tests::tasks::SETUP_SQL)
            .await
            .context("creating the side-effect table")?;
        let env = WorkerEnv {
            bin,
            url: url.clone(),
            lease_ms: o.lease_ms,
            concurrency: o.concurrency,
            max_recoveries: o.max_recoveries,
        };
        eprintln!(
            "zart-chaos: {} workflows x {} steps ({} ms each), {} workers x {} slots, a kill every \
             ~{} ms, at least {} kills, lease {} ms, seed {}, database {db_name}",
            o.workflows,
            o.steps,
            o.step_ms,
            o.workers,
            o.concurrency,
            o.kill_every_ms,
            o.min_kills,
            o.lease_ms,
            o.seed,
        );
        let facts = match chaos(o, &env, &client).await {
            Ok(f) => f,
            Err(e) => {
                report_stuck(&client).await;
                return Err(e);
            }
        };
        verify(o, &client, &facts).await
    }
    .await;
    if o.keep_db {
        eprintln!("zart-chaos: keeping database {db_name} ({})", redact(&url));
    } else if let Err(e) = admin
        .batch_execute(&format!("drop database if exists {db_name} with (force)"))
        .await
    {
        eprintln!("zart-chaos: could not drop {db_name}: {e}");
    }
    result
}

/// Runs the workers and kills them until every execution is finished and enough kills happened.
async fn chaos(
    o: &Options,
    env: &WorkerEnv,
    client: &tokio_postgres::Client,
) -> anyhow::Result<RunFacts> {
    let input = serde_json::json!({"steps": o.steps, "step_ms": o.step_ms});
    let mut started = o.workflows;
    start_workflows(client, 0, started, &input).await?;
    let top_up = (o.workflows / 10).max((o.workers * o.concurrency * 2) as u64);
    let low_water = (o.workers * o.concurrency * 2) as i64;

    let mut rng = Rng::new(o.seed);
    let mut workers = Vec::with_capacity(o.workers);
    let begin = Instant::now();
    for _ in 0..o.workers {
        workers.push(env.spawn().await?);
    }
    let mut worker_starts = o.workers as u64;
    let mut kills = 0u64;
    let mut killed_pids = HashSet::new();
    let mut unexpected_exits = 0u64;
    let gap = |rng: &mut Rng| {
        let lo = o.kill_every_ms / 2;
        Duration::from_millis(lo + rng.below(o.kill_every_ms + 1))
    };
    let mut next_kill = Instant::now() + gap(&mut rng);
    let mut next_progress = Instant::now() + Duration::from_secs(5);
    let timeout = |started: u64| {
        Duration::from_secs(
            o.timeout_s
                .unwrap_or(120 + started / 50 + o.min_kills * o.kill_every_ms * 3 / 2 / 1000),
        )
    };

    loop {
        // A worker that exits by itself is a failure of the run; replace it and count it.
        for w in &mut workers {
            if let Some(status) = w.child.try_wait()? {
                eprintln!("zart-chaos: worker {} exited unexpectedly: {status}", w.pid);
                unexpected_exits += 1;
                *w = env.spawn().await?;
                worker_starts += 1;
            }
        }
        let remaining = count(client, "select count(*) from zart_tasks").await?;
        if remaining == 0 && kills >= o.min_kills {
            break;
        }
        if kills < o.min_kills && remaining < low_water {
            start_workflows(client, started, started + top_up, &input).await?;
            started += top_up;
        }
        let now = Instant::now();
        if now >= begin + timeout(started) {
            for w in &mut workers {
                let _ = w.child.start_kill();
            }
            bail!(
                "timed out after {:?}: {remaining} executions not finished ({kills} kills so far)",
                timeout(started)
            );
        }
        if now >= next_progress {
            let done = count(
                client,
                "select count(*) from zart_executions where status = 'completed'",
            )
            .await?;
            eprintln!(
                "zart-chaos: [{:>6.1}s] completed {done}/{started}, {remaining} unfinished, {kills} kills",
                begin.elapsed().as_secs_f64()
            );
            next_progress = now + Duration::from_secs(5);
        }
        if now >= next_kill && remaining > 0 {
            let victim = rng.below(workers.len() as u64) as usize;
            let mut w = workers.swap_remove(victim);
            w.child.start_kill().context("SIGKILL")?;
            w.child.wait().await?;
            killed_pids.insert(w.pid as i32);
            kills += 1;
            workers.push(env.spawn().await?);
            worker_starts += 1;
            next_kill = Instant::now() + gap(&mut rng);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let elapsed = begin.elapsed();
    for mut w in workers {
        w.child.start_kill()?;
        w.child.wait().await?;
    }
    Ok(RunFacts {
        started,
        kills,
        killed_pids,
        worker_starts,
        unexpected_exits,
        elapsed,
    })
}

/// Prints what is not finished (on timeout).
async fn report_stuck(client: &tokio_postgres::Client) {
    eprintln!("zart-chaos: executions by status:");
    if let Ok(rows) = client
        .query(
            "select status, count(*) from zart_executions group by 1 order by 1",
            &[],
        )
        .await
    {
        for r in rows {
            eprintln!("  {:<10} {}", r.get::<_, String>(0), r.get::<_, i64>(1));
        }
    }
    eprintln!("zart-chaos: unfinished tasks (first 20, soonest due first):");
    if let Ok(rows) = client
        .query(
            "select to_jsonb(t) || jsonb_build_object('status', e.status, 'due_in_ms',
                    round(extract(epoch from t.run_at - now()) * 1000)) ::jsonb
               from zart_tasks t
               join zart_executions e on e.bucket = t.bucket and e.id = t.execution_id
              order by t.run_at limit 20",
            &[],
        )
        .await
    {
        for r in rows {
            eprintln!("  {}", r.get::<_, serde_json::Value>(0));
        }
    }
}

/// One line of the result table.
struct Check {
    name: &'static str,
    value: String,
    ok: Option<bool>,
}

/// Checks the invariants in SQL, prints the table (and JSON); true when all hold.
async fn verify(
    o: &Options,
    client: &tokio_postgres::Client,
    facts: &RunFacts,
) -> anyhow::Result<bool> {
    let steps = i64::from(o.steps);
    let started = facts.started as i64;
    let by_status: HashMap<String, i64> = client
        .query(
            "select status, count(*) from zart_executions group by 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let executions: i64 = by_status.values().sum();
    let completed = by_status.get("completed").copied().unwrap_or(0);
    let lost = started - completed;
    let wrong_output = count(
        client,
        &format!(
            "select count(*) from zart_executions
              where status = 'completed' and output is distinct from '{}'::jsonb",
            o.steps
        ),
    )
    .await?;
    // The key makes a second row impossible; check it anyway, and that each execution has
    // exactly `steps` completed step rows.
    let recorded_twice = count(
        client,
        "select count(*) from (select 1 from zart_steps
           group by bucket, execution_id, name having count(*) > 1) d",
    )
    .await?;
    let wrong_step_rows = count(
        client,
        &format!(
            "with s as (
               select execution_id, count(*) as n,
                      count(*) filter (where status = 'completed' and output = to_jsonb(seq * 10)) as ok
                 from zart_steps group by 1)
             select count(*) from zart_executions e left join s on s.execution_id = e.id
              where coalesce(s.n, 0) <> {steps} or coalesce(s.ok, 0) <> {steps}"
        ),
    )
    .await?;
    let step_rows = count(client, "select count(*) from zart_steps").await?;
    let never_ran = count(
        client,
        "select count(*) from zart_steps s where not exists (
           select 1 from zart_test_side_effects e
            where e.execution_id = s.execution_id and e.step = s.name)",
    )
    .await?;
    let body_runs = count(client, "select count(*) from zart_test_side_effects").await?;
    let stuck = count(client, "select count(*) from zart_tasks").await?;

    // Bodies that ran more than once: every run but the last must come from a killed process.
    let reruns = client
        .query(
            "select execution_id, step, array_agg(pid order by at, ctid)
               from zart_test_side_effects group by 1, 2 having count(*) > 1
              order by 1, 2",
            &[],
        )
        .await?;
    let mut extra_runs = 0i64;
    let mut unexplained = Vec::new();
    let mut interrupting_kills = HashSet::new();
    for r in &reruns {
        let (execution, step): (String, String) = (r.get(0), r.get(1));
        let pids: Vec<i32> = r.get(2);
        extra_runs += pids.len() as i64 - 1;
        let earlier = &pids[..pids.len() - 1];
        for pid in earlier {
            if facts.killed_pids.contains(pid) {
                interrupting_kills.insert(*pid);
            }
        }
        if earlier.iter().any(|pid| !facts.killed_pids.contains(pid)) {
            unexplained.push(format!("{execution}/{step} ran in pids {pids:?}"));
        }
    }

    let failed: Vec<String> = client
        .query(
            "select id, status, coalesce(error::text, '') from zart_executions
              where status <> 'completed' order by id limit 10",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            )
        })
        .collect();

    let secs = facts.elapsed.as_secs_f64();
    let throughput = completed as f64 / secs.max(1e-9);
    let checks = vec![
        Check {
            name: "workflows started",
            value: facts.started.to_string(),
            ok: Some(executions == started),
        },
        Check {
            name: "worker kills (SIGKILL)",
            value: facts.kills.to_string(),
            ok: Some(facts.kills >= o.min_kills),
        },
        Check {
            name: "kills that interrupted a step body",
            value: interrupting_kills.len().to_string(),
            ok: None,
        },
        Check {
            name: "worker processes started",
            value: facts.worker_starts.to_string(),
            ok: None,
        },
        Check {
            name: "workers that exited by themselves",
            value: facts.unexpected_exits.to_string(),
            ok: Some(facts.unexpected_exits == 0),
        },
        Check {
            name: "executions completed",
            value: completed.to_string(),
            ok: Some(completed == started),
        },
        Check {
            name: "executions lost (not completed)",
            value: lost.to_string(),
            ok: Some(lost == 0),
        },
        Check {
            name: "executions with a wrong output",
            value: wrong_output.to_string(),
            ok: Some(wrong_output == 0),
        },
        Check {
            name: "step results recorded",
            value: step_rows.to_string(),
            ok: Some(step_rows == started * steps),
        },
        Check {
            name: "steps recorded twice",
            value: recorded_twice.to_string(),
            ok: Some(recorded_twice == 0),
        },
        Check {
            name: "executions without exactly N good steps",
            value: wrong_step_rows.to_string(),
            ok: Some(wrong_step_rows == 0),
        },
        Check {
            name: "steps whose body never ran",
            value: never_ran.to_string(),
            ok: Some(never_ran == 0),
        },
        Check {
            name: "step body runs",
            value: body_runs.to_string(),
            ok: None,
        },
        Check {
            name: "step bodies run more than once",
            value: reruns.len().to_string(),
            ok: None,
        },
        Check {
            name: "extra body runs",
            value: extra_runs.to_string(),
            ok: None,
        },
        Check {
            name: "re-runs not explained by a kill",
            value: unexplained.len().to_string(),
            ok: Some(unexplained.is_empty()),
        },
        Check {
            name: "tasks stuck in zart_tasks",
            value: stuck.to_string(),
            ok: Some(stuck == 0),
        },
        Check {
            name: "elapsed",
            value: format!("{secs:.1} s"),
            ok: None,
        },
        Check {
            name: "throughput",
            value: format!("{throughput:.0} workflows/s"),
            ok: None,
        },
    ];
    let all_ok = checks.iter().all(|c| c.ok != Some(false));

    println!();
    println!("{:<42} {:>18}  check", "zart-chaos", "value");
    println!("{}", "-".repeat(68));
    for c in &checks {
        let mark = match c.ok {
            Some(true) => "ok",
            Some(false) => "FAILED",
            None => "",
        };
        println!("{:<42} {:>18}  {mark}", c.name, c.value);
    }
    println!("{}", "-".repeat(68));
    println!(
        "{}",
        if all_ok {
            "all invariants hold"
        } else {
            "INVARIANTS VIOLATED"
        }
    );
    for line in unexplained.iter().take(20) {
        println!("  unexplained re-run: {line}");
    }
    for line in &failed {
        println!("  not completed: {line}");
    }

    if let Some(path) = &o.json {
        let json = serde_json::json!({
            "ok": all_ok,
            "workflows": facts.started,
            "steps_per_workflow": o.steps,
            "workers": o.workers,
            "concurrency": o.concurrency,
            "kill_every_ms": o.kill_every_ms,
            "step_ms": o.step_ms,
            "lease_ms": o.lease_ms,
            "min_kills": o.min_kills,
            "seed": o.seed,
            "kills": facts.kills,
            "kills_interrupting_a_step": interrupting_kills.len(),
            "worker_starts": facts.worker_starts,
            "unexpected_worker_exits": facts.unexpected_exits,
            "executions": executions,
            "completed": completed,
            "lost": lost,
            "by_status": by_status,
            "wrong_output": wrong_output,
            "step_rows": step_rows,
            "steps_recorded_twice": recorded_twice,
            "executions_with_wrong_steps": wrong_step_rows,
            "steps_never_ran": never_ran,
            "step_body_runs": body_runs,
            "steps_rerun": reruns.len(),
            "extra_body_runs": extra_runs,
            "unexplained_reruns": unexplained.len(),
            "stuck_tasks": stuck,
            "elapsed_s": secs,
            "throughput_per_s": throughput,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(all_ok)
}
