//! Claims on a mixed queue: a worker reads only the task names it has registered (one index
//! range per name, V3), takes them in turn up to its limit, and its idle look-ahead
//! (`zart_next_run_at`) ignores other names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use zart_tests::{column, init_tracing, wait_for, TestDb};

/// Starts `n` executions of `task` on the default queue in one statement, due now.
async fn fill(client: &tokio_postgres::Client, task: &str, n: i32) {
    client
        .execute(
            "select public.zart_start_execution(public.zart_bucket(id), id, $1, '{}'::jsonb,
                                                'default', null, null)
               from (select $1 || '-' || g as id from generate_series(1, $2) g) ids",
            &[&task, &n],
        )
        .await
        .unwrap();
}

/// Rows of `zart_tasks` read so far by sequential and index scans, as the cumulative
/// statistics say (read on a fresh session, so it sees whatever other sessions flushed).
async fn rows_read(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "select seq_tup_read + coalesce(idx_tup_fetch, 0) from pg_stat_user_tables
              where relname = 'zart_tasks'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_never_reads_the_due_rows_of_task_names_it_did_not_register() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    // 5,000 due executions of a name this worker does not run, all due before its own one.
    fill(&client, "other", 5_000).await;
    fill(&client, "mine", 1).await;
    client.batch_execute("vacuum analyze").await.unwrap();
    // Let the fill's own statistics land first (a backend flushes them up to a second late).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let before = rows_read(&db).await;
    let claimed = client
        .query(
            "select execution_id from public.zart_claim_tasks('w', 'default', array['mine'], 10, 30000)",
            &[],
        )
        .await
        .unwrap();
    client
        .batch_execute("select pg_stat_force_next_flush()")
        .await
        .unwrap();
    let read = wait_for(
        "the claim's statistics",
        Duration::from_secs(10),
        || async {
            let now = rows_read(&db).await;
            (now > before).then_some(now - before)
        },
    )
    .await;

    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].get::<_, String>(0), "mine-1");
    // With the V1 index (queue, run_at) this claim read all 5,001 rows (a sequential scan,
    // as the planner saw the index walk would be as long).
    assert!(
        read < 50,
        "the claim read {read} rows of zart_tasks to find one due execution"
    );
}

