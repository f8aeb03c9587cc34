//! Races: an event sent while its workflow registers the wait (both interleavings forced, 1,000
//! times), a child ending while its parent registers the wait for its children (both
//! interleavings forced), events emitted by a trigger under concurrent, partly rolled-back inserts, and the
//! NOTIFY payloads, which carry queue names and execution ids only, never user data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};
use zart::{
    ExecutionStatus, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry, WorkerConfig,
};
use zart_tests::{column, count, init_tracing, wait_for, Harness, TestDb};

const WAIT: Option<Duration> = Some(Duration::from_secs(60));

// ---------------------------------------------------------------------------------------------
// The event race on a channel: the second wait for a name, forced at the SQL level.

/// Iterations of the forced channel race, half in each interleaving.
const CHANNEL_RACE_ITERATIONS: usize = 40;

const AWAIT_SECOND: &str = "select state, payload
                              from zart_await_event($1, $2, $3, 'event#2:go', 1, 'go', null)";

/// An event name is a channel: after a first wait took the first event, the second wait for
/// the name races the second event (both interleavings forced, as for the first wait). Either
/// way the second wait gets the second event exactly once, and the first keeps the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_while_a_later_wait_on_the_channel_registers_is_its_own() {
    init_tracing();
    let db = TestDb::new().await;
    let queue = "channel-race";
    let (locker, locker_pid) = backend(&db.url).await;
    let (waiter, waiter_pid) = backend(&db.url).await;
    let (sender, sender_pid) = backend(&db.url).await;
    let holders = [locker_pid, waiter_pid, sender_pid];
    let send = |id: String, payload: serde_json::Value| {
        let sender = sender.clone();
        tokio::spawn(async move {
            sender
                .query_one(
                    "select zart_send_event(zart_bucket($1), $1, 'go', $2)",
                    &[&id, &payload],
                )
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
        })
    };
    let mut woken_count = 0;
    for i in 0..CHANNEL_RACE_ITERATIONS {
        let id = format!("ch-{i}");
        let (first, second) = (
            serde_json::json!({"n": 1, "i": i}),
            serde_json::json!({"n": 2, "i": i}),
        );
        locker
            .query(
                "select zart_start($1, 'waiter', '{}'::jsonb, $2)",
                &[&id, &queue],
            )
            .await
            .unwrap();
        let (bucket, fence, _) = claim_one(&locker, queue, &id).await;
        send(id.clone(), first.clone()).await.unwrap();
        let row = waiter
            .query_one(AWAIT, &[&bucket, &id, &fence])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "received", "{id}: the first wait");
        assert_eq!(
            row.get::<_, Option<serde_json::Value>>(1).as_ref(),
            Some(&first)
        );

        locker.batch_execute("begin").await.unwrap();
        locker
            .execute("select zart_wait_lock($1)", &[&id])
            .await
            .unwrap();
        let waiter_first = i % 2 == 0;
        let start_wait = || {
            let (waiter, id) = (waiter.clone(), id.clone());
            tokio::spawn(async move {
                let row = waiter
                    .query_one(AWAIT_SECOND, &[&bucket, &id, &fence])
                    .await
                    .unwrap();
                (
                    row.get::<_, String>(0),
                    row.get::<_, Option<serde_json::Value>>(1),
                )
            })
        };
        let (wait_call, send_call) = queue_up(
            &locker,
            &holders,
            Racer {
                pid: waiter_pid,
                what: "the waiter",
                start: Box::new(start_wait),
            },
            Racer {
                pid: sender_pid,
                what: "the sender",
                start: Box::new(|| send(id.clone(), second.clone())),
            },
            waiter_first,
        )
        .await;
        locker.batch_execute("commit").await.unwrap();
        let (state, got) = wait_call.await.unwrap();
        let woken = send_call.await.unwrap();
        let mut fence = fence;
        if waiter_first {
            assert_eq!(state, "waiting", "{id}");
            assert_eq!(
                woken.as_deref(),
                Some(queue),
                "{id}: the sender woke the wait"
            );
            let (_, refence, steps) = claim_one(&locker, queue, &id).await;
            fence = refence;
            let wait = steps
                .as_array()
                .and_then(|steps| steps.iter().find(|s| s["name"] == "event#2:go"))
                .cloned()
                .unwrap_or_else(|| panic!("{id}: no second wait step in {steps}"));
            assert_eq!(wait["status"], "completed", "{id}: {wait}");
            assert_eq!(wait["output"]["received"], second, "{id}: handed over");
            woken_count += 1;
        } else {
            assert_eq!(state, "received", "{id}");
            assert_eq!(got.as_ref(), Some(&second), "{id}: the second event");
            assert_eq!(woken, None, "{id}");
        }
        locker
            .query(
                "select zart_complete_execution($1, $2, $3, 'completed', 'null'::jsonb, null)",
                &[&bucket, &id, &fence],
            )
            .await
            .unwrap();
    }
    assert_eq!(woken_count, CHANNEL_RACE_ITERATIONS / 2);
    // Each event consumed once, by the wait of its number.
    let client = db.client().await;
    let n = i64::try_from(CHANNEL_RACE_ITERATIONS).unwrap();
    assert_eq!(
        count(&client, "select count(*) from zart_events").await,
        2 * n
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_events
              where consumed_by = case payload->>'n' when '1' then 'event:go' else 'event#2:go' end"
        )
        .await,
        2 * n
    );
}

