//! Least privilege (zart-pg/sql/roles.sql, applied by `zart migrate`): a worker and a client
//! running as the roles `zart_worker`
//! and `zart_client` take a workflow through steps, a durable retry, a child, a sleep and an
//! event; the client cannot claim; `zart_reader` can read everything and change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use zart::scheduler::ClaimTasksParams;
use zart::{
    DurableScheduler, Error, ExecutionStatus, RetryConfig, Scheduler, TaskContext, TaskError,
    TaskHandler, TaskRegistry, Worker, WorkerConfig,
};
use zart_pg::{PgPool, PostgresScheduler};
use zart_tests::logins::Logins;
use zart_tests::{column, init_tracing, tasks, wait_for, TestDb};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

/// Functions every role may call.
const SHARED_FUNCTIONS: &[&str] = &[
    "zart_bucket",
    "zart_current_time",
    "zart_get_execution",
    "zart_get_state",
    "zart_list_queue_limits",
    "zart_list_schedules",
    "zart_schema_version",
    "zart_visible_tenants",
];
/// Functions `zart_client` may call besides the shared ones: its entry points.
const CLIENT_FUNCTIONS: &[&str] = &[
    "zart_audit_begin",
    "zart_audit_finish",
    "zart_cancel",
    "zart_cancel_execution",
    "zart_delete_schedule",
    "zart_emit_event",
    "zart_pause_schedule",
    "zart_retry",
    "zart_retry_execution",
    "zart_schedule",
    "zart_send_event",
    "zart_set_queue_limits",
    "zart_start",
    "zart_start_execution",
];
/// Functions `zart_worker` may call besides the shared ones: its entry points.
const WORKER_FUNCTIONS: &[&str] = &[
    "zart_await_event",
    "zart_claim_schedules",
    "zart_claim_started",
    "zart_claim_tasks",
    "zart_commit_step",
    "zart_commit_steps",
    "zart_complete_execution",
    "zart_complete_executions",
    "zart_fire_schedule",
    "zart_heartbeat",
    "zart_next_run_at",
    "zart_next_schedule_at",
    "zart_prune",
    "zart_release_tasks",
    "zart_retry_step",
    "zart_sleep",
    "zart_start_child",
    "zart_start_children",
    "zart_worker_gone",
    "zart_worker_seen",
];
/// Functions no role may call on its own: the entry points call them as their owner.
const INTERNAL_FUNCTIONS: &[&str] = &[
    "zart_apply_settings",
    "zart_cancel_tree",
    "zart_check_audit_text",
    "zart_check_ms",
    "zart_check_payload",
    "zart_check_text",
    "zart_child_wait",
    "zart_claim_levels",
    "zart_close_wait",
    "zart_deliver_event",
    "zart_fence_code",
    "zart_new_fence",
    "zart_fence_of",
    "zart_insert_execution",
    "zart_limit_counts",
    "zart_limit_freed",
    "zart_limits_on",
    "zart_lock_leases",
    "zart_lock_task",
    "zart_open_wait",
    "zart_payload_limit",
    "zart_pick_tasks",
    "zart_raise_fence",
    "zart_session_tenants",
    "zart_settings_changed",
    "zart_sleep_is_over",
    "zart_start_key",
    "zart_start_tenant",
    "zart_start_time",
    "zart_step_problem",
    "zart_suspend",
    "zart_take_event",
    "zart_tenancy_on",
    "zart_try_commit_step",
    "zart_try_complete_execution",
    "zart_try_lock_task",
    "zart_outcome_problem",
    "zart_wait_lock",
    "zart_wake_waiter",
];

const TABLES: &[&str] = &[
    "zart_executions",
    "zart_tasks",
    "zart_steps",
    "zart_events",
    "zart_clock",
    "zart_settings",
    "zart_tenant_access",
    "zart_schema_history",
    "zart_audit_log",
    "zart_workers",
];
/// The tables the reader may read (the others are the owner's alone).
const READABLE_TABLES: &[&str] = &[
    "zart_executions",
    "zart_tasks",
    "zart_steps",
    "zart_events",
    "zart_clock",
    "zart_schema_history",
    "zart_audit_log",
    "zart_workers",
];
const VIEWS: &[&str] = &[
    "zart_execution_status",
    "zart_execution_counts",
    "zart_step_timeline",
    "zart_waiting",
    "zart_overdue",
];
const PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
];

