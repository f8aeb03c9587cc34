//! Every SQL statement of the MySQL backend, one named const each.
//!
//! Parameters are numbered (`?1`, as often as needed) and rewritten to MySQL's positional `?`
//! when run; times are bound as Zart's fixed-width text ([`crate::clock::format`]), so text
//! comparisons are time comparisons. Statements run prepared (mysql_async caches them per
//! connection).

// ---- schema -------------------------------------------------------------------------------

/// The table that records applied migrations (created before the first one).
pub const CREATE_SCHEMA_HISTORY: &str = "create table if not exists zart_schema_history (
    version    bigint       not null primary key,
    name       varchar(255) not null,
    applied_on char(24) character set ascii collate ascii_bin not null
) engine = InnoDB";
/// The highest applied migration, or null.
pub const SCHEMA_VERSION: &str = "select cast(max(version) as signed) from zart_schema_history";
/// Whether the history table exists in the current database.
pub const HAS_SCHEMA_HISTORY: &str = "select count(*) from information_schema.tables
    where table_schema = database() and table_name = 'zart_schema_history'";
/// Records one applied migration.
pub const RECORD_MIGRATION: &str =
    "insert into zart_schema_history (version, name, applied_on) values (?1, ?2, ?3)";
/// Serialises migrators: a named lock held by the migrating session (waits up to 60 s).
pub const MIGRATION_LOCK: &str = "select get_lock('zart_migrate', 60)";
/// Gives the migration lock back.
pub const MIGRATION_UNLOCK: &str = "select release_lock('zart_migrate')";

// ---- server checks ------------------------------------------------------------------------

/// What the start checks refuse on: version, binlog format, default engine.
pub const SERVER_SETTINGS: &str =
    "select version(), @@global.binlog_format, @@default_storage_engine";
/// The session's isolation level on MariaDB (`tx_isolation`; 11.1+ also has the MySQL name).
pub const MARIADB_ISOLATION: &str = "select @@session.tx_isolation";
/// The session's isolation level on MySQL 8.
pub const MYSQL_ISOLATION: &str = "select @@session.transaction_isolation";
/// The isolation level every pooled connection runs with.
pub const SESSION_ISOLATION: &str = "set session transaction isolation level read committed";
/// The session time zone, character set and SQL mode: strict (a value that does not fit is an
/// error, never silently cut) and no engine substitution (a table that cannot be InnoDB is
/// refused, never created as another engine).
pub const SESSION_ZONE: &str = "set time_zone = '+00:00', names utf8mb4,
    sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'";

// ---- clock --------------------------------------------------------------------------------

/// The server's time in milliseconds since the epoch.
pub const NOW: &str = "select cast(floor(unix_timestamp(utc_timestamp(6)) * 1000) as signed)";
/// [`NOW`] plus the test clock's offset.
pub const NOW_WITH_OFFSET: &str =
    "select cast(floor(unix_timestamp(utc_timestamp(6)) * 1000) as signed)
        + coalesce((select clock_offset_ms from zart_clock where singleton = 1), 0)";
/// Moves the test clock forward by ?1 milliseconds.
pub const ADVANCE_CLOCK: &str = "insert into zart_clock (singleton, clock_offset_ms) values (1, ?1)
    on duplicate key update clock_offset_ms = clock_offset_ms + values(clock_offset_ms)";

// ---- start --------------------------------------------------------------------------------

/// Inserts an execution if its id is new.
pub const INSERT_EXECUTION: &str = "insert into zart_executions
    (id, task_name, queue, input, parent_id, deadline_at, created_at, updated_at, start_at,
     priority, limit_key)
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)
    on duplicate key update id = id";
/// Inserts the task row of a new execution, due at ?4 (now, or its delayed start), with the
/// execution's priority and limit key.
pub const INSERT_TASK: &str = "insert into zart_tasks
    (execution_id, task_name, queue, run_at, priority, limit_key)
    values (?1, ?2, ?3, ?4, ?5, ?6)";
/// What a repeated start is compared with.
pub const EXISTING_EXECUTION: &str = "select task_name, input, queue, parent_id, deadline_at,
    coalesce(start_at, created_at), status, priority, limit_key from zart_executions
    where id = ?1";
/// An execution's priority (a child runs at its parent's).
pub const EXECUTION_PRIORITY: &str = "select priority from zart_executions where id = ?1";