// ---------------------------------------------------------------------------------------------
// A child ending while its parent registers the wait for its children, forced at the SQL level.

/// Iterations of the forced child race, half in each interleaving.
const CHILD_RACE_ITERATIONS: usize = 40;

const START_CHILDREN: &str = "select state, output from zart_start_children(
    $1, $2, $3, array['k'], array[0], array[$2 || '/k'], array['echo'], array['7'::jsonb],
    'child-race', $4)";

/// The parent waits for one child with `zart_start_children` while the child's outcome is
/// being recorded. Both calls queue on the parent's wait lock, held by a third session, in the
/// order forced; either way the parent never waits for nothing: it found the child ended and
/// went on with its lease, or it registered the wait and the child's outcome woke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_ending_while_the_parent_waits_for_its_children_wakes_it_or_is_seen() {
    init_tracing();
    let db = TestDb::new().await;
    let (locker, locker_pid) = backend(&db.url).await;
    let (parent, parent_pid) = backend(&db.url).await;
    let (child, child_pid) = backend(&db.url).await;
    let holders = [locker_pid, parent_pid, child_pid];
    let claim = |task: &'static str| {
        let locker = locker.clone();
        async move {
            let row = locker
                .query_one(
                    "select bucket, execution_id, fence
                       from zart_claim_tasks('race-worker', 'child-race', array[$1], 1, 600000)",
                    &[&task],
                )
                .await
                .unwrap();
            (
                row.get::<_, i16>(0),
                row.get::<_, String>(1),
                row.get::<_, i64>(2),
            )
        }
    };
    let (mut seen, mut woken) = (0, 0);
    for i in 0..CHILD_RACE_ITERATIONS {
        let id = format!("fan-{i}");
        locker
            .query(
                "select zart_start($1, 'fan-out', '{}'::jsonb, 'child-race')",
                &[&id],
            )
            .await
            .unwrap();
        let (bucket, _, fence) = claim("fan-out").await;
        let first: String = locker
            .query_one(START_CHILDREN, &[&bucket, &id, &fence, &false])
            .await
            .unwrap()
            .get(0);
        assert_eq!(first, "waiting", "{id}: the child was just started");
        let (kid_bucket, kid_id, kid_fence) = claim("echo").await;
        assert_eq!(kid_id, format!("{id}/k"));

        locker.batch_execute("begin").await.unwrap();
        locker
            .execute("select zart_wait_lock($1)", &[&id])
            .await
            .unwrap();
        let parent_first = i % 2 == 0;
        let start_wait = || {
            let (parent, id) = (parent.clone(), id.clone());
            tokio::spawn(async move {
                let row = parent
                    .query_one(START_CHILDREN, &[&bucket, &id, &fence, &true])
                    .await
                    .unwrap();
                (
                    row.get::<_, String>(0),
                    row.get::<_, Option<serde_json::Value>>(1),
                )
            })
        };
        let start_end = || {
            let (child, kid_id) = (child.clone(), kid_id.clone());
            tokio::spawn(async move {
                child
                    .query_one(
                        "select zart_complete_execution($1, $2, $3, 'completed', '7'::jsonb, null)",
                        &[&kid_bucket, &kid_id, &kid_fence],
                    )
                    .await
                    .unwrap()
                    .get::<_, Option<String>>(0)
            })
        };
        let (wait_call, end_call) = queue_up(
            &locker,
            &holders,
            Racer {
                pid: parent_pid,
                what: "the parent",
                start: Box::new(start_wait),
            },
            Racer {
                pid: child_pid,
                what: "the child's outcome",
                start: Box::new(start_end),
            },
            parent_first,
        )
        .await;
        locker.batch_execute("commit").await.unwrap();
        let (state, output) = wait_call.await.unwrap();
        let woke = end_call.await.unwrap();

        let row = locker
            .query_one(
                "select t.locked_by is null, t.run_at <= zart_current_time(), e.status
                   from zart_tasks t join zart_execution_status e on e.id = t.execution_id
                  where t.execution_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        let (released, due, status): (bool, bool, String) = (row.get(0), row.get(1), row.get(2));
        if parent_first {
            // Registered first: the child's outcome found the wait and made the parent due.
            assert_eq!(state, "waiting", "{id}");
            assert_eq!(
                woke.as_deref(),
                Some("child-race"),
                "{id}: the outcome woke it"
            );
            assert!(released && due, "{id}: released and due at once");
            woken += 1;
            let (bucket, again, fence) = claim("fan-out").await;
            assert_eq!(again, id, "{id}: the woken parent is the one due");
            let row = locker
                .query_one(START_CHILDREN, &[&bucket, &id, &fence, &true])
                .await
                .unwrap();
            assert_eq!(
                row.get::<_, String>(0),
                "finished",
                "{id}: its run finds the child ended"
            );
            locker
                .query(
                    "select zart_complete_execution($1, $2, $3, 'completed', '1'::jsonb, null)",
                    &[&bucket, &id, &fence],
                )
                .await
                .unwrap();
        } else {
            // The outcome first: it woke nobody, and the parent saw the child ended.
            assert_eq!(state, "finished", "{id}");
            assert_eq!(output, Some(serde_json::json!(7)), "{id}");
            assert_eq!(woke, None, "{id}: nobody was waiting yet");
            assert!(!released, "{id}: the parent kept its lease");
            assert_eq!(status, "running", "{id}");
            seen += 1;
            locker
                .query(
                    "select zart_complete_execution($1, $2, $3, 'completed', '1'::jsonb, null)",
                    &[&bucket, &id, &fence],
                )
                .await
                .unwrap();
        }
    }
    eprintln!("{CHILD_RACE_ITERATIONS} forced child races: {woken} woken, {seen} seen at once");
    assert_eq!(woken + seen, CHILD_RACE_ITERATIONS);
}