/// The table privileges each role has; everything else is denied. The worker and the client
/// have none but the test clock's: they act only through their functions.
fn table_privileges(role: Role) -> BTreeSet<(&'static str, &'static str)> {
    let mut set = BTreeSet::new();
    set.insert(("zart_clock", "SELECT"));
    if role == Role::Reader {
        for t in READABLE_TABLES.iter().chain(VIEWS) {
            set.insert((*t, "SELECT"));
        }
    }
    set
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Worker,
    Client,
    Reader,
}

const ROLES: [Role; 3] = [Role::Worker, Role::Client, Role::Reader];

impl Role {
    fn login(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Client => "client",
            Role::Reader => "reader",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Role::Worker => "zart_worker",
            Role::Client => "zart_client",
            Role::Reader => "zart_reader",
        }
    }

    fn functions(self) -> BTreeSet<&'static str> {
        let own: &[&str] = match self {
            Role::Worker => WORKER_FUNCTIONS,
            Role::Client => CLIENT_FUNCTIONS,
            Role::Reader => &[],
        };
        SHARED_FUNCTIONS.iter().chain(own).copied().collect()
    }
}

/// One LOGIN user in each group role `zart migrate` set up (the template database was
/// migrated, so the roles exist and the grants are in place), and one in none.
struct Roles {
    logins: Logins,
}

impl Roles {
    async fn apply(db: &TestDb) -> Roles {
        let admin = db.client().await;
        // Applying the roles again (as every `zart migrate` does) is harmless.
        admin.batch_execute(zart_pg::ROLES_SQL).await.unwrap();
        let logins = Logins::new(db);
        for role in ROLES {
            logins.create(&admin, role.login(), &[role.group()]).await;
        }
        logins.create(&admin, "nobody", &[]).await;
        Roles { logins }
    }

    fn user(&self, role: Role) -> String {
        self.logins.name(role.login())
    }

    async fn client(&self, _db: &TestDb, role: Role) -> tokio_postgres::Client {
        self.logins.client(role.login()).await
    }

    fn pool(&self, _db: &TestDb, role: Role) -> PgPool {
        self.logins.pool(role.login())
    }
}

/// The SQLSTATE of a failed statement.
async fn sqlstate(client: &tokio_postgres::Client, sql: &str) -> String {
    let err = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} should have been refused"));
    err.code()
        .unwrap_or_else(|| panic!("{sql}: {err:?}"))
        .code()
        .to_owned()
}