/// The execution a start key of task ?1 names, whether it debounces, and until when it holds.
pub const START_KEY: &str = "select execution_id, debounce, expires_at from zart_start_keys
    where task_name = ?1 and start_key = ?2 and tenant = ''";
/// Takes the row lock of start key ?2 of task ?1 until commit, inserting a placeholder (no
/// execution, `''`) if the key is new: concurrent starts with one key, in any process, then
/// take turns (a locking read alone would not lock a key that does not exist yet).
pub const LOCK_START_KEY: &str = "insert into zart_start_keys
    (task_name, start_key, tenant, execution_id, debounce, expires_at)
    values (?1, ?2, '', '', ?3, '')
    on duplicate key update task_name = task_name";
/// Points a start key at execution ?3 until ?5 (a new key is ?4: debounce or not).
pub const SET_START_KEY: &str = "insert into zart_start_keys
    (task_name, start_key, tenant, execution_id, debounce, expires_at)
    values (?1, ?2, '', ?3, ?4, ?5)
    on duplicate key update execution_id = values(execution_id), expires_at = values(expires_at)";
/// Moves a debounced execution's task to ?2 while no worker has claimed it yet.
pub const DEBOUNCE_TASK: &str = "update zart_tasks set run_at = ?2
    where execution_id = ?1 and attempts = 0 and locked_by is null";
/// A debounced execution's new input, start and deadline.
pub const DEBOUNCE_EXECUTION: &str = "update zart_executions
    set input = ?2, start_at = ?3, deadline_at = ?4, updated_at = ?5
    where id = ?1";

/// Whether task name ?2 of queue ?1 has tasks of more than one priority (two index dives).
macro_rules! several_levels {
    () => {
        "(select min(priority) <> max(priority) from zart_tasks where queue = ?1 and task_name = ?2)"
    };
}

// ---- claims -------------------------------------------------------------------------------

/// The priorities of task name ?2 in queue ?1, highest first. Neither MariaDB nor MySQL
/// reads `distinct priority` by skipping through the claim index (it reads every task row of
/// the name), so the usual case, one priority, is answered from the index's two ends
/// (`min` and `max`, one dive each), and only several priorities read the rows.
pub const CLAIM_LEVELS: &str = concat!(
    "select mx from (select min(priority) mn, max(priority) mx from zart_tasks
                  where queue = ?1 and task_name = ?2) r where mn = mx
     union all
     select distinct priority from zart_tasks where queue = ?1 and task_name = ?2 and ",
    several_levels!(),
    " order by 1 desc"
);
/// Due tasks of one name and priority, earliest first (one range of the claim index), at
/// most ?5, locked for this claim; rows another claim holds are skipped.
pub const DUE_TASKS: &str = "select execution_id, wait_kind, wait_name, task_name, attempts,
        recoveries + (locked_by is not null), limit_key, run_at
    from zart_tasks
    where queue = ?1 and task_name = ?2 and priority = ?3 and run_at <= ?4
    order by run_at limit ?5
    for update skip locked";
/// Ends the sleep a claimed task was woken from, when its time has come.
pub const END_WOKEN_SLEEP: &str = "update zart_steps
    set status = 'completed', output = ?3, attempts = 1, updated_at = ?4
    where execution_id = ?1 and name = ?2 and kind = 'sleep' and status = 'waiting'
      and wake_at <= ?4";
/// The recorded steps of an execution, for replay.
pub const RECORDED_STEPS: &str = "select name, seq, status, output, error, attempts, kind
    from zart_steps where execution_id = ?1 order by seq";

// ---- queue limits -------------------------------------------------------------------------

/// Whether the run of `zart_limit_runs` (in the statement) is still running at time `$now`: its
/// task row holds the run's fence, claimed, the lease not expired (`zart_run_is_running`).
macro_rules! run_is_running {
    ($now:literal) => {
        concat!(
            "exists (select 1 from zart_tasks t
                 where t.execution_id = zart_limit_runs.execution_id
                   and t.fence = zart_limit_runs.fence and t.locked_by is not null
                   and t.run_at > ",
            $now,
            ")"
        )
    };
}

/// The limits of queue ?1 (no row: none).
pub const QUEUE_LIMITS: &str = "select max_running, rate_limit, rate_interval_ms,
    key_max_running, key_rate_limit, key_rate_interval_ms
    from zart_queue_limits where queue = ?1";
