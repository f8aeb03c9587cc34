//! Security: each role logs in and tries what it must not be able to do, at the SQL level, and
//! every attempt is refused with nothing changed; bad input at the SQL API is refused naming
//! the field; tenants are kept apart by row-level security and the entry points' own checks.
//! docs/security.md is the threat model these tests hold the code to.
//!
//! Each test runs as the role it attacks with: a LOGIN member of `zart_client`, `zart_worker`
//! or `zart_reader` (set up by `zart migrate`), or of none. `ZART_SECURITY_MUTANT` (see
//! [`MUTANTS`] and `ci/security-mutants`) removes one protection from the database under test,
//! to show that the test guarding it fails without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Client;
use zart::{
    DurableScheduler, Error, ExecutionStatus, Scheduler, TaskContext, TaskError, TaskHandler,
    TaskRegistry, Worker, WorkerConfig,
};
use zart_pg::PostgresScheduler;
use zart_tests::logins::Logins;
use zart_tests::tasks::Echo;
use zart_tests::{column, count, init_tracing, TestDb};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

/// Protections the mutation check removes, one at a time: (name, text of `zart.sql` or
/// `roles.sql` to find, what to put instead). With `ZART_SECURITY_MUTANT=<name>`, the test
/// database gets the weakened SQL, and `ci/security-mutants` expects the named test to fail.
pub const MUTANTS: &[(&str, &str, &str, &str)] = &[
    (
        "client-table-writes",
        "the_client_role_cannot_write_a_table_or_reach_past_its_entry_points",
        "grant execute on function %s to %I', v_grant.fn, v_grant.rolname);",
        "grant execute on function %s to %I', v_grant.fn, v_grant.rolname);
        execute format('grant insert, update, delete on all tables in schema public to %I', v_grant.rolname);",
    ),
    (
        // The old model: helpers callable on their own, and the table writes they need.
        "worker-helpers-and-tables",
        "the_worker_role_changes_nothing_it_holds_no_lease_on",
        "'zart_worker_seen', 'zart_worker_gone'];",
        "'zart_worker_seen', 'zart_worker_gone', 'zart_wake_waiter', 'zart_close_wait', 'zart_suspend', 'zart_wait_lock'];
    execute 'grant select, insert, update, delete on all tables in schema public to zart_worker';",
    ),
    (
        "payload-limit-from-session",
        "the_payload_limit_is_the_owners_and_holds_in_every_entry_point",
        "v_limit bigint := coalesce(p_limit, public.zart_payload_limit());",
        "v_limit bigint := coalesce(nullif(current_setting('zart.max_payload_bytes', true), '')::bigint, p_limit, public.zart_payload_limit());",
    ),
    (
        "step-output-unchecked",
        "the_payload_limit_is_the_owners_and_holds_in_every_entry_point",
        "when octet_length(p_output::text) > p_limit then\n               format('invalid step output",
        "when false then\n               format('invalid step output",
    ),
    (
        "start-conflict-ignores-queue",
        "start_conflicts_parents_and_durations_are_refused_naming_the_field",
        "if v_existing.queue <> p_queue then",
        "if false then",
    ),
    (
        "parent-unchecked",
        "start_conflicts_parents_and_durations_are_refused_naming_the_field",
        "        if not found then\n            raise exception 'invalid parent id: no execution",
        "        if false then\n            raise exception 'invalid parent id: no execution",
    ),
    (
        "events-for-finished-stored",
        "events_for_finished_executions_are_refused_and_do_not_pile_up",
        "if v_status in ('completed', 'failed', 'cancelled') then\n        raise exception 'execution \"%\" has finished",
        "if false then\n        raise exception 'execution \"%\" has finished",
    ),
    (
        "step-status-unchecked",
        "the_worker_role_changes_nothing_it_holds_no_lease_on",
        "when p_status is null or p_status not in ('completed', 'failed', 'retrying') then",
        "when p_status is null then",
    ),
    (
        "failed-parent-keeps-children",
        "a_failed_parent_cancels_its_unfinished_children",
        "if v_failed is not null\n",
        "if false and v_failed is not null\n",
    ),
    (
        "cancel-walks-cycles",
        "cancel_terminates_on_a_cycle_of_parents",
        "           and c.status not in ('completed', 'failed', 'cancelled')\n           and not c.id = any (v_ids);\n",
        "           and c.status not in ('completed', 'failed', 'cancelled');\n",
    ),
    (
        "unsalted-wait-lock",
        "a_login_without_grants_cannot_stall_zart",
        "perform pg_advisory_xact_lock(hashtextextended(\n        p_execution_id, coalesce((select s.lock_salt from public.zart_settings s), 0)));",
        "perform pg_advisory_xact_lock(7215201, hashtext(p_execution_id));",
    ),
    (
        "no-row-level-security",
        "tenants_cannot_see_signal_cancel_or_parent_each_other",
        "    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_executions_tenant') then",
        "    alter table public.zart_executions disable row level security;\n    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_executions_tenant') then",
    ),
    (
        "send-event-ignores-tenant",
        "tenants_cannot_see_signal_cancel_or_parent_each_other",
        "     where e.bucket = p_bucket and e.id = p_execution_id\n       and (v_tenants is null or e.tenant = any (v_tenants));\n    if not found then\n        raise exception 'execution \"%\" not found', p_execution_id using errcode = 'ZA007';\n    end if;\n    -- Nothing would ever consume it.",
        "     where e.bucket = p_bucket and e.id = p_execution_id;\n    if not found then\n        raise exception 'execution \"%\" not found', p_execution_id using errcode = 'ZA007';\n    end if;\n    -- Nothing would ever consume it.",
    ),
    (
        "claim-ignores-tenant",
        "tenants_cannot_see_signal_cancel_or_parent_each_other",
        "                       and (v_tenants is null or t.tenant = any (v_tenants))\n                     order by t.run_at",
        "                     order by t.run_at",
    ),
];

