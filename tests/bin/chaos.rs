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
//! With `--faults` (or any of `--restarts`, `--storms`, `--listener-drops`, `--stalls`,
//! `--skew`) it mixes more faults into the same run, on a private throwaway cluster it starts
//! with `ci/pg-up`: database restarts (fast and immediate shutdown, alternating),
//! `pg_terminate_backend` storms on every connection of the database, the LISTEN connections
//! dropped, network stalls between one worker and the database (each worker reaches the server
//! through its own stallable proxy), and some workers with their wall clock 5 minutes ahead
//! (libfaketime). The driver's own connection reconnects through all of it. Every re-run of a
//! step body must then be explained by a fault: a kill of its process, or a restart, storm or
//! stall that began while the body's result was not yet committed.
//!
//! ```text
//! cargo run --release -p zart-tests --bin zart-chaos -- --workflows 20000 --min-kills 500 \
//!     --faults --restarts 10
//! ```
//!
//! Run with `--help` for the options. Exit status: 0 when every invariant holds, 1 when one
//! does not, 2 when the run could not finish (timeout, setup error).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use tokio::io::AsyncBufReadExt;
use tokio_postgres::NoTls;
use zart_tests::faults::StallProxy;
use zart_tests::pg_up::PgUp;

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

Combined faults (any of these runs on a private cluster from ci/pg-up, not --database-url):
  --faults             shorthand: --restarts 2 --storms 3 --listener-drops 3 --stalls 3 --skew,
                       --max-recoveries 100 (each may be given too, and wins)
  --restarts N         database restarts (pg_ctl restart, fast and immediate alternating)
  --storms N           pg_terminate_backend on every connection of the database
  --listener-drops N   pg_terminate_backend on the LISTEN connections only
  --stalls N           a worker's network path to the database stops passing bytes for 2-4
                       leases, then resumes (every worker connects through its own proxy)
  --skew               every third worker started runs with its wall clock 5 minutes ahead
                       (libfaketime; needs `faketime`)
  --fault-every-ms MS  mean time between these faults (default 1500)
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
    faults: FaultPlan,
}

/// The faults of a combined run besides kills.
#[derive(Debug, Clone, Default)]
struct FaultPlan {
    restarts: u64,
    storms: u64,
    listener_drops: u64,
    stalls: u64,
    skew: bool,
    every_ms: u64,
}

impl FaultPlan {
    /// Whether the run needs a private cluster (and the combined-fault machinery).
    fn any(&self) -> bool {
        self.restarts + self.storms + self.listener_drops + self.stalls > 0 || self.skew
    }

