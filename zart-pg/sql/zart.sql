-- Zart stored functions: the readable, complete source of every function in the schema.
-- `zart migrate` applies this file after the V-migrations, in one transaction, on every run.
--
-- Map of objects (tables are in migrations/):
--   zart_schema_version()        the schema version this file belongs to; workers check it
--   zart_bucket(id)              stable hash of an execution id into 0..1023 (leads every key)
--   zart_current_time()          the database clock; setting zart.now overrides it (tests)
--   zart_check_text(..)          validates an id or name: 1..255 bytes, else ZA004
--   zart_raise_fence(..)         raises ZA001 (cancelled) or ZA002 (lease lost)
--   zart_start_execution(..)     idempotent start of one execution (bucketed)
--   zart_start(..)               bucketless wrapper for SQL and triggers; NOTIFYs zart_work
--   zart_claim_tasks(..)         claims due tasks with SKIP LOCKED; returns input and steps
--   zart_commit_step(..)         records one step result, fenced by the lease token
--   zart_retry_step(..)          records a failed attempt and suspends until the back-off ends
--   zart_complete_execution(..)  records the final output or error and removes the task row
--   zart_heartbeat(..)           renews the leases of one worker in one statement
--   zart_release_tasks(..)       gives leases back so another worker can claim at once
--   zart_next_run_at(..)         how long until the next task of a queue is due
--
-- SQLSTATEs raised: ZA001 cancelled, ZA002 lease lost, ZA003 start conflict,
-- ZA004 invalid input, ZA005 wrong bucket, ZA006 step already recorded.

-- Called by workers and clients at start to refuse an outdated schema. No locks.
-- Raises nothing.
create or replace function public.zart_schema_version() returns integer
language sql immutable parallel safe as $$ select 1 $$;

-- Called by everything that addresses one execution. No locks.
-- Raises nothing; null in, null out.
create or replace function public.zart_bucket(p_id text) returns smallint
language sql immutable strict parallel safe as $$
    select (hashtext(p_id) & 1023)::smallint
$$;

-- Called wherever Zart needs "now". Honours the setting zart.now (a timestamptz) so tests can
-- move time; otherwise the transaction's timestamp. Raises 22007 for a malformed zart.now.
create or replace function public.zart_current_time() returns timestamptz
language sql stable parallel safe as $$
    select coalesce(nullif(current_setting('zart.now', true), '')::timestamptz, now())
$$;

-- Called by the start functions to validate ids and names coming from SQL callers.
-- No locks. Raises ZA004 naming the field and the limit.
create or replace function public.zart_check_text(p_field text, p_value text) returns void
language plpgsql immutable as $$
begin
    if p_value is null or p_value = '' then
        raise exception 'invalid %: must not be empty', p_field using errcode = 'ZA004';
    end if;
    if octet_length(p_value) > 255 then
        raise exception 'invalid %: % bytes is over the limit of 255 bytes', p_field, octet_length(p_value)
            using errcode = 'ZA004';
    end if;
end
$$;

-- Called by fenced functions when their task row is gone or has another fence.
-- No locks. Always raises: ZA001 if the execution was cancelled, else ZA002.
create or replace function public.zart_raise_fence(p_bucket smallint, p_execution_id text, p_fence bigint)
returns void
language plpgsql as $$
declare
    v_status text;
begin
    select e.status into v_status from public.zart_executions e
     where e.bucket = p_bucket and e.id = p_execution_id;
    if v_status = 'cancelled' then
        raise exception 'execution "%" was cancelled', p_execution_id using errcode = 'ZA001';
    end if;
    raise exception 'lease lost on execution "%" (fence % is no longer current)', p_execution_id, p_fence
        using errcode = 'ZA002';
end
$$;

-- Called by DurableScheduler::start (and zart_start). Inserts the execution and its task row
-- if the id is new; locks nothing it did not insert (ON CONFLICT waits for a concurrent inserter).
-- Raises ZA003 when the id exists with another task or input, ZA004 for bad ids, ZA005 wrong bucket.
create or replace function public.zart_start_execution(
    p_bucket    smallint,
    p_id        text,
    p_task_name text,
    p_input     jsonb,
    p_queue     text,
    p_parent_id text
) returns table (created boolean, status text)
language plpgsql as $$
declare
    v_now       timestamptz := public.zart_current_time();
    v_task_name text;
    v_input     jsonb;
    v_status    text;
