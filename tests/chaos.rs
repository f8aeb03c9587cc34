//! Fault injection with real processes and a real PostgreSQL: worker processes killed at random
//! (the `zart-chaos` driver), the same combined with restarts, terminate storms, dropped LISTEN
//! connections, network stalls and skewed worker clocks in one run (`zart-chaos --faults`), the
//! database restarted under load, every connection of the
//! database terminated repeatedly, and a worker started while the database is down.
//!
//! The restart and outage scenarios run on a private throwaway cluster started with `ci/pg-up`
//! (never the shared server) and stopped with `ci/pg-down` when the test ends, even on failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zart::{DurableScheduler, Worker, WorkerConfig};
use zart_pg::{PgPool, PostgresScheduler};
use zart_tests::pg_up::PgUp;
use zart_tests::{column, count, init_tracing, server_url, tasks, url_with_db, wait_for, TestDb};

const STEPS: i64 = 5;

// ---------------------------------------------------------------------------------------------
// Worker processes killed at random: the zart-chaos driver on a small run.

/// The invariants every zart-chaos run must report held; returns the report's number `k`.
fn assert_chaos_held(figures: &serde_json::Value) -> impl Fn(&str) -> i64 + '_ {
    let n = move |k: &str| {
        figures[k]
            .as_i64()
            .unwrap_or_else(|| panic!("{k} in {figures}"))
    };
    assert_eq!(figures["ok"], true);
    assert_eq!(n("completed"), n("workflows"));
    assert_eq!(n("lost"), 0);
    assert_eq!(n("steps_recorded_twice"), 0);
    assert_eq!(n("executions_with_wrong_steps"), 0);
    assert_eq!(n("step_rows"), n("workflows") * STEPS);
    assert_eq!(n("steps_never_ran"), 0);
    assert_eq!(n("unexplained_reruns"), 0);
    assert_eq!(n("unexpected_worker_exits"), 0);
    assert_eq!(n("stuck_tasks"), 0);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_small() {
    init_tracing();
    let server = server_url();
    let figures = zart_tests::run_driver(
        env!("CARGO_BIN_EXE_zart-chaos"),
        &[
            "--workflows",
            "60",
            "--workers",
            "3",
            "--concurrency",
            "4",
            "--kill-every-ms",
            "300",
            "--step-ms",
            "40",
            "--min-kills",
            "5",
            "--timeout-s",
            "90",
            "--database-url",
            &server,
        ],
        &[],
        Duration::from_secs(120),
    )
    .await;
    let n = assert_chaos_held(&figures);
    assert!(n("workflows") >= 60);
    assert!(n("kills") >= 5, "{figures}");
}

// ---------------------------------------------------------------------------------------------
// Faults combined in one run: the zart-chaos driver with --faults on a small run.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_combined_small() {
    init_tracing();
    let figures = zart_tests::run_driver(
        env!("CARGO_BIN_EXE_zart-chaos"),
        &[
            "--workflows",
            "60",
            "--workers",
            "3",
            "--concurrency",
            "4",
            "--kill-every-ms",
            "600",
            "--step-ms",
            "40",
            "--min-kills",
            "3",
            "--faults",
            "--fault-every-ms",
            "900",
            "--timeout-s",
            "150",
        ],
        // The faults run on a private cluster of their own.
        &["DATABASE_URL"],
        Duration::from_secs(200),
    )
    .await;
    let n = assert_chaos_held(&figures);
    assert!(n("kills") >= 3, "{figures}");
    assert_eq!(n("restarts"), 2, "{figures}");
    assert_eq!(n("storms"), 3, "{figures}");
    assert_eq!(n("listener_drops"), 3, "{figures}");
    assert_eq!(n("stalls"), 3, "{figures}");
    assert_eq!(figures["skewed_workers"], true);
}

// ---------------------------------------------------------------------------------------------
// A private throwaway cluster (ci/pg-up), stopped and deleted (ci/pg-down) when dropped.

async fn private_pg() -> PgUp {
    tokio::task::spawn_blocking(PgUp::start).await.unwrap()
}

/// Runs a blocking cluster operation off the runtime's threads.
async fn blocking(pg: &Arc<PgUp>, f: fn(&PgUp)) {
    let pg = pg.clone();
    tokio::task::spawn_blocking(move || f(&pg)).await.unwrap();
}