/// [`QUEUE_LIMITS`], the row locked until commit: claims of a limited queue take turns on it
/// across processes, so they count its runs one after another (as zart-pg's claims do).
pub const LOCK_QUEUE_LIMITS: &str = "select max_running, rate_limit, rate_interval_ms,
    key_max_running, key_rate_limit, key_rate_interval_ms
    from zart_queue_limits where queue = ?1 for update";
/// Deletes the runs of queue ?1 that count no more: started by ?2 (before every rate window)
/// and not running at ?3.
pub const DELETE_SPENT_RUNS: &str = concat!(
    "delete from zart_limit_runs where queue = ?1 and started_at <= ?2 and not ",
    run_is_running!("?3")
);
/// The runs of queue ?1 running at ?2, and those started after ?3 (null: none counted).
pub const LIMIT_RUN_COUNTS: &str = concat!(
    "select cast(coalesce(sum(",
    run_is_running!("?2"),
    "), 0) as signed), cast(coalesce(sum(started_at > ?3), 0) as signed)
       from zart_limit_runs where queue = ?1"
);
/// [`LIMIT_RUN_COUNTS`] per limit key (runs without a key left out).
pub const KEY_RUN_COUNTS: &str = concat!(
    "select limit_key, cast(coalesce(sum(",
    run_is_running!("?2"),
    "), 0) as signed), cast(coalesce(sum(started_at > ?3), 0) as signed) from zart_limit_runs
      where queue = ?1 and limit_key is not null group by limit_key"
);
/// Records a run claimed in a limited queue.
pub const INSERT_LIMIT_RUN: &str = "insert into zart_limit_runs
    (queue, execution_id, fence, limit_key, started_at) values (?1, ?2, ?3, ?4, ?5)";
/// The first start after ?2 among the runs of queue ?1 (with ?3 = 1, those with a limit key).
pub const FIRST_RUN_AFTER: &str = "select min(started_at) from zart_limit_runs
    where queue = ?1 and started_at > ?2 and (?3 = 0 or limit_key is not null)";
/// Sets the limits of queue ?1, replacing any it had, at ?8.
pub const UPSERT_QUEUE_LIMITS: &str = "insert into zart_queue_limits
    (queue, max_running, rate_limit, rate_interval_ms, key_max_running, key_rate_limit,
     key_rate_interval_ms, updated_at)
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
    on duplicate key update
        max_running = values(max_running), rate_limit = values(rate_limit),
        rate_interval_ms = values(rate_interval_ms), key_max_running = values(key_max_running),
        key_rate_limit = values(key_rate_limit),
        key_rate_interval_ms = values(key_rate_interval_ms), updated_at = values(updated_at)";
/// Removes the limits of queue ?1.
pub const DELETE_QUEUE_LIMITS: &str = "delete from zart_queue_limits where queue = ?1";
/// Removes the recorded runs of queue ?1.
pub const DELETE_QUEUE_RUNS: &str = "delete from zart_limit_runs where queue = ?1";
/// Every queue with limits, by name.
pub const LIST_QUEUE_LIMITS: &str = "select queue, max_running, rate_limit, rate_interval_ms,
    key_max_running, key_rate_limit, key_rate_interval_ms
    from zart_queue_limits order by queue";

// ---- fencing ------------------------------------------------------------------------------

/// Whether a lease is held: the task exists, has this fence, and is locked (the row locked
/// until commit, so no claim takes it over meanwhile).
pub const HELD_TASK: &str = "select count(*) from zart_tasks
    where execution_id = ?1 and fence = ?2 and locked_by is not null for update";
/// Locks an execution's task row (if it has one) until commit: a write that wakes or hands
/// over to a waiting execution waits here for a suspension in flight, so it sees it committed
/// (an `update` alone would pass over a row whose committed version does not match yet).
pub const LOCK_TASK: &str = "select count(*) from zart_tasks where execution_id = ?1 for update";
/// An execution's status.
pub const EXECUTION_STATUS: &str = "select status, parent_id from zart_executions where id = ?1";

// ---- steps and outcomes -------------------------------------------------------------------