// ---------------------------------------------------------------------------------------------
// The event race, forced at the SQL level.

/// Iterations of the forced race, half in each interleaving.
const RACE_ITERATIONS: usize = 1000;
/// Lanes run in parallel, each with its own three connections and queue.
const RACE_LANES: usize = 8;

/// Polls (every millisecond, for at most 10 s) until backend `pid` waits for a lock held or
/// awaited by one of `by` (the session holding the task row, or the other caller queued behind
/// it). A wait for anything else, such as another lane's relation extension lock, does not
/// count: the call has not reached the task row yet.
async fn wait_until_blocked(client: &tokio_postgres::Client, pid: i32, by: &[i32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let by = by.to_vec();
    loop {
        let blocked: bool = client
            .query_one("select pg_blocking_pids($1) && $2::int[]", &[&pid, &by])
            .await
            .unwrap()
            .get(0);
        if blocked {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} (backend {pid}) never blocked on the wait lock"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One call of a forced race: the session that makes it (its backend pid), what it is (for
/// messages), and how to start it.
struct Racer<'a, T> {
    pid: i32,
    what: &'a str,
    start: Box<dyn FnOnce() -> tokio::task::JoinHandle<T> + Send + 'a>,
}

/// Starts the two calls in the order asked (`a` first when `a_first`), each only once the one
/// before it queues behind the lock the locker holds; returns their handles as (a, b).
async fn queue_up<A, B>(
    locker: &tokio_postgres::Client,
    holders: &[i32],
    a: Racer<'_, A>,
    b: Racer<'_, B>,
    a_first: bool,
) -> (tokio::task::JoinHandle<A>, tokio::task::JoinHandle<B>) {
    if a_first {
        let ha = (a.start)();
        wait_until_blocked(locker, a.pid, holders, a.what).await;
        let hb = (b.start)();
        wait_until_blocked(locker, b.pid, holders, b.what).await;
        (ha, hb)
    } else {
        let hb = (b.start)();
        wait_until_blocked(locker, b.pid, holders, b.what).await;
        let ha = (a.start)();
        wait_until_blocked(locker, a.pid, holders, a.what).await;
        (ha, hb)
    }
}

async fn backend(url: &str) -> (Arc<tokio_postgres::Client>, i32) {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let pid: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    (Arc::new(client), pid)
}

/// Claims the one due task of `queue`; returns (bucket, fence).
async fn claim_one(
    client: &tokio_postgres::Client,
    queue: &str,
    id: &str,
) -> (i16, i64, serde_json::Value) {
    let rows = client
        .query(
            "select bucket, execution_id, fence, steps
               from zart_claim_tasks('race-worker', $1, array['waiter'], 10, 600000)",
            &[&queue],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{id}: exactly one task is due on {queue}");
    assert_eq!(rows[0].get::<_, String>(1), id);
    (rows[0].get(0), rows[0].get(2), rows[0].get(3))
}

const AWAIT: &str = "select state, payload
                       from zart_await_event($1, $2, $3, 'event:go', 0, 'go', null)";

/// What one iteration saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct LaneStats {
    /// The waiter found the event when it looked (the sender committed first).
    received_at_once: usize,
    /// The waiter registered its wait first and the sender woke it.
    woken: usize,
}

/// One lane: `iterations` executions, each with the race forced in the interleaving its
/// iteration number picks.
async fn race_lane(url: String, lane: usize, iterations: usize) -> LaneStats {
    let (locker, locker_pid) = backend(&url).await;
    let (waiter, waiter_pid) = backend(&url).await;
    let (sender, sender_pid) = backend(&url).await;
    let queue = format!("race-{lane}");
    let mut stats = LaneStats::default();
    let holders = [locker_pid, waiter_pid, sender_pid];
    for i in 0..iterations {
        let id = format!("race-{lane}-{i}");
        let payload = serde_json::json!({"lane": lane, "i": i});
        locker
            .query(
                "select zart_start($1, 'waiter', '{}'::jsonb, $2)",
                &[&id, &queue],
            )
            .await
            .unwrap();
        let (bucket, fence, _) = claim_one(&locker, &queue, &id).await;

        // A third session holds the execution's wait lock (and its task row), so both calls
        // queue up behind it in a chosen order; releasing it lets the first in line go, then
        // the second.
        locker.batch_execute("begin").await.unwrap();
        locker
            .execute("select zart_wait_lock($1)", &[&id])
            .await
            .unwrap();
        let held = locker
            .query(
                "select 1 from zart_tasks
                  where bucket = zart_bucket($1) and execution_id = $1 for no key update",
                &[&id],
            )
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        let waiter_first = i % 2 == 0;
        let start_wait = || {
            let waiter = waiter.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let row = waiter
                    .query_one(AWAIT, &[&bucket, &id, &fence])
                    .await
                    .unwrap();
                (
                    row.get::<_, String>(0),
                    row.get::<_, Option<serde_json::Value>>(1),
                )
            })
        };
        let start_send = || {
            let sender = sender.clone();
            let id = id.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                sender
                    .query_one(
                        "select zart_send_event(zart_bucket($1), $1, 'go', $2)",
                        &[&id, &payload],
                    )
                    .await
                    .unwrap()
                    .get::<_, Option<String>>(0)
            })
        };
        let (wait_call, send_call) = queue_up(
            &locker,
            &holders,
            Racer {
                pid: waiter_pid,
                what: "the waiter",
                start: Box::new(start_wait),
            },
            Racer {
                pid: sender_pid,
                what: "the sender",
                start: Box::new(start_send),
            },
            waiter_first,
        )
        .await;
        locker.batch_execute("commit").await.unwrap();
        let (state, got) = wait_call.await.unwrap();
        let woken = send_call.await.unwrap();

        // Never missed: the wait got the event, or it is registered and due again now, with
        // the event handed over into its wait step.
        let mut fence = fence;
        let mut receipts = 0;
        match state.as_str() {
            "received" => {
                assert_eq!(got.as_ref(), Some(&payload), "{id}");
                assert_eq!(woken, None, "{id}: nothing to wake, the event was found");
                receipts += 1;
                stats.received_at_once += 1;
            }
            "waiting" => {
                assert_eq!(
                    woken.as_deref(),
                    Some(queue.as_str()),
                    "{id}: the sender saw the registered wait and woke it"
                );
                let row = locker
                    .query_one(
                        "select t.locked_by is null, t.run_at <= zart_current_time(),
                                t.wait_kind, t.wait_name,
                                (select count(*) from zart_events e
                                  where e.execution_id = t.execution_id and e.consumed_at is null)
                           from zart_tasks t where t.execution_id = $1",
                        &[&id],
                    )
                    .await
                    .unwrap();
                assert!(row.get::<_, bool>(0), "{id}: released");
                assert!(row.get::<_, bool>(1), "{id}: due again at once");
                assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("event"));
                assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("go"));
                // The sender found the wait registered, so it handed the event over: consumed,
                // and the wait step completed with it; the replay needs no look-up of its own.
                assert_eq!(row.get::<_, i64>(4), 0, "{id}: the event was consumed");
                let (_, refence, steps) = claim_one(&locker, &queue, &id).await;
                fence = refence;
                let wait = steps
                    .as_array()
                    .and_then(|steps| steps.iter().find(|s| s["name"] == "event:go"))
                    .cloned()
                    .unwrap_or_else(|| panic!("{id}: no wait step in {steps}"));
                assert_eq!(wait["status"], "completed", "{id}: {wait}");
                assert_eq!(
                    wait["output"]["received"], payload,
                    "{id}: the replay finds the payload"
                );
                receipts += 1;
                stats.woken += 1;
            }
            other => panic!("{id}: unexpected state {other}"),
        }
        assert_eq!(receipts, 1, "{id}: exactly one payload");
        // And the interleaving was the one forced: a waiter that got the row first registered
        // its wait and was woken; a sender that got it first left the event for the waiter.
        assert_eq!(
            state == "waiting",
            waiter_first,
            "{id}: waiter first: {waiter_first}, state {state}"
        );
        locker
            .query(
                "select zart_complete_execution($1, $2, $3, 'completed', $4, null)",
                &[&bucket, &id, &fence, &payload],
            )
            .await
            .unwrap();
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_while_the_wait_is_registered_is_delivered_exactly_once() {
    init_tracing();
    let db = TestDb::new().await;
    let started = Instant::now();
    let per_lane = RACE_ITERATIONS / RACE_LANES;
    let lanes: Vec<_> = (0..RACE_LANES)
        .map(|lane| tokio::spawn(race_lane(db.url.clone(), lane, per_lane)))
        .collect();
    let mut total = LaneStats::default();
    for lane in lanes {
        let stats = lane.await.unwrap();
        total.received_at_once += stats.received_at_once;
        total.woken += stats.woken;
    }
    eprintln!(
        "{} forced races in {:?}: {total:?}",
        per_lane * RACE_LANES,
        started.elapsed()
    );
    let n = per_lane * RACE_LANES;
    assert_eq!(n, RACE_ITERATIONS);
    // Both interleavings ran (each iteration checked it got the one it forced).
    assert_eq!(total.received_at_once + total.woken, n);
    assert_eq!(total.woken, RACE_LANES * per_lane.div_ceil(2));

    // Every event consumed exactly once, by the wait it was meant for, and every wait got
    // exactly its own payload.
    let client = db.client().await;
    let n = i64::try_from(n).unwrap();
    assert_eq!(count(&client, "select count(*) from zart_events").await, n);
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_events
              where consumed_at is not null and consumed_by = 'event:go'"
        )
        .await,
        n
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps s
               join zart_events e on e.execution_id = s.execution_id
              where s.name = 'event:go' and s.status = 'completed'
                and s.output = jsonb_build_object('received', e.payload)
                and e.payload = jsonb_build_object(
                        'lane', split_part(s.execution_id, '-', 2)::int,
                        'i', split_part(s.execution_id, '-', 3)::int)"
        )
        .await,
        n
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where status = 'completed'"
        )
        .await,
        n
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Events from a trigger under concurrent inserts, some rolled back.

