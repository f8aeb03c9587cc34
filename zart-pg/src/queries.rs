//! Every SQL string zart-pg sends, one named const per statement. The functions they call
//! live in `sql/zart.sql`; the tables in `migrations/`.

/// Whether the database has the citus extension (then `zart migrate` applies `sql/citus.sql`).
pub const HAS_CITUS: &str =
    "select exists (select from pg_catalog.pg_extension where extname = 'citus')";

/// The schema version of the installed functions (`zart_schema_version`).
pub const SCHEMA_VERSION: &str =
    "select public.zart_schema_version(), pg_catalog.pg_is_in_recovery(), \
     pg_catalog.current_setting('transaction_read_only') = 'on'";

/// `zart_start_execution` with the bucket computed in SQL from the id.
/// Params: id, task_name, input, queue, parent_id, deadline_ms, start_after_ms, start_at,
/// priority, limit_key, start_key, start_key_ms, debounce.
pub const START_EXECUTION: &str = "select created, status, execution_id \
     from public.zart_start_execution(public.zart_bucket($1), $1, $2, $3, $4, $5, $6, $7, $8, \
                                      $9, $10, $11, $12, $13)";

/// [`START_EXECUTION`] that also NOTIFYs `zart_work` (payload: the queue) in the same
/// transaction when it created the execution. Used when no after-commit wake-up is pending, so
/// a lone start wakes a worker at its own commit, one round trip sooner. Same params.
pub const START_EXECUTION_NOTIFY: &str = "select s.created, s.status, s.execution_id, \
     case when s.created then pg_notify('zart_work', $4) end \
     from public.zart_start_execution(public.zart_bucket($1), $1, $2, $3, $4, $5, $6, $7, $8, \
                                      $9, $10, $11, $12, $13) s";

/// [`START_EXECUTION`] that leases the execution it created for an idle worker of this process,
/// in the same statement and transaction (`zart_claim_started`; the in-process hand-off). Same
/// params, then worker_id, lease_ms. Columns: created, status, started_id, then the claimed
/// task's columns as [`CLAIM_TASKS`] returns them (all null when nothing was leased).
pub const START_EXECUTION_HANDED: &str = "select s.created, s.status, s.execution_id as started_id, \
     c.bucket, c.execution_id, c.task_name, c.queue, c.parent_id, c.fence, c.attempts, \
     c.recoveries, c.input, c.deadline_in_ms, c.steps \
     from public.zart_start_execution(public.zart_bucket($1), $1, $2, $3, $4, $5, $6, $7, $8, \
                                      $9, $10, $11, $12, $13) s \
     left join lateral public.zart_claim_started($14, public.zart_bucket($1), $1, $15, s.created) c \
       on true";

/// The bucketless `zart_start`, as SQL callers and triggers use it (and `zart start`), with a
/// delayed start given as a time or as a delay on the database clock (both null: at once).
/// Params: id, task_name, input, queue, start_at, start_after_ms.
pub const START: &str = "select public.zart_start($1, $2, $3, $4, \
     coalesce($5::timestamptz, \
              public.zart_current_time() + $6::bigint * interval '1 millisecond'))";

/// `zart_claim_tasks`. Params: worker_id, queue, task_names, limit, lease_ms, oldest_first,
/// buckets (null: every bucket; on Citus, one shard's).
pub const CLAIM_TASKS: &str =
    "select bucket, execution_id, task_name, queue, parent_id, fence, attempts, recoveries, input, \
            deadline_in_ms, steps \
     from public.zart_claim_tasks($1, $2, $3, $4, $5, $7, $6)";

/// `zart_set_queue_limits`. Params: queue, max_running, rate_limit, rate_interval_ms,
/// key_max_running, key_rate_limit, key_rate_interval_ms.
pub const SET_QUEUE_LIMITS: &str =
    "select public.zart_set_queue_limits($1, $2, $3, $4, $5, $6, $7)";

/// `zart_get_state`. Params: id.
pub const GET_STATE: &str =
    "select name, value, set_at from public.zart_get_state(public.zart_bucket($1), $1)";

/// `zart_list_queue_limits`.
pub const LIST_QUEUE_LIMITS: &str = "select queue, max_running, rate_limit, rate_interval_ms, \
     key_max_running, key_rate_limit, key_rate_interval_ms, running, started_in_window \
     from public.zart_list_queue_limits()";