/// Every `zart_*` function in the database, with a call of it on NULL arguments. The NULLs
/// come from subqueries, so the planner cannot fold a call away without running it (a strict
/// function of constant NULLs is NULL, and would not be checked for EXECUTE).
async fn zart_functions(client: &tokio_postgres::Client) -> Vec<(String, String)> {
    client
        .query(
            "select p.proname,
                    format('select public.%I(%s)', p.proname,
                           coalesce((select string_agg(format('(select null::%s)',
                                                              format_type(a.t, null)),
                                                       ', ' order by a.n)
                                       from unnest(p.proargtypes::oid[]) with ordinality
                                            as a(t, n)), ''))
               from pg_proc p
              where p.pronamespace = 'public'::regnamespace and p.proname like 'zart\\_%'
              order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_has_exactly_the_privileges_it_needs() {
    init_tracing();
    let db = TestDb::new().await;
    // A database upgraded from schema 3 carries the old model's grants (table writes, every
    // function); applying the roles (as `zart migrate` does) takes them back.
    db.client()
        .await
        .batch_execute(
            "grant select, insert, update, delete on all tables in schema public
                 to zart_client, zart_worker, zart_reader;
             grant execute on all functions in schema public to zart_client, zart_worker;",
        )
        .await
        .unwrap();
    let roles = Roles::apply(&db).await;
    let admin = db.client().await;

    // Every function is classified: a new one must be added to zart-pg/sql/roles.sql and here.
    let functions = zart_functions(&admin).await;
    let known: BTreeSet<&str> = SHARED_FUNCTIONS
        .iter()
        .chain(CLIENT_FUNCTIONS)
        .chain(WORKER_FUNCTIONS)
        .chain(INTERNAL_FUNCTIONS)
        .copied()
        .collect();
    let present: BTreeSet<&str> = functions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        present, known,
        "zart functions and the roles' lists differ: classify new ones in zart-pg/sql/roles.sql"
    );
    for role in ROLES {
        let user = roles.user(role);
        let allowed = role.functions();
        for (name, _) in &functions {
            let can: bool = admin
                .query_one(
                    "select has_function_privilege($1, p.oid, 'EXECUTE')
                       from pg_proc p
                      where p.pronamespace = 'public'::regnamespace and p.proname = $2",
                    &[&user, name],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                can,
                allowed.contains(name.as_str()),
                "{role:?} EXECUTE on {name}"
            );
        }
        let granted = table_privileges(role);
        for table in TABLES.iter().chain(VIEWS) {
            for privilege in PRIVILEGES {
                let has: bool = admin
                    .query_one(
                        "select has_table_privilege($1, ('public.' || $2)::regclass, $3)",
                        &[&user, table, privilege],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(
                    has,
                    granted.contains(&(*table, *privilege)),
                    "{role:?} {privilege} on {table}"
                );
            }
        }
    }
    // A login with no group role can run none of Zart's functions (PUBLIC lost EXECUTE).
    let client = roles.logins.client("nobody").await;
    for (name, call) in &functions {
        assert_eq!(sqlstate(&client, call).await, "42501", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_selects_everything_and_changes_nothing() {
    init_tracing();
    let db = TestDb::new().await;
    let roles = Roles::apply(&db).await;
    let admin = db.client().await;
    admin
        .batch_execute(
            "select zart_start('r-1', 'fulfil', '{\"sku\": \"A\"}');
             select zart_start('r-2', 'fulfil', '{\"sku\": \"B\"}');
             select zart_emit_event('r-1', 'approval', '{\"ok\": true}');",
        )
        .await
        .unwrap();
    let reader = roles.client(&db, Role::Reader).await;

    for relation in READABLE_TABLES.iter().chain(VIEWS) {
        let sql = format!("select count(*) from {relation}");
        let n: i64 = reader
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("the reader cannot read {relation}: {e:?}"))
            .get(0);
        let expected: i64 = admin.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(n, expected, "{relation}");
    }
    let n: i64 = reader
        .query_one("select count(*) from zart_executions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert!(
        reader
            .query("select * from zart_schema_history", &[])
            .await
            .unwrap()
            .len()
            >= 2
    );
    let version: i32 = reader
        .query_one("select zart_schema_version()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, zart_pg::REQUIRED_SCHEMA_VERSION);
    // The client library's read path works for a reader too.
    let status = PostgresScheduler::new(roles.pool(&db, Role::Reader))
        .get_execution("r-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.input, serde_json::json!({"sku": "A"}));

    // Every other function, and every write, is insufficient_privilege.
    let mut refused = 0;
    for (name, call) in zart_functions(&admin).await {
        if SHARED_FUNCTIONS.contains(&name.as_str()) {
            continue;
        }
        assert_eq!(sqlstate(&reader, &call).await, "42501", "{call}");
        refused += 1;
    }
    let granted: BTreeSet<&str> = CLIENT_FUNCTIONS
        .iter()
        .chain(WORKER_FUNCTIONS)
        .chain(INTERNAL_FUNCTIONS)
        .copied()
        .collect();
    assert_eq!(refused, granted.len());
    // Writes to the tables (views are not updatable at all).
    for table in TABLES {
        for sql in [
            format!("insert into {table} default values"),
            format!(
                "update {table} set {col} = {col}",
                col = first_column(table)
            ),
            format!("delete from {table}"),
            format!("truncate {table}"),
            format!("select 1 from {table} for update"),
            format!("select 1 from {table} for no key update"),
        ] {
            assert_eq!(sqlstate(&reader, &sql).await, "42501", "{sql}");
        }
    }
    // Nothing changed.
    let n: i64 = admin
        .query_one(
            "select (select count(*) from zart_executions) + (select count(*) from zart_tasks)
                  + (select count(*) from zart_events)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
}

fn first_column(table: &str) -> &'static str {
    match table {
        "zart_executions" => "id",
        "zart_tasks" | "zart_steps" | "zart_events" => "execution_id",
        "zart_clock" | "zart_settings" => "singleton",
        "zart_tenant_access" => "tenant",
        "zart_schema_history" => "version",
        "zart_audit_log" => "outcome",
        "zart_workers" => "running",
        other => panic!("no column listed for {other}"),
    }
}

/// `reserve`, a `charge` step that fails its first attempt and retries after a durable 5 s
/// back-off, a child `invoice`, a 60 s sleep, a `hold` step longer than the lease (only
/// heartbeats keep it), the event `approval`, and `ship`. Returns the approval. Step bodies
/// log `(execution, step)` to `runs`.
struct Fulfil {
    runs: Arc<Mutex<Vec<(String, &'static str)>>>,
}

impl Fulfil {
    /// Logs a run of `step`; returns how many runs it had before.
    fn ran(&self, id: &str, step: &'static str) -> usize {
        let mut runs = self.runs.lock().unwrap();
        let before = runs.iter().filter(|(i, s)| i == id && *s == step).count();
        runs.push((id.to_owned(), step));
        before
    }
}

#[async_trait]
impl TaskHandler for Fulfil {
    type Data = serde_json::Value;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        order: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        let id = ctx.execution_id().to_owned();
        let sku = order["sku"].clone();
        ctx.step("reserve", || async move { Ok::<_, std::io::Error>(sku) })
            .await?;
        ctx.step_with_retry(
            "charge",
            RetryConfig::fixed(2, Duration::from_secs(5)),
            || {
                let first = self.ran(&id, "charge") == 0;
                async move {
                    if first {
                        return Err(std::io::Error::other("card declined once"));
                    }
                    Ok(42)
                }
            },
        )
        .await?;
        let invoice: serde_json::Value = ctx
            .child("invoice", "invoice", &serde_json::json!({"for": order}))
            .await?;
        ctx.sleep("cool-off", Duration::from_secs(60)).await?;
        ctx.step("hold", || {
            self.ran(&id, "hold");
            async move {
                // Twice the lease: only heartbeats keep it.
                tokio::time::sleep(Duration::from_millis(3000)).await;
                Ok::<_, std::io::Error>(())
            }
        })
        .await?;
        let approval = ctx
            .wait_for_event::<serde_json::Value>("approval", None)
            .await?
            .received()
            .unwrap_or_default();
        ctx.step("ship", || async move { Ok::<_, std::io::Error>(invoice) })
            .await?;
        Ok(approval)
    }
}

async fn wait_kind(admin: &tokio_postgres::Client, id: &str, kind: &'static str) {
    wait_for(
        &format!("{id} to wait for a {kind}"),
        Duration::from_secs(30),
        || async move {
            let rows = admin
                .query(
                    "select 1 from zart_waiting where execution_id = $1 and wait_kind = $2",
                    &[&id, &kind],
                )
                .await
                .unwrap();
            (!rows.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_a_client_run_a_full_workflow_under_their_roles() {
    init_tracing();
    let db = TestDb::new().await;
    let roles = Roles::apply(&db).await;
    let admin = db.client().await;

    let runs: Arc<Mutex<Vec<(String, &'static str)>>> = Arc::default();
    let mut registry = TaskRegistry::new();
    registry
        .register("fulfil", Fulfil { runs: runs.clone() })
        .unwrap()
        .register("invoice", tasks::Echo)
        .unwrap();
    let registry = Arc::new(registry);

    // The worker connects as the worker role's user only.
    let worker = Worker::new(
        Arc::new(PostgresScheduler::new(roles.pool(&db, Role::Worker))),
        registry.clone(),
        WorkerConfig::default()
            .with_lease_duration(Duration::from_millis(1500))
            .with_heartbeat_interval(Duration::from_millis(150))
            .with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let worker = tokio::spawn(worker.run());

    // The client connects as the client role's user only.
    let client_scheduler = Arc::new(PostgresScheduler::new(roles.pool(&db, Role::Client)));
    let client = DurableScheduler::new(client_scheduler.clone(), registry.clone());
    assert!(
        client
            .start("order-1", "fulfil", serde_json::json!({"sku": "A-1"}))
            .await
            .unwrap()
            .created
    );
    wait_kind(&admin, "order-1", "retry").await;
    db.advance_clock(Duration::from_secs(6)).await;
    wait_kind(&admin, "order-1", "sleep").await;
    db.advance_clock(Duration::from_secs(61)).await;
    wait_kind(&admin, "order-1", "event").await;
    client
        .send_event("order-1", "approval", &serde_json::json!({"by": "dana"}))
        .await
        .unwrap();
    let done = client.wait("order-1", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(serde_json::json!({"by": "dana"})));
    let order_1: Vec<&str> = runs
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| id == "order-1")
        .map(|(_, step)| *step)
        .collect();
    // One failed charge and its retry; one run of the long step: heartbeats kept the lease.
    assert_eq!(order_1, vec!["charge", "charge", "hold"]);
    let child = client.status("order-1/invoice").await.unwrap();
    assert_eq!(child.status, ExecutionStatus::Completed);
    assert_eq!(
        child.output,
        Some(serde_json::json!({"for": {"sku": "A-1"}}))
    );

    // The SQL entry points work for the client role, and so does cancelling.
    let sql_client = roles.client(&db, Role::Client).await;
    sql_client
        .batch_execute(
            "select zart_start('order-2', 'fulfil', '{\"sku\": \"B-2\"}');
             select zart_emit_event('order-2', 'approval', '{\"by\": \"sql\"}');",
        )
        .await
        .unwrap();
    wait_kind(&admin, "order-2", "retry").await;
    let cancelled: i32 = sql_client
        .query_one("select zart_cancel('order-2')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cancelled, 1);
    assert!(
        client
            .start("order-3", "fulfil", serde_json::json!({"sku": "C-3"}))
            .await
            .unwrap()
            .created
    );
    wait_kind(&admin, "order-3", "retry").await;
    assert_eq!(
        client.cancel("order-3").await.unwrap(),
        vec!["order-3".to_owned()]
    );
    for id in ["order-2", "order-3"] {
        assert_eq!(
            client.wait(id, WAIT).await.unwrap().status,
            ExecutionStatus::Cancelled
        );
    }

    // The client cannot claim, nor write steps, nor run any worker function.
    let err = client_scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: "intruder".to_owned(),
            queue: "default".to_owned(),
            task_names: vec!["fulfil".to_owned()],
            limit: 10,
            lease: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Database { message, .. } if message.contains("SQLSTATE 42501")),
        "{err:?}"
    );
    for (name, call) in zart_functions(&admin).await {
        if !Role::Client.functions().contains(name.as_str()) {
            assert_eq!(sqlstate(&sql_client, &call).await, "42501", "{call}");
        }
    }
    assert_eq!(
        sqlstate(&sql_client, "insert into zart_steps default values").await,
        "42501"
    );
    assert_eq!(
        sqlstate(&sql_client, "update zart_events set consumed_at = now()").await,
        "42501"
    );
    // And the worker cannot start top-level work from SQL, send events or cancel.
    let sql_worker = roles.client(&db, Role::Worker).await;
    for sql in [
        "select zart_start('w', 'fulfil')",
        "select zart_emit_event('order-1', 'approval')",
        "select zart_cancel('order-1')",
    ] {
        assert_eq!(sqlstate(&sql_worker, sql).await, "42501", "{sql}");
    }

    stop.shutdown();
    worker.await.unwrap().unwrap();
}

/// Exactly the entry points are SECURITY DEFINER, each with its search_path pinned and no
/// EXECUTE for PUBLIC (a definer runs with the owner's privileges, so who may call it and what
/// names it resolves must not be left open); no internal function is a definer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_entry_points_are_pinned_security_definers_and_none_is_public() {
    init_tracing();
    let db = TestDb::new().await;
    let admin = db.client().await;
    let rows = admin
        .query(
            "select p.proname::text, coalesce(array_to_string(p.proconfig, ','), ''),
                    exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                             where a.grantee = 0 and a.privilege_type = 'EXECUTE')
               from pg_proc p
              where p.pronamespace = 'public'::regnamespace and p.proname like 'zart\\_%'
                and p.prosecdef
              order by 1",
            &[],
        )
        .await
        .unwrap();
    let definers: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let entries: BTreeSet<String> = CLIENT_FUNCTIONS
        .iter()
        .chain(WORKER_FUNCTIONS)
        .chain(&[
            "zart_get_execution",
            "zart_get_state",
            "zart_list_queue_limits",
            "zart_list_schedules",
            "zart_visible_tenants",
        ])
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(definers, entries);
    for row in &rows {
        let name: String = row.get(0);
        let config: String = row.get(1);
        assert!(
            config.contains("search_path=pg_catalog, pg_temp"),
            "{name}: search_path pinned: {config}"
        );
        assert!(!row.get::<_, bool>(2), "PUBLIC must not execute {name}");
    }
    // No function at all is executable by PUBLIC.
    let public: Vec<String> = column(
        &admin,
        "select p.proname::text from pg_proc p
          where p.pronamespace = 'public'::regnamespace and p.proname like 'zart\\_%'
            and exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                         where a.grantee = 0 and a.privilege_type = 'EXECUTE')",
        &[],
    )
    .await;
    assert!(public.is_empty(), "executable by PUBLIC: {public:?}");
}