macro_rules! step_overwrite {
    () => {
        "output = if(status = 'retrying', values(output), output),
        error = if(status = 'retrying', values(error), error),
        attempts = if(status = 'retrying', values(attempts), attempts),
        updated_at = if(status = 'retrying', values(updated_at), updated_at),
        status = if(status = 'retrying', values(status), status)"
    };
}
/// Records a step result while the lease with fence ?9 is held (no row is written otherwise);
/// a row already recorded is overwritten only while `retrying` ([`STEP_OVERWRITE`]). ?10 is
/// the step's kind (`steps::step_kind`).
pub const UPSERT_STEP: &str = concat!(
    "insert into zart_steps
    (execution_id, name, seq, kind, status, output, error, attempts, created_at, updated_at)
    select ?1, ?2, ?3, ?10, ?4, ?5, ?6, ?7, ?8, ?8
    from dual
    where exists (select 1 from zart_tasks
        where execution_id = ?1 and fence = ?9 and locked_by is not null)
    on duplicate key update ",
    step_overwrite!()
);
/// How a step row already recorded takes a new result: only while `retrying` (the status is
/// assigned last: MySQL evaluates the assignments in order).
pub const STEP_OVERWRITE: &str = step_overwrite!();
/// Sets a suspended execution's status.
pub const SUSPEND_EXECUTION: &str =
    "update zart_executions set status = ?2, updated_at = ?3 where id = ?1";
/// An execution's deadline, parent and queue.
pub const DEADLINE_AND_PARENT: &str =
    "select deadline_at, parent_id, queue from zart_executions where id = ?1";
/// Gives a held lease up until ?3, recording what the task waits for.
pub const SUSPEND_TASK: &str = "update zart_tasks
    set locked_by = null, run_at = ?3, wait_kind = ?4, wait_name = ?5, recoveries = 0
    where execution_id = ?1 and fence = ?2";
/// Removes a held task (the outcome's fence check).
pub const DELETE_HELD_TASK: &str =
    "delete from zart_tasks where execution_id = ?1 and fence = ?2 and locked_by is not null";
/// Records an outcome.
pub const FINISH_EXECUTION: &str = "update zart_executions
    set status = ?2, output = ?3, error = ?4, finished_at = ?5, updated_at = ?5
    where id = ?1";
/// Makes an execution due if it waits for exactly this (kind, name).
pub const WAKE_WAITER: &str = "update zart_tasks set run_at = ?4
    where execution_id = ?1 and wait_kind = ?2 and wait_name = ?3 and locked_by is null";
/// A task's queue.
pub const TASK_QUEUE: &str = "select queue from zart_tasks where execution_id = ?1";

// ---- cancellation -------------------------------------------------------------------------

/// The unfinished children of an execution.
pub const UNFINISHED_CHILDREN: &str = "select id from zart_executions
    where parent_id = ?1 and status not in ('completed', 'failed', 'cancelled')";
/// Removes an execution's task row.
pub const DELETE_TASK: &str = "delete from zart_tasks where execution_id = ?1";
/// Cancels an unfinished execution.
pub const CANCEL_EXECUTION: &str = "update zart_executions
    set status = 'cancelled', finished_at = ?2, updated_at = ?2, error = ?3
    where id = ?1 and status not in ('completed', 'failed', 'cancelled')";

/// What a retry reads of an execution: status, task, queue, the step its error names, deadline.
pub const RETRY_TARGET: &str =
    "select status, task_name, queue, json_unquote(json_extract(error, '$.step')),
    deadline_at from zart_executions where id = ?1";
/// The child whose failure a failed child wait ?2 recorded, if the step is one.
pub const FAILED_CHILD_OF_STEP: &str =
    "select json_unquote(json_extract(error, '$.child_id')) from zart_steps
    where execution_id = ?1 and name = ?2 and status = 'failed' and kind = 'child'";
/// Deletes what a retry re-runs: the failed step ?2 (the one the error names), and every step
/// in back-off.
pub const DELETE_RETRIED_STEPS: &str = "delete from zart_steps
    where execution_id = ?1 and (status = 'retrying' or (status = 'failed' and name = ?2))";
/// The children an execution's open child waits are waiting on.
pub const OPEN_CHILD_WAITS: &str =
    "select json_unquote(json_extract(output, '$.child_id')) from zart_steps
    where execution_id = ?1 and kind = 'child' and status = 'waiting'
      and json_extract(output, '$.child_id') is not null";
