//! Every SQL string zart-pg sends, one named const per statement. The functions they call
//! live in `sql/zart.sql`; the tables in `migrations/`.

/// The schema version of the installed functions (`zart_schema_version`).
pub const SCHEMA_VERSION: &str = "select public.zart_schema_version()";

/// `zart_start_execution` with the bucket computed in SQL from the id.
/// Params: id, task_name, input, queue, parent_id, deadline_ms.
pub const START_EXECUTION: &str = "select created, status \
     from public.zart_start_execution(public.zart_bucket($1), $1, $2, $3, $4, $5, $6)";

/// [`START_EXECUTION`] that also NOTIFYs `zart_work` (payload: the queue) in the same
/// transaction when it created the execution. Used when no after-commit wake-up is pending, so
/// a lone start wakes a worker at its own commit, one round trip sooner. Same params.
pub const START_EXECUTION_NOTIFY: &str = "select s.created, s.status, \
     case when s.created then pg_notify('zart_work', $4) end \
     from public.zart_start_execution(public.zart_bucket($1), $1, $2, $3, $4, $5, $6) s";

/// The bucketless `zart_start`, as SQL callers and triggers use it (and `zart start`).
/// Params: id, task_name, input, queue.
pub const START: &str = "select public.zart_start($1, $2, $3, $4)";

/// `zart_claim_tasks`. Params: worker_id, queue, task_names, limit, lease_ms.
pub const CLAIM_TASKS: &str =
    "select bucket, execution_id, task_name, queue, parent_id, fence, attempts, recoveries, input, \
            deadline_in_ms, steps \
     from public.zart_claim_tasks($1, $2, $3, $4, $5)";

/// `zart_commit_step`. Params: bucket, execution_id, fence, name, seq, status, output, error,
/// attempts.
pub const COMMIT_STEP: &str = "select public.zart_commit_step($1, $2, $3, $4, $5, $6, $7, $8, $9)";

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
     from public.zart_start_child($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// `zart_cancel_execution` with the bucket computed from the id. Params: execution_id.
pub const CANCEL_EXECUTION: &str = "select execution_id, cancelled, woken_queue \
     from public.zart_cancel_execution(public.zart_bucket($1), $1)";

/// `zart_heartbeat`. Params: worker_id, lease_ms, buckets, execution_ids, fences.
pub const HEARTBEAT: &str =
    "select bucket, execution_id from public.zart_heartbeat($1, $2, $3, $4, $5)";

/// `zart_release_tasks`. Params: worker_id, buckets, execution_ids, fences.
pub const RELEASE_TASKS: &str = "select public.zart_release_tasks($1, $2, $3, $4)";

/// `zart_next_run_at`. Params: queue, task_names.
pub const NEXT_RUN_AT: &str = "select public.zart_next_run_at($1, $2)";

/// `zart_get_execution`: one execution by id, if the session may see it. Params: id.
pub const GET_EXECUTION: &str =
    "select id, task_name, queue, status, input, output, error, attempts, \
            created_at, started_at, finished_at \
       from public.zart_get_execution(public.zart_bucket($1), $1)";

/// Sends a batch of notifications after the commits they announce.
/// Params: channels, payloads.
pub const NOTIFY_BATCH: &str =
    "select pg_notify(n.channel, n.payload) from unnest($1::text[], $2::text[]) as n(channel, payload)";

/// The channels the listener subscribes to.
pub const LISTEN: &str = "listen zart_work; listen zart_timer; listen zart_done";

/// Channel: new work on a queue (payload: the queue name).
pub const CHANNEL_WORK: &str = "zart_work";
/// Channel: a task was rescheduled to later (payload: the queue name).
pub const CHANNEL_TIMER: &str = "zart_timer";
/// Channel: an execution finished (payload: the execution id).
pub const CHANNEL_DONE: &str = "zart_done";

/// Serialises concurrent `zart migrate` runs (session-level advisory lock).
pub const MIGRATE_LOCK: &str = "select pg_advisory_lock(7215201001)";
/// Releases [`MIGRATE_LOCK`].
pub const MIGRATE_UNLOCK: &str = "select pg_advisory_unlock(7215201001)";