/// Waits for each event named in its input, in order; returns their payloads.
struct Collector;

#[async_trait]
impl TaskHandler for Collector {
    type Data = Vec<String>;
    type Output = Vec<serde_json::Value>;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        names: Vec<String>,
    ) -> Result<Vec<serde_json::Value>, TaskError> {
        let mut payloads = Vec::with_capacity(names.len());
        for name in &names {
            let payload = ctx
                .wait_for_event::<serde_json::Value>(name, None)
                .await?
                .received()
                .unwrap_or_default();
            payloads.push(payload);
        }
        Ok(payloads)
    }
}

const INSERTERS: usize = 4;
const TRANSACTIONS: usize = 80;
const SINKS: usize = 3;

/// How transaction `tx` of an inserter ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxEnd {
    Commit,
    Rollback,
    /// Its second row is inserted in a savepoint that is rolled back; the rest commits.
    SavepointRollback,
    /// A row addressed to an unknown execution makes the trigger fail, aborting it all.
    TriggerError,
}

fn tx_end(tx: usize) -> TxEnd {
    match tx % 8 {
        1 => TxEnd::Rollback,
        3 | 7 => TxEnd::SavepointRollback,
        5 => TxEnd::TriggerError,
        _ => TxEnd::Commit,
    }
}

/// The rows of a transaction: (row index, sink). Sinks ascend within a transaction, so
/// concurrent transactions lock the sinks' task rows in one order.
fn tx_rows(tx: usize) -> Vec<(usize, usize)> {
    let rows = match tx_end(tx) {
        TxEnd::SavepointRollback => 3,
        _ => 1 + tx % SINKS,
    };
    (0..rows).map(|j| (j, j % SINKS)).collect()
}