/// The task row of a retried execution, due at ?4, its claim count carried on from the
/// execution's: the next claim is not a first one, so it hands over the recorded steps. Its
/// priority and limit key are the execution's.
pub const INSERT_RETRIED_TASK: &str = "insert into zart_tasks
    (execution_id, task_name, queue, run_at, attempts, priority, limit_key)
    select ?1, ?2, ?3, ?4, attempts, priority, limit_key from zart_executions where id = ?1";
/// Makes a failed or cancelled execution scheduled again.
pub const REVIVE_EXECUTION: &str = "update zart_executions
    set status = 'scheduled', output = null, error = null, finished_at = null, updated_at = ?2
    where id = ?1";

// ---- leases -------------------------------------------------------------------------------

/// Renews a lease held by worker ?3 until ?4.
pub const RENEW_LEASE: &str = "update zart_tasks set run_at = ?4
    where execution_id = ?1 and fence = ?2 and locked_by = ?3";
/// Gives back a lease held by worker ?3; due at ?4.
pub const RELEASE_TASK: &str = "update zart_tasks set locked_by = null, run_at = ?4
    where execution_id = ?1 and fence = ?2 and locked_by = ?3";
/// A released execution is scheduled again.
pub const RESCHEDULE_EXECUTION: &str =
    "update zart_executions set status = 'scheduled', updated_at = ?2 where id = ?1";

// ---- waits --------------------------------------------------------------------------------

/// The step row of a wait, if recorded.
pub const FIND_WAIT: &str =
    "select wake_at, status from zart_steps where execution_id = ?1 and name = ?2";
/// Records a wait on first reach.
pub const OPEN_WAIT: &str = "insert into zart_steps
    (execution_id, name, seq, kind, status, wake_at, output, attempts, created_at, updated_at)
    values (?1, ?2, ?3, ?4, 'waiting', ?5, ?6, 0, ?7, ?7)";
/// Records how a wait ended.
pub const CLOSE_WAIT: &str = "update zart_steps
    set status = ?3, output = ?4, error = ?5, attempts = 1, updated_at = ?6
    where execution_id = ?1 and name = ?2";
/// The oldest unconsumed event of a name that arrived by ?3 (null: any time).
pub const OLDEST_EVENT: &str = "select event_id, payload from zart_events
    where execution_id = ?1 and name = ?2 and consumed_at is null
      and (?3 is null or created_at <= ?3)
    order by event_id limit 1";
/// Consumes an event into wait step ?3.
pub const CONSUME_EVENT: &str =
    "update zart_events set consumed_at = ?2, consumed_by = ?3 where event_id = ?1";
/// Buffers an event.
pub const INSERT_EVENT: &str =
    "insert into zart_events (execution_id, name, payload, created_at) values (?1, ?2, ?3, ?4)";
/// Whether an execution is suspended waiting for exactly this event.
pub const WAITS_FOR_EVENT: &str = "select count(*) from zart_tasks
    where execution_id = ?1 and wait_kind = 'event' and wait_name = ?2 and locked_by is null";
/// The timeout of an open event wait step.
/// The open wait for the event ?2 (`event:<name>` for the first wait, `event#<n>:<name>` after):
/// its step name and timeout.
pub const OPEN_EVENT_WAIT: &str = "select name, wake_at from zart_steps
    where execution_id = ?1 and kind = 'event' and status = 'waiting'
      and (name = concat('event:', ?2)
           or (name like 'event#%' and substr(name, locate(':', name) + 1) = ?2))";
/// A child's outcome.
pub const CHILD_OUTCOME: &str = "select status, output, error from zart_executions where id = ?1";

// ---- reads --------------------------------------------------------------------------------