/// A fresh database, weakened by the mutant named in `ZART_SECURITY_MUTANT` if it is one this
/// test guards (a mutant guarded by another test leaves it alone).
async fn database(test: &str) -> TestDb {
    init_tracing();
    let db = TestDb::new().await;
    if let Ok(name) = std::env::var("ZART_SECURITY_MUTANT") {
        let (_, guarded_by, find, replace) = MUTANTS
            .iter()
            .find(|m| m.0 == name)
            .unwrap_or_else(|| panic!("no mutant named {name}"));
        if *guarded_by == test {
            let admin = db.client().await;
            for sql in [zart_pg::FUNCTIONS_SQL, zart_pg::ROLES_SQL] {
                if sql.contains(find) {
                    admin
                        .batch_execute(&sql.replace(find, replace))
                        .await
                        .unwrap_or_else(|e| panic!("mutant {name}: {e:?}"));
                }
            }
            eprintln!("security: running {test} against mutant {name}");
        }
    }
    db
}

#[test]
fn every_mutant_applies_to_the_sql_exactly_once() {
    for (name, test, find, _) in MUTANTS {
        let hits =
            zart_pg::FUNCTIONS_SQL.matches(find).count() + zart_pg::ROLES_SQL.matches(find).count();
        assert_eq!(
            hits, 1,
            "mutant {name} ({test}) must match one place, matched {hits}"
        );
    }
}

/// A digest of every Zart table: equal digests, nothing changed.
async fn state(admin: &Client) -> String {
    admin
        .query_one(
            "select md5(concat_ws('|',
                (select string_agg(x::text, ',' order by x::text) from zart_executions x),
                (select string_agg(x::text, ',' order by x::text) from zart_tasks x),
                (select string_agg(x::text, ',' order by x::text) from zart_steps x),
                (select string_agg(x::text, ',' order by x::text) from zart_events x),
                (select string_agg(x::text, ',' order by x::text) from zart_settings x),
                (select string_agg(x::text, ',' order by x::text) from zart_tenant_access x),
                (select string_agg(x::text, ',' order by x::text) from zart_clock x)))",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// SQLSTATE and message of a statement that must fail.
async fn refused(client: &Client, sql: &str) -> (String, String) {
    let err = client
        .batch_execute(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("not refused: {sql}"));
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: not a database error: {err:?}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

/// Runs each attack; each must fail with `code` and leave every table as it was.
async fn all_refused(admin: &Client, who: &Client, code: &str, attacks: &[&str]) {
    let before = state(admin).await;
    for sql in attacks {
        let (got, message) = refused(who, sql).await;
        assert_eq!(got, code, "{sql}: {message}");
        assert_eq!(state(admin).await, before, "{sql} changed something");
    }
}

/// Claims `id` (its task name only) as `worker`; returns its bucket and fence.
async fn claim(worker: &Client, id: &str, task: &str) -> (i16, i64) {
    let rows = worker
        .query(
            "select bucket, execution_id, fence
               from zart_claim_tasks('w-' || $1::text, 'default', array[$2::text], 10, 60000)",
            &[&id, &task],
        )
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.get::<_, String>(1) == id)
        .unwrap_or_else(|| panic!("{id} was not claimed"));
    (row.get(0), row.get(2))
}