fn row_name(inserter: usize, tx: usize, j: usize) -> String {
    format!("row-{inserter}-{tx}-{j}")
}

/// The committed rows' event names per sink, in insertion order per inserter.
fn expected_names() -> BTreeMap<usize, Vec<String>> {
    let mut names: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for inserter in 0..INSERTERS {
        for tx in 0..TRANSACTIONS {
            for (j, sink) in tx_rows(tx) {
                let kept = match tx_end(tx) {
                    TxEnd::Commit => true,
                    TxEnd::Rollback | TxEnd::TriggerError => false,
                    TxEnd::SavepointRollback => j != 1,
                };
                if kept {
                    names
                        .entry(sink)
                        .or_default()
                        .push(row_name(inserter, tx, j));
                }
            }
        }
    }
    names
}

async fn insert_row(
    tx: &tokio_postgres::Transaction<'_>,
    inserter: usize,
    t: usize,
    j: usize,
    sink: &str,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "insert into user_orders (inserter, tx, j, sink, name) values ($1, $2, $3, $4, $5)",
        &[
            &i32::try_from(inserter).unwrap(),
            &i32::try_from(t).unwrap(),
            &i32::try_from(j).unwrap(),
            &sink,
            &row_name(inserter, t, j),
        ],
    )
    .await
}