/// The earliest run time of task name ?2 of queue ?1 that satisfies `$cond` (on `t`), waits
/// without a time excluded: the first entry of each priority's index range; with one priority
/// (the usual case) that range alone, found from the index's ends (see [`CLAIM_LEVELS`]).
macro_rules! earliest_run {
    ($cond:literal) => {
        concat!(
            "select case when r.mn = r.mx then
                 (select min(t.run_at) from zart_tasks t
                   where t.queue = ?1 and t.task_name = ?2 and t.priority = r.mx
                     and t.run_at < '9999-12-31T23:59:59.999Z'", $cond, ")
               else
                 (select min((select min(t.run_at) from zart_tasks t
                               where t.queue = ?1 and t.task_name = ?2 and t.priority = l.priority
                                 and t.run_at < '9999-12-31T23:59:59.999Z'", $cond, "))
                    from (select distinct priority from zart_tasks
                           where queue = ?1 and task_name = ?2) l)
               end
             from (select min(priority) mn, max(priority) mx from zart_tasks
                    where queue = ?1 and task_name = ?2) r"
        )
    };
}
/// The earliest timed run of one task name ?2 of queue ?1 (waits without a time excluded).
pub const NEXT_RUN_AT: &str = earliest_run!("");
/// [`NEXT_RUN_AT`] after ?3: the next task to fall due, or lease to run out, once all that is
/// due now is held back by the queue's limits.
pub const NEXT_RUN_AFTER: &str = earliest_run!(" and t.run_at > ?3");
/// The values an execution published (TaskContext::set_state), the latest of each name.
pub const GET_STATE: &str = "select substr(s.name, locate(':', s.name) + 1) as state_name,
    s.output, s.updated_at from zart_steps s
    where s.execution_id = ?1 and s.kind = 'state'
      and s.seq = (select max(o.seq) from zart_steps o
                    where o.execution_id = s.execution_id and o.kind = 'state'
                      and substr(o.name, locate(':', o.name) + 1) = substr(s.name, locate(':', s.name) + 1))
    order by state_name";
/// One execution.
pub const GET_EXECUTION: &str = "select id, task_name, queue, status, input, output, error,
    attempts, created_at, started_at, finished_at, parent_id, priority from zart_executions
    where id = ?1";
/// The cross-process change probe (see `wakeups.rs`): the newest event, the newest execution
/// change and how many executions changed at that instant. Three index look-ups; no write.
pub const CHANGE_PROBE: &str = "select
    coalesce((select max(event_id) from zart_events), 0),
    coalesce((select max(updated_at) from zart_executions), ''),
    (select count(*) from zart_executions
      where updated_at = (select max(updated_at) from zart_executions))";

/// One page of executions, newest first (`Admin::list_executions`). Params: statuses as a
/// JSON array (null: any), task_name, queue, created_since, created_until, cursor created_at,
/// cursor id (both null: the first page), limit.
pub const LIST_EXECUTIONS: &str =
    "select id, task_name, queue, status, attempts, parent_id, created_at, started_at, finished_at
       from zart_executions
      where (?1 is null or json_contains(?1, json_quote(status)))
        and (?2 is null or task_name = ?2)
        and (?3 is null or queue = ?3)
        and (?4 is null or created_at >= ?4)
        and (?5 is null or created_at < ?5)
        and (?6 is null or created_at < ?6 or (created_at = ?6 and id < ?7))
        and (?9 is null or left(id, length(?9)) = ?9)
      order by created_at desc, id desc
      limit ?8";

/// Where a page of [`LIST_EXECUTIONS`] after an execution starts. Params: id.
pub const LIST_CURSOR: &str = "select created_at from zart_executions where id = ?1";

/// The live queue grouped by queue and status, with the due backlog (`Admin::queue_stats`);
/// reads `zart_tasks` only, never the history. The status is worked out from the task row as
/// the operations set it (see zart-pg's `QUEUE_STATS`). Params: now (stored time text).
/// Columns: queue, status, executions, due, oldest due run_at (null when none is due).
pub const QUEUE_STATS: &str = "select queue,
            case when locked_by is not null then 'running'
                 when wait_kind in ('sleep', 'retry') then 'sleeping'
                 when wait_kind is not null then 'waiting'
                 else 'scheduled' end as status,
            count(*), cast(coalesce(sum(run_at <= ?1), 0) as signed),
            min(case when run_at <= ?1 then run_at end)
       from zart_tasks
      group by 1, 2";

/// One execution in full (`Admin::describe_execution`). Params: id.
pub const DESCRIBE_EXECUTION: &str =
    "select id, task_name, queue, status, input, output, error, attempts, parent_id, deadline_at,
            created_at, started_at, updated_at, finished_at
       from zart_executions where id = ?1";

/// The task row of an execution (none once finished); run_at null for "never". Params: id.
pub const DESCRIBE_TASK: &str =
    "select nullif(run_at, '9999-12-31T23:59:59.999Z'), locked_by, wait_kind, wait_name, recoveries
       from zart_tasks where execution_id = ?1";