async fn scalar<T: tokio_postgres::types::FromSqlOwned>(client: &Client, sql: &str) -> T {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The client role: only its entry points; no table, no helper, no worker function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_role_cannot_write_a_table_or_reach_past_its_entry_points() {
    let db = database("the_client_role_cannot_write_a_table_or_reach_past_its_entry_points").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    logins.create(&admin, "client", &["zart_client"]).await;
    logins.create(&admin, "worker", &["zart_worker"]).await;
    let client = logins.client("client").await;
    let worker = logins.client("worker").await;

    // An execution in a durable retry back-off, one asleep, one waiting for an event.
    admin
        .batch_execute(
            "select zart_start('backoff', 'alpha');
             select zart_start('asleep', 'beta');
             select zart_start('waiting', 'gamma');",
        )
        .await
        .unwrap();
    let (b, fence) = claim(&worker, "backoff", "alpha").await;
    worker
        .execute(
            "select zart_retry_step($1, 'backoff', $2, 'charge', 0, '{\"message\": \"no\"}', 1, 3600000)",
            &[&b, &fence],
        )
        .await
        .unwrap();
    let (b, fence) = claim(&worker, "asleep", "beta").await;
    worker
        .execute(
            "select zart_sleep($1, 'asleep', $2, 'nap', 0, 3600000, null)",
            &[&b, &fence],
        )
        .await
        .unwrap();
    let (b, fence) = claim(&worker, "waiting", "gamma").await;
    worker
        .execute(
            "select * from zart_await_event($1, 'waiting', $2, 'event:go', 0, 'go', null)",
            &[&b, &fence],
        )
        .await
        .unwrap();

    all_refused(
        &admin,
        &client,
        "42501",
        &[
            // Mark an execution finished, change an input, read around the entry points.
            "update zart_executions set status = 'completed' where id = 'backoff'",
            "update zart_executions set input = '{\"evil\": 1}' where id = 'asleep'",
            "insert into zart_executions (bucket, id, task_name, queue, input, created_at, updated_at)
             values (zart_bucket('forged'), 'forged', 'alpha', 'default', '{}', now(), now())",
            "delete from zart_executions",
            "select * from zart_executions",
            "select * from zart_steps",
            // Strand or reroute queued work; take a lease.
            "delete from zart_tasks where execution_id = 'asleep'",
            "update zart_tasks set queue = 'elsewhere'",
            "update zart_tasks set locked_by = 'me', run_at = now() + interval '1 day'",
            "select 1 from zart_tasks for update",
            "select * from zart_claim_tasks('me', 'default', array['alpha'], 10, 60000)",
            // Cut short a retry back-off or a sleep.
            "update zart_tasks set run_at = now() where execution_id = 'backoff'",
            "select zart_wake_waiter('backoff', 'retry', 'charge')",
            "select zart_wake_waiter('asleep', 'sleep', 'nap')",
            "select zart_suspend(zart_bucket('asleep'), 'asleep', 0, now(), 'sleeping', 'sleep', 'nap')",
            "select zart_close_wait(zart_bucket('asleep'), 'asleep', 'nap', 'completed', 'null', null)",
            // Write an event with a time of its choosing, or consume one.
            "insert into zart_events (bucket, execution_id, name, payload, created_at)
             values (zart_bucket('waiting'), 'waiting', 'go', '1', '2000-01-01')",
            "update zart_events set created_at = '2000-01-01'",
            "select * from zart_take_event(zart_bucket('waiting'), 'waiting', 'event:go', 'go', null, now())",
            "select zart_deliver_event(zart_bucket('waiting'), 'waiting', 'go')",
            // Forge a step result or an outcome.
            "insert into zart_steps (bucket, execution_id, name, seq, status, attempts, created_at, updated_at)
             values (zart_bucket('asleep'), 'asleep', 'forged', 9, 'completed', 1, now(), now())",
            "select zart_commit_step(zart_bucket('asleep'), 'asleep', 1, 'x', 1, 'completed', '1', null, 1)",
            "select zart_complete_execution(zart_bucket('asleep'), 'asleep', 1, 'completed', '1', null)",
            "select * from zart_open_wait(zart_bucket('asleep'), 'asleep', 'x', 1, 'sleep', now(), null)",
            "select * from zart_insert_execution(zart_bucket('i'), 'i', 'alpha', '{}', 'default', null, null, null, null, null, null, null, null)",
            "select * from zart_cancel_tree(array[zart_bucket('asleep')], array['asleep'], true)",
            // The owner's settings, tenants and clock.
            "update zart_settings set max_payload_bytes = 1000000000",
            "select lock_salt from zart_settings",
            "insert into zart_tenant_access values (current_user, '*')",
            "update zart_clock set clock_offset = interval '1 day'",
            "insert into zart_clock default values",
        ],
    )
    .await;

    // What the client may do, it can: start, send an event, cancel, read one execution.
    let before = count(&admin, "select count(*) from zart_executions").await;
    assert!(scalar::<bool>(&client, "select zart_start('by-client', 'alpha')").await);
    assert!(scalar::<bool>(&client, "select zart_emit_event('waiting', 'go', '1')").await);
    assert_eq!(
        scalar::<i32>(&client, "select zart_cancel('asleep')").await,
        1
    );
    assert_eq!(
        scalar::<String>(
            &client,
            "select status from zart_get_execution(zart_bucket('waiting'), 'waiting')"
        )
        .await,
        "waiting"
    );
    assert_eq!(
        count(&admin, "select count(*) from zart_executions").await,
        before + 1
    );
    // The back-off was left alone by all of it: still an hour away.
    assert_eq!(
        count(
            &admin,
            "select count(*) from zart_tasks
              where execution_id = 'backoff' and run_at > now() + interval '50 minutes'"
        )
        .await,
        1
    );
}

/// The worker role: no write to an execution or a step it holds no valid lease on, through any
/// function it can call; nothing the engine would not write; no top-level start, event, cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_role_changes_nothing_it_holds_no_lease_on() {
    let db = database("the_worker_role_changes_nothing_it_holds_no_lease_on").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    logins.create(&admin, "worker", &["zart_worker"]).await;
    let worker = logins.client("worker").await;
    admin
        .batch_execute(
            "select zart_start('held', 'alpha');
             select zart_start('other', 'beta');
             select zart_start('asleep', 'gamma');",
        )
        .await
        .unwrap();
    let (held_bucket, fence) = claim(&worker, "held", "alpha").await;
    let (b, asleep_fence) = claim(&worker, "asleep", "gamma").await;
    worker
        .execute(
            "select zart_sleep($1, 'asleep', $2, 'nap', 0, 3600000, null)",
            &[&b, &asleep_fence],
        )
        .await
        .unwrap();

    // Another execution's row, with this worker's fence or any other: lease lost, no change.
    let other = "zart_bucket('other'), 'other'";
    let held = format!("{held_bucket}::smallint, 'held'");
    let stale = fence ^ 1;
    let lease_attacks: Vec<String> = [other.to_owned(), held.clone()]
        .iter()
        .flat_map(|target| {
            let f = if target.contains("held") { stale } else { fence };
            [
                format!("select zart_commit_step({target}, {f}, 's', 0, 'completed', '1', null, 1)"),
                format!("select zart_complete_execution({target}, {f}, 'completed', '1', null)"),
                format!("select zart_retry_step({target}, {f}, 's', 0, '{{}}', 1, 60000)"),
                format!("select zart_sleep({target}, {f}, 'nap', 0, 60000, null)"),
                format!("select * from zart_await_event({target}, {f}, 'event:go', 0, 'go', null)"),
                format!(
                    "select * from zart_start_child({target}, {f}, 'kid', 0, 'kid-of-x', 'alpha', '{{}}', 'default')"
                ),
            ]
        })
        .collect();
    let refs: Vec<&str> = lease_attacks.iter().map(String::as_str).collect();
    all_refused(&admin, &worker, "ZA002", &refs).await;

    let before = state(&admin).await;
    // Group commits fence each item: the other execution's item is refused, nothing written.
    let codes: Vec<Option<String>> = worker
        .query_one(
            "select zart_commit_steps(array[zart_bucket('other')], array['other'], array[$1::bigint],
                                      array['s'], array[0], array['completed'], array['1'::jsonb],
                                      array[null::jsonb], array[1])",
            &[&fence],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(codes, vec![Some("ZA002".to_owned())]);
    let codes: Vec<Option<String>> = column(
        &worker,
        &format!(
            "select code from zart_complete_executions(array[zart_bucket('other')], array['other'],
                                                       array[{fence}::bigint], array['completed'],
                                                       array['1'::jsonb], array[null::jsonb])"
        ),
        &[],
    )
    .await;
    assert_eq!(codes, vec![Some("ZA002".to_owned())]);
    // Heartbeats and releases of a lease it does not hold do nothing.
    assert_eq!(
        count(
            &worker,
            &format!(
                "select count(*) from zart_heartbeat('w-held', 60000, array[zart_bucket('other')],
                                                     array['other'], array[{fence}::bigint])"
            )
        )
        .await,
        0
    );
    assert_eq!(
        scalar::<i32>(
            &worker,
            &format!(
                "select zart_release_tasks('w-held', array[zart_bucket('other')], array['other'],
                                           array[{fence}::bigint])"
            )
        )
        .await,
        0
    );
    assert_eq!(state(&admin).await, before);

    // Helpers that write without a fence are not callable; nor is anything of the client's.
    all_refused(
        &admin,
        &worker,
        "42501",
        &[
            "select zart_wake_waiter('asleep', 'sleep', 'nap')",
            "select zart_close_wait(zart_bucket('asleep'), 'asleep', 'nap', 'completed', 'null', null)",
            "select zart_suspend(zart_bucket('other'), 'other', 0, now(), 'sleeping', 'sleep', 'nap')",
            "select * from zart_open_wait(zart_bucket('other'), 'other', 'x', 1, 'sleep', now(), null)",
            "select * from zart_take_event(zart_bucket('other'), 'other', 'event:go', 'go', null, now())",
            "select * from zart_insert_execution(zart_bucket('i'), 'i', 'alpha', '{}', 'default', null, null, null, null, null, null, null, null)",
            "select * from zart_cancel_tree(array[zart_bucket('other')], array['other'], true)",
            "select zart_lock_task(zart_bucket('other'), 'other', 0)",
            "select zart_start('top-level', 'alpha')",
            "select * from zart_start_execution(zart_bucket('t'), 't', 'alpha', '{}', 'default', null, null)",
            "select zart_emit_event('asleep', 'go')",
            "select zart_send_event(zart_bucket('asleep'), 'asleep', 'go', '1')",
            "select zart_cancel('other')",
            "select zart_retry('other')",
            "select zart_set_queue_limits('default', 1)",
            "select * from zart_pick_tasks('default', array['alpha'], 1, now(), 0, false, null, null, true, null, null, null, null)",
            "select * from zart_limit_counts('default', null, null, now())",
            "update zart_executions set status = 'completed' where id = 'other'",
            "update zart_tasks set run_at = now() where execution_id = 'asleep'",
            "insert into zart_steps (bucket, execution_id, name, seq, status, attempts, created_at, updated_at)
             values (zart_bucket('other'), 'other', 'forged', 0, 'completed', 1, now(), now())",
            "select * from zart_executions",
        ],
    )
    .await;

    // With its own valid lease it still cannot write what the engine never writes.
    let with_lease = |rest: &str| format!("select zart_commit_step({held}, {fence}, {rest})");
    let bad = [
        (with_lease("'s', 0, 'waiting', '1', null, 1"), "invalid step status: \"waiting\" is not completed, failed or retrying"),
        (with_lease("'s', 0, 'exotic', '1', null, 1"), "invalid step status: \"exotic\" is not completed, failed or retrying"),
        (with_lease("'s', 0, null, '1', null, 1"), "invalid step status: null is not completed, failed or retrying"),
        (with_lease("'', 0, 'completed', '1', null, 1"), "invalid step name: \"\" is not 1 to 255 bytes"),
        (with_lease("'s', -1, 'completed', '1', null, 1"), "invalid step position: seq -1, attempts 1"),
        (
            format!("select zart_complete_execution({held}, {fence}, 'running', '1', null)"),
            "invalid status: \"running\" is not a final status",
        ),
        (
            format!("select zart_sleep({held}, {fence}, 'nap', 0, 4000000000000, null)"),
            "invalid sleep: 4000000000000 ms is outside 0 ms to 100 years",
        ),
        (
            format!("select zart_sleep({held}, {fence}, 'nap', 0, null, 'infinity')"),
            "invalid wake time: infinity is not a point in time",
        ),
        (
            format!("select * from zart_await_event({held}, {fence}, 'event:go', 0, 'go', -5)"),
            "invalid event timeout: -5 ms is outside 0 ms to 100 years",
        ),
        (
            format!("select zart_retry_step({held}, {fence}, 's', 0, '{{}}', 1, 4000000000000)"),
            "invalid retry delay: 4000000000000 ms is outside 0 ms to 100 years",
        ),
        (
            format!("select count(*) from zart_heartbeat('w-held', -1, array[{held_bucket}::smallint], array['held'], array[{fence}::bigint])"),
            "invalid lease: -1 ms is outside 0 ms to 100 years",
        ),
        (
            "select count(*) from zart_claim_tasks('w', 'default', array['beta'], 10, 4000000000000)".to_owned(),
            "invalid lease: 4000000000000 ms is outside 0 ms to 100 years",
        ),
    ];
    let before = state(&admin).await;
    for (sql, message) in bad {
        assert_eq!(
            refused(&worker, &sql).await,
            ("ZA004".to_owned(), message.to_owned()),
            "{sql}"
        );
        assert_eq!(state(&admin).await, before, "{sql} changed something");
    }
    // And the lease is still good for what the engine does write.
    worker
        .batch_execute(&with_lease("'s', 0, 'completed', '1', null, 1"))
        .await
        .unwrap();
}