/// `zart_commit_step`. Params: bucket, execution_id, fence, name, seq, status, output, error,
/// attempts.
pub const COMMIT_STEP: &str = "select public.zart_commit_step($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// `zart_commit_step` inside a `ctx.step_tx` transaction (same params), run only while the
/// transaction's mark is set: no row back means the body ended the transaction itself.
pub const COMMIT_STEP_IN_TX: &str =
    "select public.zart_commit_step($1, $2, $3, $4, $5, $6, $7, $8, $9) \
       from (select 1) once where current_setting('zart.step_tx', true) = 'on'";

/// `zart_commit_steps` (group commit). Params: arrays of bucket, execution_id, fence, name,
/// seq, status, output, error, attempts.
pub const COMMIT_STEPS: &str =
    "select public.zart_commit_steps($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// `zart_complete_executions` (group commit). Params: arrays of bucket, execution_id, fence,
/// status, output, error.
pub const COMPLETE_EXECUTIONS: &str =
    "select code, parent_queue from public.zart_complete_executions($1, $2, $3, $4, $5, $6)";

/// `zart_retry_step`. Params: bucket, execution_id, fence, name, seq, error, attempts, delay_ms.
pub const RETRY_STEP: &str = "select public.zart_retry_step($1, $2, $3, $4, $5, $6, $7, $8)";

/// `zart_complete_execution`. Params: bucket, execution_id, fence, status, output, error.
pub const COMPLETE_EXECUTION: &str =
    "select public.zart_complete_execution($1, $2, $3, $4, $5, $6)";

/// `zart_sleep`. Params: bucket, execution_id, fence, name, seq, delay_ms, wake_at.
pub const SLEEP: &str = "select public.zart_sleep($1, $2, $3, $4, $5, $6, $7)";

/// `zart_await_event`. Params: bucket, execution_id, fence, name, seq, event_name, timeout_ms.
pub const AWAIT_EVENT: &str = "select state, payload, wake_in_ms \
     from public.zart_await_event($1, $2, $3, $4, $5, $6, $7)";

/// `zart_send_event` with the bucket computed from the id. Params: execution_id, name, payload.
pub const SEND_EVENT: &str = "select public.zart_send_event(public.zart_bucket($1), $1, $2, $3)";

/// [`SEND_EVENT`] that also NOTIFYs `zart_work` (payload: the woken execution's queue) in the
/// same transaction when it woke a waiter. Used when no after-commit wake-up is pending. Same
/// params.
pub const SEND_EVENT_NOTIFY: &str = "select w.queue, \
     case when w.queue is not null then pg_notify('zart_work', w.queue) end \
     from public.zart_send_event(public.zart_bucket($1), $1, $2, $3) as w(queue)";

/// `zart_start_child`. Params: bucket, execution_id, fence, name, seq, child_id, task_name,
/// input, queue.
pub const START_CHILD: &str = "select state, created, child_status, output, error \
     from public.zart_start_child($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// `zart_start_children`. Params: bucket, execution_id, fence, names, seqs, child_ids,
/// task_names, inputs, queue, suspend.
pub const START_CHILDREN: &str = "select state, created, child_status, output, error \
     from public.zart_start_children($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// `zart_cancel_execution` with the bucket computed from the id. Params: execution_id.
pub const CANCEL_EXECUTION: &str = "select execution_id, cancelled, woken_queue \
     from public.zart_cancel_execution(public.zart_bucket($1), $1)";

/// `zart_retry_execution` with the bucket computed from the id. Params: execution_id.
pub const RETRY_EXECUTION: &str = "select execution_id, queue \
     from public.zart_retry_execution(public.zart_bucket($1), $1)";

/// `zart_heartbeat`. Params: worker_id, lease_ms, buckets, execution_ids, fences.
pub const HEARTBEAT: &str =
    "select bucket, execution_id from public.zart_heartbeat($1, $2, $3, $4, $5)";

/// `zart_release_tasks`. Params: worker_id, buckets, execution_ids, fences.
pub const RELEASE_TASKS: &str = "select public.zart_release_tasks($1, $2, $3, $4)";

/// `zart_next_run_at`. Params: queue, task_names.
pub const NEXT_RUN_AT: &str = "select public.zart_next_run_at($1, $2)";
/// `zart_next_run_at` within one shard's buckets (on Citus). Params: queue, task_names, buckets.
pub const NEXT_RUN_AT_IN: &str = "select public.zart_next_run_at($1, $2, $3)";

/// Whether `zart_tasks` is a distributed table (only on Citus: run after [`HAS_CITUS`]).
pub const TASKS_DISTRIBUTED: &str = "select exists (select from pg_dist_partition \
     where logicalrelid = 'public.zart_tasks'::regclass and partmethod = 'h')";