/// The steps of an execution in call order. Params: id.
pub const DESCRIBE_STEPS: &str = "select seq, name, kind, status, attempts, output, error,
            nullif(wake_at, '9999-12-31T23:59:59.999Z'), created_at, updated_at
       from zart_steps where execution_id = ?1 order by seq";

/// The children of an execution, oldest first. Params: id.
pub const DESCRIBE_CHILDREN: &str =
    "select id, task_name, queue, status, attempts, parent_id, created_at, started_at, finished_at
       from zart_executions where parent_id = ?1 order by created_at, id";

/// The unconsumed events of an execution, oldest first. Params: id.
pub const DESCRIBE_EVENTS: &str = "select name, payload, created_at from zart_events
      where execution_id = ?1 and consumed_at is null order by event_id";

// ---- retention ----------------------------------------------------------------------------

/// The condition of a prunable execution `e`: status ?1, finished before ?2, and not a child
/// whose parent is unfinished (the parent's resume reads the child's row). Equalities rather
/// than an IN list (see V2).
macro_rules! prunable {
    () => {
        "from zart_executions e
    where e.finished_at < ?2 and e.status = ?1
      and not exists (select 1 from zart_executions p
                       where e.parent_id is not null and p.id = e.parent_id
                         and (p.status = 'scheduled' or p.status = 'running'
                              or p.status = 'sleeping' or p.status = 'waiting'))"
    };
}

/// The oldest ?3 prunable executions (see `prunable!`).
pub const PRUNABLE: &str = concat!(
    "select e.id ",
    prunable!(),
    " order by e.finished_at limit ?3"
);
/// How many executions are prunable (a dry run).
pub const COUNT_PRUNABLE: &str = concat!("select count(*) ", prunable!());
/// Deletes the step rows of an execution.
pub const DELETE_STEPS: &str = "delete from zart_steps where execution_id = ?1";
/// Deletes the events of an execution.
pub const DELETE_EVENTS: &str = "delete from zart_events where execution_id = ?1";
/// Deletes an execution.
pub const DELETE_EXECUTION: &str = "delete from zart_executions where id = ?1";

// ---- schedules ----------------------------------------------------------------------------

/// The columns of a schedule as read back (`ops::schedules` reads them in this order).
macro_rules! schedule_columns {
    () => {
        "id, task_name, queue, input, cron, time_zone, overlap, catch_up, catch_up_limit, paused,
        next_fire_at, last_fire_at, last_execution_id, error, updated_at"
    };
}

/// The timing (cron, time zone) of a schedule, to tell a new one and a retimed one apart.
pub const SCHEDULE_TIMING: &str = "select cron, time_zone from zart_schedules where id = ?1";
/// Stores a new schedule, declared at ?10.
pub const INSERT_SCHEDULE: &str = "insert into zart_schedules
    (id, task_name, queue, input, cron, time_zone, overlap, catch_up, catch_up_limit,
     created_at, updated_at)
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)";
/// Replaces a schedule's declaration and clears its error; its fire times, pause, history and
/// hold stay.
pub const UPDATE_SCHEDULE: &str = "update zart_schedules
    set task_name = ?2, queue = ?3, input = ?4, cron = ?5, time_zone = ?6, overlap = ?7,
        catch_up = ?8, catch_up_limit = ?9, error = null
    where id = ?1";
/// A schedule whose timing changed: declared again at ?2, its next fire time to be computed
/// again, and any hold on it given up (the holder's fire, computed from the old timing, is
/// refused).
pub const RETIME_SCHEDULE: &str = "update zart_schedules
    set next_fire_at = null, updated_at = ?2, locked_by = null, locked_until = null
    where id = ?1";
/// Pauses (?2 = 1) or resumes (0) a schedule.
pub const PAUSE_SCHEDULE: &str = "update zart_schedules set paused = ?2 where id = ?1";
/// A schedule's queue.
pub const SCHEDULE_QUEUE: &str = "select queue from zart_schedules where id = ?1";
/// Deletes a schedule.
pub const DELETE_SCHEDULE: &str = "delete from zart_schedules where id = ?1";
/// Due schedules of one task name of queue ?1, at time ?3 (or by ?5, the time a claim looks
/// ahead to), not held, at most ?4, the earliest first (those never computed before all).
pub const DUE_SCHEDULES: &str = concat!(
    "select ",
    schedule_columns!(),
    " from zart_schedules
    where queue = ?1 and task_name = ?2 and paused = 0 and error is null
      and (next_fire_at is null or next_fire_at <= ?5)
      and (locked_until is null or locked_until < ?3)
    order by next_fire_at limit ?4
    for update skip locked"
);
/// Holds a schedule for worker ?2 until ?3.
pub const LOCK_SCHEDULE: &str =
    "update zart_schedules set locked_by = ?2, locked_until = ?3 where id = ?1";