/// Records a step whose output is `data["step"]` copies of "x", then returns `data["out"]`
/// copies of "x".
struct BigStep;

#[async_trait]
impl TaskHandler for BigStep {
    type Data = serde_json::Value;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        let n = data["step"].as_u64().unwrap_or(0) as usize;
        ctx.step(
            "big",
            || async move { Ok::<_, std::io::Error>("x".repeat(n)) },
        )
        .await?;
        let out = data["out"].as_u64().unwrap_or(0) as usize;
        Ok(serde_json::json!("x".repeat(out)))
    }
}

/// The payload limit is the owner's (zart_settings), not a session's, and every entry point
/// that stores JSON checks it: starts, children, events, step results, outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_limit_is_the_owners_and_holds_in_every_entry_point() {
    let db = database("the_payload_limit_is_the_owners_and_holds_in_every_entry_point").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    logins.create(&admin, "client", &["zart_client"]).await;
    logins.create(&admin, "worker", &["zart_worker"]).await;
    let client = logins.client("client").await;
    let worker = logins.client("worker").await;
    admin
        .batch_execute(
            "select zart_start('parent', 'alpha'); select zart_start('waiting', 'beta');",
        )
        .await
        .unwrap();
    let (pb, pf) = claim(&worker, "parent", "alpha").await;

    // A session raising the limit changes nothing: 2 MiB is over the default 1 MiB.
    let big = "jsonb_build_object('k', repeat('x', 2097152))";
    for session in [&client, &worker] {
        session
            .batch_execute("set zart.max_payload_bytes = 1000000000")
            .await
            .unwrap();
    }
    let over = |field: &str, size: usize, limit: usize| {
        format!("invalid {field}: {size} bytes of JSON is over the limit of {limit} bytes")
    };
    let before = state(&admin).await;
    let cases = [
        (&client, format!("select zart_start('big', 'alpha', {big})"), over("input", 2097161, 1048576)),
        (
            &client,
            format!("select * from zart_start_execution(zart_bucket('big'), 'big', 'alpha', {big}, 'default', null, null)"),
            over("input", 2097161, 1048576),
        ),
        (&client, format!("select zart_emit_event('waiting', 'go', {big})"), over("event payload", 2097161, 1048576)),
        (
            &client,
            format!("select zart_send_event(zart_bucket('waiting'), 'waiting', 'go', {big})"),
            over("event payload", 2097161, 1048576),
        ),
        (
            &worker,
            format!("select zart_commit_step({pb}::smallint, 'parent', {pf}, 's', 0, 'completed', {big}, null, 1)"),
            over("step output", 2097161, 1048576),
        ),
        (
            &worker,
            format!("select zart_commit_step({pb}::smallint, 'parent', {pf}, 's', 0, 'failed', null, {big}, 1)"),
            over("step error", 2097161, 1048576),
        ),
        (
            &worker,
            format!("select zart_retry_step({pb}::smallint, 'parent', {pf}, 's', 0, {big}, 1, 60000)"),
            over("step error", 2097161, 1048576),
        ),
        (
            &worker,
            format!("select zart_complete_execution({pb}::smallint, 'parent', {pf}, 'completed', {big}, null)"),
            over("output", 2097161, 1048576),
        ),
        (
            &worker,
            format!("select zart_complete_execution({pb}::smallint, 'parent', {pf}, 'failed', null, {big})"),
            over("error", 2097161, 1048576),
        ),
        (
            &worker,
            format!("select * from zart_start_child({pb}::smallint, 'parent', {pf}, 'kid', 0, 'parent/kid', 'alpha', {big}, 'default')"),
            over("input", 2097161, 1048576),
        ),
    ];
    for (who, sql, message) in &cases {
        assert_eq!(
            refused(who, sql).await,
            ("ZA004".to_owned(), message.clone()),
            "{sql}"
        );
        assert_eq!(state(&admin).await, before, "{sql} changed something");
    }

    // The owner lowers it, and it holds at once, in sessions that ran these functions before
    // (their cached plans had the old limit folded in) and for the Rust paths: a start, a
    // step, an outcome.
    client
        .batch_execute(
            "select zart_emit_event('waiting', 'warm', jsonb_build_object('k', repeat('x', 1500)))",
        )
        .await
        .unwrap();
    admin
        .batch_execute("update zart_settings set max_payload_bytes = 1000")
        .await
        .unwrap();
    assert_eq!(
        refused(
            &client,
            "select zart_emit_event('waiting', 'warm', jsonb_build_object('k', repeat('x', 1500)))"
        )
        .await,
        ("ZA004".to_owned(), over("event payload", 1509, 1000))
    );
    let mut registry = TaskRegistry::new();
    registry
        .register("echo", Echo)
        .unwrap()
        .register("big-step", BigStep)
        .unwrap();
    let registry = Arc::new(registry);
    let client_scheduler = Arc::new(PostgresScheduler::new(logins.pool("client")));
    let durable =
        DurableScheduler::new(client_scheduler, registry.clone()).with_max_payload_bytes(10 << 20);
    let err = durable
        .start("rust-big", "echo", serde_json::json!("x".repeat(2000)))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), over("input", 2002, 1000));
    let worker_loop = Worker::new(
        Arc::new(PostgresScheduler::new(logins.pool("worker"))),
        registry,
        WorkerConfig::default().with_handle_signals(false),
    );
    let stop = worker_loop.shutdown_handle();
    let running = tokio::spawn(worker_loop.run());
    // A step whose result is over the limit fails the execution, naming the step output.
    durable
        .start(
            "step-big",
            "big-step",
            serde_json::json!({"step": 2000, "out": 1}),
        )
        .await
        .unwrap();
    let done = durable.wait("step-big", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let message = done.error.as_ref().unwrap().message.clone();
    assert!(
        message.contains(&over("step output", 2002, 1000)),
        "{message}"
    );
    // An outcome over the limit fails the execution rather than retrying it forever.
    durable
        .start(
            "out-big",
            "big-step",
            serde_json::json!({"step": 1, "out": 2000}),
        )
        .await
        .unwrap();
    let done = durable.wait("out-big", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let message = done.error.as_ref().unwrap().message.clone();
    assert!(
        message.contains("the output could not be recorded"),
        "{message}"
    );
    assert_eq!(
        count(
            &admin,
            "select count(*) from zart_tasks where execution_id in ('step-big', 'out-big')"
        )
        .await,
        0
    );
    stop.shutdown();
    running.await.unwrap().unwrap();
}

/// Starting an existing id differently is a conflict whatever differs; a parent must exist and
/// cannot be the execution itself; durations out of range name their field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_conflicts_parents_and_durations_are_refused_naming_the_field() {
    let db = database("start_conflicts_parents_and_durations_are_refused_naming_the_field").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    logins.create(&admin, "client", &["zart_client"]).await;
    let client = logins.client("client").await;
    let start = |id: &str, queue: &str, parent: &str, deadline: &str| {
        format!(
            "select * from zart_start_execution(zart_bucket('{id}'), '{id}', 'alpha', '{{}}', '{queue}', {parent}, {deadline})"
        )
    };
    client
        .batch_execute(&start("p", "default", "null", "null"))
        .await
        .unwrap();
    client
        .batch_execute(&start("x", "default", "null", "60000"))
        .await
        .unwrap();
    client
        .batch_execute(&start("kid", "default", "'p'", "null"))
        .await
        .unwrap();
    // The same start again is idempotent.
    for sql in [
        start("x", "default", "null", "60000"),
        start("kid", "default", "'p'", "null"),
    ] {
        let created: bool = client.query_one(&sql, &[]).await.unwrap().get(0);
        assert!(!created, "{sql}");
    }
    let before = state(&admin).await;
    let cases = [
        (
            start("x", "other", "null", "60000"),
            "ZA003",
            "execution \"x\" already exists in queue \"default\", not \"other\"",
        ),
        (
            start("x", "default", "'p'", "60000"),
            "ZA003",
            "execution \"x\" already exists with parent none, not \"p\"",
        ),
        (
            start("kid", "default", "null", "null"),
            "ZA003",
            "execution \"kid\" already exists with parent \"p\", not none",
        ),
        (
            start("x", "default", "null", "null"),
            "ZA003",
            "execution \"x\" already exists with deadline 60000 ms, not none",
        ),
        (
            start("x", "default", "null", "1000"),
            "ZA003",
            "execution \"x\" already exists with deadline 60000 ms, not 1000 ms",
        ),
        (
            start("p", "default", "null", "5000"),
            "ZA003",
            "execution \"p\" already exists with deadline none, not 5000 ms",
        ),
        (
            start("orphan", "default", "'ghost'", "null"),
            "ZA004",
            "invalid parent id: no execution \"ghost\"",
        ),
        (
            start("self", "default", "'self'", "null"),
            "ZA004",
            "invalid parent id: an execution cannot be its own parent",
        ),
        (
            start("far", "default", "null", "4000000000000"),
            "ZA004",
            "invalid deadline: 4000000000000 ms is outside 1 ms to 100 years",
        ),
        (
            start("past", "default", "null", "-1"),
            "ZA004",
            "invalid deadline: -1 ms is outside 1 ms to 100 years",
        ),
    ];
    for (sql, code, message) in cases {
        assert_eq!(
            refused(&client, &sql).await,
            (code.to_owned(), message.to_owned()),
            "{sql}"
        );
        assert_eq!(state(&admin).await, before, "{sql} changed something");
    }
}