begin
    perform public.zart_check_text('execution id', p_id);
    perform public.zart_check_text('task name', p_task_name);
    perform public.zart_check_text('queue', p_queue);
    if p_input is null then
        raise exception 'invalid input: must not be null' using errcode = 'ZA004';
    end if;
    if p_bucket is distinct from public.zart_bucket(p_id) then
        raise exception 'bucket % does not match execution "%"', p_bucket, p_id using errcode = 'ZA005';
    end if;

    insert into public.zart_executions as e
        (bucket, id, task_name, queue, input, parent_id, created_at, updated_at)
    values (p_bucket, p_id, p_task_name, p_queue, p_input, p_parent_id, v_now, v_now)
    on conflict on constraint zart_executions_pkey do nothing;

    if found then
        insert into public.zart_tasks (bucket, execution_id, task_name, queue, run_at)
        values (p_bucket, p_id, p_task_name, p_queue, v_now);
        return query select true, 'scheduled'::text;
        return;
    end if;

    select e.task_name, e.input, e.status into v_task_name, v_input, v_status
      from public.zart_executions e where e.bucket = p_bucket and e.id = p_id;
    if v_task_name <> p_task_name then
        raise exception 'execution "%" already exists with task "%", not "%"', p_id, v_task_name, p_task_name
            using errcode = 'ZA003';
    end if;
    if v_input <> p_input then
        raise exception 'execution "%" already exists with a different input', p_id
            using errcode = 'ZA003';
    end if;
    return query select false, v_status;
end
$$;

-- Called from SQL and triggers: starts an execution in the caller's transaction and wakes
-- workers with NOTIFY zart_work (delivered at commit). Same locks and SQLSTATEs as above.
create or replace function public.zart_start(
    p_id        text,
    p_task_name text,
    p_input     jsonb default '{}'::jsonb,
    p_queue     text default 'default'
) returns boolean
language plpgsql as $$
declare
    v_created boolean;
begin
    perform public.zart_check_text('execution id', p_id);
    select s.created into v_created
      from public.zart_start_execution(public.zart_bucket(p_id), p_id, p_task_name, p_input, p_queue, null) s;
    if v_created then
        perform pg_notify('zart_work', p_queue);
    end if;
    return v_created;
end
$$;

-- Called by Worker (claim_tasks). Locks up to p_limit due task rows (FOR UPDATE SKIP LOCKED),
-- then their execution rows. Raises nothing of its own. A SQL function, so it is planned per call.
create or replace function public.zart_claim_tasks(
    p_worker_id  text,
    p_queue      text,
    p_task_names text[],
    p_limit      integer,
    p_lease_ms   bigint,
    p_buckets    smallint[] default null
) returns table (
    bucket       smallint,
    execution_id text,
    task_name    text,
    fence        bigint,
    claims       integer,
    input        jsonb,
    steps        jsonb
)
language sql volatile as $$
    with due as (
        select t.bucket, t.execution_id
          from public.zart_tasks t
         where t.queue = p_queue
           and t.run_at <= public.zart_current_time()
           and t.task_name = any (p_task_names)
           and (p_buckets is null or t.bucket = any (p_buckets))
         order by t.run_at
         limit p_limit
           for update skip locked
    ), claimed as (
        update public.zart_tasks t
           set locked_by = p_worker_id,
               run_at    = public.zart_current_time() + p_lease_ms * interval '1 millisecond',
               fence     = t.fence + 1,
               claims    = t.claims + 1
          from due
         where t.bucket = due.bucket and t.execution_id = due.execution_id
        returning t.bucket, t.execution_id, t.task_name, t.fence, t.claims
    ), started as (
        update public.zart_executions e
           set status     = 'running',
               attempts   = c.claims,
               started_at = coalesce(e.started_at, public.zart_current_time()),
               updated_at = public.zart_current_time()
          from claimed c
         where e.bucket = c.bucket and e.id = c.execution_id
        returning e.bucket, e.id, e.input
    )
    select c.bucket, c.execution_id, c.task_name, c.fence, c.claims, s.input,
           coalesce((select jsonb_agg(jsonb_build_object(
                                'name', st.name, 'seq', st.seq, 'status', st.status,
                                'output', st.output, 'error', st.error, 'attempts', st.attempts)
                             order by st.seq)
                       from public.zart_steps st
                      where st.bucket = c.bucket and st.execution_id = c.execution_id),
                    '[]'::jsonb)
      from claimed c
      join started s on s.bucket = c.bucket and s.id = c.execution_id
$$;

-- Called by TaskContext::step after the body ran. Locks the task row (FOR NO KEY UPDATE), so a
-- concurrent claim skips it, then writes the step row. Raises ZA001/ZA002 if the fence is stale,
-- ZA006 if a final result for this step is already recorded.
create or replace function public.zart_commit_step(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_name         text,
    p_seq          integer,
    p_status       text,
    p_output       jsonb,
    p_error        jsonb,
    p_attempts     integer
) returns void
language plpgsql as $$
declare
    v_now timestamptz := public.zart_current_time();