/// The buckets of each shard of `zart_tasks`, one row per shard (only on Citus).
pub const SHARD_BUCKETS: &str = "select array_agg(b.b order by b.b) \
     from (select g::smallint as b from generate_series(0, 1023) g) b \
     group by get_shard_id_for_distribution_column('public.zart_tasks', b.b) \
     order by min(b.b)";

/// `zart_schedule`. Params: id, cron, task_name, input, queue, time_zone, overlap, catch_up,
/// catch_up_limit.
pub const UPSERT_SCHEDULE: &str = "select public.zart_schedule($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// `zart_pause_schedule`. Params: id, paused.
pub const PAUSE_SCHEDULE: &str = "select public.zart_pause_schedule($1, $2)";
/// `zart_delete_schedule`. Params: id.
pub const DELETE_SCHEDULE: &str = "select public.zart_delete_schedule($1)";
/// `zart_list_schedules`.
pub const LIST_SCHEDULES: &str = "select * from public.zart_list_schedules()";
/// `zart_claim_schedules`. Params: worker_id, queue, task_names, limit, lease_ms, ahead_ms.
pub const CLAIM_SCHEDULES: &str =
    "select * from public.zart_claim_schedules($1, $2, $3, $4, $5, $6)";
/// `zart_fire_schedule`. Params: worker_id, id, fire_times, execution_ids, next_fire_at, error.
pub const FIRE_SCHEDULE: &str =
    "select execution_id, outcome from public.zart_fire_schedule($1, $2, $3, $4, $5, $6)";
/// `zart_next_schedule_at`. Params: queue, task_names.
pub const NEXT_SCHEDULE_AT: &str = "select public.zart_next_schedule_at($1, $2)";

/// `zart_prune`: deletes (or counts) one batch of old finished executions; null when another
/// session is pruning. Params: status, older_than_ms, limit, dry_run.
pub const PRUNE: &str = "select public.zart_prune($1, $2, $3, $4)";

/// `zart_get_execution`: one execution by id, if the session may see it. Params: id.
pub const GET_EXECUTION: &str =
    "select id, task_name, queue, status, input, output, error, attempts, \
            created_at, started_at, finished_at, parent_id, priority \
       from public.zart_get_execution(public.zart_bucket($1), $1)";

/// Sends a batch of notifications after the commits they announce.
/// Params: channels, payloads.
pub const NOTIFY_BATCH: &str =
    "select pg_notify(n.channel, n.payload) from unnest($1::text[], $2::text[]) as n(channel, payload)";

/// The channels the listener subscribes to.
pub const LISTEN: &str = "listen zart_work; listen zart_timer; listen zart_done; listen zart_probe";

/// Channel: new work on a queue (payload: the queue name).
pub const CHANNEL_WORK: &str = "zart_work";
/// Channel: a task was rescheduled to later (payload: the queue name).
pub const CHANNEL_TIMER: &str = "zart_timer";
/// Channel: executions finished (payload: a JSON array of their ids; the notifier groups
/// them, and `zart_cancel` sends one array per execution).
pub const CHANNEL_DONE: &str = "zart_done";

/// Serialises concurrent `zart migrate` runs (session-level advisory lock).
pub const MIGRATE_LOCK: &str = "select pg_advisory_lock(7215201001)";
/// Releases [`MIGRATE_LOCK`].
pub const MIGRATE_UNLOCK: &str = "select pg_advisory_unlock(7215201001)";

/// One page of executions, newest first ([`zart::admin::Admin::list_executions`]); reads the
/// tables (zart_reader). Params: statuses (null: any), task_name, queue, created_since,
/// created_until, cursor created_at, cursor id (both null: the first page), limit, id prefix.
/// The status, attempts and start are live (as `zart_execution_status` gives them: a leased
/// task row is running); the status filter is written on the stored column, so that a filter
/// on failed or cancelled keeps its partial index (the statuses are constants in a custom plan).
pub const LIST_EXECUTIONS: &str = "select e.id, e.task_name, e.queue, \
            case when t.locked_by is not null then 'running' else e.status end as status, \
            coalesce(t.attempts, e.attempts) as attempts, e.parent_id, \
            e.created_at, coalesce(e.started_at, t.started_at) as started_at, e.finished_at \
       from public.zart_executions e \
       left join public.zart_tasks t on t.bucket = e.bucket and t.execution_id = e.id \
      where ($1::text[] is null \
             or (e.status = any ($1) and t.locked_by is null) \
             or ('running' = any ($1) and t.locked_by is not null)) \
        and ($2::text is null or e.task_name = $2) \
        and ($3::text is null or e.queue = $3) \
        and ($4::timestamptz is null or e.created_at >= $4) \
        and ($5::timestamptz is null or e.created_at < $5) \
        and ($6::timestamptz is null or (e.created_at, e.id) < ($6, $7)) \
        and ($9::text is null or starts_with(e.id collate \"C\", $9)) \
      order by e.created_at desc, e.id desc \
      limit $8";