/// An event for a finished execution is refused (ZA008) and stores nothing, from Rust and SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_finished_executions_are_refused_and_do_not_pile_up() {
    let db = database("events_for_finished_executions_are_refused_and_do_not_pile_up").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    logins.create(&admin, "client", &["zart_client"]).await;
    logins.create(&admin, "worker", &["zart_worker"]).await;
    let client = logins.client("client").await;
    let worker = logins.client("worker").await;
    admin
        .batch_execute("select zart_start('done', 'alpha'); select zart_start('stopped', 'beta');")
        .await
        .unwrap();
    let (b, f) = claim(&worker, "done", "alpha").await;
    worker
        .execute(
            "select zart_complete_execution($1, 'done', $2, 'completed', '1', null)",
            &[&b, &f],
        )
        .await
        .unwrap();
    client
        .batch_execute("select zart_cancel('stopped')")
        .await
        .unwrap();
    let mut registry = TaskRegistry::new();
    registry.register("alpha", Echo).unwrap();
    let durable = DurableScheduler::new(
        Arc::new(PostgresScheduler::new(logins.pool("client"))),
        Arc::new(registry),
    );
    for _ in 0..3 {
        for (id, status) in [("done", "completed"), ("stopped", "cancelled")] {
            let (code, message) = refused(
                &client,
                &format!("select zart_emit_event('{id}', 'late', '1')"),
            )
            .await;
            assert_eq!(code, "ZA008");
            assert_eq!(
                message,
                format!("execution \"{id}\" has finished ({status}): the event was not stored")
            );
            let err = durable.send_event(id, "late", &1).await.unwrap_err();
            assert!(
                matches!(&err, Error::Finished { id: i, status: s, .. } if i == id && s == status),
                "{err:?}"
            );
        }
    }
    assert_eq!(count(&admin, "select count(*) from zart_events").await, 0);
}