begin
    perform 1 from public.zart_tasks t
     where t.bucket = p_bucket and t.execution_id = p_execution_id and t.fence = p_fence
       for no key update;
    if not found then
        perform public.zart_raise_fence(p_bucket, p_execution_id, p_fence);
    end if;

    insert into public.zart_steps as s
        (bucket, execution_id, name, seq, status, output, error, attempts, created_at, updated_at)
    values (p_bucket, p_execution_id, p_name, p_seq, p_status, p_output, p_error, p_attempts, v_now, v_now)
    on conflict on constraint zart_steps_pkey do update
       set status = excluded.status, output = excluded.output, error = excluded.error,
           attempts = excluded.attempts, updated_at = excluded.updated_at
     where s.status = 'retrying';
    if not found then
        raise exception 'step "%" of execution "%" is already recorded', p_name, p_execution_id
            using errcode = 'ZA006';
    end if;
end
$$;

-- Called by TaskContext::step_with_retry when a back-off is long enough to suspend. Locks the
-- task row, records the attempt as 'retrying', and makes the task due after p_delay_ms.
-- Raises ZA001/ZA002 if the fence is stale, ZA006 if the step already has a final result.
create or replace function public.zart_retry_step(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_name         text,
    p_seq          integer,
    p_error        jsonb,
    p_attempts     integer,
    p_delay_ms     bigint
) returns void
language plpgsql as $$
declare
    v_now timestamptz := public.zart_current_time();
begin
    perform public.zart_commit_step(p_bucket, p_execution_id, p_fence, p_name, p_seq, 'retrying',
                                    null, p_error, p_attempts);
    update public.zart_tasks t
       set locked_by = null, run_at = v_now + p_delay_ms * interval '1 millisecond'
     where t.bucket = p_bucket and t.execution_id = p_execution_id and t.fence = p_fence;
    update public.zart_executions e
       set status = 'sleeping', updated_at = v_now
     where e.bucket = p_bucket and e.id = p_execution_id;
end
$$;

-- Called by Worker when a run ends with an output or a failure. Deletes the task row (the lock),
-- then updates the execution row. Raises ZA001/ZA002 if the fence is stale.
create or replace function public.zart_complete_execution(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_status       text,
    p_output       jsonb,
    p_error        jsonb
) returns void
language plpgsql as $$
declare
    v_now timestamptz := public.zart_current_time();
begin
    if p_status not in ('completed', 'failed') then
        raise exception 'invalid status: "%" is not a final status', p_status using errcode = 'ZA004';
    end if;
    delete from public.zart_tasks t
     where t.bucket = p_bucket and t.execution_id = p_execution_id and t.fence = p_fence;
    if not found then
        perform public.zart_raise_fence(p_bucket, p_execution_id, p_fence);
    end if;
    update public.zart_executions e
       set status = p_status, output = p_output, error = p_error,
           finished_at = v_now, updated_at = v_now
     where e.bucket = p_bucket and e.id = p_execution_id;
end
$$;

-- Called by Worker's heartbeat loop, once per interval for all its runs. Locks the renewed task
-- rows. Returns the leases still held; a lease missing from the result is lost. Raises nothing.
create or replace function public.zart_heartbeat(
    p_worker_id     text,
    p_lease_ms      bigint,
    p_buckets       smallint[],
    p_execution_ids text[],
    p_fences        bigint[]
) returns table (bucket smallint, execution_id text)
language sql volatile as $$
    update public.zart_tasks t
       set run_at = public.zart_current_time() + p_lease_ms * interval '1 millisecond'
      from unnest(p_buckets, p_execution_ids, p_fences) as l(bucket, execution_id, fence)
     where t.bucket = l.bucket and t.execution_id = l.execution_id and t.fence = l.fence
       and t.locked_by = p_worker_id
    returning t.bucket, t.execution_id
$$;

-- Called by Worker at shutdown and when it abandons runs. Locks the released task rows, then
-- their executions; makes them due now and 'scheduled' again. Returns how many were released.
-- Raises nothing.
create or replace function public.zart_release_tasks(
    p_worker_id     text,
    p_buckets       smallint[],
    p_execution_ids text[],
    p_fences        bigint[]
) returns integer
language sql volatile as $$
    with released as (
        update public.zart_tasks t
           set locked_by = null, run_at = public.zart_current_time()
          from unnest(p_buckets, p_execution_ids, p_fences) as l(bucket, execution_id, fence)
         where t.bucket = l.bucket and t.execution_id = l.execution_id and t.fence = l.fence
           and t.locked_by = p_worker_id
        returning t.bucket, t.execution_id
    ), rescheduled as (
        update public.zart_executions e
           set status = 'scheduled', updated_at = public.zart_current_time()
          from released r
         where e.bucket = r.bucket and e.id = r.execution_id
        returning 1
    )
    select count(*)::integer from rescheduled
$$;

-- Called by an idle Worker to know how long it may sleep. No locks. Raises nothing.
-- Returns milliseconds until the earliest task of the queue is due (0 if one is due), or null.
create or replace function public.zart_next_run_at(p_queue text, p_task_names text[])
returns bigint
language sql stable as $$
    select greatest(0, ceil(extract(epoch from (min(t.run_at) - public.zart_current_time())) * 1000))::bigint
      from public.zart_tasks t
     where t.queue = p_queue and t.task_name = any (p_task_names)
$$;