/// Where a page of [`LIST_EXECUTIONS`] after an execution starts. Params: id.
pub const LIST_CURSOR: &str = "select e.created_at from public.zart_executions e \
      where e.bucket = public.zart_bucket($1) and e.id = $1";

/// One execution in full, with the database clock ([`zart::admin::Admin::describe_execution`]).
/// Params: id.
pub const DESCRIBE_EXECUTION: &str =
    "select e.id, e.task_name, e.queue, e.status, e.input, e.output, e.error, e.attempts, \
            e.parent_id, e.deadline_at, e.created_at, e.started_at, e.updated_at, e.finished_at, \
            public.zart_current_time() as now \
       from public.zart_execution_status e \
      where e.bucket = public.zart_bucket($1) and e.id = $1";

/// The task row of an execution (none once finished). Params: id.
pub const DESCRIBE_TASK: &str =
    "select nullif(t.run_at, 'infinity') as run_at, t.locked_by, t.wait_kind, t.wait_name, \
            t.recoveries \
       from public.zart_tasks t \
      where t.bucket = public.zart_bucket($1) and t.execution_id = $1";

/// The steps of an execution in call order. Params: id.
pub const DESCRIBE_STEPS: &str =
    "select s.seq, s.name, s.kind, s.status, s.attempts, s.output, s.error, \
            nullif(s.wake_at, 'infinity') as wake_at, s.created_at, s.updated_at \
       from public.zart_steps s \
      where s.bucket = public.zart_bucket($1) and s.execution_id = $1 \
      order by s.seq";

/// The children of an execution, oldest first. Params: id.
pub const DESCRIBE_CHILDREN: &str =
    "select e.id, e.task_name, e.queue, e.status, e.attempts, e.parent_id, \
            e.created_at, e.started_at, e.finished_at \
       from public.zart_execution_status e \
      where e.parent_id = $1 \
      order by e.created_at, e.id";

/// The unconsumed events of an execution, oldest first. Params: id.
pub const DESCRIBE_EVENTS: &str = "select v.name, v.payload, v.created_at \
       from public.zart_events v \
      where v.bucket = public.zart_bucket($1) and v.execution_id = $1 and v.consumed_at is null \
      order by v.event_id";

/// The live queue grouped by queue and status, with the due backlog at the database clock
/// ([`zart::admin::Admin::queue_stats`]); reads `zart_tasks` only (zart_reader), never the
/// history. The status is worked out from the task row as the stored functions set it: leased
/// is running, a sleep or retry back-off sleeping, an event or child wait waiting. Columns:
/// queue, status, executions, due, oldest_due_ms (null when none is due).
pub const QUEUE_STATS: &str = "with c as (select public.zart_current_time() as now) \
     select t.queue, \
            case when t.locked_by is not null then 'running' \
                 when t.wait_kind in ('sleep', 'retry') then 'sleeping' \
                 when t.wait_kind is not null then 'waiting' \
                 else 'scheduled' end as status, \
            count(*) as executions, \
            count(*) filter (where t.run_at <= c.now) as due, \
            (extract(epoch from c.now - min(t.run_at) filter (where t.run_at <= c.now)) \
               * 1000)::bigint as oldest_due_ms \
       from public.zart_tasks t cross join c \
      group by t.queue, 2, c.now";

/// The names of the V-migrations recorded as applied, if the history table exists.
pub const APPLIED_MIGRATIONS: &str =
    "select h.name, h.version from public.zart_schema_history h order by h.version";

/// Whether the migration history table exists.
pub const HISTORY_EXISTS: &str = "select to_regclass('public.zart_schema_history') is not null";

/// The installed schema version, read from the source of `zart_schema_version()` in the
/// catalog (so a login without EXECUTE on it still learns it), and whether the session may
/// execute it; no row when the function is missing (for `zart doctor`).
pub const INSTALLED_SCHEMA_VERSION: &str = "select substring(p.prosrc from '[0-9]+')::integer, \
            pg_catalog.has_function_privilege(p.oid, 'execute') \
       from pg_catalog.pg_proc p \
      where p.oid = to_regprocedure('public.zart_schema_version()')";

/// Who this session is and the server's clock (for `zart doctor`).
pub const SESSION: &str = "select current_user::text, \
            (select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user), \
            current_setting('server_version'), clock_timestamp()";