/// A failed execution's unfinished children (and theirs) are cancelled, as a cancelled one's
/// are, and whoever waits for them hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_parent_cancels_its_unfinished_children() {
    let db = database("a_failed_parent_cancels_its_unfinished_children").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    logins.create(&admin, "client", &["zart_client"]).await;
    logins.create(&admin, "worker", &["zart_worker"]).await;
    let client = logins.client("client").await;
    let worker = logins.client("worker").await;
    client
        .batch_execute("select zart_start('parent', 'alpha')")
        .await
        .unwrap();
    let (b, f) = claim(&worker, "parent", "alpha").await;
    let outcome: String = worker
        .query_one(
            "select state from zart_start_child($1, 'parent', $2, 'kid', 0, 'parent/kid', 'beta', '{}', 'default')",
            &[&b, &f],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outcome, "waiting");
    client
        .batch_execute(
            "select * from zart_start_execution(zart_bucket('grandkid'), 'grandkid', 'beta', '{}', 'default', 'parent/kid', null);
             select zart_start('bystander', 'beta');",
        )
        .await
        .unwrap();
    // The parent is woken (a deadline, say) and fails.
    admin
        .batch_execute("update zart_tasks set run_at = now() where execution_id = 'parent'")
        .await
        .unwrap();
    let (b, f) = claim(&worker, "parent", "alpha").await;
    worker
        .execute(
            "select zart_complete_execution($1, 'parent', $2, 'failed', null, '{\"message\": \"boom\"}')",
            &[&b, &f],
        )
        .await
        .unwrap();
    let statuses: Vec<(String, String)> = admin
        .query("select id, status from zart_executions order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expect = |id: &str, s: &str| (id.to_owned(), s.to_owned());
    assert_eq!(
        statuses,
        vec![
            expect("bystander", "scheduled"),
            expect("grandkid", "cancelled"),
            expect("parent", "failed"),
            expect("parent/kid", "cancelled"),
        ]
    );
    assert_eq!(
        count(
            &admin,
            "select count(*) from zart_tasks where execution_id <> 'bystander'"
        )
        .await,
        0
    );
    // zart_done for each cancelled descendant, so a wait() on it returns at once.
    let mut ids = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = db.config();
    let (own, mut connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let pump = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(msg)) = futures_util::StreamExt::next(&mut stream).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    own.batch_execute("listen zart_done").await.unwrap();
    // Fail a second parent while listening on a live connection.
    client
        .batch_execute("select zart_start('parent2', 'alpha')")
        .await
        .unwrap();
    let (b, f) = claim(&worker, "parent2", "alpha").await;
    worker
        .execute(
            "select state from zart_start_child($1, 'parent2', $2, 'kid', 0, 'parent2/kid', 'beta', '{}', 'default')",
            &[&b, &f],
        )
        .await
        .unwrap();
    admin
        .batch_execute("update zart_tasks set run_at = now() where execution_id = 'parent2'")
        .await
        .unwrap();
    let (b, f) = claim(&worker, "parent2", "alpha").await;
    worker
        .execute(
            "select zart_complete_execution($1, 'parent2', $2, 'failed', null, '{}')",
            &[&b, &f],
        )
        .await
        .unwrap();
    while let Ok(Some(payload)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        ids.push(payload);
        if ids.contains(&"[\"parent2/kid\"]".to_owned()) {
            break;
        }
    }
    assert!(ids.contains(&"[\"parent2/kid\"]".to_owned()), "{ids:?}");
    drop(own);
    pump.abort();
}