    /// About how long injecting every fault takes, for the run's time limit.
    fn left_ms(&self) -> u64 {
        (self.restarts + self.storms + self.listener_drops + self.stalls) * (self.every_ms + 2000)
    }
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
    let mut faults = false;
    let (mut restarts, mut storms, mut listener_drops, mut stalls) = (None, None, None, None);
    let mut skew = false;
    let mut fault_every_ms = 1500;
    let mut max_recoveries_given = false;
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
            "--max-recoveries" => {
                max_recoveries = value(&name, next())?;
                max_recoveries_given = true;
            }
            "--faults" => faults = true,
            "--restarts" => restarts = Some(value(&name, next())?),
            "--storms" => storms = Some(value(&name, next())?),
            "--listener-drops" => listener_drops = Some(value(&name, next())?),
            "--stalls" => stalls = Some(value(&name, next())?),
            "--skew" => skew = true,
            "--fault-every-ms" => fault_every_ms = value(&name, next())?,
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
    let plan = FaultPlan {
        restarts: restarts.unwrap_or(if faults { 2 } else { 0 }),
        storms: storms.unwrap_or(if faults { 3 } else { 0 }),
        listener_drops: listener_drops.unwrap_or(if faults { 3 } else { 0 }),
        stalls: stalls.unwrap_or(if faults { 3 } else { 0 }),
        skew: skew || faults,
        every_ms: fault_every_ms.max(1),
    };
    // Stalls and restarts make takeovers of live runs common: the recovery limit is for
    // poison, not for faults this run causes on purpose.
    if plan.any() && !max_recoveries_given {
        max_recoveries = 100;
    }
    if workflows == 0 || steps == 0 || workers == 0 || concurrency == 0 || kill_every_ms == 0 {
        bail!("--workflows, --steps, --workers, --concurrency and --kill-every-ms must be > 0");
    }
    let database_url = match database_url {
        Some(url) => url,
        // A combined run uses a private cluster of its own.
        None if plan.any() => String::new(),
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
        faults: plan,
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

/// A running `zart-test-worker` process.
struct WorkerProc {
    child: tokio::process::Child,
    pid: u32,
    /// The stallable path to the database it connects through, in a run with stalls.
    proxy: Option<StallProxy>,
}

#[derive(Debug, Clone)]
struct WorkerEnv {
    bin: PathBuf,
    url: String,
    lease_ms: u64,
    concurrency: usize,
    max_recoveries: u32,
    /// `host:port` of the server, when each worker gets a stallable proxy to it.
    proxy_to: Option<String>,
    /// The environment of a worker whose wall clock is skewed, when some are.
    skewed_env: Option<Vec<(String, String)>>,
    /// Whether a step body keeps trying to record its side effect while the database is away.
    patient_effects: bool,
}

impl WorkerEnv {
    /// Starts a worker and waits for its `ready` line; retries a few times (a new process can
    /// fail to connect while the server is busy or restarting). `skewed` runs it with its wall
    /// clock off, when the run has such workers.
    async fn spawn(&self, skewed: bool) -> anyhow::Result<WorkerProc> {
        let mut last = None;
        for attempt in 0..10u64 {
            match self.spawn_once(skewed).await {
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

    async fn spawn_once(&self, skewed: bool) -> anyhow::Result<WorkerProc> {
        let (url, proxy) = match &self.proxy_to {
            Some(upstream) => {
                let proxy = StallProxy::start(upstream.clone())
                    .await
                    .context("starting a proxy")?;
                (
                    self.url
                        .replacen(upstream.as_str(), &format!("127.0.0.1:{}", proxy.port()), 1),
                    Some(proxy),
                )
            }
            None => (self.url.clone(), None),
        };
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .env("DATABASE_URL", &url)
            .env("ZART_TEST_LEASE_MS", self.lease_ms.to_string())
            .env("ZART_TEST_CONCURRENCY", self.concurrency.to_string())
            .env("ZART_TEST_MAX_RECOVERIES", self.max_recoveries.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if self.patient_effects {
            command.env("ZART_TEST_EFFECT_RETRY_S", "120");
        }
        if let (true, Some(env)) = (skewed, &self.skewed_env) {
            command.envs(env.iter().map(|(k, v)| (k, v)));
        }
        let mut child = command
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
        Ok(WorkerProc { child, pid, proxy })
    }
}

/// The driver's own connection to the run's database, made again whenever it breaks (the
/// server restarts, its backend is terminated), so the driver rides through the faults it
/// causes. Statements that fail for the connection are tried again for up to two minutes;
/// an error of the statement itself fails at once.
struct Db {
    url: String,
    client: Option<tokio_postgres::Client>,
}

impl Db {
    fn new(url: &str) -> Db {
        Db {
            url: url.to_owned(),
            client: None,
        }
    }

    /// Whether an error is the connection's, not the statement's.
    fn connection_error(e: &tokio_postgres::Error) -> bool {
        match e.as_db_error() {
            None => true,
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P")
            }
        }
    }

    async fn client(&mut self) -> anyhow::Result<&tokio_postgres::Client> {
        if self
            .client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            self.client = Some(connect(&self.url).await?);
        }
        self.client.as_ref().ok_or_else(|| anyhow!("no connection"))
    }

    /// Runs `sql` with `params` and returns its rows, riding through connection failures.
    async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> anyhow::Result<Vec<tokio_postgres::Row>> {
        let give_up = Instant::now() + Duration::from_secs(120);
        loop {
            let result = match self.client().await {
                Ok(client) => client.query(sql, params).await.map_err(|e| {
                    let retry = Db::connection_error(&e);
                    (anyhow::Error::new(e), retry)
                }),
                Err(e) => Err((e, true)),
            };
            match result {
                Ok(rows) => return Ok(rows),
                Err((e, true)) if Instant::now() < give_up => {
                    self.client = None;
                    eprintln!("zart-chaos: the driver's connection failed ({e:#}); reconnecting");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err((e, _)) => return Err(e.context(format!("running {sql}"))),
            }
        }
    }

    async fn count(&mut self, sql: &str) -> anyhow::Result<i64> {
        let rows = self.query(sql, &[]).await?;
        rows.first()
            .map(|r| r.get(0))
            .ok_or_else(|| anyhow!("no row from {sql}"))
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

/// Starts workflows `from..to` (ids `chaos-<i>`) with plain SQL `zart_start`, in batches. A
/// batch cut short by a fault is sent again: `zart_start` is idempotent by id.
async fn start_workflows(
    db: &mut Db,
    from: u64,
    to: u64,
    input: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        db.query(
            "select count(*) filter (where public.zart_start('chaos-' || i, 'counted', $3::jsonb))
               from generate_series($1::bigint, $2::bigint - 1) i",
            &[&(i as i64), &(end as i64), input],
        )
        .await
        .context("starting workflows with zart_start")?;
        i = end;
    }
    let have = db
        .query(
            "select count(*) from zart_executions where id like 'chaos-%'",
            &[],
        )
        .await?
        .first()
        .map_or(0, |r| r.get::<_, i64>(0));
    if have < to as i64 {
        bail!("zart_start left {have} workflows, {to} were started");
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
    /// The faults besides kills, with when they held.
    faults: Vec<Fault>,
}

/// A fault of a combined run, besides kills: what, on which worker (`None`: all), and from when
/// to when (seconds since the epoch; the database's clock is the same machine's).
#[derive(Debug, Clone)]
struct Fault {
    kind: &'static str,
    pid: Option<i32>,
    start: f64,
    end: f64,
}

impl Fault {
    /// Whether this fault can explain a re-run whose earlier body ran in `pid` at `at`: the
    /// fault reached that process while the body's result was not yet committed.
    fn explains(&self, pid: i32, at: f64, o: &Options) -> bool {
        let reaches = match self.kind {
            "restart" | "storm" => true,
            "stall" => self.pid == Some(pid),
            _ => false,
        };
        let before = o.step_ms as f64 / 1000.0 + 2.0;
        let after = 3.0 + o.lease_ms as f64 / 1000.0;
        reaches && self.start - before <= at && at <= self.end + after
    }
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
    let bin = zart_tests::sibling_binary("zart-test-worker")?;
    // Combined faults restart the server: never the shared one. It keeps PostgreSQL's
    // durability settings: an immediate shutdown is a crash, and the throwaway default
    // (synchronous_commit off) would lose commits the workers were told had happened.
    let cluster = if o.faults.any() {
        let cluster = tokio::task::spawn_blocking(PgUp::start_durable)
            .await
            .map_err(|e| anyhow!("starting a private cluster with ci/pg-up: {e}"))?;
        Some(Arc::new(cluster))
    } else {
        None
    };
    let server_url = cluster
        .as_ref()
        .map_or_else(|| o.database_url.clone(), |c| c.url());
    let db_name = format!("zart_chaos_{}", std::process::id());
    let admin = connect(&server_url).await?;
    // Two calls: CREATE DATABASE cannot share a (implicit) transaction with another statement.
    admin
        .batch_execute(&format!("drop database if exists {db_name} with (force)"))
        .await
        .with_context(|| format!("dropping a stale {db_name}"))?;
    admin
        .batch_execute(&format!("create database {db_name}"))
        .await
        .with_context(|| format!("creating database {db_name}"))?;
    let url = zart_tests::url_with_db(&server_url, &db_name);
    let result = async {
        let config = tokio_postgres::Config::from_str(&url).context("parsing the database url")?;
        zart_pg::migrate(&config)
            .await
            .map_err(|e| anyhow!("migrating {db_name}: {e:#}"))?;
        let mut db = Db::new(&url);
        db.query(zart_tests::tasks::SETUP_SQL, &[])
            .await
            .context("creating the side-effect table")?;
        let proxy_to = (o.faults.stalls > 0)
            .then(|| {
                config
                    .get_ports()
                    .first()
                    .map(|port| format!("127.0.0.1:{port}"))
                    .ok_or_else(|| anyhow!("no port in {}", redact(&url)))
            })
            .transpose()?;
        let skewed_env = if o.faults.skew {
            Some(zart_tests::faults::faketime_env(SKEW, SKEW_SECS).map_err(|e| anyhow!(e))?)
        } else {
            None
        };
        let env = WorkerEnv {
            bin,
            url: url.clone(),
            lease_ms: o.lease_ms,
            concurrency: o.concurrency,
            max_recoveries: o.max_recoveries,
            proxy_to,
            skewed_env,
            patient_effects: o.faults.any(),
        };
        eprintln!(
            "zart-chaos: {} workflows x {} steps ({} ms each), {} workers x {} slots, a kill every \
             ~{} ms, at least {} kills, lease {} ms, seed {}, database {db_name}{}",
            o.workflows,
            o.steps,
            o.step_ms,
            o.workers,
            o.concurrency,
            o.kill_every_ms,
            o.min_kills,
            o.lease_ms,
            o.seed,
            if o.faults.any() {
                format!(
                    " on a private cluster; {} restarts, {} storms, {} listener drops, {} stalls, \
                     skewed workers: {}, a fault every ~{} ms",
                    o.faults.restarts,
                    o.faults.storms,
                    o.faults.listener_drops,
                    o.faults.stalls,
                    o.faults.skew,
                    o.faults.every_ms
                )
            } else {
                String::new()
            }
        );
        let facts = match chaos(o, &env, &mut db, cluster.as_ref(), &db_name).await {
            Ok(f) => f,
            Err(e) => {
                if let Ok(client) = connect(&url).await {
                    report_stuck(&client).await;
                }
                return Err(e);
            }
        };
        let client = connect(&url).await?;
        verify(o, &client, &facts).await
    }
    .await;
    if cluster.is_some() {
        // The private cluster goes with its data when `cluster` drops.
    } else if o.keep_db {
        eprintln!("zart-chaos: keeping database {db_name} ({})", redact(&url));
    } else if let Err(e) = admin
        .batch_execute(&format!("drop database if exists {db_name} with (force)"))
        .await
    {
        eprintln!("zart-chaos: could not drop {db_name}: {e}");
    }
    result
}

/// How far ahead a skewed worker's wall clock runs.
const SKEW: &str = "+5m";
const SKEW_SECS: i64 = 300;

/// The faults of a combined run still to inject, and the stalls in progress.
struct FaultState {
    restarts: u64,
    storms: u64,
    listener_drops: u64,
    stalls: u64,
    /// Stalled workers: pid, when to resume, index in `done`.
    stalled: Vec<(u32, Instant, usize)>,
    done: Vec<Fault>,
}

impl FaultState {
    fn left(&self) -> u64 {
        self.restarts + self.storms + self.listener_drops + self.stalls
    }

    /// Ends the stall of `pid` (resumed, or its worker killed) now.
    fn end_stall(&mut self, pid: u32) {
        let now = epoch_now();
        self.stalled.retain(|(p, _, i)| {
            if *p == pid {
                self.done[*i].end = now;
                false
            } else {
                true
            }
        });
    }
}

/// Injects one fault drawn from those left (not a kill).
async fn inject(
    o: &Options,
    rng: &mut Rng,
    state: &mut FaultState,
    workers: &[WorkerProc],
    db: &mut Db,
    cluster: Option<&Arc<PgUp>>,
    db_name: &str,
) -> anyhow::Result<()> {
    let mut kinds = Vec::new();
    for (kind, left) in [
        ("restart", state.restarts),
        ("storm", state.storms),
        ("listener drop", state.listener_drops),
        ("stall", state.stalls),
    ] {
        if left > 0 {
            kinds.push(kind);
        }
    }
    let Some(&kind) = kinds.get(rng.below(kinds.len() as u64) as usize) else {
        return Ok(());
    };
    let start = epoch_now();
    match kind {
        "restart" => {
            let cluster = cluster.ok_or_else(|| anyhow!("a restart needs the private cluster"))?;
            let mode = if state.restarts.is_multiple_of(2) {
                "fast"
            } else {
                "immediate"
            };
            state.restarts -= 1;
            let pg = Arc::clone(cluster);
            tokio::task::spawn_blocking(move || pg.restart(mode))
                .await
                .map_err(|e| anyhow!("pg_ctl restart -m {mode} failed: {e}"))?;
            eprintln!(
                "zart-chaos: restarted the database ({mode} shutdown) in {:.2} s",
                epoch_now() - start
            );
        }
        "storm" | "listener drop" => {
            let only_listeners = kind == "listener drop";
            if only_listeners {
                state.listener_drops -= 1;
            } else {
                state.storms -= 1;
            }
            let terminated = db
                .query(
                    "select count(*) filter (where pg_terminate_backend(pid))
                       from pg_stat_activity
                      where datname = $1 and pid <> pg_backend_pid()
                        and (not $2 or query ilike '%listen%')",
                    &[&db_name, &only_listeners],
                )
                .await?
                .first()
                .map_or(0, |r| r.get::<_, i64>(0));
            eprintln!("zart-chaos: {kind}: terminated {terminated} connections");
        }
        _ => {
            state.stalls -= 1;
            let Some(w) = workers.get(rng.below(workers.len() as u64) as usize) else {
                return Ok(());
            };
            let Some(proxy) = &w.proxy else {
                bail!("a stall needs the worker proxies");
            };
            proxy.stall(true);
            let span = o.lease_ms * (2 + rng.below(3));
            state.stalled.push((
                w.pid,
                Instant::now() + Duration::from_millis(span),
                state.done.len(),
            ));
            state.done.push(Fault {
                kind: "stall",
                pid: Some(w.pid as i32),
                start,
                end: f64::INFINITY,
            });
            eprintln!(
                "zart-chaos: stalled worker {}'s network for {span} ms",
                w.pid
            );
            return Ok(());
        }
    }
    state.done.push(Fault {
        kind: if kind == "restart" {
            "restart"
        } else if kind == "storm" {
            "storm"
        } else {
            "listener drop"
        },
        pid: None,
        start,
        end: epoch_now(),
    });
    Ok(())
}

/// Runs the workers and kills them (and injects the other faults) until every execution is
/// finished and every fault asked for happened.
async fn chaos(
    o: &Options,
    env: &WorkerEnv,
    db: &mut Db,
    cluster: Option<&Arc<PgUp>>,
    db_name: &str,
) -> anyhow::Result<RunFacts> {
    let input = serde_json::json!({"steps": o.steps, "step_ms": o.step_ms});
    let mut started = o.workflows;
    start_workflows(db, 0, started, &input).await?;
    let top_up = (o.workflows / 10).max((o.workers * o.concurrency * 2) as u64);
    let low_water = (o.workers * o.concurrency * 2) as i64;

    let mut rng = Rng::new(o.seed);
    let mut workers = Vec::with_capacity(o.workers);
    let begin = Instant::now();
    let mut worker_starts = 0u64;
    // Every third worker started runs with a skewed clock, when asked.
    let skewed = |starts: u64| o.faults.skew && starts % 3 == 2;
    for _ in 0..o.workers {
        workers.push(env.spawn(skewed(worker_starts)).await?);
        worker_starts += 1;
    }
    let mut kills = 0u64;
    let mut killed_pids = HashSet::new();
    let mut unexpected_exits = 0u64;
    let mut faults = FaultState {
        restarts: o.faults.restarts,
        storms: o.faults.storms,
        listener_drops: o.faults.listener_drops,
        stalls: o.faults.stalls,
        stalled: Vec::new(),
        done: Vec::new(),
    };
    let gap = |rng: &mut Rng, every: u64| {
        let lo = every / 2;
        Duration::from_millis(lo + rng.below(every + 1))
    };
    let mut next_kill = Instant::now() + gap(&mut rng, o.kill_every_ms);
    let mut next_fault = Instant::now() + gap(&mut rng, o.faults.every_ms);
    let mut next_progress = Instant::now() + Duration::from_secs(5);
    let timeout = |started: u64| {
        Duration::from_secs(o.timeout_s.unwrap_or(
            120 + started / 50
                + o.min_kills * o.kill_every_ms * 3 / 2 / 1000
                + o.faults.left_ms() / 1000,
        ))
    };

    loop {
        // A worker that exits by itself is a failure of the run; replace it and count it.
        for w in &mut workers {
            if let Some(status) = w.child.try_wait()? {
                eprintln!("zart-chaos: worker {} exited unexpectedly: {status}", w.pid);
                unexpected_exits += 1;
                faults.end_stall(w.pid);
                *w = env.spawn(skewed(worker_starts)).await?;
                worker_starts += 1;
            }
        }
        // Stalls that have run their time.
        let now = Instant::now();
        for (pid, until, _) in faults.stalled.clone() {
            if until <= now {
                if let Some(proxy) = workers
                    .iter()
                    .find(|w| w.pid == pid)
                    .and_then(|w| w.proxy.as_ref())
                {
                    proxy.stall(false);
                }
                faults.end_stall(pid);
            }
        }
        let remaining = db.count("select count(*) from zart_tasks").await?;
        let more_to_do = kills < o.min_kills || faults.left() > 0 || !faults.stalled.is_empty();
        if remaining == 0 && !more_to_do {
            break;
        }
        if more_to_do && remaining < low_water {
            start_workflows(db, started, started + top_up, &input).await?;
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
            let done = db
                .count("select count(*) from zart_executions where status = 'completed'")
                .await?;
            eprintln!(
                "zart-chaos: [{:>6.1}s] completed {done}/{started}, {remaining} unfinished, {kills} kills, {} faults",
                begin.elapsed().as_secs_f64(),
                faults.done.len()
            );
            next_progress = now + Duration::from_secs(5);
        }
        if now >= next_fault && faults.left() > 0 {
            inject(o, &mut rng, &mut faults, &workers, db, cluster, db_name).await?;
            next_fault = Instant::now() + gap(&mut rng, o.faults.every_ms);
        }
        if now >= next_kill && remaining > 0 {
            let victim = rng.below(workers.len() as u64) as usize;
            let mut w = workers.swap_remove(victim);
            w.child.start_kill().context("SIGKILL")?;
            w.child.wait().await?;
            zart_tests::faults::remove_faketime_leftovers(w.pid);
            faults.end_stall(w.pid);
            killed_pids.insert(w.pid as i32);
            kills += 1;
            workers.push(env.spawn(skewed(worker_starts)).await?);
            worker_starts += 1;
            next_kill = Instant::now() + gap(&mut rng, o.kill_every_ms);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let elapsed = begin.elapsed();
    for mut w in workers {
        w.child.start_kill()?;
        w.child.wait().await?;
        zart_tests::faults::remove_faketime_leftovers(w.pid);
    }
    Ok(RunFacts {
        started,
        kills,
        killed_pids,
        worker_starts,
        unexpected_exits,
        elapsed,
        faults: faults.done,
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

    // Bodies that ran more than once: every run but one (the run whose result was recorded)
    // must be explained by a fault: a kill of its process, or a restart, storm or stall that
    // reached it while its result was not yet committed. (Which run was recorded is not
    // stored; a stalled worker's run may even land after the run that took it over.)
    let reruns = client
        .query(
            "select execution_id, step, array_agg(pid order by at, ctid),
                    array_agg(extract(epoch from at)::float8 order by at, ctid)
               from zart_test_side_effects group by 1, 2 having count(*) > 1
              order by 1, 2",
            &[],
        )
        .await?;
    let mut extra_runs = 0i64;
    let mut unexplained = Vec::new();
    let mut interrupting_kills = HashSet::new();
    let mut explained_by: std::collections::BTreeMap<&'static str, i64> = Default::default();
    for r in &reruns {
        let (execution, step): (String, String) = (r.get(0), r.get(1));
        let pids: Vec<i32> = r.get(2);
        let times: Vec<f64> = r.get(3);
        extra_runs += pids.len() as i64 - 1;
        let mut not_explained = 0;
        let mut by = Vec::new();
        for (pid, at) in pids.iter().zip(&times) {
            if facts.killed_pids.contains(pid) {
                by.push(("kill", Some(*pid)));
            } else if let Some(f) = facts.faults.iter().find(|f| f.explains(*pid, *at, o)) {
                by.push((f.kind, None));
            } else {
                not_explained += 1;
            }
        }
        // One run may be the recorded one; the others need their fault.
        let needed = pids.len() - 1;
        for (kind, pid) in by.into_iter().take(needed) {
            *explained_by.entry(kind).or_default() += 1;
            if let Some(pid) = pid {
                interrupting_kills.insert(pid);
            }
        }
        if not_explained > 1 {
            unexplained.push(format!(
                "{execution}/{step} ran in pids {pids:?} at {times:?}"
            ));
        }
    }
    let fault_counts = |kind: &str| facts.faults.iter().filter(|f| f.kind == kind).count();

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
            name: "database restarts",
            value: fault_counts("restart").to_string(),
            ok: Some(fault_counts("restart") as u64 == o.faults.restarts),
        },
        Check {
            name: "terminate storms",
            value: fault_counts("storm").to_string(),
            ok: Some(fault_counts("storm") as u64 == o.faults.storms),
        },
        Check {
            name: "LISTEN connections dropped",
            value: fault_counts("listener drop").to_string(),
            ok: Some(fault_counts("listener drop") as u64 == o.faults.listener_drops),
        },
        Check {
            name: "network stalls",
            value: fault_counts("stall").to_string(),
            ok: Some(fault_counts("stall") as u64 == o.faults.stalls),
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
            name: "extra runs explained (by fault)",
            value: format!("{explained_by:?}"),
            ok: None,
        },
        Check {
            name: "re-runs not explained by a fault",
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
    println!("{:<42} {:>24}  check", "zart-chaos", "value");
    println!("{}", "-".repeat(74));
    for c in &checks {
        let mark = match c.ok {
            Some(true) => "ok",
            Some(false) => "FAILED",
            None => "",
        };
        println!("{:<42} {:>24}  {mark}", c.name, c.value);
    }
    println!("{}", "-".repeat(74));
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
            "extra_runs_explained_by": explained_by,
            "restarts": fault_counts("restart"),
            "storms": fault_counts("storm"),
            "listener_drops": fault_counts("listener drop"),
            "stalls": fault_counts("stall"),
            "skewed_workers": o.faults.skew,
            "stuck_tasks": stuck,
            "elapsed_s": secs,
            "throughput_per_s": throughput,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(all_ok)
}