/// What a fire reads of a schedule held by worker ?2 (no row when it is not held).
pub const HELD_SCHEDULE: &str = "select paused, task_name, queue, input, overlap,
    last_execution_id from zart_schedules where id = ?1 and locked_by = ?2";
/// Records a firing that started (or found) execution ?3 for fire time ?2.
pub const RECORD_FIRE: &str =
    "update zart_schedules set last_fire_at = ?2, last_execution_id = ?3 where id = ?1";
/// Ends a fire: the next fire time or the error, and the hold given up.
pub const FIRED_SCHEDULE: &str = "update zart_schedules
    set next_fire_at = ?2, error = ?3, locked_by = null, locked_until = null
    where id = ?1";
/// Gives a hold up without changing anything else (a schedule paused while held).
pub const RELEASE_SCHEDULE: &str =
    "update zart_schedules set locked_by = null, locked_until = null where id = ?1";
/// Every schedule, by id.
pub const LIST_SCHEDULES: &str = concat!(
    "select ",
    schedule_columns!(),
    " from zart_schedules order by id"
);
/// When the next schedule of one task name of queue ?1 can be claimed, at time ?3: its next
/// fire time (now when not computed yet), or the end of another worker's hold if later.
pub const NEXT_SCHEDULE_AT: &str =
    "select min(greatest(coalesce(next_fire_at, ?3), coalesce(locked_until, '')))
    from zart_schedules
    where queue = ?1 and task_name = ?2 and paused = 0 and error is null";

/// Writes an audit entry with outcome `started`. Params: at, actor, action, target, params.
pub const AUDIT_BEGIN: &str =
    "insert into zart_audit_log (at, db_role, actor, action, target, params)
     values (?1, current_user(), ?2, ?3, ?4, ?5)";

/// The id [`AUDIT_BEGIN`] gave its row, on the same connection.
pub const LAST_INSERT_ID: &str = "select cast(last_insert_id() as signed)";

/// Records how an audited action ended, once. Params: id, outcome, detail, at.
pub const AUDIT_FINISH: &str = "update zart_audit_log
        set outcome = ?2, detail = ?3, finished_at = ?4
      where id = ?1 and outcome = 'started'";

/// The audit log newest first. Params: before id (null: from the newest), limit.
pub const LIST_AUDIT: &str =
    "select id, at, actor, action, target, params, outcome, detail, finished_at
       from zart_audit_log
      where (?1 is null or id < ?1)
      order by id desc
      limit ?2";

/// Records a running worker (a stopped record starts again). Params: worker id, host, pid,
/// queue, task names (JSON), concurrency, running, interval ms, now.
pub const WORKER_SEEN: &str = "insert into zart_workers
        (worker_id, host, pid, queue, task_names, concurrency, running, interval_ms, db_role,
         started_at, seen_at)
     values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, current_user(), ?9, ?9)
     on duplicate key update
        started_at = if(stopped_at is null, started_at, values(started_at)),
        host = values(host), pid = values(pid), queue = values(queue),
        task_names = values(task_names), concurrency = values(concurrency),
        running = values(running), interval_ms = values(interval_ms),
        db_role = values(db_role), seen_at = values(seen_at), stopped_at = null";

/// Forgets the workers not seen since a time. Params: the time.
pub const FORGET_WORKERS: &str = "delete from zart_workers where seen_at < ?1";

/// Records a worker's graceful stop. Params: worker id, now.
pub const WORKER_GONE: &str = "update zart_workers set stopped_at = ?2, running = 0
      where worker_id = ?1 and stopped_at is null";

/// The workers seen, most recently first.
pub const LIST_WORKERS: &str =
    "select worker_id, host, pid, queue, task_names, concurrency, running, interval_ms,
            started_at, seen_at, stopped_at
       from zart_workers
      order by seen_at desc, worker_id";