/// Parent ids that form a cycle (only the owner can write such data) do not make a
/// cancellation walk forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_terminates_on_a_cycle_of_parents() {
    let db = database("cancel_terminates_on_a_cycle_of_parents").await;
    let admin = db.client().await;
    admin
        .batch_execute(
            "select zart_start('a', 'alpha');
             select * from zart_start_execution(zart_bucket('b'), 'b', 'alpha', '{}', 'default', 'a', null);
             select * from zart_start_execution(zart_bucket('c'), 'c', 'alpha', '{}', 'default', 'b', null);
             update zart_executions set parent_id = 'c' where id = 'a';
             set statement_timeout = '10s';",
        )
        .await
        .unwrap();
    let cancelled: i32 = scalar(&admin, "select zart_cancel('b')").await;
    assert_eq!(cancelled, 3);
    assert_eq!(
        count(
            &admin,
            "select count(*) from zart_executions where status = 'cancelled'"
        )
        .await,
        3
    );
}

/// A login with no Zart grant can take advisory locks, but not one Zart waits on: the wait
/// lock's key is salted with a secret it cannot read. It can lock no row and no table either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_without_grants_cannot_stall_zart() {
    let db = database("a_login_without_grants_cannot_stall_zart").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    logins.create(&admin, "nobody", &[]).await;
    logins.create(&admin, "client", &["zart_client"]).await;
    logins.create(&admin, "worker", &["zart_worker"]).await;
    let nobody = logins.client("nobody").await;
    let client = logins.client("client").await;
    let worker = logins.client("worker").await;
    admin
        .batch_execute("select zart_start('w', 'alpha')")
        .await
        .unwrap();
    let (b, f) = claim(&worker, "w", "alpha").await;
    worker
        .execute(
            "select * from zart_await_event($1, 'w', $2, 'event:go', 0, 'go', null)",
            &[&b, &f],
        )
        .await
        .unwrap();

    // Every key it can compute from the id, in both advisory key spaces, held in a session.
    nobody
        .batch_execute(
            "select pg_advisory_lock(7215201, hashtext('w'));
             select pg_advisory_lock(hashtext('w'));
             select pg_advisory_lock(hashtextextended('w', 0));
             select pg_advisory_lock(7215201001);",
        )
        .await
        .unwrap();
    for sql in [
        "select lock_salt from zart_settings",
        "select 1 from zart_tasks for update",
        "lock table zart_tasks in access exclusive mode; select 1",
        "lock table zart_executions in share mode; select 1",
        "select zart_wait_lock('w')",
    ] {
        let (code, _) = refused(&nobody, sql).await;
        assert_eq!(code, "42501", "{sql}");
    }
    // Zart goes on: the event is delivered and the waiter woken, within the timeout.
    client
        .batch_execute("set statement_timeout = '5s'")
        .await
        .unwrap();
    assert!(scalar::<bool>(&client, "select zart_emit_event('w', 'go', '1')").await);
    assert_eq!(
        count(
            &admin,
            "select count(*) from zart_steps where execution_id = 'w' and status = 'completed'"
        )
        .await,
        1
    );
}