async fn inserter(url: String, inserter: usize) {
    let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    for t in 0..TRANSACTIONS {
        let tx = client.transaction().await.unwrap();
        let end = tx_end(t);
        for (j, sink) in tx_rows(t) {
            let sink = format!("sink-{sink}");
            if end == TxEnd::SavepointRollback && j == 1 {
                tx.batch_execute("savepoint second_row").await.unwrap();
                insert_row(&tx, inserter, t, j, &sink).await.unwrap();
                tx.batch_execute("rollback to savepoint second_row")
                    .await
                    .unwrap();
            } else {
                insert_row(&tx, inserter, t, j, &sink).await.unwrap();
            }
        }
        match end {
            TxEnd::Commit | TxEnd::SavepointRollback => tx.commit().await.unwrap(),
            TxEnd::Rollback => tx.rollback().await.unwrap(),
            TxEnd::TriggerError => {
                let err = insert_row(&tx, inserter, t, 99, "nobody")
                    .await
                    .unwrap_err();
                assert_eq!(err.code().unwrap().code(), "ZA007", "{err}");
                tx.rollback().await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_under_concurrent_inserts_delivers_one_event_per_committed_row() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("collector", Collector).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default().with_concurrency(4));
    let client = h.db.client().await;
    client
        .batch_execute(
            "create table user_orders (
                 id bigserial primary key,
                 inserter int not null,
                 tx int not null,
                 j int not null,
                 sink text not null,
                 name text not null unique
             );
             create function user_orders_emit() returns trigger language plpgsql as $$
             begin
                 perform zart_emit_event(new.sink, new.name,
                     jsonb_build_object('row_id', new.id, 'inserter', new.inserter,
                                        'tx', new.tx, 'j', new.j));
                 return new;
             end $$;
             create trigger user_orders_emit after insert on user_orders
                 for each row execute function user_orders_emit();",
        )
        .await
        .unwrap();
    let expected = expected_names();
    assert_eq!(expected.len(), SINKS);
    for (sink, names) in &expected {
        h.durable
            .start(
                &format!("sink-{sink}"),
                "collector",
                serde_json::json!(names),
            )
            .await
            .unwrap();
    }
    let inserters: Vec<_> = (0..INSERTERS)
        .map(|i| tokio::spawn(inserter(h.db.url.clone(), i)))
        .collect();
    for i in inserters {
        i.await.unwrap();
    }

    let committed: i64 = expected
        .values()
        .map(|v| i64::try_from(v.len()).unwrap())
        .sum();
    assert_eq!(
        count(&client, "select count(*) from user_orders").await,
        committed
    );
    for (sink, names) in &expected {
        let id = format!("sink-{sink}");
        let done = h.durable.wait(&id, WAIT).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{id}");
        let payloads = done.output.unwrap();
        let payloads = payloads.as_array().unwrap();
        assert_eq!(payloads.len(), names.len(), "{id}");
        for (name, payload) in names.iter().zip(payloads) {
            let row = client
                .query_one(
                    "select jsonb_build_object('row_id', id, 'inserter', inserter, 'tx', tx, 'j', j)
                       from user_orders where name = $1 and sink = $2",
                    &[name, &id],
                )
                .await
                .unwrap();
            assert_eq!(&row.get::<_, serde_json::Value>(0), payload, "{name}");
        }
    }
    // Delivered events are exactly the committed rows, each consumed once by its own wait.
    assert_eq!(
        count(&client, "select count(*) from zart_events").await,
        committed
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_events e
               join user_orders o on o.sink = e.execution_id and o.name = e.name
                                 and (e.payload->>'row_id')::bigint = o.id
              where e.consumed_by = 'event:' || e.name"
        )
        .await,
        committed
    );
    let names: BTreeSet<String> = column(&client, "select name from zart_events", &[])
        .await
        .into_iter()
        .collect();
    for inserter in 0..INSERTERS {
        for t in 0..TRANSACTIONS {
            for (j, _) in tx_rows(t) {
                let name = row_name(inserter, t, j);
                let kept = match tx_end(t) {
                    TxEnd::Commit => true,
                    TxEnd::Rollback | TxEnd::TriggerError => false,
                    TxEnd::SavepointRollback => j != 1,
                };
                assert_eq!(names.contains(&name), kept, "{name}: {:?}", tx_end(t));
            }
        }
    }
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// NOTIFY payloads.

/// In every input, payload and error message of this test, never in an id or queue name.
const SECRET: &str = "S3CRET-user-data-d41d8cd9";

type Notes = Arc<Mutex<Vec<(String, String)>>>;

/// A plain session listening on Zart's channels; every notification is appended to the list.
async fn listen(url: &str) -> (tokio_postgres::Client, Notes) {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let notes: Notes = Arc::default();
    let sink = notes.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                sink.lock()
                    .unwrap()
                    .push((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    client
        .batch_execute("listen zart_work; listen zart_timer; listen zart_done")
        .await
        .unwrap();
    (client, notes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_payloads_carry_ids_and_queue_names_never_user_data() {
    init_tracing();
    let h = Harness::new().await;
    let (_listener, notes) = listen(&h.db.url).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let durable = &h.durable;

    // Inputs and payloads just under the 1 MiB limit, far over NOTIFY's 8000 bytes.
    let limit = zart::limits::DEFAULT_MAX_PAYLOAD_BYTES;
    let near_limit = |tag: &str| {
        let head = serde_json::json!({"secret": SECRET, "tag": tag, "blob": ""});
        let fill = limit - head.to_string().len() - 16;
        serde_json::json!({"secret": SECRET, "tag": tag, "blob": format!("{SECRET}{}", "x".repeat(fill - SECRET.len()))})
    };
    let big = near_limit("start");
    assert!(big.to_string().len() > limit - 100 && big.to_string().len() <= limit);
    durable.start("big", "echo", big.clone()).await.unwrap();
    // Events with big payloads, from Rust and from SQL (whose NOTIFY is sent in the
    // transaction).
    durable
        .start(
            "approve-rust",
            "approver",
            serde_json::json!({"note": SECRET}),
        )
        .await
        .unwrap();
    client
        .query(
            "select zart_start('approve-sql', 'approver', $1)",
            &[&serde_json::json!({"note": SECRET})],
        )
        .await
        .unwrap();
    // A sleep and a durable retry (zart_timer), a failure whose message is user data, an
    // execution started from SQL, and one cancelled from SQL (zart_done from the SQL path).
    durable
        .start("sleeper", "sleeper", serde_json::json!(60))
        .await
        .unwrap();
    durable
        .start(
            "flaky",
            "flaky",
            serde_json::json!({"failures": 1, "max_attempts": 3, "base_ms": 1500}),
        )
        .await
        .unwrap();
    durable
        .start(
            "panicky",
            "panicky",
            serde_json::json!(format!("{SECRET} in a panic")),
        )
        .await
        .unwrap();
    client
        .query(
            "select zart_start('sql-echo', 'echo', $1)",
            &[&serde_json::json!({"secret": SECRET})],
        )
        .await
        .unwrap();
    durable
        .start("to-cancel", "approver", serde_json::json!({"note": SECRET}))
        .await
        .unwrap();

    for id in ["approve-rust", "approve-sql", "to-cancel"] {
        wait_for(
            &format!("{id} to wait"),
            Duration::from_secs(30),
            || async {
                (durable.status(id).await.unwrap().status == ExecutionStatus::Waiting).then_some(())
            },
        )
        .await;
    }
    let event = near_limit("event");
    durable
        .send_event("approve-rust", "approval", &event)
        .await
        .unwrap();
    client
        .query(
            "select zart_emit_event('approve-sql', 'approval', $1)",
            &[&near_limit("sql-event")],
        )
        .await
        .unwrap();
    let cancelled: i32 = client
        .query_one("select zart_cancel('to-cancel')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cancelled, 1);
    wait_for("the sleeper to sleep", Duration::from_secs(30), || async {
        (durable.status("sleeper").await.unwrap().status == ExecutionStatus::Sleeping).then_some(())
    })
    .await;
    h.db.advance_clock(Duration::from_secs(61)).await;

    let finished = [
        ("big", ExecutionStatus::Completed),
        ("approve-rust", ExecutionStatus::Completed),
        ("approve-sql", ExecutionStatus::Completed),
        ("sleeper", ExecutionStatus::Completed),
        ("flaky", ExecutionStatus::Completed),
        ("panicky", ExecutionStatus::Failed),
        ("sql-echo", ExecutionStatus::Completed),
        ("to-cancel", ExecutionStatus::Cancelled),
    ];
    for (id, status) in finished {
        let done = durable.wait(id, WAIT).await.unwrap();
        assert_eq!(done.status, status, "{id}: {:?}", done.error);
    }
    assert_eq!(durable.status("big").await.unwrap().output, Some(big));
    assert_eq!(
        durable.status("approve-rust").await.unwrap().output,
        Some(event)
    );
    assert!(durable
        .status("panicky")
        .await
        .unwrap()
        .error
        .unwrap()
        .message
        .contains(SECRET));

    // Every finish was announced on zart_done, by id (payloads are JSON arrays of ids); work
    // and timers by queue name.
    let ids: BTreeSet<String> = finished.iter().map(|(id, _)| (*id).to_owned()).collect();
    let done_ids = |payload: &str| -> Vec<String> {
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("zart_done: {payload}: {e}"))
    };
    let seen = wait_for(
        "every notification to arrive",
        Duration::from_secs(30),
        || async {
            let notes = notes.lock().unwrap().clone();
            let done: BTreeSet<String> = notes
                .iter()
                .filter(|(c, _)| c == "zart_done")
                .flat_map(|(_, p)| done_ids(p))
                .collect();
            let has = |channel: &str| notes.iter().any(|(c, p)| c == channel && p == "default");
            (done == ids && has("zart_work") && has("zart_timer")).then_some(notes)
        },
    )
    .await;
    for (channel, payload) in &seen {
        assert!(
            !payload.contains(SECRET),
            "user data in a NOTIFY on {channel}: {payload:.200}"
        );
        match channel.as_str() {
            "zart_work" | "zart_timer" => assert_eq!(payload, "default", "{channel}"),
            "zart_done" => {
                // Several ids share a payload, well under NOTIFY's 8000 bytes; each id is
                // still at most 255 bytes.
                assert!(payload.len() <= 7000, "zart_done: {payload:.200}");
                let done = done_ids(payload);
                assert!(!done.is_empty(), "zart_done without ids");
                assert!(
                    done.iter().all(|id| id.len() <= 255),
                    "zart_done: {payload:.200}"
                );
                assert!(
                    done.iter().all(|id| ids.contains(id)),
                    "zart_done: {payload}"
                );
            }
            other => panic!("notification on an unexpected channel {other}"),
        }
    }
    h.stop().await;
}