/// Which Zart group roles the session's user is a member of (for `zart doctor`).
pub const ROLE_MEMBERSHIPS: &str = "select r.rolname::text, \
            pg_catalog.pg_has_role(current_user, r.oid, 'member') \
       from pg_catalog.pg_roles r \
      where r.rolname in ('zart_worker', 'zart_client', 'zart_reader') \
      order by r.rolname";

/// Whether the session may execute each of the named `public` functions (for `zart doctor`).
/// Params: function names.
pub const FUNCTION_PRIVILEGES: &str = "select p.proname::text, \
            bool_and(pg_catalog.has_function_privilege(p.oid, 'execute')) \
       from pg_catalog.pg_proc p \
      where p.pronamespace = 'public'::regnamespace and p.proname = any ($1) \
      group by p.proname order by p.proname";

/// Whether the session may read `zart_executions` (the reader's grant; for `zart doctor`).
pub const CAN_READ_EXECUTIONS: &str = "select to_regclass('public.zart_executions') is not null \
        and pg_catalog.has_table_privilege('public.zart_executions', 'select')";

/// The channel LISTEN/NOTIFY is checked with, by `zart doctor` and by every listener when it
/// connects (each probe sends its own payload).
pub const PROBE_LISTEN: &str = "listen zart_probe";
/// Sends a LISTEN/NOTIFY probe. Params: payload.
pub const PROBE_NOTIFY: &str = "select pg_notify('zart_probe', $1)";
/// Channel: probes ([`PROBE_NOTIFY`]).
pub const CHANNEL_PROBE: &str = "zart_probe";

/// [`RETRY_EXECUTION`] with a `zart_work` wake-up for each revived execution's queue sent in
/// the same statement, as `zart_retry` does. Params: execution_id.
pub const RETRY_EXECUTION_NOTIFY: &str = "select r.execution_id, pg_notify('zart_work', r.queue) \
       from public.zart_retry_execution(public.zart_bucket($1), $1) r";

/// [`CANCEL_EXECUTION`] with its wake-ups sent in the same statement, as `zart_cancel` does:
/// `zart_done` for each cancelled execution, `zart_work` for a woken parent's queue. For
/// short-lived processes that cannot count on an after-commit wake-up. Params: execution_id.
pub const CANCEL_EXECUTION_NOTIFY: &str = "select c.execution_id, c.cancelled, \
            case when c.cancelled \
                 then pg_notify('zart_done', jsonb_build_array(c.execution_id)::text) \
                 else pg_notify('zart_work', c.woken_queue) end \
       from public.zart_cancel_execution(public.zart_bucket($1), $1) c";

/// Writes an audit entry before an admin action ([`zart::audit::AuditLog::audit_begin`]).
/// Params: actor, action, target, params.
pub const AUDIT_BEGIN: &str = "select public.zart_audit_begin($1, $2, $3, $4)";

/// Records how an audited action ended ([`zart::audit::AuditLog::audit_finish`]). Params: id,
/// outcome, detail.
pub const AUDIT_FINISH: &str = "select public.zart_audit_finish($1, $2, $3)";

/// The audit log newest first ([`zart::audit::AuditLog::list_audit`]); reads the table
/// (zart_reader). Params: before id (null: from the newest), limit.
pub const LIST_AUDIT: &str =
    "select a.id, a.at, a.actor, a.action, a.target, a.params, a.outcome, a.detail, \
            a.finished_at \
       from public.zart_audit_log a \
      where ($1::bigint is null or a.id < $1) \
      order by a.id desc \
      limit $2";

/// Records a running worker ([`zart::Scheduler::record_presence`]). Params: worker id, host,
/// pid, queue, task names, concurrency, running, interval ms, starting.
pub const WORKER_SEEN: &str = "select public.zart_worker_seen($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Records a worker's graceful stop ([`zart::Scheduler::record_departure`]). Params: worker id.
pub const WORKER_GONE: &str = "select public.zart_worker_gone($1)";

/// The workers seen, most recently first, with the database clock
/// ([`zart::admin::Admin::list_workers`]); reads the table (zart_reader). No params.
pub const LIST_WORKERS: &str =
    "select w.worker_id, w.host, w.pid, w.queue, w.task_names, w.concurrency, w.running, \
            w.interval_ms, w.started_at, w.seen_at, w.stopped_at, \
            public.zart_current_time() as now \
       from public.zart_workers w \
      order by w.seen_at desc, w.worker_id";

/// The database clock alone (for [`LIST_WORKERS`] when there is no worker).
pub const CURRENT_TIME: &str = "select public.zart_current_time()";