/// Tenancy: an execution belongs to the tenant of the login that started it (children to
/// their parent's); a tenant's client, reader and worker cannot see, signal, cancel, parent or
/// claim another tenant's executions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_signal_cancel_or_parent_each_other() {
    let db = database("tenants_cannot_see_signal_cancel_or_parent_each_other").await;
    let admin = db.client().await;
    let logins = Logins::new(&db);
    let mut grants = Vec::new();
    for (login, group, tenants) in [
        ("client_a", "zart_client", &["a"][..]),
        ("client_b", "zart_client", &["b"][..]),
        ("reader_a", "zart_reader", &["a"][..]),
        ("worker_a", "zart_worker", &["a"][..]),
        ("worker_b", "zart_worker", &["b"][..]),
        ("client_ab", "zart_client", &["a", "b"][..]),
        ("client_none", "zart_client", &[][..]),
        ("worker_all", "zart_worker", &["*"][..]),
    ] {
        let role = logins.create(&admin, login, &[group]).await;
        for t in tenants {
            grants.push(format!("('{role}', '{t}')"));
        }
    }
    admin
        .batch_execute(&format!(
            "update zart_settings set tenancy = true;
             insert into zart_tenant_access (role_name, tenant) values {};",
            grants.join(", ")
        ))
        .await
        .unwrap();
    let c = |name: &'static str| logins.client(name);
    let (client_a, client_b, reader_a, worker_a, worker_b) = (
        c("client_a").await,
        c("client_b").await,
        c("reader_a").await,
        c("worker_a").await,
        c("worker_b").await,
    );

    client_a
        .batch_execute("select zart_start('xa', 'alpha', '{\"secret\": \"of a\"}')")
        .await
        .unwrap();
    client_b
        .batch_execute("select zart_start('xb', 'alpha', '{\"secret\": \"of b\"}')")
        .await
        .unwrap();
    // Dedup keys are per tenant: B's start with A's key is B's own execution.
    for (client, id) in [(&client_a, "ka"), (&client_b, "kb")] {
        let created: bool = client
            .query_one(
                "select zart_start($1, 'alpha', '{}', p_start_key => 'shared', p_start_key_ms => 60000)",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(created, "{id}: a key of another tenant names nothing here");
    }
    admin
        .batch_execute("select zart_cancel('ka'); select zart_cancel('kb'); delete from zart_executions where id in ('ka', 'kb')")
        .await
        .unwrap();
    let tenants: Vec<(String, Option<String>)> = admin
        .query("select id, tenant from zart_executions order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        tenants,
        vec![
            ("xa".to_owned(), Some("a".to_owned())),
            ("xb".to_owned(), Some("b".to_owned()))
        ]
    );
    // Each buffers an event for its own execution.
    client_a
        .batch_execute("select zart_emit_event('xa', 'note', '1')")
        .await
        .unwrap();
    client_b
        .batch_execute("select zart_emit_event('xb', 'note', '2')")
        .await
        .unwrap();

    // B cannot see, signal, cancel, parent or take over A's execution; nothing changes.
    let before = state(&admin).await;
    let none: Vec<String> = column(
        &client_b,
        "select id from zart_get_execution(zart_bucket('xa'), 'xa')",
        &[],
    )
    .await;
    assert!(none.is_empty());
    // Nor read what A's execution published.
    admin
        .batch_execute(
            "insert into zart_steps (bucket, execution_id, name, seq, kind, status, output, attempts,
                                     created_at, updated_at)
             values (zart_bucket('xa'), 'xa', 'state:secret', 0, 'state', 'completed', '\"of a\"', 1,
                     now(), now())",
        )
        .await
        .unwrap();
    let published = "select name from zart_get_state(zart_bucket('xa'), 'xa')";
    assert_eq!(
        column::<String>(&client_a, published, &[]).await,
        ["secret"]
    );
    assert!(column::<String>(&client_b, published, &[]).await.is_empty());
    admin
        .batch_execute("delete from zart_steps where execution_id = 'xa' and kind = 'state'")
        .await
        .unwrap();
    for (sql, code, message) in [
        ("select zart_emit_event('xa', 'go', '1')", "ZA007", "execution \"xa\" not found"),
        ("select zart_cancel('xa')", "ZA007", "execution \"xa\" not found"),
        ("select zart_retry('xa')", "ZA007", "execution \"xa\" not found"),
        (
            "select * from zart_start_execution(zart_bucket('kid'), 'kid', 'alpha', '{}', 'default', 'xa', null)",
            "ZA004",
            "invalid parent id: no execution \"xa\"",
        ),
        (
            "select zart_start('xa', 'alpha', '{\"secret\": \"of a\"}')",
            "ZA003",
            "execution \"xa\" already exists under a tenant this session cannot see",
        ),
        ("set zart.tenant = 'a'; select zart_start('as-a', 'alpha')", "42501", "tenant \"a\" is not granted to role \"ROLE\""),
        (
            "select zart_set_queue_limits('default', 1)",
            "42501",
            "permission denied: queue limits bind every tenant; this session acts for some only",
        ),
    ] {
        let message = message.replace("ROLE", &logins.name("client_b"));
        assert_eq!(refused(&client_b, sql).await, (code.to_owned(), message), "{sql}");
        client_b.batch_execute("reset zart.tenant").await.unwrap();
        assert_eq!(state(&admin).await, before, "{sql} changed something");
    }

    // A's reader sees A's rows only, in the tables and the views.
    for (relation, expected) in [
        ("zart_executions", 1),
        ("zart_tasks", 1),
        ("zart_events", 1),
        ("zart_execution_status", 1),
        ("zart_execution_counts", 1),
        ("zart_overdue", 1),
    ] {
        assert_eq!(
            count(&reader_a, &format!("select count(*) from {relation}")).await,
            expected,
            "{relation}"
        );
    }
    assert_eq!(
        column::<String>(&reader_a, "select id from zart_executions", &[]).await,
        vec!["xa".to_owned()]
    );

    // A's worker claims A's work only, and its idle look-up ignores B's (due now): the next
    // thing due for it is its own lease's expiry, a minute away.
    let (b, f) = claim(&worker_a, "xa", "alpha").await;
    let claimed: Vec<String> = column(
        &worker_a,
        "select execution_id from zart_claim_tasks('wa', 'default', array['alpha'], 10, 60000)",
        &[],
    )
    .await;
    assert!(claimed.is_empty(), "{claimed:?}");
    let next: Option<i64> = worker_a
        .query_one("select zart_next_run_at('default', array['alpha'])", &[])
        .await
        .unwrap()
        .get(0);
    assert!(matches!(next, Some(ms) if ms > 50_000), "{next:?}");
    // A child started by A's worker is A's.
    worker_a
        .execute(
            "select * from zart_start_child($1, 'xa', $2, 'kid', 0, 'xa/kid', 'beta', '{}', 'default')",
            &[&b, &f],
        )
        .await
        .unwrap();
    assert_eq!(
        scalar::<String>(
            &admin,
            "select tenant from zart_executions where id = 'xa/kid'"
        )
        .await,
        "a"
    );
    assert_eq!(
        column::<String>(&worker_b, "select execution_id from zart_claim_tasks('wb', 'default', array['alpha', 'beta'], 10, 60000)", &[]).await,
        vec!["xb".to_owned()]
    );
    // A login granted '*' serves every tenant.
    let worker_all = c("worker_all").await;
    assert_eq!(
        column::<String>(&worker_all, "select execution_id from zart_claim_tasks('wall', 'default', array['beta'], 10, 60000)", &[]).await,
        vec!["xa/kid".to_owned()]
    );

    // A login with several tenants picks one with zart.tenant; with none it gets no tenant.
    let client_ab = c("client_ab").await;
    let (code, message) = refused(&client_ab, "select zart_start('ab', 'alpha')").await;
    assert_eq!(code, "ZA004");
    assert!(
        message.starts_with("invalid tenant:") && message.contains("a, b"),
        "{message}"
    );
    client_ab
        .batch_execute(
            "set zart.tenant = 'b'; select zart_start('ab', 'alpha'); reset zart.tenant;",
        )
        .await
        .unwrap();
    assert_eq!(
        scalar::<String>(&admin, "select tenant from zart_executions where id = 'ab'").await,
        "b"
    );
    let (code, _) = refused(&c("client_none").await, "select zart_start('n', 'alpha')").await;
    assert_eq!(code, "42501");
    // The owner acts for every tenant, so it names one to start with.
    let (code, message) = refused(&admin, "select zart_start('owner', 'alpha')").await;
    assert_eq!(code, "ZA004");
    assert!(message.contains("set zart.tenant"), "{message}");
}