/// Rows of `zart_tasks` and `zart_steps` the current transaction of `client` has read (by
/// sequential scans, and fetched through indexes).
async fn rows_read_in_transaction(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client
        .query_one(
            "select coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0))
                                 filter (where relname = 'zart_tasks'), 0)::int8,
                    coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0))
                                 filter (where relname = 'zart_steps'), 0)::int8
               from pg_stat_xact_user_tables",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_only_the_rows_it_takes_whatever_its_kept_plan_was_made_on() {
    init_tracing();
    let db = TestDb::new().await;
    let other = db.client().await;
    // Statistics that invite the wrong plans: a large backlog of due tasks (a plan made
    // without the call's limit would read them all through a bitmap and sort them), and no
    // steps at all (a plan would scan every step row for the sleeps it ends).
    fill(&other, "t", 5_000).await;
    other.batch_execute("vacuum analyze").await.unwrap();
    // The claiming session makes its plan now, and keeps it (zart_claim_tasks plans once per
    // session, without the call's values).
    let claimer = db.client().await;
    let claim =
        "select execution_id from public.zart_claim_tasks('w', 'default', array['t'], 10, 30000)";
    claimer.batch_execute("begin").await.unwrap();
    assert_eq!(claimer.query(claim, &[]).await.unwrap().len(), 10);
    claimer.batch_execute("rollback").await.unwrap();
    // Then a history of steps arrives, with no ANALYZE after it.
    other
        .execute(
            "insert into public.zart_steps
                 (bucket, execution_id, name, seq, status, output, attempts, created_at, updated_at)
             select public.zart_bucket('old-' || g), 'old-' || g, 'nap', 0, 'completed', 'null',
                    1, now(), now()
               from generate_series(1, 5000) g",
            &[],
        )
        .await
        .unwrap();

    claimer.batch_execute("begin").await.unwrap();
    let claimed = claimer.query(claim, &[]).await.unwrap();
    let (tasks, steps) = rows_read_in_transaction(&claimer).await;
    claimer.batch_execute("rollback").await.unwrap();
    assert_eq!(claimed.len(), 10);
    // The due rows are read in index order and only as far as the limit, and no step row is
    // read for claims that end no sleep.
    assert!(
        tasks < 100,
        "the claim read {tasks} task rows to take 10 of 5,000"
    );
    assert!(
        steps < 100,
        "the claim read {steps} step rows, none of them its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_fills_its_limit_from_every_registered_name_and_leaves_the_rest_unlocked() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    fill(&client, "a", 10).await;
    fill(&client, "b", 10).await;
    fill(&client, "c", 10).await;

    let names: Vec<String> = column(
        &client,
        "select task_name from public.zart_claim_tasks('w', 'default', array['a', 'b'], 15, 30000)",
        &[],
    )
    .await;
    let of = |n: &str| names.iter().filter(|x| *x == n).count();
    assert_eq!(
        names.len(),
        15,
        "the limit is filled across names: {names:?}"
    );
    // Whichever name went first gave all 10 of its due rows, the other the remaining 5.
    let mut split = [of("a"), of("b")];
    split.sort_unstable();
    assert_eq!(split, [5, 10], "{names:?}");
    assert_eq!(of("c"), 0, "an unregistered name is never claimed");

    let leased: i64 = client
        .query_one(
            "select count(*) from zart_tasks where locked_by is not null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leased, 15, "nothing beyond the limit is leased");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_look_ahead_ignores_other_task_names() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    fill(&client, "other", 3).await;
    let next: Option<i64> = client
        .query_one(
            "select public.zart_next_run_at('default', array['mine'])",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, None, "nothing of 'mine' is queued");
    let next: Option<i64> = client
        .query_one(
            "select public.zart_next_run_at('default', array['mine', 'other'])",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, Some(0), "'other' is due now");
}

/// The fence of a claim from SQL: (execution id, fence).
async fn claim_fence(client: &tokio_postgres::Client) -> (String, i64) {
    let row = client
        .query_one(
            "select execution_id, fence from public.zart_claim_tasks('w', 'default', array['mine'], 1, 30000)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_lost_before_it_was_durable_does_not_hand_its_fence_to_the_next_claim() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    fill(&client, "mine", 1).await;

    // A claim commits without waiting for its WAL flush, so a database crash can lose it
    // after its worker started running. Losing it is what a rollback does to the table.
    // (The session asks for durable commits, whatever the test cluster's default is; on its
    // own, since a rollback would undo a SET sent in the same batch as the BEGIN.)
    client
        .batch_execute("set synchronous_commit = on")
        .await
        .unwrap();
    let synchronous_commit = || async {
        client
            .query_one("show synchronous_commit", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
    };
    client.batch_execute("begin").await.unwrap();
    let (id, lost) = claim_fence(&client).await;
    // Only the claim's own transaction skips the flush wait.
    assert_eq!(synchronous_commit().await, "off");
    client.batch_execute("rollback").await.unwrap();
    assert_eq!(
        synchronous_commit().await,
        "on",
        "the setting leaked out of the claim's transaction"
    );

    // The next claim starts from the same durable row: with `fence + 1` it would get the lost
    // claim's fence back, and the run that still holds it could write under the new lease.
    let (again, fence) = claim_fence(&client).await;
    assert_eq!(again, id);
    assert_ne!(fence, lost, "the next claim reused the lost claim's fence");
    let commit = |fence: i64| {
        let (client, id) = (&client, &id);
        async move {
            client
                .query_one(
                    "select public.zart_try_commit_step(public.zart_bucket($1), $1, $2, 'step', 1,
                                                        'completed', '1'::jsonb, null, 1)",
                    &[id, &fence],
                )
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
        }
    };
    assert_eq!(commit(lost).await.as_deref(), Some("ZA002"));
    let current = commit(fence).await;
    assert_eq!(current, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fences_are_drawn_at_random_and_do_not_repeat() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    fill(&client, "mine", 1).await;
    // 200 claims of the same row, each in a transaction that is rolled back, so every one
    // starts from the same stored fence.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        client.batch_execute("begin").await.unwrap();
        let (_, fence) = claim_fence(&client).await;
        client.batch_execute("rollback").await.unwrap();
        assert!(fence > 0, "fence {fence} is not positive");
        assert!(seen.insert(fence), "fence {fence} came twice");
    }
}

/// The steps a claim of `task` returned for `id`, as (name, status) in order, and the fence.
async fn claim_steps(
    client: &tokio_postgres::Client,
    task: &str,
    id: &str,
) -> Option<(i64, Vec<(String, String)>)> {
    let rows = client
        .query(
            "select fence, steps from public.zart_claim_tasks('w', 'default', array[$1], 10, 30000)
              where execution_id = $2",
            &[&task, &id],
        )
        .await
        .unwrap();
    let row = rows.first()?;
    let steps: serde_json::Value = row.get(1);
    let steps = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    Some((row.get(0), steps))
}

/// The stored status of step `name` of `id`.
async fn step_status(client: &tokio_postgres::Client, id: &str, name: &str) -> String {
    client
        .query_one(
            "select status from zart_steps where execution_id = $1 and name = $2",
            &[&id, &name],
        )
        .await
        .unwrap()
        .get(0)
}

/// Claims `id` (task `nap`, optionally with a deadline) and has it sleep 60 s under that
/// claim, as `ctx.sleep("nap", 60 s)` would: the execution suspends until then.
async fn start_and_sleep(client: &tokio_postgres::Client, id: &str, deadline_ms: Option<i64>) {
    client
        .execute(
            "select public.zart_start_execution(public.zart_bucket($1), $1, 'nap', '{}'::jsonb,
                                                'default', null, $2)",
            &[&id, &deadline_ms],
        )
        .await
        .unwrap();
    let (fence, steps) = claim_steps(client, "nap", id).await.unwrap();
    assert!(steps.is_empty());
    let left: Option<i64> = client
        .query_one(
            "select public.zart_sleep(public.zart_bucket($1), $1, $2, 'nap', 0, 60000, null)",
            &[&id, &fence],
        )
        .await
        .unwrap()
        .get(0);
    assert!(left.is_some(), "the sleep should suspend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_that_wakes_a_sleep_ends_it_so_the_replay_needs_no_round_trip() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    start_and_sleep(&client, "napper", None).await;
    assert_eq!(step_status(&client, "napper", "nap").await, "waiting");
    // Not due yet: nothing to claim, nothing ended.
    assert!(claim_steps(&client, "nap", "napper").await.is_none());
    assert_eq!(step_status(&client, "napper", "nap").await, "waiting");

    db.advance_clock(Duration::from_secs(61)).await;
    let (_, steps) = claim_steps(&client, "nap", "napper").await.unwrap();
    // The claim returns the sleep ended (its statement reads the steps as they were before it)
    // and has stored it so, as zart_sleep would have on the replay.
    assert_eq!(steps, vec![("nap".to_owned(), "completed".to_owned())]);
    assert_eq!(step_status(&client, "napper", "nap").await, "completed");
    let (output, attempts): (serde_json::Value, i32) = {
        let row = client
            .query_one(
                "select output, attempts from zart_steps where execution_id = 'napper'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(output.is_string(), "output is the time it ended: {output}");
    assert_eq!(attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_at_the_deadline_leaves_a_sleep_that_is_not_over_alone() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    // The deadline (10 s) comes before the sleep ends (60 s): the execution is due at the
    // deadline, so that the worker fails it, and the sleep must stay as it is.
    start_and_sleep(&client, "late", Some(10_000)).await;
    db.advance_clock(Duration::from_secs(11)).await;
    let (_, steps) = claim_steps(&client, "nap", "late").await.unwrap();
    assert_eq!(steps, vec![("nap".to_owned(), "waiting".to_owned())]);
    assert_eq!(step_status(&client, "late", "nap").await, "waiting");
}

/// On Citus a worker claims one shard's buckets per statement (docs/scale.md): a claim given a
/// bucket set takes only the due tasks in those buckets, in claim order, and the idle look-up
/// given one sees only them. Checked here on one PostgreSQL, where the set is otherwise absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_given_a_bucket_set_takes_only_the_tasks_in_those_buckets() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    fill(&client, "t", 200).await;
    let chosen: Vec<i16> = column(
        &client,
        "select distinct bucket from zart_tasks order by bucket limit 5",
        &[],
    )
    .await;
    let in_set: i64 = client
        .query_one(
            "select count(*) from zart_tasks where bucket = any ($1)",
            &[&chosen],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        (5..200).contains(&in_set),
        "the set holds some tasks, not all"
    );

    let claimed: Vec<i16> = client
        .query(
            "select bucket from zart_claim_tasks('w', 'default', array['t'], 200, 30000, $1)",
            &[&chosen],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        i64::try_from(claimed.len()).unwrap(),
        in_set,
        "every due task in the set, no more"
    );
    assert!(claimed.iter().all(|b| chosen.contains(b)));

    // The set is drained: its idle look-up sees only the leases running out (30 s), while the
    // rest of the queue is due now.
    let in_set_next: Option<i64> = client
        .query_one(
            "select zart_next_run_at('default', array['t'], $1)",
            &[&chosen],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        in_set_next.is_some_and(|ms| ms > 20_000),
        "only leased tasks are left in the set: {in_set_next:?}"
    );
    let next: Option<i64> = client
        .query_one("select zart_next_run_at('default', array['t'])", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, Some(0), "the rest of the queue is due now");
}