/// One integer from SQL through a pool, or None while the database is unreachable.
async fn try_count(pool: &PgPool, sql: &str) -> Option<i64> {
    let client = pool.pool().get().await.ok()?;
    client.query_one(sql, &[]).await.ok().map(|r| r.get(0))
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A worker and a client over one scheduler on `url`, with side effects recorded through
/// `effects` (a database that the fault does not touch, unless it is the same one).
struct InProcess {
    durable: DurableScheduler<PostgresScheduler>,
    stop: zart::ShutdownHandle,
    handle: tokio::task::JoinHandle<Result<(), zart::Error>>,
}

fn in_process(url: &str, effects: &PgPool, config: WorkerConfig) -> InProcess {
    let scheduler = Arc::new(PostgresScheduler::new(
        PgPool::connect_lazy(url, 8).unwrap(),
    ));
    let registry = Arc::new(tasks::registry(effects.pool().clone()));
    let worker = Worker::new(
        scheduler.clone(),
        registry.clone(),
        config.with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let handle = tokio::spawn(worker.run());
    InProcess {
        durable: DurableScheduler::new(scheduler, registry),
        stop,
        handle,
    }
}

fn counted(step_ms: u64) -> serde_json::Value {
    serde_json::json!({"steps": STEPS, "step_ms": step_ms})
}

/// Starts `id`, retrying while the database cannot be reached.
async fn start_retrying(durable: &DurableScheduler<PostgresScheduler>, id: &str, step_ms: u64) {
    wait_for(
        &format!("{id} to start"),
        Duration::from_secs(60),
        || async { durable.start(id, "counted", counted(step_ms)).await.ok() },
    )
    .await;
}

/// Checks the executions named `prefix%` all completed with exactly one result per step, and
/// that every step body ran (side effects in `effects`). Returns the bodies that ran twice.
async fn assert_all_completed(
    zart_db: &PgPool,
    effects: &PgPool,
    prefix: &str,
    started: i64,
) -> i64 {
    let client = zart_db.pool().get().await.unwrap();
    let like = format!("{prefix}%");
    let n = |sql: &'static str| {
        let client = &client;
        let like = like.clone();
        async move {
            client
                .query_one(sql, &[&like])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(
        n("select count(*) from zart_executions where id like $1").await,
        started
    );
    let not_completed: Vec<String> = column(
        &client,
        "select id || ' ' || status || ' ' || coalesce(error::text, '')
           from zart_executions where id like $1 and status <> 'completed' limit 10",
        &[&like],
    )
    .await;
    assert!(not_completed.is_empty(), "lost: {not_completed:?}");
    assert_eq!(
        n("select count(*) from zart_executions where id like $1 and output = '5'::jsonb").await,
        started
    );
    assert_eq!(
        n("select count(*) from zart_steps where execution_id like $1 and status = 'completed'")
            .await,
        started * STEPS,
        "every step has exactly one recorded result"
    );
    assert_eq!(
        n("select count(*) from zart_steps where execution_id like $1").await,
        started * STEPS
    );
    assert_eq!(
        count(&client, "select count(*) from zart_tasks").await,
        0,
        "nothing stuck"
    );
    let effects = effects.pool().get().await.unwrap();
    let ran: i64 = effects
        .query_one(
            "select count(*) from (select distinct execution_id, step
               from zart_test_side_effects where execution_id like $1) d",
            &[&like],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ran, started * STEPS, "every step body ran");
    effects
        .query_one(
            "select count(*) from (select 1 from zart_test_side_effects where execution_id like $1
               group by execution_id, step having count(*) > 1) d",
            &[&like],
        )
        .await
        .unwrap()
        .get(0)
}

// ---------------------------------------------------------------------------------------------
// The database restarts in the middle of a stream of executions.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_nothing() {
    init_tracing();
    let pg = Arc::new(private_pg().await);
    let config = tokio_postgres::Config::from_str(&pg.url()).unwrap();
    zart_pg::migrate(&config).await.unwrap();
    // Side effects go to the shared server, which stays up: the restart hits Zart's database
    // only, as it would a production deployment whose steps call other systems.
    let effects_db = TestDb::empty().await;
    effects_db
        .client()
        .await
        .batch_execute(tasks::SETUP_SQL)
        .await
        .unwrap();
    let effects = PgPool::connect_lazy(&effects_db.url, 8).unwrap();
    let probe = PgPool::connect_lazy(&pg.url(), 2).unwrap();

    let app = in_process(
        &pg.url(),
        &effects,
        WorkerConfig::default()
            .with_concurrency(8)
            .with_lease_duration(Duration::from_secs(2)),
    );

    // A steady stream of starts: two every 50 ms, retried while the database is down.
    let started = Arc::new(AtomicU64::new(0));
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let durable = app.durable.clone();
        let started = started.clone();
        let producing = producing.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut i = 0u64;
            while producing.load(Ordering::SeqCst) {
                tick.tick().await;
                for _ in 0..2 {
                    start_retrying(&durable, &format!("restart-{i}"), 20).await;
                    i += 1;
                    started.store(i, Ordering::SeqCst);
                }
            }
        })
    };

    let completed_sql = "select count(*) from zart_executions where status = 'completed'";
    wait_for(
        "executions to complete before the restart",
        Duration::from_secs(30),
        || async { try_count(&probe, completed_sql).await.filter(|n| *n >= 20) },
    )
    .await;
    let unfinished_at_restart = try_count(
        &probe,
        "select count(*) from zart_executions where status <> 'completed'",
    )
    .await
    .unwrap();
    let restart_began = epoch_now();
    blocking(&pg, |pg| pg.restart("fast")).await;
    let back_up = epoch_now();
    let started_at_restart = started.load(Ordering::SeqCst);

    // Starts go on after the restart; then the stream stops.
    wait_for(
        "starts after the restart",
        Duration::from_secs(30),
        || async { (started.load(Ordering::SeqCst) >= started_at_restart + 40).then_some(()) },
    )
    .await;
    producing.store(false, Ordering::SeqCst);
    producer.await.unwrap();
    let total = started.load(Ordering::SeqCst) as i64;

    wait_for(
        "every execution to finish",
        Duration::from_secs(60),
        || async {
            try_count(
                &probe,
                "select count(*) from zart_executions where status in ('completed', 'failed', 'cancelled')",
            )
            .await
            .filter(|n| *n == total)
        },
    )
    .await;
    assert!(
        !app.handle.is_finished(),
        "the worker must ride through the restart without being restarted"
    );
    let rerun = assert_all_completed(&probe, &effects, "restart-", total).await;

    // Recovery: the first completion after the server accepted connections again.
    let first_after: f64 = probe
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "select extract(epoch from min(finished_at))::float8 from zart_executions
              where status = 'completed' and finished_at > to_timestamp($1)",
            &[&back_up],
        )
        .await
        .unwrap()
        .get(0);
    let recovery = first_after - back_up;
    eprintln!(
        "restart: {total} executions ({unfinished_at_restart} unfinished at the restart), \
         server down for {:.2} s, first completion {:.3} s after it was back up \
         ({:.3} s after the restart began), {rerun} step bodies ran twice",
        back_up - restart_began,
        recovery,
        first_after - restart_began,
    );
    assert!(unfinished_at_restart > 0, "the restart came under load");
    assert!(
        recovery < 30.0,
        "throughput did not recover within 30 s ({recovery:.1} s)"
    );

    app.stop.shutdown();
    app.handle.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Every connection of the database is terminated, again and again, under load.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_lose_nothing_and_the_listener_comes_back() {
    init_tracing();
    let db = TestDb::new().await;
    // Side effects in another database, whose connections are not terminated: a step body
    // whose own insert failed would (rightly) fail its execution, which is not the point here.
    let effects_db = TestDb::empty().await;
    effects_db
        .client()
        .await
        .batch_execute(tasks::SETUP_SQL)
        .await
        .unwrap();
    let effects = PgPool::connect_lazy(&effects_db.url, 8).unwrap();
    let probe = PgPool::connect_lazy(&db.url, 2).unwrap();
    // A long sweep, so that only a working listener wakes the idle worker within seconds.
    let app = in_process(
        &db.url,
        &effects,
        WorkerConfig::default()
            .with_concurrency(8)
            .with_lease_duration(Duration::from_secs(2))
            .with_sweep_interval(Duration::from_secs(30)),
    );
    let (admin, conn) = tokio_postgres::connect(
        &url_with_db(&server_url(), "postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);

    const LOAD: i64 = 120;
    for i in 0..LOAD {
        start_retrying(&app.durable, &format!("drop-{i}"), 10).await;
    }
    let mut dropped = 0i64;
    let mut listener_drops = 0i64;
    let mut unfinished_at_drops = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for _ in 0..8 {
        tick.tick().await;
        unfinished_at_drops.push(try_count(&probe, "select count(*) from zart_tasks").await);
        let row = admin
            .query_one(
                "select count(*) filter (where pg_terminate_backend(pid)),
                        count(*) filter (where query like 'listen zart_work%')
                   from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
                &[&db.name],
            )
            .await
            .unwrap();
        dropped += row.get::<_, i64>(0);
        listener_drops += row.get::<_, i64>(1);
    }
    wait_for(
        "every execution to finish",
        Duration::from_secs(60),
        || async {
            try_count(
                &probe,
                "select count(*) from zart_executions where status in ('completed', 'failed', 'cancelled')",
            )
            .await
            .filter(|n| *n == LOAD)
        },
    )
    .await;
    let rerun = assert_all_completed(&probe, &effects, "drop-", LOAD).await;
    assert!(
        matches!(unfinished_at_drops.first(), Some(Some(n)) if *n > 0),
        "the first drop came under load: {unfinished_at_drops:?}"
    );
    assert!(
        dropped >= 8,
        "every round terminated connections: {dropped}"
    );
    assert!(listener_drops > 0, "the listener connection was terminated");

    // The idle worker still wakes on a new start: through the listener, since the sweep is
    // 30 s away.
    let mut wake_ms = Vec::new();
    for k in 0..3 {
        let id = format!("wake-{k}");
        let t = Instant::now();
        start_retrying(&app.durable, &id, 0).await;
        let sql = format!(
            "select count(*) from zart_executions where id = '{id}' and status = 'completed'"
        );
        wait_for(
            "the idle worker to run a new start",
            Duration::from_secs(10),
            || async { try_count(&probe, &sql).await.filter(|n| *n == 1) },
        )
        .await;
        wake_ms.push(t.elapsed().as_millis());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a start after the drops took {:?}: the listener did not come back",
            t.elapsed()
        );
    }
    eprintln!(
        "dropped connections: {dropped} backends terminated in 8 rounds ({listener_drops} of them \
         the listener), {LOAD} executions completed, {rerun} step bodies ran twice, start-to-done \
         on the idle worker afterwards: {wake_ms:?} ms"
    );
    assert!(!app.handle.is_finished());
    app.stop.shutdown();
    app.handle.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The database is down when the worker starts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_while_the_database_is_down_waits_and_clients_fail_fast() {
    init_tracing();
    let pg = Arc::new(private_pg().await);
    let config = tokio_postgres::Config::from_str(&pg.url()).unwrap();
    zart_pg::migrate(&config).await.unwrap();
    {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.batch_execute(tasks::SETUP_SQL).await.unwrap();
    }
    blocking(&pg, PgUp::stop).await;

    let effects = PgPool::connect_lazy(&pg.url(), 4).unwrap();
    let mut app = in_process(
        &pg.url(),
        &effects,
        WorkerConfig::default().with_lease_duration(Duration::from_secs(2)),
    );

    // A client with a short connect timeout fails at once, with a clear error.
    let mut short = config.clone();
    short.connect_timeout(Duration::from_secs(1));
    let client = DurableScheduler::new(
        Arc::new(PostgresScheduler::new(
            PgPool::from_config(short, 2).unwrap(),
        )),
        Arc::new(tasks::registry(effects.pool().clone())),
    );
    let t = Instant::now();
    let err = client
        .start("outage-1", "counted", counted(0))
        .await
        .expect_err("a start while the database is down fails");
    let took = t.elapsed();
    let message = zart::error::error_chain(&err);
    eprintln!("outage: start failed after {took:?}: {message}");
    assert!(
        matches!(err, zart::Error::Unavailable { .. }),
        "expected Error::Unavailable, got {err:?}"
    );
    assert!(err.is_transient());
    assert!(message.starts_with("database unavailable"), "{message}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Meanwhile the worker keeps retrying: its run() does not return.
    let early = tokio::time::timeout(Duration::from_millis(1500), &mut app.handle).await;
    assert!(
        early.is_err(),
        "the worker's run() returned while the database was down: {early:?}"
    );

    blocking(&pg, PgUp::start_again).await;
    let back_up = Instant::now();
    start_retrying(&client, "outage-1", 0).await;
    let probe = PgPool::connect_lazy(&pg.url(), 2).unwrap();
    wait_for(
        "the waiting worker to run the execution",
        Duration::from_secs(30),
        || async {
            try_count(
                &probe,
                "select count(*) from zart_executions where id = 'outage-1' and status = 'completed'",
            )
            .await
            .filter(|n| *n == 1)
        },
    )
    .await;
    eprintln!(
        "outage: the worker started while the database was down completed an execution {:.2} s \
         after the database came up",
        back_up.elapsed().as_secs_f64()
    );
    assert_all_completed(&probe, &effects, "outage-", 1).await;
    assert!(!app.handle.is_finished());
    app.stop.shutdown();
    app.handle.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// A database that takes no writes.

/// Five steps of 100 ms that write nothing of their own, so only Zart's writes meet the
/// read-only database.
struct Quiet;

#[async_trait::async_trait]
impl zart::TaskHandler for Quiet {
    type Data = ();
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut zart::TaskContext<impl zart::Scheduler>,
        _: (),
    ) -> Result<u32, zart::TaskError> {
        for i in 0..5u32 {
            ctx.step(&format!("quiet-{i}"), || async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(i)
            })
            .await?;
        }
        Ok(5)
    }
}

/// Sets `default_transaction_read_only` for new sessions of the test database and ends the
/// current ones (pools reconnect), so every session from here on sees it.
async fn set_read_only(admin: &tokio_postgres::Client, db: &TestDb, on: bool) {
    admin
        .batch_execute(&format!(
            "alter database {} set default_transaction_read_only = {}",
            db.name,
            if on { "on" } else { "off" }
        ))
        .await
        .unwrap();
    // Ends the sessions that began before the change, and waits until they are gone: a
    // terminated session may still finish the commit it was in, so "from now on" starts only
    // once none of them is left.
    let ended: Vec<i32> = admin
        .query(
            "select pid, pg_terminate_backend(pid)
               from (select pid from pg_stat_activity
                      where datname = $1 and pid <> pg_backend_pid() offset 0) s",
            &[&db.name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    wait_for(
        "the terminated sessions to end",
        Duration::from_secs(20),
        || async {
            let left: i64 = admin
                .query_one(
                    "select count(*) from pg_stat_activity where pid = any($1)",
                    &[&ended],
                )
                .await
                .unwrap()
                .get(0);
            (left == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_refused_at_start_and_writes_wait_until_it_is_writable() {
    init_tracing();
    let db = TestDb::new().await;
    // The admin session lives on another database: terminating the test database's sessions
    // must not end it.
    let admin = zart_tests::connect(&url_with_db(&server_url(), "postgres")).await;
    let mut registry = zart::TaskRegistry::new();
    registry.register("quiet", Quiet).unwrap();
    let registry = Arc::new(registry);

    // Read-only from the start: a worker refuses to start, a client's start says why.
    set_read_only(&admin, &db, true).await;
    let scheduler = db.scheduler().await;
    let worker = Worker::new(
        scheduler.clone(),
        registry.clone(),
        WorkerConfig::default().with_handle_signals(false),
    );
    let err = tokio::time::timeout(Duration::from_secs(20), worker.run())
        .await
        .expect("the worker refuses at once")
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    let err = durable
        .start("ro-0", "quiet", serde_json::json!(null))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");

    // Writable: work runs. Then read-only under a running worker: its writes fail and are
    // retried (the run is abandoned to its lease, nothing half-written); writable again: every
    // execution completes with exactly its five steps.
    set_read_only(&admin, &db, false).await;
    let scheduler = db.scheduler().await;
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    let worker = Worker::new(
        scheduler.clone(),
        registry.clone(),
        WorkerConfig::default()
            .with_handle_signals(false)
            .with_lease_duration(Duration::from_secs(2)),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    for i in 0..6 {
        durable
            .start(&format!("ro-{i}"), "quiet", serde_json::json!(null))
            .await
            .unwrap();
    }
    let client = db.client().await;
    wait_for(
        "some steps to be recorded",
        Duration::from_secs(20),
        || async { (count(&client, "select count(*) from zart_steps").await >= 3).then_some(()) },
    )
    .await;
    drop(client);
    set_read_only(&admin, &db, true).await;
    let frozen_at = {
        let ro = db.client().await;
        count(&ro, "select count(*) from zart_steps").await
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ro = db.client().await;
    assert_eq!(
        count(&ro, "select count(*) from zart_steps").await,
        frozen_at,
        "nothing is written while the database is read-only"
    );
    drop(ro);
    assert!(
        !running.is_finished(),
        "the worker rides through, backing off"
    );

    set_read_only(&admin, &db, false).await;
    let ids: Vec<String> = (0..6).map(|i| format!("ro-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let done = durable
        .wait_all(&ids, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(done
        .iter()
        .all(|e| e.status == zart::ExecutionStatus::Completed));
    let client = db.client().await;
    assert_eq!(count(&client, "select count(*) from zart_steps").await, 30);
    stop.shutdown();
    running.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The database's disk fills up, then frees.

/// A small tmpfs mounted as a tablespace of the shared server; everything is undone when it is
/// dropped (tables moved back, tablespace dropped, unmounted), on failure too.
struct SmallDisk {
    dir: String,
    tablespace: String,
    url: String,
}

impl SmallDisk {
    /// Mounts `size` of tmpfs, owned by the server's OS user, and makes it tablespace `name`.
    /// Needs root (to mount) and a server on this machine (a superuser login).
    async fn mount(admin: &tokio_postgres::Client, url: &str, size: &str) -> SmallDisk {
        use std::os::unix::fs::MetadataExt;
        let pid = std::process::id();
        let dir = format!("/tmp/zart-small-disk-{pid}");
        let tablespace = format!("zart_small_{pid}");
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &dir])
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {dir} failed: the disk-full test needs root"
        );
        let disk = SmallDisk {
            dir: dir.clone(),
            tablespace: tablespace.clone(),
            url: url.to_owned(),
        };
        let data_dir: String = admin
            .query_one("select current_setting('data_directory')", &[])
            .await
            .unwrap()
            .get(0);
        let owner = std::fs::metadata(&data_dir).unwrap_or_else(|e| {
            panic!("the server's data directory {data_dir} is not on this machine: {e}")
        });
        std::os::unix::fs::chown(&dir, Some(owner.uid()), Some(owner.gid())).unwrap();
        admin
            .batch_execute(&format!("create tablespace {tablespace} location '{dir}'"))
            .await
            .unwrap();
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let (url, tablespace, dir) = (self.url.clone(), self.tablespace.clone(), self.dir.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // Only empty: the test database (dropped first) held the tables. A failed test
                // keeps its database for inspection, and then the tablespace and mount stay.
                let admin = zart_tests::connect(&url).await;
                let _ = admin
                    .batch_execute(&format!("drop tablespace if exists {tablespace}"))
                    .await;
            });
        })
        .join();
        let _ = std::process::Command::new("umount").arg(&dir).status();
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Random bytes (not compressible) as a bytea of `n` KiB, in SQL.
const RANDOM_KIB: &str =
    "select decode(string_agg(lpad(to_hex((random() * 4294967295)::bigint), 8, '0'), ''), 'hex')
                            from generate_series(1, $1::int * 256)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_and_work_resumes_once_it_frees() {
    init_tracing();
    let admin_url = url_with_db(&server_url(), "postgres");
    let admin = zart_tests::connect(&admin_url).await;
    let disk = SmallDisk::mount(&admin, &admin_url, "16M").await;
    let db = TestDb::new().await;
    let client = db.client().await;
    // Every Zart table and index of the test database onto the small disk.
    client
        .batch_execute(&format!(
            "alter table all in tablespace pg_default set tablespace {ts};
             alter index all in tablespace pg_default set tablespace {ts};",
            ts = disk.tablespace
        ))
        .await
        .unwrap();

    let mut registry = zart::TaskRegistry::new();
    registry.register("quiet", Quiet).unwrap();
    let registry = Arc::new(registry);
    let scheduler = db.scheduler().await;
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    for i in 0..8 {
        durable
            .start(&format!("full-{i}"), "quiet", serde_json::json!(null))
            .await
            .unwrap();
    }

    // Fill the disk to the last page.
    client
        .batch_execute(&format!(
            "create table filler (b bytea) tablespace {}",
            disk.tablespace
        ))
        .await
        .unwrap();
    let mut rows = 0;
    let full = loop {
        match client
            .execute(&format!("insert into filler (b) {RANDOM_KIB}"), &[&256i32])
            .await
        {
            Ok(_) => rows += 1,
            Err(e) => break e,
        }
        assert!(
            rows < 1000,
            "16 MB should be full long before 256 MB were written"
        );
    };
    assert_eq!(
        full.as_db_error().map(|e| e.code().code()),
        Some("53100"),
        "the disk filled up: {full}"
    );

    // Writes that need room fail with a clear, transient error, and store nothing.
    let big = serde_json::json!({ "blob": "x".repeat(200_000) });
    let mut filled = 0;
    let err = loop {
        // Starts may still find room in pages freed before; keep going until one does not.
        match durable
            .start(&format!("big-{filled}"), "quiet", big.clone())
            .await
        {
            Ok(_) => filled += 1,
            Err(e) => break e,
        }
        assert!(filled < 50, "the full disk took 50 starts of 200 KB");
    };
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("out of disk space"), "{err}");
    let refused = format!("big-{filled}");
    assert!(
        matches!(
            durable.status(&refused).await,
            Err(zart::Error::NotFound { .. })
        ),
        "the refused start stored nothing"
    );

    // A worker on the full disk: it rides through, backing off; nothing half-written.
    let worker = Worker::new(
        scheduler.clone(),
        registry.clone(),
        WorkerConfig::default()
            .with_handle_signals(false)
            .with_lease_duration(Duration::from_secs(2)),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !running.is_finished(),
        "the worker rides through the full disk"
    );
    let gaps = "select count(*) from (select execution_id, count(*) n, max(seq) m
                   from zart_steps group by 1) s where s.m + 1 <> s.n";
    assert_eq!(
        count(&client, gaps).await,
        0,
        "steps are recorded in order, none lost"
    );

    // Room again: everything completes by itself.
    client.batch_execute("drop table filler").await.unwrap();
    let mut ids: Vec<String> = (0..8).map(|i| format!("full-{i}")).collect();
    ids.extend((0..filled).map(|i| format!("big-{i}")));
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let done = durable
        .wait_all(&ids, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(done
        .iter()
        .all(|e| e.status == zart::ExecutionStatus::Completed));
    assert_eq!(count(&client, gaps).await, 0);
    assert_eq!(
        count(&client, "select count(*) from zart_steps").await,
        5 * ids.len() as i64
    );
    durable
        .start(&refused, "quiet", big)
        .await
        .expect("the refused start goes through once there is room");
    stop.shutdown();
    running.await.unwrap().unwrap();
    eprintln!(
        "full disk: {rows} filler rows of 256 KiB, {filled} big starts before the refusal, \
         every execution completed once the filler was dropped"
    );
    drop(client);
    drop(db);
    // Let the test database's drop finish before the tablespace goes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// No connection to be had: the server's limit reached, the pool exhausted.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_limit_and_an_exhausted_pool_give_clear_errors_and_work_goes_on() {
    init_tracing();
    let db = TestDb::new().await;
    let admin = db.client().await;
    let logins = zart_tests::logins::Logins::new(&db);
    let role = logins
        .create(&admin, "capped", &["zart_worker", "zart_client"])
        .await;
    admin
        .batch_execute(&format!("alter role {role} connection limit 3"))
        .await
        .unwrap();
    let mut registry = zart::TaskRegistry::new();
    registry.register("quiet", Quiet).unwrap();
    let registry = Arc::new(registry);

    // The role's three connections are taken: a start fails at once, transient, saying why.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(logins.client("capped").await);
    }
    let pool = PgPool::from_config(logins.config("capped"), 8).unwrap();
    let scheduler = Arc::new(PostgresScheduler::new(pool));
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    let err = durable
        .start("cap-0", "quiet", serde_json::json!(null))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .contains("no connection left for this login"),
        "{err}"
    );

    // A worker on that login rides through while none is free; work started meanwhile (by
    // another login) waits, and runs once connections come free.
    admin
        .execute(
            "select count(zart_start('cap-' || i, 'quiet', 'null'::jsonb))
               from generate_series(1, 4) i",
            &[],
        )
        .await
        .unwrap();
    let worker = Worker::new(
        scheduler.clone(),
        registry.clone(),
        WorkerConfig::default().with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!running.is_finished(), "the worker waits for a connection");
    let completed = "select count(*) from zart_executions where status = 'completed'";
    assert_eq!(count(&admin, completed).await, 0);
    drop(held);
    wait_for(
        "every execution to complete",
        Duration::from_secs(60),
        || async { (count(&admin, completed).await == 4).then_some(()) },
    )
    .await;
    stop.shutdown();
    running.await.unwrap().unwrap();

    // A pool whose every connection is held by its owner's own code: Zart's call waits the
    // pool's wait timeout, then fails saying the pool is exhausted; freed, it works again.
    let pool = PgPool::from_config(db.config(), 2)
        .unwrap()
        .with_wait_timeout(Duration::from_millis(300))
        .unwrap();
    let scheduler = Arc::new(PostgresScheduler::new(pool.clone()));
    let durable = DurableScheduler::new(scheduler, registry.clone());
    let mine = (
        pool.pool().get().await.unwrap(),
        pool.pool().get().await.unwrap(),
    );
    let err = durable
        .start("pool-0", "quiet", serde_json::json!(null))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("no pooled connection came free"),
        "{err}"
    );
    drop(mine);
    durable
        .start("pool-0", "quiet", serde_json::json!(null))
        .await
        .expect("a start once a connection is free");
}

// ---------------------------------------------------------------------------------------------
// A hot standby.

/// A standby of a private cluster (`pg_basebackup -R`, then started on a free port), stopped
/// and deleted when dropped.
struct Standby {
    dir: String,
    pg_ctl: String,
    user: String,
    url: String,
}

impl Standby {
    /// Makes and starts a streaming standby of `primary` (blocking).
    fn start(primary: &PgUp) -> Standby {
        let pg_ctl = primary.get("ZART_PG_CTL");
        let user = primary.get("ZART_PG_USER");
        let bin = std::path::Path::new(&pg_ctl).parent().unwrap().to_owned();
        let dir = format!("{}-standby", primary.get("ZART_PG_DIR"));
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let as_user = |program: &std::path::Path, args: &[&str]| {
            let mut cmd = if zart_tests::is_root() && user != "root" {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", &user, "--"]).arg(program);
                c
            } else {
                std::process::Command::new(program)
            };
            let status = cmd
                .current_dir("/")
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            if !status.success() {
                let log = args
                    .iter()
                    .position(|a| *a == "-l")
                    .and_then(|i| std::fs::read_to_string(args[i + 1]).ok())
                    .unwrap_or_default();
                panic!("{} {args:?} failed:\n{log}", program.display());
            }
        };
        std::fs::create_dir_all(&dir).unwrap();
        // A data directory must be private to the server's user.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        if zart_tests::is_root() {
            let _ = std::process::Command::new("chown")
                .args([&user, &dir])
                .status();
        }
        as_user(
            &bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port().to_string(),
                "-U",
                "postgres",
                "-D",
                &dir,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ],
        );
        let standby = Standby {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir: dir.clone(),
            pg_ctl: pg_ctl.clone(),
            user: user.clone(),
        };
        // max_connections as the primary's (ci/pg-up's): a standby may not have fewer.
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {dir} -c hot_standby=on \
             -c max_connections=300"
        );
        as_user(
            std::path::Path::new(&pg_ctl),
            &[
                "-D",
                &dir,
                "-w",
                "-t",
                "60",
                "-l",
                &format!("{dir}/server.log"),
                "-o",
                &opts,
                "start",
            ],
        );
        standby
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let mut cmd = if zart_tests::is_root() && self.user != "root" {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", &self.user, "--", &self.pg_ctl]);
            c
        } else {
            std::process::Command::new(&self.pg_ctl)
        };
        let _ = cmd
            .current_dir("/")
            .args(["-D", &self.dir, "-m", "immediate", "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_standby_is_refused_at_start_naming_the_primary() {
    init_tracing();
    let primary = Arc::new(private_pg().await);
    zart_pg::migrate(&tokio_postgres::Config::from_str(&primary.url()).unwrap())
        .await
        .unwrap();
    let p = primary.clone();
    let standby = tokio::task::spawn_blocking(move || Standby::start(&p))
        .await
        .unwrap();
    let scheduler = Arc::new(PostgresScheduler::new(
        PgPool::connect(&standby.url).await.unwrap(),
    ));
    let mut registry = zart::TaskRegistry::new();
    registry.register("quiet", Quiet).unwrap();
    let worker = Worker::new(
        scheduler,
        Arc::new(registry),
        WorkerConfig::default().with_handle_signals(false),
    );
    let err = tokio::time::timeout(Duration::from_secs(20), worker.run())
        .await
        .expect("the worker refuses at once")
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("hot standby"), "{err}");
    assert!(err.to_string().contains("primary"), "{err}");
    drop(standby);
}
