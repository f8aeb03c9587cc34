-- Zart stored functions: the readable, complete source of every function in the schema.
-- `zart migrate` applies this file after the V-migrations, in one transaction, on every run.
--
-- Map of objects (tables are in migrations/). "entry" marks the functions a role may be granted
-- (sql/roles.sql): each is SECURITY DEFINER with search_path pinned, and no role has any
-- write privilege on a table, so what a role can do is exactly what its entry points do. Every
-- other function is internal: no role may call it on its own.
--   zart_schema_version()        entry (all)  the schema version this file belongs to
--   zart_bucket(id)              entry (all)  stable hash of an execution id into 0..1023
--   zart_current_time()          entry (all)  the database clock; tests shift it (zart_clock)
--   zart_visible_tenants()       entry (all)  the tenants this session may see (null: all)
--   zart_get_execution(..)       entry (all)  one execution, if this session may see it
--   zart_get_state(..)           entry (all)  the values an execution published, latest per name
--   zart_start_execution(..)     entry (client) idempotent start of one execution (bucketed)
--   zart_start(..)               entry (client) bucketless start for SQL and triggers; NOTIFYs
--   zart_send_event(..)          entry (client) buffers an event; hands it to a waiting execution
--   zart_emit_event(..)          entry (client) bucketless zart_send_event; NOTIFYs in the tx
--   zart_cancel_execution(..)    entry (client) cancels an execution and its unfinished descendants
--   zart_cancel(..)              entry (client) bucketless zart_cancel_execution; NOTIFYs in the tx
--   zart_retry_execution(..)     entry (client) re-runs a failed execution from its failed step
--   zart_retry(..)               entry (client) bucketless zart_retry_execution; NOTIFYs in the tx
--   zart_schedule(..)            entry (client) stores or replaces a cron schedule; NOTIFYs
--   zart_pause_schedule(..)      entry (client) pauses or resumes a schedule
--   zart_delete_schedule(..)     entry (client) deletes a schedule
--   zart_list_schedules()        entry (all)  the schedules this session may see
--   zart_audit_begin(..)         entry (client) writes an admin action to zart_audit_log before it runs
--   zart_audit_finish(..)        entry (client) records how that action ended (once)
--   zart_worker_seen(..)         entry (worker) records a running worker in zart_workers; forgets old ones
--   zart_worker_gone(..)         entry (worker) records a worker's graceful stop
--   zart_set_queue_limits(..)    entry (client) sets or removes a queue's limits (not tenant-bound sessions)
--   zart_list_queue_limits()     entry (all)  the queues with limits, and what counts against them
--   zart_claim_schedules(..)     entry (worker) holds due schedules of a queue and task names
--   zart_fire_schedule(..)       entry (worker) starts a held schedule's executions, by overlap policy
--   zart_next_schedule_at(..)    entry (worker) how long until the next schedule is due
--   zart_claim_tasks(..)         entry (worker) claims due tasks with SKIP LOCKED; returns input
--                                and steps; ends the sleep a claimed execution was woken from;
--                                priorities, oldest-first claims, queue limits
--   zart_claim_started(..)       entry (worker) leases an execution its start just created (the
--                                in-process hand-off, in the start's statement)
--   zart_commit_step(..)         entry (worker) records one step result, fenced by the lease token
--   zart_commit_steps(..)        entry (worker) group commit: many step results in one transaction
--   zart_retry_step(..)          entry (worker) records a failed attempt, suspends for the back-off
--   zart_complete_execution(..)  entry (worker) records the final output or error
--   zart_complete_executions(..) entry (worker) group commit: many outcomes in one transaction
--   zart_heartbeat(..)           entry (worker) renews the leases of one worker in one statement
--   zart_release_tasks(..)       entry (worker) gives leases back so another worker can claim
--   zart_next_run_at(..)         entry (worker) how long until the next task of a queue is due
--   zart_sleep(..)               entry (worker) a durable sleep: records the wake time, suspends
--   zart_await_event(..)         entry (worker) consumes a buffered event, or suspends / times out
--   zart_start_child(..)         entry (worker) starts a child execution and waits for its outcome
--   zart_start_children(..)      entry (worker) starts several children; waits until all have finished
--   zart_prune(..)               entry (worker) deletes a batch of old finished executions with
--                                their steps and events (retention), one pruner at a time
--   zart_apply_settings()        writes zart_settings into the two functions below (and trigger)
--   zart_settings_changed()      the trigger function on zart_settings
--   zart_payload_limit()         the payload limit, as a constant (generated)
--   zart_tenancy_on()            whether tenancy is on, as a constant (generated)
--   zart_limits_on()             whether any queue has limits, as a constant (generated)
--   zart_check_text(..)          validates an id or name: 1..255 bytes, else ZA004
--   zart_check_payload(..)       validates JSON size against zart_settings, else ZA004
--   zart_check_ms(..)            validates a duration in milliseconds (0..100 years), else ZA004
--   zart_start_time(..)          the start time of a delayed start (a delay or a time), else ZA004
--   zart_step_problem(..)        why a step result is one the engine never writes (inlined)
--   zart_outcome_problem(..)     why an outcome is one the engine never writes (inlined)
--   zart_session_tenants()       the tenants this session may see (null: all); zart_visible_tenants's body
--   zart_start_tenant(..)        the tenant a new top-level execution of this session belongs to
--   zart_insert_execution(..)    inserts an execution and its task row once; conflict rules
--   zart_start_key(..)           a dedup or debounce key: the execution it names, or renews it
--   zart_claim_levels(..)        the (task name, priority) pairs of a queue, in claim order
--   zart_pick_tasks(..)          picks due tasks under per-key limits or oldest first (locks with p_lock)
--   zart_limit_counts(..)        the runs counting against a queue's limits: running, and within its rates
--   zart_limit_freed(..)         wakes a limited queue's workers when a run ends
--   zart_new_fence()             a new random lease token (the claims)
--   zart_fence_of(..)            one claimed row's lease token, from a zart_new_fence() seed
--   zart_fence_code(..)          why a fenced write failed: ZA001 (cancelled) or ZA002 (lease lost)
--   zart_raise_fence(..)         raises ZA001 (cancelled) or ZA002 (lease lost)
--   zart_sleep_is_over(..)       whether a sleep step is over (the claim ends such sleeps)
--   zart_try_lock_task(..)       locks a claimed task row by its fence, or says why not
--   zart_lock_task(..)           locks a claimed task row by its fence, or raises ZA001/ZA002
--   zart_try_commit_step(..)     records one step result, or says why not (ZA001/ZA002/ZA006)
--   zart_try_complete_execution(..) records one outcome, or says why not (ZA001/ZA002)
--   zart_lock_leases(..)         locks a worker's leased task rows in key order
--   zart_suspend(..)             releases a claimed task until a time, recording what it waits for
--   zart_open_wait(..)           finds or records the step row of a sleep, event wait or child
--   zart_close_wait(..)          records how a wait ended
--   zart_child_wait(..)          starts or finds a child and records its outcome once finished
--   zart_take_event(..)          consumes a buffered event into an open event wait
--   zart_deliver_event(..)       hands a just-sent event to its waiter
--   zart_wait_lock(..)           per-execution advisory lock (salted) serialising waits and wake-ups
--   zart_wake_waiter(..)         makes an execution due if it waits for exactly this (event, child)
--   zart_cancel_tree(..)         cancels executions and their unfinished descendants
--
-- Views: zart_execution_status, zart_execution_counts, zart_step_timeline, zart_waiting, zart_overdue, zart_state (security
-- invoker: a reader sees its tenants' rows only). Row-level security policies on the four tables.
--
-- SQLSTATEs raised: ZA001 cancelled, ZA002 lease lost, ZA003 start conflict,
-- ZA004 invalid input, ZA005 wrong bucket, ZA006 step already recorded, ZA007 not found,
-- ZA008 execution already finished (an event for it is refused), ZA009 not retryable (not
-- failed, or past its deadline), 42501 a tenant not granted.

-- Upgrades: CREATE OR REPLACE cannot change a function's result type, so an older definition
-- whose result differs from this file's is dropped first (only then, so running callers of
-- unchanged functions are never disturbed).
do $$
declare
    v_fn record;
begin
    for v_fn in
        select p.oid::regprocedure as signature
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
          join (values
                  ('zart_claim_tasks', 'TABLE(bucket smallint, execution_id text, task_name text, '
                      || 'queue text, parent_id text, fence bigint, attempts integer, recoveries integer, '
                      || 'input jsonb, deadline_in_ms bigint, steps jsonb)'),
                  ('zart_complete_execution', 'text'),
                  ('zart_limit_counts', 'TABLE(running integer, in_rate integer, key_running jsonb, '
                      || 'key_recent jsonb)'),
                  ('zart_get_execution', 'TABLE(id text, task_name text, queue text, status text, '
                      || 'input jsonb, output jsonb, error jsonb, attempts integer, '
                      || 'created_at timestamp with time zone, started_at timestamp with time zone, '
                      || 'finished_at timestamp with time zone, parent_id text, priority smallint)'),
                  ('zart_retry_step', 'bigint'),
                  ('zart_deliver_event', 'void'),
                  ('zart_await_event', 'TABLE(state text, payload jsonb, wake_in_ms bigint)'),
                  ('zart_start_child', 'TABLE(state text, created boolean, child_status text, '
                      || 'output jsonb, error jsonb)')
               ) as want(name, result) on want.name = p.proname
         where n.nspname = 'public' and pg_get_function_result(p.oid) <> want.result
    loop
        execute format('drop function %s', v_fn.signature);
    end loop;
end
$$;
-- Signatures that changed (a new parameter would otherwise leave the old one as an overload).
drop function if exists public.zart_start_execution(smallint, text, text, jsonb, text, text);
drop function if exists public.zart_start_tenant();
drop function if exists public.zart_insert_execution(smallint, text, text, jsonb, text, text, bigint,
                                                     text, text[]);
drop function if exists public.zart_insert_execution(smallint, text, text, jsonb, text, text, bigint,
                                                     text, text[], bigint);
drop function if exists public.zart_start_execution(smallint, text, text, jsonb, text, text, bigint);
drop function if exists public.zart_start(text, text, jsonb, text);
drop function if exists public.zart_start(text, text, jsonb, text, timestamptz);
drop function if exists public.zart_start_execution(smallint, text, text, jsonb, text, text, bigint,
                                                    bigint, timestamptz);
drop function if exists public.zart_insert_execution(smallint, text, text, jsonb, text, text, bigint,
                                                     text, text[], bigint, timestamptz);
drop function if exists public.zart_claim_schedules(text, text, text[], integer, bigint);
drop function if exists public.zart_worker_seen(text, text, bigint, text, text[], integer, integer, bigint);
drop function if exists public.zart_claim_tasks(text, text, text[], integer, bigint, smallint[]);
drop function if exists public.zart_claim_levels(text, text[], integer);
drop function if exists public.zart_next_run_at(text, text[]);
drop function if exists public.zart_start_child(smallint, text, bigint, text, integer, text, text,
                                                jsonb, text);

-- Called by workers and clients at start to refuse an outdated schema. No locks.
-- Raises nothing.
create or replace function public.zart_schema_version() returns integer
language sql immutable parallel safe as $$ select 13 $$;

-- Called by everything that addresses one execution. No locks.
-- Raises nothing; null in, null out.
create or replace function public.zart_bucket(p_id text) returns smallint
language sql immutable strict parallel safe as $$
    select (hashtext(p_id) & 1023)::smallint
$$;

-- Called wherever Zart needs "now": the transaction's timestamp, plus the test clock's offset
-- (table zart_clock) in sessions where the setting zart.test_clock is 'on'. No locks.
create or replace function public.zart_current_time() returns timestamptz
language plpgsql stable as $$
begin
    -- plpgsql, not sql: the sub-select keeps a sql function from being inlined, and a
    -- non-inlined sql function costs several times this branch.
    if current_setting('zart.test_clock', true) is distinct from 'on' then
        return now();
    end if;
    return now() + coalesce((select c.clock_offset from public.zart_clock c), interval '0');
end
$$;

-- Called by this file (every `zart migrate`) and by the trigger on zart_settings: writes the
-- settings into zart_payload_limit() and zart_tenancy_on(), immutable SQL functions that return
-- them as constants, so the hot paths read a setting for free (the planner inlines and folds
-- them; replacing them invalidates the plans that did). Rewrites a function only when its
-- value changed. The salt stays in the table: a function's source is readable by anyone.
-- No locks of its own. Raises nothing.
create or replace function public.zart_apply_settings() returns void
language plpgsql as $$
declare
    v_limit   bigint;
    v_tenancy boolean;
    v_want    text;
begin
    select s.max_payload_bytes, s.tenancy into v_limit, v_tenancy from public.zart_settings s;
    v_want := format('select %s::bigint', coalesce(v_limit, 1048576));
    if not exists (select from pg_catalog.pg_proc p
                    where p.oid = to_regprocedure('public.zart_payload_limit()')
                      and p.prosrc = v_want) then
        execute format('create or replace function public.zart_payload_limit() returns bigint '
                       'language sql immutable parallel safe as %L', v_want);
    end if;
    v_want := case when v_tenancy then 'select true' else 'select false' end;
    if not exists (select from pg_catalog.pg_proc p
                    where p.oid = to_regprocedure('public.zart_tenancy_on()')
                      and p.prosrc = v_want) then
        execute format('create or replace function public.zart_tenancy_on() returns boolean '
                       'language sql immutable parallel safe as %L', v_want);
    end if;
    v_want := case when exists (select from public.zart_queue_limits) then 'select true'
                   else 'select false' end;
    if not exists (select from pg_catalog.pg_proc p
                    where p.oid = to_regprocedure('public.zart_limits_on()')
                      and p.prosrc = v_want) then
        -- Two transactions rewriting the same function would collide in pg_proc.
        perform pg_advisory_xact_lock(hashtext('zart_apply_settings'));
        execute format('create or replace function public.zart_limits_on() returns boolean '
                       'language sql immutable parallel safe as %L', v_want);
    end if;
end
$$;
select public.zart_apply_settings();

-- The trigger on zart_settings: any change rewrites the functions above, in the changing
-- transaction. Raises nothing.
create or replace function public.zart_settings_changed() returns trigger
language plpgsql as $$
begin
    perform public.zart_apply_settings();
    return null;
end
$$;
-- Not on Citus, which refuses triggers on the reference tables these become: there
-- sql/citus.sql drops them, and zart_set_queue_limits applies the settings itself.
do $$
begin
    if exists (select from pg_catalog.pg_extension where extname = 'citus') then
        return;
    end if;
    if not exists (select from pg_catalog.pg_trigger
                    where tgrelid = 'public.zart_settings'::regclass
                      and tgname = 'zart_settings_apply') then
        create trigger zart_settings_apply after insert or update or delete on public.zart_settings
            for each statement execute function public.zart_settings_changed();
    end if;
    if not exists (select from pg_catalog.pg_trigger
                    where tgrelid = 'public.zart_queue_limits'::regclass
                      and tgname = 'zart_queue_limits_apply') then
        create trigger zart_queue_limits_apply after insert or delete on public.zart_queue_limits
            for each statement execute function public.zart_settings_changed();
    end if;
end
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

-- Called by every entry point that stores JSON from a caller (inputs, event payloads, step
-- outputs and errors, outcomes). The limit is zart_settings.max_payload_bytes (bytes of JSON
-- text, default 1 MiB), which only the owner can change: a session's SET cannot raise it.
-- p_limit: the limit if the caller read it already. No locks. Raises ZA004 naming the field.
create or replace function public.zart_check_payload(p_field text, p_value jsonb,
                                                     p_limit bigint default null) returns void
language plpgsql stable as $$
declare
    v_limit bigint := coalesce(p_limit, public.zart_payload_limit());
    v_size  bigint := octet_length(p_value::text);
begin
    if v_size > v_limit then
        raise exception 'invalid %: % bytes of JSON is over the limit of % bytes', p_field, v_size, v_limit
            using errcode = 'ZA004';
    end if;
end
$$;

-- Called by the functions that take a duration from their caller (deadlines, sleeps, event
-- timeouts, back-offs, leases). Null passes (no duration). No locks. Raises ZA004 naming the
-- field: negative, or over 100 years (zart::limits::MAX_WAIT), which an interval or a
-- timestamp could not hold.
create or replace function public.zart_check_ms(p_field text, p_ms bigint) returns void
language plpgsql immutable as $$
begin
    if p_ms < 0 or p_ms > 3155760000000 then
        raise exception 'invalid %: % ms is outside 0 ms to 100 years', p_field, p_ms
            using errcode = 'ZA004';
    end if;
end
$$;

-- Called by the entry points (as their owner) and by zart_visible_tenants: the tenants this
-- session may see and act for. Null: every tenant (tenancy off; the owner of the Zart objects or a superuser; a role
-- granted '*'), narrowed to zart.tenant when that is set. A session is its login
-- (session_user), which keeps its tenants inside SECURITY DEFINER functions and across SET
-- ROLE. No locks. Raises 42501 when zart.tenant names a tenant the login is not granted.
create or replace function public.zart_session_tenants() returns text[]
language plpgsql stable as $$
declare
    v_pick    text := nullif(current_setting('zart.tenant', true), '');
    v_all     boolean;
    v_tenants text[];
begin
    if not public.zart_tenancy_on() then
        return null;
    end if;
    select pg_has_role(session_user, c.relowner, 'member') into v_all
      from pg_class c where c.oid = 'public.zart_executions'::regclass;
    select v_all or coalesce(bool_or(a.tenant = '*'), false),
           coalesce(array_agg(a.tenant order by a.tenant) filter (where a.tenant <> '*'), '{}')
      into v_all, v_tenants
      from public.zart_tenant_access a
      join pg_roles r on r.rolname = a.role_name
     where pg_has_role(session_user, r.oid, 'member');
    if v_pick is null then
        return case when v_all then null else v_tenants end;
    end if;
    if not v_all and not v_pick = any (v_tenants) then
        raise exception 'tenant "%" is not granted to role "%"', v_pick, session_user
            using errcode = '42501',
                  hint = 'grant it with: insert into zart_tenant_access (role_name, tenant) values (..)';
    end if;
    return array[v_pick];
end
$$;

-- Entry point for every role (RLS policies, the views, SQL users): zart_session_tenants() for
-- sessions that may not read zart_settings and zart_tenant_access themselves. No locks.
-- Raises as zart_session_tenants.
create or replace function public.zart_visible_tenants() returns text[]
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select public.zart_session_tenants()
$$;

-- Called by zart_start_execution with tenancy on and the session's tenants (zart_session_tenants):
-- the tenant a new top-level execution belongs to: zart.tenant if set, else the login's one
-- tenant. No locks.
-- Raises ZA004 when the session may act for several tenants (or all) and zart.tenant is not
-- set, 42501 when it may act for none.
create or replace function public.zart_start_tenant(v_tenants text[]) returns text
language plpgsql stable as $$
begin
    if cardinality(v_tenants) = 1 then
        return v_tenants[1];
    end if;
    if v_tenants is null then
        raise exception 'invalid tenant: role "%" may act for every tenant; set zart.tenant to the tenant of the execution',
            session_user using errcode = 'ZA004';
    end if;
    if cardinality(v_tenants) = 0 then
        raise exception 'role "%" acts for no tenant', session_user
            using errcode = '42501',
                  hint = 'grant it one with: insert into zart_tenant_access (role_name, tenant) values (..)';
    end if;
    raise exception 'invalid tenant: role "%" acts for several tenants (%); set zart.tenant to one of them',
        session_user, array_to_string(v_tenants, ', ') using errcode = 'ZA004';
end
$$;

-- Called wherever a fenced write found its task row gone or no longer its own: the SQLSTATE
-- that explains it, ZA001 if the execution was cancelled, else ZA002 (lease lost). No locks.
-- Raises nothing.
create or replace function public.zart_fence_code(p_bucket smallint, p_execution_id text)
returns text
-- PL/pgSQL, not SQL: Citus cannot plan a SQL function's parameters.
language plpgsql stable as $$
begin
    return case when (select e.status from public.zart_executions e
                       where e.bucket = p_bucket and e.id = p_execution_id) = 'cancelled'
                then 'ZA001' else 'ZA002' end;
end
$$;

-- Called by fenced functions when their task row is gone or has another fence.
-- No locks. Always raises: ZA001 if the execution was cancelled, else ZA002.
create or replace function public.zart_raise_fence(p_bucket smallint, p_execution_id text, p_fence bigint)
returns void
language plpgsql as $$
begin
    if public.zart_fence_code(p_bucket, p_execution_id) = 'ZA001' then
        raise exception 'execution "%" was cancelled', p_execution_id using errcode = 'ZA001';
    end if;
    raise exception 'lease lost on execution "%" (fence % is no longer current)', p_execution_id, p_fence
        using errcode = 'ZA002';
end
$$;

-- Called by zart_lock_task and zart_commit_steps (for an item it did not record). Locks the
-- task row FOR NO KEY UPDATE if the fence matches and the lease is held. Returns null when locked, else the SQLSTATE to
-- report: ZA001 (cancelled) or ZA002 (lease lost). Raises nothing.
create or replace function public.zart_try_lock_task(p_bucket smallint, p_execution_id text, p_fence bigint)
returns text
language plpgsql as $$
begin
    perform 1 from public.zart_tasks t
     where t.bucket = p_bucket and t.execution_id = p_execution_id and t.fence = p_fence
       and t.locked_by is not null
       for no key update;
    if found then
        return null;
    end if;
    return public.zart_fence_code(p_bucket, p_execution_id);
end
$$;

-- Called by every fenced single-item function first. Locks the task row FOR NO KEY UPDATE (a
-- concurrent claim skips it; emits and child outcomes wait for it). Raises ZA001/ZA002 if the
-- fence is stale or the lease was given up (a suspended or released run writes nothing more).
create or replace function public.zart_lock_task(p_bucket smallint, p_execution_id text, p_fence bigint)
returns void
language plpgsql as $$
declare
    v_code text := public.zart_try_lock_task(p_bucket, p_execution_id, p_fence);
begin
    if v_code is not null then
        perform public.zart_raise_fence(p_bucket, p_execution_id, p_fence);
    end if;
end
$$;

-- Called by the waiting functions after zart_lock_task. Updates the execution's status, then the
-- locked task row (release, new run_at capped by the deadline, what it waits for). Raises nothing.
create or replace function public.zart_suspend(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_run_at       timestamptz,
    p_status       text,
    p_wait_kind    text,
    p_wait_name    text
) returns void
language plpgsql as $$
declare
    v_now      timestamptz := public.zart_current_time();
    v_deadline timestamptz;
    v_queue    text;
begin
    -- The claim wrote nothing here: the attempts and first start are the task row's.
    update public.zart_executions e
       set status = p_status, updated_at = v_now, attempts = t.attempts,
           started_at = coalesce(e.started_at, t.started_at)
      from public.zart_tasks t
     where e.bucket = p_bucket and e.id = p_execution_id
       and t.bucket = p_bucket and t.execution_id = p_execution_id
    returning e.deadline_at into v_deadline;
    -- A deadline cuts any wait short: the execution is claimed then, and fails.
    update public.zart_tasks t
       set locked_by = null, run_at = least(p_run_at, coalesce(v_deadline, p_run_at)),
           wait_kind = p_wait_kind, wait_name = p_wait_name, recoveries = 0
     where t.bucket = p_bucket and t.execution_id = p_execution_id and t.fence = p_fence
    returning t.queue into v_queue;
    if public.zart_limits_on() then
        perform public.zart_limit_freed(v_queue);
    end if;
end
$$;

-- Called by zart_start_execution and zart_start_child (p_limit: the payload limit they read).
-- Inserts the execution and its task row
-- if the id is new; locks nothing it did not insert (ON CONFLICT waits for a concurrent
-- inserter). An existing id is returned as it is when task, input, queue, parent and deadline
-- all match, so starting is idempotent. Raises ZA003 when the id exists with anything else (or
-- under a tenant this session cannot see), ZA004 for bad arguments, ZA005 wrong bucket.
create or replace function public.zart_insert_execution(
    p_bucket      smallint,
    p_id          text,
    p_task_name   text,
    p_input       jsonb,
    p_queue       text,
    p_parent_id   text,
    p_deadline_ms bigint,
    p_tenant      text,
    p_tenants     text[],
    p_limit       bigint,
    p_start_at    timestamptz,
    p_priority    smallint,
    p_limit_key   text
) returns table (created boolean, status text)
language plpgsql as $$
declare
    v_now      timestamptz := public.zart_current_time();
    -- When it starts: now, or a later time asked for (an earlier one means now).
    v_start    timestamptz := greatest(coalesce(p_start_at, v_now), v_now);
    v_existing public.zart_executions%rowtype;
begin
    -- One test on the hot path; the checks name what is wrong only when something is.
    if not coalesce(octet_length(p_id) between 1 and 255
                    and octet_length(p_task_name) between 1 and 255
                    and octet_length(p_queue) between 1 and 255, false) then
        perform public.zart_check_text('execution id', p_id);
        perform public.zart_check_text('task name', p_task_name);
        perform public.zart_check_text('queue', p_queue);
    end if;
    if p_input is null then
        raise exception 'invalid input: must not be null' using errcode = 'ZA004';
    end if;
    if octet_length(p_input::text) > coalesce(p_limit, 1048576) then
        perform public.zart_check_payload('input', p_input, p_limit);
    end if;
    if p_bucket is distinct from public.zart_bucket(p_id) then
        raise exception 'bucket % does not match execution "%"', p_bucket, p_id using errcode = 'ZA005';
    end if;
    if p_deadline_ms is not null and (p_deadline_ms <= 0 or p_deadline_ms > 3155760000000) then
        raise exception 'invalid deadline: % ms is outside 1 ms to 100 years', p_deadline_ms
            using errcode = 'ZA004';
    end if;
    if p_priority is null then
        raise exception 'invalid priority: must not be null' using errcode = 'ZA004';
    end if;
    if p_limit_key is not null and not coalesce(octet_length(p_limit_key) between 1 and 255, false) then
        perform public.zart_check_text('limit key', p_limit_key);
    end if;

    -- The deadline counts from the start: a delayed execution gets its whole deadline.
    insert into public.zart_executions as e
        (bucket, id, task_name, queue, input, parent_id, deadline_at, created_at, updated_at,
         tenant, start_at, priority, limit_key)
    values (p_bucket, p_id, p_task_name, p_queue, p_input, p_parent_id,
            v_start + p_deadline_ms * interval '1 millisecond', v_now, v_now, p_tenant,
            nullif(v_start, v_now), p_priority, p_limit_key)
    on conflict on constraint zart_executions_pkey do nothing;

    if found then
        insert into public.zart_tasks (bucket, execution_id, task_name, queue, run_at, tenant,
                                       priority, limit_key)
        values (p_bucket, p_id, p_task_name, p_queue, v_start, p_tenant, p_priority, p_limit_key);
        return query select true, 'scheduled'::text;
        return;
    end if;

    select * into v_existing
      from public.zart_executions e where e.bucket = p_bucket and e.id = p_id;
    if p_tenants is not null and not coalesce(v_existing.tenant = any (p_tenants), false) then
        raise exception 'execution "%" already exists under a tenant this session cannot see', p_id
            using errcode = 'ZA003';
    end if;
    if v_existing.task_name <> p_task_name then
        raise exception 'execution "%" already exists with task "%", not "%"', p_id,
            v_existing.task_name, p_task_name using errcode = 'ZA003';
    end if;
    if v_existing.input <> p_input then
        raise exception 'execution "%" already exists with a different input', p_id
            using errcode = 'ZA003';
    end if;
    if v_existing.queue <> p_queue then
        raise exception 'execution "%" already exists in queue "%", not "%"', p_id,
            v_existing.queue, p_queue using errcode = 'ZA003';
    end if;
    if v_existing.parent_id is distinct from p_parent_id then
        raise exception 'execution "%" already exists with parent %, not %', p_id,
            coalesce('"' || v_existing.parent_id || '"', 'none'),
            coalesce('"' || p_parent_id || '"', 'none') using errcode = 'ZA003';
    end if;
    -- The deadline as asked for: the same duration from the start. The start time itself is
    -- not compared: a start retried later asks for a later time, and gets the execution.
    if (v_existing.deadline_at - coalesce(v_existing.start_at, v_existing.created_at))
           is distinct from p_deadline_ms * interval '1 millisecond' then
        raise exception 'execution "%" already exists with deadline %, not %', p_id,
            coalesce((extract(epoch from v_existing.deadline_at
                                       - coalesce(v_existing.start_at, v_existing.created_at))
                      * 1000)::bigint || ' ms', 'none'),
            coalesce(p_deadline_ms || ' ms', 'none') using errcode = 'ZA003';
    end if;
    if v_existing.priority <> p_priority then
        raise exception 'execution "%" already exists with priority %, not %', p_id,
            v_existing.priority, p_priority using errcode = 'ZA003';
    end if;
    if v_existing.limit_key is distinct from p_limit_key then
        raise exception 'execution "%" already exists with limit key %, not %', p_id,
            coalesce('"' || v_existing.limit_key || '"', 'none'),
            coalesce('"' || p_limit_key || '"', 'none') using errcode = 'ZA003';
    end if;
    -- The status as it is now (running while a worker holds it: zart_execution_status).
    return query select false, s.status from public.zart_execution_status s
                  where s.bucket = p_bucket and s.id = p_id;
end
$$;

-- Entry point for clients (DurableScheduler::start, and zart_start). Starts one top-level
-- execution (or, with p_parent_id, a child of an execution this session can see, in the
-- parent's tenant); new executions belong to the session's tenant (zart_start_tenant). Same
-- locks as zart_insert_execution. A delayed start (p_start_after_ms, or p_start_at: at most one)
-- is due then, and visible as scheduled until. p_priority orders claims within the queue
-- (higher first); p_limit_key is the key the queue's per-key limits count. With p_start_key, a
-- start of the same task and key within p_start_key_ms returns the execution the key names
-- (zart_start_key; with p_debounce, replacing its input and moving its start). Returns whether
-- an execution was created, its status and its id. Raises ZA003, ZA004 (also for a parent
-- that does not exist or is the execution itself, both start arguments, a delay or a start
-- time past 100 years, a debounce with a start time), ZA005, and 42501 for a tenant not granted.
create or replace function public.zart_start_execution(
    p_bucket    smallint,
    p_id        text,
    p_task_name text,
    p_input     jsonb,
    p_queue     text,
    p_parent_id text,
    p_deadline_ms bigint,
    p_start_after_ms bigint default null,
    p_start_at    timestamptz default null,
    p_priority    smallint default 0,
    p_limit_key   text default null,
    p_start_key   text default null,
    p_start_key_ms bigint default null,
    p_debounce    boolean default false
) returns table (created boolean, status text, execution_id text)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenants text[];
    v_tenant  text;
    v_start   timestamptz;
    v_keyed   record;
begin
    if p_start_after_ms is not null or p_start_at is not null then
        if p_debounce then
            raise exception 'invalid start: a debounced start begins when its window ends; give no start time'
                using errcode = 'ZA004';
        end if;
        v_start := public.zart_start_time(p_start_after_ms, p_start_at);
    end if;
    -- With tenancy off (a constant) no tenant function is called.
    if public.zart_tenancy_on() then
        v_tenants := public.zart_session_tenants();
    end if;
    if p_parent_id is null then
        if public.zart_tenancy_on() then
            v_tenant := public.zart_start_tenant(v_tenants);
        end if;
    else
        if p_parent_id = p_id then
            raise exception 'invalid parent id: an execution cannot be its own parent' using errcode = 'ZA004';
        end if;
        -- A new execution cannot be an ancestor of an existing one, so no cycle can form.
        select e.tenant into v_tenant
          from public.zart_executions e
         where e.bucket = public.zart_bucket(p_parent_id) and e.id = p_parent_id
           and (v_tenants is null or e.tenant = any (v_tenants));
        if not found then
            raise exception 'invalid parent id: no execution "%"', p_parent_id using errcode = 'ZA004';
        end if;
    end if;
    if p_start_key is not null or p_debounce then
        -- A key may name an execution at once: the start is checked as a new one would be
        -- first, so bad input is refused however the key falls.
        perform public.zart_check_text('execution id', p_id);
        perform public.zart_check_text('task name', p_task_name);
        perform public.zart_check_text('queue', p_queue);
        if p_limit_key is not null then
            perform public.zart_check_text('limit key', p_limit_key);
        end if;
        if p_input is null then
            raise exception 'invalid input: must not be null' using errcode = 'ZA004';
        end if;
        perform public.zart_check_payload('input', p_input, public.zart_payload_limit());
        select k.* into v_keyed
          from public.zart_start_key(p_task_name, p_start_key, v_tenant, p_start_key_ms, p_debounce,
                                     p_input) k;
        if v_keyed.execution_id is not null then
            return query select false, v_keyed.status, v_keyed.execution_id;
            return;
        end if;
        if p_debounce then
            v_start := v_keyed.start_at;
        end if;
    end if;
    return query
    select i.created, i.status, p_id
      from public.zart_insert_execution(p_bucket, p_id, p_task_name, p_input, p_queue, p_parent_id,
                                        p_deadline_ms, v_tenant, v_tenants,
                                        public.zart_payload_limit(), v_start, p_priority,
                                        p_limit_key) i;
    if p_start_key is not null then
        -- The key names the execution this start refers to (new, or the one with this id).
        update public.zart_start_keys k
           set bucket = p_bucket, execution_id = p_id
         where k.task_name = p_task_name and k.start_key = p_start_key
           and k.tenant = coalesce(v_tenant, '');
    end if;
end
$$;

-- Called by zart_start_execution for a start with a start key. Locks the key's row (FOR UPDATE;
-- inserted if new, with ON CONFLICT waiting for a concurrent inserter). Returns the execution
-- the key still names, if any: a dedup key names its execution until the window ends; a
-- debounce key names its execution until a worker first claims it, and each start in between
-- replaces that execution's input and moves its start (and deadline) to the end of a new
-- window. Otherwise returns execution_id null and, for a debounce, start_at: the caller starts
-- its own execution then, and the key is renewed. The caller has checked the start's input.
-- Raises ZA003 for a key used both ways, ZA004 for a bad key or window.
create or replace function public.zart_start_key(
    p_task_name text,
    p_key       text,
    p_tenant    text,
    p_window_ms bigint,
    p_debounce  boolean,
    p_input     jsonb
) returns table (created boolean, status text, execution_id text, start_at timestamptz)
language plpgsql as $$
#variable_conflict use_column
declare
    v_now   timestamptz := public.zart_current_time();
    v_until timestamptz;
    v_key   public.zart_start_keys%rowtype;
    v_status text;
    v_span  interval;
begin
    if p_key is null then
        raise exception 'invalid start key: a debounced start needs one' using errcode = 'ZA004';
    end if;
    perform public.zart_check_text('start key', p_key);
    if p_window_ms is null or p_window_ms < 1 or p_window_ms > 3155760000000 then
        raise exception 'invalid start key window: % ms is outside 1 ms to 100 years',
            coalesce(p_window_ms::text, 'null') using errcode = 'ZA004';
    end if;
    v_until := v_now + p_window_ms * interval '1 millisecond';
    insert into public.zart_start_keys as k
        (task_name, start_key, tenant, bucket, execution_id, debounce, expires_at)
    values (p_task_name, p_key, coalesce(p_tenant, ''), 0, '', p_debounce, v_until)
    on conflict on constraint zart_start_keys_pkey do nothing;
    if found then
        return query select null::boolean, null::text, null::text, v_until;
        return;
    end if;
    select * into v_key from public.zart_start_keys k
     where k.task_name = p_task_name and k.start_key = p_key and k.tenant = coalesce(p_tenant, '')
       for update;
    if v_key.debounce <> p_debounce then
        raise exception 'start key "%" of task "%" is a % key, not a % key', p_key, p_task_name,
            case when v_key.debounce then 'debounce' else 'dedup' end,
            case when p_debounce then 'debounce' else 'dedup' end using errcode = 'ZA003';
    end if;
    if not p_debounce and v_key.expires_at > v_now then
        -- The status as it is now (running while a worker holds it).
        select e.status into v_status from public.zart_execution_status e
         where e.bucket = v_key.bucket and e.id = v_key.execution_id;
        if found then
            return query select false, v_status, v_key.execution_id, null::timestamptz;
            return;
        end if;
    elsif p_debounce then
        -- Still waiting for its first claim: a claim in progress holds the row, and this waits.
        update public.zart_tasks t
           set run_at = v_until
         where t.bucket = v_key.bucket and t.execution_id = v_key.execution_id
           and t.attempts = 0 and t.locked_by is null;
        if found then
            -- The deadline keeps its distance from the start. Read first: Citus refuses a
            -- column in a time-zone-dependent (stable) expression of an UPDATE. The key's
            -- row lock (above) keeps other starts of this key out in between.
            select e.deadline_at - coalesce(e.start_at, e.created_at) into v_span
              from public.zart_executions e
             where e.bucket = v_key.bucket and e.id = v_key.execution_id;
            update public.zart_executions e
               set input = p_input, start_at = v_until, updated_at = v_now,
                   deadline_at = v_until + v_span
             where e.bucket = v_key.bucket and e.id = v_key.execution_id;
            update public.zart_start_keys k set expires_at = v_until
             where k.task_name = v_key.task_name and k.start_key = v_key.start_key
               and k.tenant = v_key.tenant;
            return query select false, 'scheduled'::text, v_key.execution_id, null::timestamptz;
            return;
        end if;
    end if;
    update public.zart_start_keys k set expires_at = v_until
     where k.task_name = v_key.task_name and k.start_key = v_key.start_key and k.tenant = v_key.tenant;
    return query select null::boolean, null::text, null::text, v_until;
end
$$;

-- Called by zart_start_execution and zart_start: the start time of a delayed start, from a
-- delay or a time (not both). No locks. Raises ZA004 for both, a delay outside 0 ms to 100
-- years, or a time more than 100 years ahead.
create or replace function public.zart_start_time(p_after_ms bigint, p_at timestamptz)
returns timestamptz
language plpgsql stable as $$
declare
    v_now timestamptz := public.zart_current_time();
begin
    if p_after_ms is not null and p_at is not null then
        raise exception 'invalid start: give a delay or a start time, not both' using errcode = 'ZA004';
    end if;
    if p_after_ms is not null then
        perform public.zart_check_ms('start delay', p_after_ms);
        return v_now + p_after_ms * interval '1 millisecond';
    end if;
    if p_at > v_now + interval '100 years' then
        raise exception 'invalid start time: % is more than 100 years ahead', p_at using errcode = 'ZA004';
    end if;
    return p_at;
end
$$;

-- Entry point for SQL and triggers: starts an execution in the caller's transaction and wakes
-- workers with NOTIFY zart_work (delivered at commit). With p_start_at, it is due then (an
-- earlier time means now). Same locks and SQLSTATEs as above.
create or replace function public.zart_start(
    p_id        text,
    p_task_name text,
    p_input     jsonb default '{}'::jsonb,
    p_queue     text default 'default',
    p_start_at  timestamptz default null,
    -- integer, not smallint: `p_priority => 5` must resolve (no implicit int4 -> int2 cast).
    p_priority  integer default 0,
    p_limit_key text default null,
    p_start_key text default null,
    p_start_key_ms bigint default null,
    p_debounce  boolean default false
) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_created boolean;
begin
    perform public.zart_check_text('execution id', p_id);
    if p_priority not between -32768 and 32767 then
        raise exception 'invalid priority: % is outside -32768 to 32767', p_priority using errcode = 'ZA004';
    end if;
    select s.created into v_created
      from public.zart_start_execution(public.zart_bucket(p_id), p_id, p_task_name, p_input, p_queue,
                                       null, null, null, p_start_at, p_priority::smallint, p_limit_key,
                                       p_start_key, p_start_key_ms, p_debounce) s;
    if v_created then
        perform pg_notify('zart_work', p_queue);
    end if;
    return v_created;
end
$$;

-- Called by zart_claim_tasks: whether a sleep step (status, wake time) is over at p_now.
create or replace function public.zart_sleep_is_over(p_status text, p_wake_at timestamptz, p_now timestamptz)
returns boolean
language sql immutable as $$
    select p_status = 'waiting' and p_wake_at <= p_now
$$;

-- Called by zart_claim_tasks, zart_pick_tasks and zart_next_run_at: the (task name, priority)
-- pairs of p_queue that have task rows, highest priority first and, within a priority, the
-- names in turn from p_first, as two arrays in that order (the callers unnest them). A loose
-- index scan of zart_tasks_claim_idx: one descent per pair, and one more per name. Within
-- p_buckets when given (on Citus, one shard's: docs/scale.md). A statement of its own before
-- the caller's, not a function in it: Citus would send the call to the shard's node, where
-- it would read the table there, not the shard. No locks. Raises nothing.
create or replace function public.zart_claim_levels(
    p_queue      text,
    p_task_names text[],
    p_first      integer,
    p_buckets    smallint[],
    out level_names      text[],
    out level_priorities smallint[]
)
language plpgsql stable as $$
begin
    with recursive names as (
        select n.task_name, (n.ord - 1 + p_first) % greatest(cardinality(p_task_names), 1) as turn
          from unnest(p_task_names) with ordinality as n(task_name, ord)
    ), levels as (
        select nm.task_name, nm.turn,
               (select max(t.priority) from public.zart_tasks t
                 where t.queue = p_queue and t.task_name = nm.task_name
                   and (p_buckets is null or t.bucket = any (p_buckets))) as priority
          from names nm
        union all
        select l.task_name, l.turn,
               (select max(t.priority) from public.zart_tasks t
                 where t.queue = p_queue and t.task_name = l.task_name and t.priority < l.priority
                   and (p_buckets is null or t.bucket = any (p_buckets)))
          from levels l
         where l.priority is not null
    )
    select array_agg(l.task_name order by l.priority desc, l.turn),
           array_agg(l.priority order by l.priority desc, l.turn)
      into level_names, level_priorities
      from levels l
     where l.priority is not null;
end
$$;

-- Called by zart_claim_tasks, zart_next_run_at and zart_list_queue_limits: what counts against
-- p_queue's limits at p_now, as one row: the runs running (task rows claimed in the limited
-- queue that still hold their lease: zart_tasks_running_idx) and started within p_rate_ms
-- (zart_limit_runs; null: none), and per limit key the same as maps key -> count (keys with
-- none left out; started counted within p_key_rate_ms). No locks. Raises nothing.
create or replace function public.zart_limit_counts(
    p_queue       text,
    p_rate_ms     bigint,
    p_key_rate_ms bigint,
    p_now         timestamptz
) returns table (running integer, in_rate integer, key_running jsonb, key_recent jsonb)
-- PL/pgSQL, and two plain aggregates rather than grouping sets: Citus plans neither a SQL
-- function's parameters nor grouping sets across shards.
language plpgsql stable as $$
#variable_conflict use_column
begin
    select coalesce(sum(g.n), 0)::integer,
           coalesce(jsonb_object_agg(g.limit_key, g.n) filter (where g.limit_key is not null), '{}')
      into running, key_running
      from (select t.limit_key, count(*) as n
              from public.zart_tasks t
             where t.queue = p_queue and t.counted and t.locked_by is not null
               and t.run_at > p_now
             group by t.limit_key) g;
    select coalesce(sum(g.in_rate), 0)::integer,
           coalesce(jsonb_object_agg(g.limit_key, g.in_key_rate)
                        filter (where g.limit_key is not null and g.in_key_rate > 0), '{}')
      into in_rate, key_recent
      from (select r.limit_key,
                   count(*) filter (where r.started_at > p_now - p_rate_ms * interval '1 millisecond')
                       as in_rate,
                   count(*) filter (where r.started_at > p_now - p_key_rate_ms * interval '1 millisecond')
                       as in_key_rate
              from public.zart_limit_runs r
             where r.queue = p_queue
               and r.started_at > p_now - greatest(p_rate_ms, p_key_rate_ms) * interval '1 millisecond'
             group by r.limit_key) g;
    return next;
end
$$;

-- Called by zart_claim_tasks (p_lock) and zart_next_run_at (not p_lock): the due tasks a claim
-- of up to p_limit takes where it cannot take them simply in order: on an oldest-first claim,
-- or in a queue with limits per key (p_key_max_running, p_key_rate_limit; p_running and
-- p_recent are zart_limit_counts's key_running and key_recent; p_limit is then what the queue's own limits allow). Candidates come in
-- claim order (priority, then the names' turn, then run_at) or, oldest first, by run_at across
-- priorities (from the first 1000 due of each name and priority). A candidate whose limit key
-- is at its limits (counting the ones picked here too) is passed over. With p_lock: locks each picked task row (FOR UPDATE SKIP LOCKED; the caller
-- holds the queue's limits row). Without: no locks (what a claim could take now). Raises
-- nothing.
create or replace function public.zart_pick_tasks(
    p_queue                text,
    p_task_names           text[],
    p_limit                integer,
    p_now                  timestamptz,
    p_first                integer,
    p_oldest_first         boolean,
    p_buckets              smallint[],
    p_tenants              text[],
    p_lock                 boolean,
    p_key_max_running      integer,
    p_key_rate_limit       integer,
    p_running              jsonb,
    p_recent               jsonb
) returns table (bucket smallint, execution_id text)
language plpgsql volatile
set enable_hashjoin = off
set enable_mergejoin = off
as $$
#variable_conflict use_column
declare
    v_keyed   boolean := p_key_max_running is not null or p_key_rate_limit is not null;
    v_running jsonb := coalesce(p_running, '{}');
    v_recent  jsonb := coalesce(p_recent, '{}');
    v_cur     refcursor;
    v_cand    record;
    v_n       integer := 0;
    v_levels     text[];
    v_priorities smallint[];
begin
    if p_limit <= 0 then
        return;
    end if;
    select l.level_names, l.level_priorities into v_levels, v_priorities
      from public.zart_claim_levels(p_queue, p_task_names, p_first, p_buckets) l;
    if p_oldest_first then
        open v_cur for
            select d.bucket, d.execution_id, d.limit_key
              from unnest(v_levels, v_priorities) as lv(task_name, priority)
             cross join lateral (
                   select t.bucket, t.execution_id, t.limit_key, t.run_at
                     from public.zart_tasks t
                    where t.queue = p_queue and t.task_name = lv.task_name
                      and t.priority = lv.priority and t.run_at <= p_now
                      and (p_buckets is null or t.bucket = any (p_buckets))
                      and (p_tenants is null or t.tenant = any (p_tenants))
                    order by t.run_at
                    limit 1000) d
             order by d.run_at;
    else
        -- No ORDER BY: the nested loop yields rows in claim order, and reads only as far as
        -- the picking goes.
        open v_cur for
            select d.bucket, d.execution_id, d.limit_key
              from unnest(v_levels, v_priorities) as lv(task_name, priority)
             cross join lateral (
                   select t.bucket, t.execution_id, t.limit_key
                     from public.zart_tasks t
                    where t.queue = p_queue and t.task_name = lv.task_name
                      and t.priority = lv.priority and t.run_at <= p_now
                      and (p_buckets is null or t.bucket = any (p_buckets))
                      and (p_tenants is null or t.tenant = any (p_tenants))
                    order by t.run_at) d;
    end if;
    loop
        exit when v_n >= p_limit;
        fetch v_cur into v_cand;
        exit when not found;
        if v_keyed and v_cand.limit_key is not null
           and (coalesce((v_running ->> v_cand.limit_key)::integer, 0) >= p_key_max_running
                or coalesce((v_recent ->> v_cand.limit_key)::integer, 0) >= p_key_rate_limit) then
            continue;
        end if;
        if p_lock then
            perform 1 from public.zart_tasks t
             where t.bucket = v_cand.bucket and t.execution_id = v_cand.execution_id
               and t.run_at <= p_now
               for update skip locked;
            if not found then
                continue;
            end if;
        end if;
        if v_keyed and v_cand.limit_key is not null then
            v_running := jsonb_set(v_running, array[v_cand.limit_key],
                                   to_jsonb(coalesce((v_running ->> v_cand.limit_key)::integer, 0) + 1));
            v_recent := jsonb_set(v_recent, array[v_cand.limit_key],
                                  to_jsonb(coalesce((v_recent ->> v_cand.limit_key)::integer, 0) + 1));
        end if;
        v_n := v_n + 1;
        bucket := v_cand.bucket;
        execution_id := v_cand.execution_id;
        return next;
    end loop;
    close v_cur;
end
$$;

-- Called by the functions that end a run (zart_suspend, zart_complete_executions): when
-- p_queue's limits held its last claim back, a run ending may let a claim go, so workers are
-- woken (NOTIFY zart_work, at commit). No locks. Raises nothing.
create or replace function public.zart_limit_freed(p_queue text) returns void
language sql volatile as $$
    select pg_notify('zart_work', l.queue)
      from public.zart_queue_limits l
     where l.queue = p_queue and l.held_back
$$;

-- Entry point for workers (claim_tasks), in a transaction of its own: it turns
-- synchronous_commit off for the rest of the transaction it runs in. Locks up to p_limit due
-- task rows (FOR UPDATE SKIP LOCKED) of the session's tenants, then their execution rows.
-- Higher priorities first; with p_oldest_first (a worker's every tenth claim), the longest
-- due first whatever their priority, so no priority starves. In a queue with limits, picks
-- through zart_pick_tasks (which locks the queue's limits row first).
-- Raises ZA004 for a lease outside 0 ms to 100 years or a negative limit (a lease of 0 ms
-- expires at once: the task is due again, which benchmarks use to claim it over and over).
create or replace function public.zart_claim_tasks(
    p_worker_id  text,
    p_queue      text,
    p_task_names text[],
    p_limit      integer,
    p_lease_ms   bigint,
    p_buckets    smallint[] default null,
    p_oldest_first boolean default false
) returns table (
    bucket       smallint,
    execution_id text,
    task_name    text,
    queue        text,
    parent_id    text,
    fence          bigint,
    attempts       integer,
    recoveries     integer,
    input          jsonb,
    deadline_in_ms bigint,
    steps          jsonb
)
-- One plan per session, made once (plan_cache_mode): a plan made afresh for each call cost
-- about as much as the claim itself when it takes one task (0.5 ms of planning in an idle
-- claim of 1.3 ms; 0.7 ms with the kept plan), and plpgsql kept re-planning it. The plan is
-- made without the call's values, so it must stay index-driven however the estimates fall:
-- every join below is a handful of rows against a primary key (a hash join would read the
-- whole history table), and the due rows are read in index order and only as far as the
-- limit (a bitmap scan and a sort would read every due row first; seen in a drain, at 22 %
-- fewer executions/s).
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
set enable_seqscan = off
set enable_bitmapscan = off
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
    v_now   timestamptz := public.zart_current_time();
    v_names integer := greatest(coalesce(cardinality(p_task_names), 0), 1);
    -- Which name goes first rotates, so a flood of one task name cannot starve the others.
    v_first integer := floor(random() * v_names)::integer;
    -- A worker limited to some tenants claims only their tasks (null: any tenant). The
    -- setting is read first so that, with tenancy off, no other function is called.
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_lim     public.zart_queue_limits%rowtype;
    v_limited boolean := false;
    v_rated   boolean := false;
    v_allowed integer := p_limit;
    v_running integer;
    v_in_rate integer;
    v_key_running jsonb;
    v_key_recent  jsonb;
    -- Picked one by one (zart_pick_tasks) rather than taken in order by the statement below.
    v_picked  boolean := coalesce(p_oldest_first, false);
    -- Drawn here, not in the statement: Citus refuses a volatile function in an UPDATE.
    v_seed    bigint := public.zart_new_fence();
    v_pick_buckets smallint[];
    v_pick_ids     text[];
    v_levels       text[];
    v_priorities   smallint[];
begin
    if p_lease_ms is null or p_lease_ms < 0 or p_lease_ms > 3155760000000 then
        raise exception 'invalid lease: % ms is outside 0 ms to 100 years', p_lease_ms
            using errcode = 'ZA004';
    end if;
    if p_limit is null or p_limit < 0 then
        raise exception 'invalid limit: % is not a number of tasks', p_limit using errcode = 'ZA004';
    end if;
    -- The claim's commit does not wait for its WAL flush (see "Claims commit asynchronously"
    -- in docs/reliability.md): a claim lost in a database crash is harmless, because its
    -- fence is drawn at random, so the next claim cannot hand the same fence to another run,
    -- and anything written under it is flushed with the claim before it commits.
    perform set_config('synchronous_commit', 'off', true);
    -- A queue with limits: its claims take turns on its limits row, and take what the limits
    -- allow (with limits per key, picked one by one). zart_limits_on() is a constant: without
    -- any limits, none of this is planned.
    if public.zart_limits_on() then
        select * into v_lim from public.zart_queue_limits l where l.queue = p_queue for update;
        if found then
            v_limited := true;
            v_rated := v_lim.rate_limit is not null or v_lim.key_rate_limit is not null;
            -- Runs past every rate window count no more.
            delete from public.zart_limit_runs r
             where r.queue = p_queue
               and r.started_at <= v_now - coalesce(greatest(v_lim.rate_interval_ms,
                                                             v_lim.key_rate_interval_ms), 0)
                                           * interval '1 millisecond';
            select c.running, c.in_rate, c.key_running, c.key_recent
              into v_running, v_in_rate, v_key_running, v_key_recent
              from public.zart_limit_counts(p_queue, v_lim.rate_interval_ms,
                                            v_lim.key_rate_interval_ms, v_now) c;
            -- least() ignores nulls: a limit not set does not bound.
            v_allowed := greatest(least(p_limit, v_lim.max_running - v_running,
                                        v_lim.rate_limit - v_in_rate), 0);
            v_picked := v_picked or v_lim.key_max_running is not null or v_lim.key_rate_limit is not null;
            -- Held back (or possibly, with limits per key): a run that ends wakes the workers.
            if v_lim.held_back is distinct from (v_allowed < p_limit or v_picked) then
                update public.zart_queue_limits l set held_back = not l.held_back
                 where l.queue = p_queue;
            end if;
            if v_allowed = 0 then
                return;
            end if;
        end if;
    end if;
    if not v_picked then
        select l.level_names, l.level_priorities into v_levels, v_priorities
          from public.zart_claim_levels(p_queue, p_task_names, v_first, p_buckets) l;
        if v_levels is null then
            return;  -- no task of these names in the queue (in these buckets)
        end if;
    else
        select array_agg(pk.bucket), array_agg(pk.execution_id)
          into v_pick_buckets, v_pick_ids
          from public.zart_pick_tasks(p_queue, p_task_names, v_allowed, v_now, v_first, p_oldest_first,
                                      p_buckets, v_tenants, true, v_lim.key_max_running,
                                      v_lim.key_rate_limit, v_key_running, v_key_recent) pk;
        if v_pick_ids is null then
            return;
        end if;
    end if;
    -- One index range per registered name and priority (zart_tasks_claim_idx, levels from
    -- zart_claim_levels), each from its earliest due row: due rows of names this worker does
    -- not run are never read. The LIMIT pulls rows one at a time through the nested loop, so
    -- a row is locked only when it is taken and nothing beyond the limit is locked. Or the
    -- rows zart_pick_tasks picked and locked.
    return query
        with due as materialized (
            (select d.bucket, d.execution_id, d.wait_kind, d.wait_name
               from unnest(v_levels, v_priorities) as lv(task_name, priority)
              cross join lateral (
                    select t.bucket, t.execution_id, t.wait_kind, t.wait_name
                      from public.zart_tasks t
                     where t.queue = p_queue
                       and t.task_name = lv.task_name
                       and t.priority = lv.priority
                       and t.run_at <= v_now
                       and (p_buckets is null or t.bucket = any (p_buckets))
                       and (v_tenants is null or t.tenant = any (v_tenants))
                     order by t.run_at
                     limit v_allowed
                       for update skip locked) d
              where not v_picked
              limit v_allowed)
            union all
            select t.bucket, t.execution_id, t.wait_kind, t.wait_name
              from unnest(v_pick_buckets, v_pick_ids) as u(bucket, execution_id)
              join public.zart_tasks t on t.bucket = u.bucket and t.execution_id = u.execution_id
             where v_picked and (p_buckets is null or t.bucket = any (p_buckets))
        ), claimed as (
            -- Each table below is read within p_buckets too: on Citus that keeps the whole
            -- statement on the one shard the buckets are on, one round trip (docs/scale.md).
            -- By key, not ctid: a row updated while the lock waited is returned by `due` with
            -- the ctid it was read at, not the one it was locked at.
            update public.zart_tasks t
               set locked_by = p_worker_id,
                   run_at    = v_now + p_lease_ms * interval '1 millisecond',
                   fence     = public.zart_fence_of(t.execution_id, v_seed),
                   attempts  = t.attempts + 1,
                   -- Still locked at claim time: its lease expired, so this is a recovery.
                   recoveries = t.recoveries + case when t.locked_by is null then 0 else 1 end,
                   wait_kind = null,
                   wait_name = null,
                   -- Counted against the queue's concurrency limits while the lease holds.
                   counted   = v_limited,
                   -- When it first ran; the execution row gets it when the run suspends or ends.
                   started_at = coalesce(t.started_at, v_now)
              from due
             where t.bucket = due.bucket and t.execution_id = due.execution_id
               and (p_buckets is null or t.bucket = any (p_buckets))
            returning t.bucket, t.execution_id, t.task_name, t.queue, t.fence, t.attempts, t.recoveries,
                      due.wait_kind, due.wait_name
        ), woken as (
            -- A sleep that is over ends here, as zart_sleep would end it, so the replay finds
            -- it completed and needs no round trip of its own. (Written under this claim: if
            -- the claim is lost, so is this, and the next replay ends the sleep itself.)
            -- Found row by row from `due` (a lookup on the key for each), whatever the
            -- statistics say of zart_steps, then updated by row address: no one else writes
            -- the steps of an execution whose task row this claim holds, and a row that moved
            -- meanwhile is left for the replay, as if the claim had been lost.
            update public.zart_steps st
               set status = 'completed', output = to_jsonb(v_now), attempts = 1, updated_at = v_now
             where st.ctid = any (array(
                       select (select s.ctid from public.zart_steps s
                                where s.bucket = due.bucket and s.execution_id = due.execution_id
                                  and s.name = due.wait_name
                                  and (p_buckets is null or s.bucket = any (p_buckets)))
                         from due
                        where due.wait_kind = 'sleep'))
               and (p_buckets is null or st.bucket = any (p_buckets))
               and public.zart_sleep_is_over(st.status, st.wake_at, v_now)
        ), started as (
            -- Read, not written: the leased task row is what says "running" (see
            -- zart_execution_status), so a claim writes one row per execution, not two.
            select c.bucket, c.execution_id, c.task_name, c.queue, e.parent_id, c.fence, c.attempts,
                   c.recoveries, e.input, e.deadline_at, c.wait_kind, c.wait_name
              from claimed c
              join public.zart_executions e on e.bucket = c.bucket and e.id = c.execution_id
             where (p_buckets is null or e.bucket = any (p_buckets))
        )
        select s.bucket, s.execution_id, s.task_name, s.queue, s.parent_id, s.fence, s.attempts,
               s.recoveries, s.input,
               floor(extract(epoch from (s.deadline_at - v_now)) * 1000)::bigint,
               -- Steps are written only under a claim, so a first claim has none to read.
               case when s.attempts = 1 then '[]'::jsonb
               -- The statement reads steps as they were before it, so the sleep `woken` ended
               -- is shown ended here too.
               else coalesce((select jsonb_agg(jsonb_build_object(
                                    'name', st.name, 'seq', st.seq,
                                    'status', case when o.over then 'completed' else st.status end,
                                    'output', case when o.over then to_jsonb(v_now) else st.output end,
                                    'error', st.error,
                                    'attempts', case when o.over then 1 else st.attempts end,
                                    'kind', st.kind)
                                 order by st.seq)
                           from public.zart_steps st
                          cross join lateral (
                                select s.wait_kind = 'sleep' and st.name = s.wait_name
                                       and public.zart_sleep_is_over(st.status, st.wake_at, v_now)
                                       as over) o
                          where st.bucket = s.bucket and st.execution_id = s.execution_id
                            and (p_buckets is null or st.bucket = any (p_buckets))),
                        '[]'::jsonb) end
          from started s;
    -- In a queue with a rate limit, each run counts against it (zart_limit_runs): the rows
    -- this claim leased, found by their fences. (A statement of its own: Citus cannot keep an
    -- INSERT fed by another part of the statement above on one shard.)
    if v_rated then
        insert into public.zart_limit_runs (queue, started_at, bucket, execution_id, fence, limit_key)
        select p_queue, v_now, t.bucket, t.execution_id, t.fence, t.limit_key
          from public.zart_tasks t
         where t.queue = p_queue and t.counted and t.locked_by = p_worker_id
           and t.fence = public.zart_fence_of(t.execution_id, v_seed)
           and (p_buckets is null or t.bucket = any (p_buckets));
    end if;
end
$$;

-- Called by the claims: a new lease token. 62 random bits (random() carries 52 per call), so
-- never the fence of an earlier claim, however that claim ended. No locks. Raises nothing.
create or replace function public.zart_new_fence() returns bigint
language sql volatile as $$
    select (floor(random() * 2147483648)::bigint << 31) | floor(random() * 2147483648)::bigint
$$;

-- Called by the claims: the fence of one claimed row, from a zart_new_fence() drawn once per
-- claim (p_seed): each row's as random as the seed, so never an earlier fence of its
-- execution (what fencing needs). Immutable,
-- because Citus refuses a volatile function in an UPDATE of a distributed table. No locks.
-- Raises nothing.
create or replace function public.zart_fence_of(p_execution_id text, p_seed bigint) returns bigint
language sql immutable parallel safe as $$
    select hashtextextended(p_execution_id, p_seed) & 4611686018427387903
$$;

-- Entry point for workers, called in a start's own statement (DurableScheduler::start with an
-- idle worker in the same process: the in-process hand-off, docs/architecture.md). Leases the
-- execution p_execution_id for p_worker_id when p_created (the start just created it), it is
-- due and not leased, its queue has no limits, and the session may serve its tenant; returns
-- it as zart_claim_tasks would (a first claim: no steps), else nothing. Unlike that claim it
-- leaves synchronous_commit alone: the start it shares a transaction with stays durable.
-- Locks the task row (the start's own). Raises ZA004 for a lease outside 0 ms to 100 years.
create or replace function public.zart_claim_started(
    p_worker_id    text,
    p_bucket       smallint,
    p_execution_id text,
    p_lease_ms     bigint,
    p_created      boolean
) returns table (
    bucket       smallint,
    execution_id text,
    task_name    text,
    queue        text,
    parent_id    text,
    fence          bigint,
    attempts       integer,
    recoveries     integer,
    input          jsonb,
    deadline_in_ms bigint,
    steps          jsonb
)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    v_now     timestamptz := public.zart_current_time();
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_seed    bigint := public.zart_new_fence();
begin
    if p_lease_ms is null or p_lease_ms < 0 or p_lease_ms > 3155760000000 then
        raise exception 'invalid lease: % ms is outside 0 ms to 100 years', p_lease_ms
            using errcode = 'ZA004';
    end if;
    if not coalesce(p_created, false) then
        return;
    end if;
    return query
        with claimed as (
            update public.zart_tasks t
               set locked_by = p_worker_id,
                   run_at = v_now + p_lease_ms * interval '1 millisecond',
                   fence = public.zart_fence_of(t.execution_id, v_seed),
                   attempts = t.attempts + 1,
                   started_at = coalesce(t.started_at, v_now)
             where t.bucket = p_bucket and t.execution_id = p_execution_id
               and t.locked_by is null and t.run_at <= v_now and t.wait_kind is null
               and (v_tenants is null or t.tenant = any (v_tenants))
               -- A limited queue's runs are counted by its claims: those go the usual way.
               and not (public.zart_limits_on()
                        and exists (select 1 from public.zart_queue_limits l where l.queue = t.queue))
            returning t.bucket, t.execution_id, t.task_name, t.queue, t.fence, t.attempts, t.recoveries
        )
        select c.bucket, c.execution_id, c.task_name, c.queue, e.parent_id, c.fence, c.attempts,
               c.recoveries, e.input,
               floor(extract(epoch from (e.deadline_at - v_now)) * 1000)::bigint,
               '[]'::jsonb
          from claimed c
          join public.zart_executions e on e.bucket = c.bucket and e.id = c.execution_id;
end
$$;

-- Called by TaskContext::step after the body ran (and by zart_retry_step). Locks the task row
-- (FOR NO KEY UPDATE), so a concurrent claim skips it, then writes the step row. Raises
-- ZA001/ZA002 if the fence is stale, ZA006 if a final result for this step is already recorded.
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
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_code text := public.zart_try_commit_step(p_bucket, p_execution_id, p_fence, p_name, p_seq,
                                               p_status, p_output, p_error, p_attempts);
begin
    if v_code = 'ZA006' then
        raise exception 'step "%" of execution "%" is already recorded', p_name, p_execution_id
            using errcode = 'ZA006';
    elsif v_code like 'ZA004 %' then
        raise exception '%', substr(v_code, 7) using errcode = 'ZA004';
    elsif v_code is not null then
        perform public.zart_raise_fence(p_bucket, p_execution_id, p_fence);
    end if;
end
$$;

-- Called by TaskContext::step_with_retry when a back-off is long enough to suspend. Locks the
-- task row, records the attempt as 'retrying', and makes the task due after p_delay_ms.
-- Returns p_delay_ms. Raises ZA001/ZA002 if the fence is stale, ZA006 if already final.
create or replace function public.zart_retry_step(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_name         text,
    p_seq          integer,
    p_error        jsonb,
    p_attempts     integer,
    p_delay_ms     bigint
) returns bigint
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform public.zart_check_ms('retry delay', p_delay_ms);
    perform public.zart_commit_step(p_bucket, p_execution_id, p_fence, p_name, p_seq, 'retrying',
                                    null, p_error, p_attempts);
    perform public.zart_suspend(p_bucket, p_execution_id, p_fence,
                                public.zart_current_time() + p_delay_ms * interval '1 millisecond',
                                'sleeping', 'retry', p_name);
    return p_delay_ms;
end
$$;

-- Called by Worker when a run ends with an output or a failure. Deletes the task row (the lock),
-- updates the execution row, then wakes the parent's task if it waits for this child.
-- Returns the parent's queue when it woke one, else null. Raises ZA001/ZA002 if the fence is
-- stale, ZA004 for a status that is not final.
create or replace function public.zart_complete_execution(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_status       text,
    p_output       jsonb,
    p_error        jsonb
) returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_result record;
begin
    select * into v_result
      from public.zart_try_complete_execution(p_bucket, p_execution_id, p_fence, p_status,
                                              p_output, p_error);
    if v_result.code like 'ZA004 %' then
        raise exception '%', substr(v_result.code, 7) using errcode = 'ZA004';
    elsif v_result.code is not null then
        perform public.zart_raise_fence(p_bucket, p_execution_id, p_fence);
    end if;
    return v_result.parent_queue;
end
$$;

-- Called by the functions that register a wait (zart_await_event, zart_start_child) and by
-- zart_wake_waiter. Takes the execution's wait lock, a transaction-level advisory lock on the
-- 64-bit hash of the id seeded with zart_settings.lock_salt: registering a wait and waking a
-- waiter are serialised per execution without touching the task row, so a long user
-- transaction that emits an event never holds up a worker's heartbeat. Any login may take
-- advisory locks, but without the salt (readable by the owner only) it cannot tell which key
-- an execution's lock is. Raises nothing.
create or replace function public.zart_wait_lock(p_execution_id text) returns void
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(hashtextextended(
        p_execution_id, coalesce((select s.lock_salt from public.zart_settings s), 0)));
end
$$;

-- Called when something an execution may wait for happens (an event, a child's outcome).
-- Takes the waiter's wait lock first, so a waiter that is registering its wait right now is
-- seen once it commits; then makes it due if it waits for exactly this (locking its task row
-- only then: a suspended task is held by no worker). Returns its queue, else null.
create or replace function public.zart_wake_waiter(p_execution_id text, p_wait_kind text, p_wait_name text)
returns text
language plpgsql as $$
declare
    v_bucket smallint := public.zart_bucket(p_execution_id);
    v_queue  text;
begin
    perform public.zart_wait_lock(p_execution_id);
    update public.zart_tasks t
       set run_at = public.zart_current_time()
     where t.bucket = v_bucket and t.execution_id = p_execution_id
       and t.wait_kind = p_wait_kind and t.wait_name = p_wait_name and t.locked_by is null
    returning t.queue into v_queue;
    return v_queue;
end
$$;

-- Called by zart_commit_steps, inlined into its statement (sql, stable, one expression): why a
-- step result is one the engine never writes, as a ZA004 message, or null when it is fine.
-- p_limit: the payload limit. No locks. Raises nothing.
create or replace function public.zart_step_problem(
    p_status   text,
    p_name     text,
    p_seq      integer,
    p_attempts integer,
    p_output   jsonb,
    p_error    jsonb,
    p_limit    bigint
) returns text
language sql stable as $$
    select case
           when p_status is null or p_status not in ('completed', 'failed', 'retrying') then
               format('invalid step status: %s is not completed, failed or retrying',
                      coalesce('"' || p_status || '"', 'null'))
           when p_name is null or octet_length(p_name) not between 1 and 255 then
               format('invalid step name: %s is not 1 to 255 bytes',
                      coalesce('"' || left(p_name, 40) || '"', 'null'))
           when p_seq is null or p_seq < 0 or p_attempts is null or p_attempts < 0 then
               format('invalid step position: seq %s, attempts %s', p_seq, p_attempts)
           when octet_length(p_output::text) > p_limit then
               format('invalid step output: %s bytes of JSON is over the limit of %s bytes',
                      octet_length(p_output::text), p_limit)
           when octet_length(p_error::text) > p_limit then
               format('invalid step error: %s bytes of JSON is over the limit of %s bytes',
                      octet_length(p_error::text), p_limit)
           end
$$;

-- Called by zart_complete_executions, inlined: why an outcome is one the engine never writes, as
-- a ZA004 message, or null. No locks. Raises nothing.
create or replace function public.zart_outcome_problem(
    p_status text,
    p_output jsonb,
    p_error  jsonb,
    p_limit  bigint
) returns text
language sql stable as $$
    select case
           when p_status is null or p_status not in ('completed', 'failed') then
               format('invalid status: %s is not a final status', coalesce('"' || p_status || '"', 'null'))
           when octet_length(p_output::text) > p_limit then
               format('invalid output: %s bytes of JSON is over the limit of %s bytes',
                      octet_length(p_output::text), p_limit)
           when octet_length(p_error::text) > p_limit then
               format('invalid error: %s bytes of JSON is over the limit of %s bytes',
                      octet_length(p_error::text), p_limit)
           end
$$;

-- Called by PostgresScheduler's group commit (and, as a batch of one, by zart_commit_step):
-- records many step results, from many executions, in one statement. Locks each task row FOR
-- NO KEY UPDATE in key order (fence matching, lease held), so a concurrent claim skips it and
-- emits and child outcomes wait, then writes the step rows. Returns one code per item: null
-- when recorded, else ZA001 (cancelled), ZA002 (lease lost) or ZA006 (already recorded); an
-- item's failure leaves the others recorded; the same step twice in one batch is recorded
-- once, from the first, and the second gets ZA006. An item the engine would never write (a
-- status other than completed, failed or retrying, a bad name or position, JSON over the
-- payload limit) is not written and gets 'ZA004 <message>'. Raises nothing of its own.
create or replace function public.zart_commit_steps(
    p_buckets       smallint[],
    p_execution_ids text[],
    p_fences        bigint[],
    p_names         text[],
    p_seqs          integer[],
    p_statuses      text[],
    p_outputs       jsonb[],
    p_errors        jsonb[],
    p_attempts      integer[]
) returns text[]
-- Index-driven whatever the estimates (see zart_claim_tasks).
language plpgsql security definer
set search_path = pg_catalog, pg_temp
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
as $$
declare
    v_now     timestamptz := public.zart_current_time();
    v_n       integer := coalesce(cardinality(p_buckets), 0);
    v_written text[];
    v_seen    text[] := '{}';
    v_key     text;
    v_codes   text[] := '{}';
    v_limit   bigint := public.zart_payload_limit();
    v_problem text;
begin
    -- One statement for the whole batch: lock each held task row (fence matches, lease held),
    -- in key order, then write the step rows; a final result already recorded is left alone;
    -- an item the engine would never write (zart_step_problem, inlined) is left out.
    -- LATERAL keeps the plan a key lookup per item whatever the statistics say.
    with held as (
        select i.*
          from (select distinct on (u.bucket, u.execution_id, u.name) *
                  from unnest(p_buckets, p_execution_ids, p_fences, p_names, p_seqs, p_statuses,
                              p_outputs, p_errors, p_attempts)
                           with ordinality
                           as u(bucket, execution_id, fence, name, seq, status, output, error, attempts, ord)
                 where public.zart_step_problem(u.status, u.name, u.seq, u.attempts, u.output,
                                                u.error, v_limit) is null
                 -- The same step twice in one batch: the first is written, the second is not.
                 order by u.bucket, u.execution_id, u.name, u.ord) i
         cross join lateral (
               select 1 from public.zart_tasks t
                where t.bucket = i.bucket and t.execution_id = i.execution_id
                  and t.fence = i.fence and t.locked_by is not null
                  -- Within the batch's buckets: on Citus (a batch per shard) that keeps the
                  -- lock on one shard (docs/scale.md).
                  and t.bucket = any (p_buckets)
                  for no key update) l
    ), written as (
        -- A name starting with 'patch:' is a versioning marker (TaskContext::patched), one
        -- starting with 'state:' or 'state#' a published value (TaskContext::set_state).
        insert into public.zart_steps as s
            (bucket, execution_id, name, seq, kind, status, output, error, attempts, created_at,
             updated_at)
        select h.bucket, h.execution_id, h.name, h.seq,
               case left(h.name, 6) when 'patch:' then 'patch' when 'state:' then 'state'
                                    when 'state#' then 'state' else 'step' end,
               h.status, h.output, h.error, h.attempts, v_now, v_now
          from held h
        on conflict on constraint zart_steps_pkey do update
           set status = excluded.status, output = excluded.output, error = excluded.error,
               attempts = excluded.attempts, updated_at = excluded.updated_at
         where s.status = 'retrying'
        returning jsonb_build_array(s.execution_id, s.name)::text
    )
    select array_agg(w.k) into v_written from written w(k);

    if coalesce(cardinality(v_written), 0) = v_n then
        return array_fill(null::text, array[v_n]);
    end if;
    -- Some item was not recorded: say why, item by item (rare: a lost lease, a cancellation,
    -- a result recorded before).
    for i in 1 .. v_n loop
        v_key := jsonb_build_array(p_execution_ids[i], p_names[i])::text;
        v_problem := public.zart_step_problem(p_statuses[i], p_names[i], p_seqs[i], p_attempts[i],
                                              p_outputs[i], p_errors[i], v_limit);
        if v_problem is not null then
            v_codes := v_codes || ('ZA004 ' || v_problem);
        elsif v_key = any (v_written) and not v_key = any (v_seen) then
            v_seen := v_seen || v_key;
            v_codes := v_codes || null::text;
        else
            -- Still held (this statement locked it): the step's result was recorded before.
            v_codes := v_codes || coalesce(public.zart_try_lock_task(p_buckets[i], p_execution_ids[i],
                                                                     p_fences[i]), 'ZA006');
        end if;
    end loop;
    return v_codes;
end
$$;

-- Called by PostgresScheduler's group commit (and, as a batch of one, by
-- zart_complete_execution): records many outcomes in one statement. Deletes each task row
-- (fence matching, lease held; the delete is the lock), updates the execution rows, cancels
-- the unfinished descendants of the failed ones (as cancelling them would; NOTIFY zart_done
-- for each, in the transaction), then wakes parents waiting for these children. Returns one
-- row per item, in order: code null when recorded, else ZA001/ZA002, or 'ZA004 <message>'
-- for an outcome the engine would never write (not final, JSON over the payload limit), which
-- is not written; and the queue of a parent it woke. Raises nothing of its own.
create or replace function public.zart_complete_executions(
    p_buckets       smallint[],
    p_execution_ids text[],
    p_fences        bigint[],
    p_statuses      text[],
    p_outputs       jsonb[],
    p_errors        jsonb[]
) returns table (code text, parent_queue text)
-- Index-driven whatever the estimates (see zart_claim_tasks).
language plpgsql security definer
set search_path = pg_catalog, pg_temp
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
as $$
#variable_conflict use_column
declare
    v_now      timestamptz := public.zart_current_time();
    v_n        integer := coalesce(cardinality(p_buckets), 0);
    v_finished text[];
    v_children text[];
    v_parents  text[];
    v_failed   text[];
    v_failed_buckets smallint[];
    v_queues   text[];
    v_at       integer;
    v_limit    bigint := public.zart_payload_limit();
begin
    -- One statement for the whole batch: lock each held task row (fence matches, lease held) in
    -- key order, delete it, then record the outcome on its execution row. LATERAL keeps the plan
    -- a key lookup per item whatever the statistics say.
    with held as (
        select i.*
          from (select *
                  from unnest(p_buckets, p_execution_ids, p_fences, p_statuses, p_outputs, p_errors)
                           as u(bucket, execution_id, fence, status, output, error)
                 -- An outcome the engine would never write is left out (zart_outcome_problem,
                 -- inlined), and reported below.
                 where public.zart_outcome_problem(u.status, u.output, u.error, v_limit) is null
                 order by u.bucket, u.execution_id) i
         cross join lateral (
               select 1 from public.zart_tasks t
                where t.bucket = i.bucket and t.execution_id = i.execution_id
                  and t.fence = i.fence and t.locked_by is not null
                  -- Every table within the batch's buckets: on Citus (a batch per shard) that
                  -- keeps the statement on one shard (docs/scale.md).
                  and t.bucket = any (p_buckets)
                  for update) l
    ), removed as (
        -- Locked above, so the row is the one checked there. By key, not ctid: a row updated
        -- while the lock waited (a heartbeat) comes out of the lateral with the ctid it was
        -- read at, and a delete by that ctid would miss it.
        delete from public.zart_tasks t
         using held h
         where t.bucket = h.bucket and t.execution_id = h.execution_id
           and t.bucket = any (p_buckets)
        returning h.bucket, h.execution_id, h.status, h.output, h.error, t.attempts, t.started_at
    ), finished as (
        -- The claim wrote nothing here: the attempts and first start come from the task row.
        update public.zart_executions e
           set status = r.status, output = r.output, error = r.error,
               finished_at = v_now, updated_at = v_now, attempts = r.attempts,
               started_at = coalesce(e.started_at, r.started_at)
          from removed r
         where e.bucket = r.bucket and e.id = r.execution_id
           and e.bucket = any (p_buckets)
        returning e.id, e.parent_id, e.bucket, e.status, e.queue
    )
    select array_agg(f.id),
           array_agg(f.id) filter (where f.parent_id is not null),
           array_agg(f.parent_id) filter (where f.parent_id is not null),
           array_agg(f.id) filter (where f.status = 'failed'),
           array_agg(f.bucket) filter (where f.status = 'failed'),
           array_agg(distinct f.queue) filter (where public.zart_limits_on())
      into v_finished, v_children, v_parents, v_failed, v_failed_buckets, v_queues
      from finished f;
    -- A run that ends in a limited queue may let a waiting claim go.
    if v_queues is not null then
        perform public.zart_limit_freed(q.queue) from unnest(v_queues) as q(queue);
    end if;

    -- A failed execution's unfinished children are cancelled, as a cancelled one's are.
    if v_failed is not null
       and exists (select 1 from public.zart_executions c
                    where c.parent_id = any (v_failed)
                      and c.status not in ('completed', 'failed', 'cancelled')) then
        perform pg_notify('zart_done', jsonb_build_array(c.execution_id)::text)
           from public.zart_cancel_tree(v_failed_buckets, v_failed, false) c;
    end if;

    if coalesce(cardinality(v_finished), 0) = v_n and v_parents is null then
        return query select null::text, null::text from generate_series(1, v_n);
        return;
    end if;
    -- Each parent's wait lock first, in one order for every batch: taken item by item below,
    -- two batches finishing children of the same parents in another order would deadlock.
    perform public.zart_wait_lock(p.id)
       from (select distinct u.id from unnest(v_parents) as u(id) order by u.id) p;
    -- Parents waiting for a child, or items not recorded: item by item.
    for i in 1 .. v_n loop
        if p_execution_ids[i] = any (v_finished) then
            v_at := array_position(v_children, p_execution_ids[i]);
            code := null;
            parent_queue := case when v_at is null then null
                                 else public.zart_wake_waiter(v_parents[v_at], 'child', p_execution_ids[i]) end;
        else
            code := coalesce('ZA004 ' || public.zart_outcome_problem(p_statuses[i], p_outputs[i],
                                                                    p_errors[i], v_limit),
                             public.zart_fence_code(p_buckets[i], p_execution_ids[i]));
            parent_queue := null;
        end if;
        return next;
    end loop;
end
$$;

-- Called by zart_commit_step. A batch of one: recording a step is defined once, in
-- zart_commit_steps. Returns null when recorded, else the SQLSTATE to report: ZA001
-- (cancelled), ZA002 (lease lost), ZA006 (already recorded).
create or replace function public.zart_try_commit_step(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_name         text,
    p_seq          integer,
    p_status       text,
    p_output       jsonb,
    p_error        jsonb,
    p_attempts     integer
) returns text
-- PL/pgSQL, not SQL: Citus cannot plan a SQL function's parameters.
language plpgsql as $$
begin
    return (public.zart_commit_steps(array[p_bucket], array[p_execution_id], array[p_fence],
                                     array[p_name], array[p_seq], array[p_status],
                                     array[p_output], array[p_error], array[p_attempts]))[1];
end
$$;

-- Called by zart_complete_execution. A batch of one: recording an outcome is defined once, in
-- zart_complete_executions. Returns code null when recorded, else ZA001/ZA002; and the queue
-- of a woken parent. Raises ZA004 for a status that is not final.
create or replace function public.zart_try_complete_execution(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_status       text,
    p_output       jsonb,
    p_error        jsonb,
    out code         text,
    out parent_queue text
)
-- plpgsql, not sql: called in FROM, a sql function would be parsed and planned on every call.
language plpgsql as $$
begin
    select r.code, r.parent_queue into code, parent_queue
      from public.zart_complete_executions(array[p_bucket], array[p_execution_id], array[p_fence],
                                           array[p_status], array[p_output], array[p_error]) r;
end
$$;

-- Called by zart_heartbeat and zart_release_tasks: locks (FOR NO KEY UPDATE) the task rows of
-- these leases that p_worker_id still holds, in key order, and returns their keys. The batch
-- functions lock in key order too, so a heartbeat or a release that shares rows with a batch
-- waits for it instead of deadlocking with it. Raises nothing.
create or replace function public.zart_lock_leases(
    p_worker_id     text,
    p_buckets       smallint[],
    p_execution_ids text[],
    p_fences        bigint[]
) returns table (bucket smallint, execution_id text)
-- Index-driven whatever the estimates (see zart_claim_tasks).
language plpgsql volatile
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
as $$
#variable_conflict use_column
begin
    return query
    select l.bucket, l.execution_id
      from (select u.bucket, u.execution_id, u.fence
              from unnest(p_buckets, p_execution_ids, p_fences) as u(bucket, execution_id, fence)
             order by u.bucket, u.execution_id) l
     cross join lateral (
           select 1 from public.zart_tasks t
            where t.bucket = l.bucket and t.execution_id = l.execution_id
              and t.fence = l.fence and t.locked_by = p_worker_id
              and t.bucket = any (p_buckets)  -- on Citus, one shard's (docs/scale.md)
              for no key update) k;
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
-- Index-driven whatever the estimates (see zart_claim_tasks).
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
as $$
#variable_conflict use_column
declare
    v_now     timestamptz := public.zart_current_time();
    v_buckets smallint[];
    v_ids     text[];
begin
    if p_lease_ms is null or p_lease_ms < 0 or p_lease_ms > 3155760000000 then
        raise exception 'invalid lease: % ms is outside 0 ms to 100 years', p_lease_ms
            using errcode = 'ZA004';
    end if;
    -- The leases are locked by a statement of their own, not a function in the update:
    -- Citus would send the call to the shard's node, where it would read the table there.
    select array_agg(l.bucket), array_agg(l.execution_id) into v_buckets, v_ids
      from public.zart_lock_leases(p_worker_id, p_buckets, p_execution_ids, p_fences) l;
    return query
    update public.zart_tasks t
       set run_at = v_now + p_lease_ms * interval '1 millisecond'
      from unnest(v_buckets, v_ids) as l(bucket, execution_id)
     where t.bucket = l.bucket and t.execution_id = l.execution_id
       and t.bucket = any (p_buckets)
    returning t.bucket, t.execution_id;
end
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
-- Index-driven whatever the estimates (see zart_claim_tasks).
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
as $$
declare
    v_now     timestamptz := public.zart_current_time();
    v_buckets smallint[];
    v_ids     text[];
    v_n       integer;
begin
    -- Locked by a statement of their own (see zart_heartbeat).
    select array_agg(l.bucket), array_agg(l.execution_id) into v_buckets, v_ids
      from public.zart_lock_leases(p_worker_id, p_buckets, p_execution_ids, p_fences) l;
    with released as (
        update public.zart_tasks t
           set locked_by = null, run_at = v_now
          from unnest(v_buckets, v_ids) as l(bucket, execution_id)
         where t.bucket = l.bucket and t.execution_id = l.execution_id
           and t.bucket = any (p_buckets)
        returning t.bucket, t.execution_id, t.attempts, t.started_at
    ), rescheduled as (
        update public.zart_executions e
           set status = 'scheduled', updated_at = v_now,
               attempts = r.attempts, started_at = coalesce(e.started_at, r.started_at)
          from released r
         where e.bucket = r.bucket and e.id = r.execution_id
           and e.bucket = any (p_buckets)
        returning 1
    )
    select count(*)::integer into v_n from rescheduled;
    return v_n;
end
$$;

-- Called by an idle Worker to know how long it may sleep. No locks. Raises nothing.
-- Returns milliseconds until the earliest task of the queue is due (0 if one is due), or null.
-- In a queue with limits, due tasks that the limits hold back do not count as due: then it is
-- the time until the next task falls due, a lease runs out or a rate window lets one more
-- start, whichever comes first (a run that ends sends a wake-up of its own).
create or replace function public.zart_next_run_at(p_queue text, p_task_names text[],
                                                   p_buckets smallint[] default null)
returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now     timestamptz := public.zart_current_time();
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_next    timestamptz;
    v_lim     public.zart_queue_limits%rowtype;
    v_allowed integer;
    v_key_running jsonb;
    v_key_recent  jsonb;
    v_levels      text[];
    v_priorities  smallint[];
begin
    -- The earliest run_at of each name and priority is the first entry of its index range.
    -- Within p_buckets when given (on Citus, one shard's; the caller takes the least).
    select l.level_names, l.level_priorities into v_levels, v_priorities
      from public.zart_claim_levels(p_queue, p_task_names, 0, p_buckets) l;
    select min(n.run_at) into v_next
      from unnest(v_levels, v_priorities) as lv(task_name, priority)
     cross join lateral (
           select t.run_at from public.zart_tasks t
            where t.queue = p_queue and t.task_name = lv.task_name and t.priority = lv.priority
              and t.run_at < 'infinity'
              and (p_buckets is null or t.bucket = any (p_buckets))
              and (v_tenants is null or t.tenant = any (v_tenants))
            order by t.run_at
            limit 1) n;
    if v_next <= v_now and public.zart_limits_on() then
        select * into v_lim from public.zart_queue_limits l where l.queue = p_queue;
        if found then
            select least(1, v_lim.max_running - c.running, v_lim.rate_limit - c.in_rate),
                   c.key_running, c.key_recent
              into v_allowed, v_key_running, v_key_recent
              from public.zart_limit_counts(p_queue, v_lim.rate_interval_ms,
                                            v_lim.key_rate_interval_ms, v_now) c;
        end if;
        if v_lim.queue is not null
           and not exists (select from public.zart_pick_tasks(p_queue, p_task_names, v_allowed,
                                                                  v_now, 0, false, null, v_tenants,
                                                                  false, v_lim.key_max_running,
                                                                  v_lim.key_rate_limit,
                                                                  v_key_running, v_key_recent)) then
            -- Held back: the next time anything can change without a wake-up.
            select least(
                       (select min(n.run_at)
                          from unnest(v_levels, v_priorities) as lv(task_name, priority)
                         cross join lateral (
                               select t.run_at from public.zart_tasks t
                                where t.queue = p_queue and t.task_name = lv.task_name
                                  and t.priority = lv.priority
                                  and t.run_at > v_now and t.run_at < 'infinity'
                                  and (v_tenants is null or t.tenant = any (v_tenants))
                                order by t.run_at
                                limit 1) n),
                       (select min(r.started_at) + v_lim.rate_interval_ms * interval '1 millisecond'
                          from public.zart_limit_runs r
                         where r.queue = p_queue
                           and r.started_at > v_now - v_lim.rate_interval_ms * interval '1 millisecond'),
                       (select min(r.started_at) + v_lim.key_rate_interval_ms * interval '1 millisecond'
                          from public.zart_limit_runs r
                         where r.queue = p_queue and r.limit_key is not null
                           and r.started_at > v_now - v_lim.key_rate_interval_ms * interval '1 millisecond'))
              into v_next;
        end if;
    end if;
    -- min() is null for an empty queue; greatest() would turn that into 0 ("due now") and an
    -- idle worker would spin, so the null is kept.
    return case when v_next is null then null
                else greatest(0, ceil(extract(epoch from (v_next - v_now)) * 1000))::bigint end;
end
$$;

-- Called by the waiting functions after zart_lock_task: returns the wait's open step row, or
-- records it ('waiting', with p_wake_at and p_output) if this is the first reach. No locks of
-- its own. Raises ZA006 if the step already has a final result.
create or replace function public.zart_open_wait(
    p_bucket       smallint,
    p_execution_id text,
    p_name         text,
    p_seq          integer,
    p_kind         text,
    p_wake_at      timestamptz,
    p_output       jsonb
) returns table (wake_at timestamptz, created boolean)
language plpgsql as $$
declare
    v_now    timestamptz := public.zart_current_time();
    v_wake   timestamptz;
    v_status text;
begin
    select s.wake_at, s.status into v_wake, v_status
      from public.zart_steps s
     where s.bucket = p_bucket and s.execution_id = p_execution_id and s.name = p_name;
    if not found then
        insert into public.zart_steps
            (bucket, execution_id, name, seq, kind, status, wake_at, output, attempts,
             created_at, updated_at)
        values (p_bucket, p_execution_id, p_name, p_seq, p_kind, 'waiting', p_wake_at, p_output, 0,
                v_now, v_now);
        return query select p_wake_at, true;
        return;
    end if;
    if v_status <> 'waiting' then
        raise exception 'step "%" of execution "%" is already recorded', p_name, p_execution_id
            using errcode = 'ZA006';
    end if;
    return query select v_wake, false;
end
$$;

-- Called by the waiting functions when a wait ends: records its final status and result.
-- No locks of its own (the caller holds the task row). Raises nothing.
create or replace function public.zart_close_wait(
    p_bucket       smallint,
    p_execution_id text,
    p_name         text,
    p_status       text,
    p_output       jsonb,
    p_error        jsonb
) returns void
-- plpgsql, not sql: an UPDATE cannot be inlined, so a sql function would be parsed and planned
-- on every call (about 0.2 ms, measured inside an event hand-over).
language plpgsql as $$
begin
    update public.zart_steps s
       set status = p_status, output = p_output, error = p_error, attempts = 1,
           updated_at = public.zart_current_time()
     where s.bucket = p_bucket and s.execution_id = p_execution_id and s.name = p_name;
end
$$;

-- Called by TaskContext::sleep and sleep_until. Locks the task row (fenced). On first reach it
-- records the sleep with its wake time (p_wake_at, else now + p_delay_ms); once that time has
-- come it completes the step; before, it releases the task until then.
-- Returns null when the sleep is over, else milliseconds until it is. Raises ZA001/ZA002/ZA006.
create or replace function public.zart_sleep(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_name         text,
    p_seq          integer,
    p_delay_ms     bigint,
    p_wake_at      timestamptz
) returns bigint
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now  timestamptz := public.zart_current_time();
    v_wake timestamptz;
begin
    perform public.zart_check_ms('sleep', p_delay_ms);
    if not isfinite(p_wake_at) then
        raise exception 'invalid wake time: % is not a point in time', p_wake_at using errcode = 'ZA004';
    end if;
    perform public.zart_lock_task(p_bucket, p_execution_id, p_fence);
    select w.wake_at into v_wake
      from public.zart_open_wait(p_bucket, p_execution_id, p_name, p_seq, 'sleep',
                                 coalesce(p_wake_at, v_now + p_delay_ms * interval '1 millisecond'),
                                 null) w;
    if v_wake <= v_now then
        perform public.zart_close_wait(p_bucket, p_execution_id, p_name, 'completed',
                                       to_jsonb(v_now), null);
        return null;
    end if;
    perform public.zart_suspend(p_bucket, p_execution_id, p_fence, v_wake, 'sleeping', 'sleep', p_name);
    return ceil(extract(epoch from (v_wake - v_now)) * 1000)::bigint;
end
$$;

-- Called by zart_await_event (a replay reaching its wait) and zart_deliver_event (an event
-- for a waiter suspended on it), both under the execution's wait lock: consumes the oldest
-- buffered event p_event_name that arrived by the wait's timeout (p_wake; null: no timeout)
-- and records wait step p_step as received. Returns whether there was one, and its payload.
-- Locks the event row. Raises nothing.
create or replace function public.zart_take_event(
    p_bucket       smallint,
    p_execution_id text,
    p_step         text,
    p_event_name   text,
    p_wake         timestamptz,
    p_now          timestamptz,
    out taken      boolean,
    out payload    jsonb
)
language plpgsql as $$
declare
    v_event_id bigint;
begin
    select ev.event_id, ev.payload into v_event_id, payload
      from public.zart_events ev
     where ev.bucket = p_bucket and ev.execution_id = p_execution_id
       and ev.name = p_event_name and ev.consumed_at is null
       -- An event that arrived after the timeout does not count, even if no worker ran then.
       and (p_wake is null or ev.created_at <= p_wake)
     order by ev.event_id
     limit 1
       for update;
    taken := found;
    if taken then
        update public.zart_events ev
           set consumed_at = p_now, consumed_by = p_step
         where ev.bucket = p_bucket and ev.execution_id = p_execution_id and ev.event_id = v_event_id;
        perform public.zart_close_wait(p_bucket, p_execution_id, p_step, 'completed',
                                       jsonb_build_object('received', payload), null);
    end if;
end
$$;

-- Called by zart_send_event right after it woke an execution suspended on exactly this event
-- (its wait lock held): hands the buffered event over into the open wait step for the name
-- (TaskContext::wait_for_event's step: `event:<name>`, `event#<n>:<name>`), so the replay finds the wait completed
-- and needs no round trip of its own. Does nothing unless the task is exactly so suspended.
-- Locks the event row. Raises nothing.
create or replace function public.zart_deliver_event(
    p_bucket       smallint,
    p_execution_id text,
    p_name         text
) returns void
language plpgsql as $$
declare
    v_now  timestamptz := public.zart_current_time();
    v_wake timestamptz;
    v_step text;
begin
    perform public.zart_wait_lock(p_execution_id);
    perform 1 from public.zart_tasks t
     where t.bucket = p_bucket and t.execution_id = p_execution_id
       and t.wait_kind = 'event' and t.wait_name = p_name and t.locked_by is null;
    if not found then
        return;
    end if;
    -- The open wait for this name: `event:<name>` for the first, `event#<n>:<name>` after.
    select s.name, s.wake_at into v_step, v_wake
      from public.zart_steps s
     where s.bucket = p_bucket and s.execution_id = p_execution_id
       and s.kind = 'event' and s.status = 'waiting'
       and (s.name = 'event:' || p_name
            or (s.name like 'event#%' and substr(s.name, strpos(s.name, ':') + 1) = p_name));
    if found then
        perform public.zart_take_event(p_bucket, p_execution_id, v_step, p_name, v_wake, v_now);
    end if;
end
$$;

-- Called by TaskContext::wait_for_event. Takes the execution's wait lock, locks the task row
-- (fenced), then the oldest unconsumed event of that name. Records the wait (and its timeout) on first reach; consumes the event if
-- one is buffered; times out once the timeout has passed; else releases the task until an event
-- or the timeout. Returns (state 'received' | 'timed_out' | 'waiting', payload, wake_in_ms).
-- Raises ZA001/ZA002/ZA006.
create or replace function public.zart_await_event(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_name         text,
    p_seq          integer,
    p_event_name   text,
    p_timeout_ms   bigint
) returns table (state text, payload jsonb, wake_in_ms bigint)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now      timestamptz := public.zart_current_time();
    v_wake     timestamptz;
    v_taken    boolean;
    v_payload  jsonb;
begin
    perform public.zart_check_ms('event timeout', p_timeout_ms);
    perform public.zart_wait_lock(p_execution_id);
    perform public.zart_lock_task(p_bucket, p_execution_id, p_fence);
    select w.wake_at into v_wake
      from public.zart_open_wait(p_bucket, p_execution_id, p_name, p_seq, 'event',
                                 v_now + p_timeout_ms * interval '1 millisecond', null) w;

    select t.taken, t.payload into v_taken, v_payload
      from public.zart_take_event(p_bucket, p_execution_id, p_name, p_event_name, v_wake, v_now) t;
    if v_taken then
        return query select 'received'::text, v_payload, null::bigint;
        return;
    end if;
    if v_wake is not null and v_wake <= v_now then
        perform public.zart_close_wait(p_bucket, p_execution_id, p_name, 'completed',
                                       '{"timed_out": true}'::jsonb, null);
        return query select 'timed_out'::text, null::jsonb, null::bigint;
        return;
    end if;
    perform public.zart_suspend(p_bucket, p_execution_id, p_fence, coalesce(v_wake, 'infinity'),
                                'waiting', 'event', p_event_name);
    return query select 'waiting'::text, null::jsonb,
        case when v_wake is null then null
             else ceil(extract(epoch from (v_wake - v_now)) * 1000)::bigint end;
end
$$;

-- Called by DurableScheduler::send_event (and zart_emit_event). Takes the execution's wait lock
-- (through zart_wake_waiter, after the insert), so an execution registering its wait right now
-- is woken once it commits; holds no lock on its task row unless it wakes it. Buffers the
-- event; if the execution is suspended on exactly this event, wakes it and hands the event
-- over into its wait (zart_deliver_event). Returns the queue of the execution if it was woken,
-- else null. Raises ZA004 for a bad event name or payload, ZA005 wrong bucket, ZA007 no
-- execution (or one of a tenant this session cannot see), ZA008 the execution has finished.
create or replace function public.zart_send_event(
    p_bucket       smallint,
    p_execution_id text,
    p_name         text,
    p_payload      jsonb
) returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now     timestamptz := public.zart_current_time();
    v_tenants text[];
    v_limit   bigint;
    v_status  text;
    v_queue   text;
begin
    perform public.zart_check_text('event name', p_name);
    v_tenants := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_limit := public.zart_payload_limit();
    perform public.zart_check_payload('event payload', p_payload, v_limit);
    if p_bucket is distinct from public.zart_bucket(p_execution_id) then
        raise exception 'bucket % does not match execution "%"', p_bucket, p_execution_id
            using errcode = 'ZA005';
    end if;
    select e.status into v_status
      from public.zart_executions e
     where e.bucket = p_bucket and e.id = p_execution_id
       and (v_tenants is null or e.tenant = any (v_tenants));
    if not found then
        raise exception 'execution "%" not found', p_execution_id using errcode = 'ZA007';
    end if;
    -- Nothing would ever consume it. (An event that races the outcome's commit may still be
    -- stored; it goes with the execution's history.)
    if v_status in ('completed', 'failed', 'cancelled') then
        raise exception 'execution "%" has finished (%): the event was not stored', p_execution_id, v_status
            using errcode = 'ZA008';
    end if;
    insert into public.zart_events (bucket, execution_id, name, payload, created_at)
    values (p_bucket, p_execution_id, p_name, coalesce(p_payload, 'null'::jsonb), v_now);
    v_queue := public.zart_wake_waiter(p_execution_id, 'event', p_name);
    if v_queue is not null then
        perform public.zart_deliver_event(p_bucket, p_execution_id, p_name);
    end if;
    return v_queue;
end
$$;

-- Called from SQL and triggers: sends an event in the caller's transaction and NOTIFYs
-- zart_work (delivered at commit) when it woke the execution. Same locks and SQLSTATEs.
create or replace function public.zart_emit_event(
    p_execution_id text,
    p_name         text,
    p_payload      jsonb default 'null'::jsonb
) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_queue text;
begin
    perform public.zart_check_text('execution id', p_execution_id);
    perform public.zart_check_payload('event payload', p_payload);
    v_queue := public.zart_send_event(public.zart_bucket(p_execution_id), p_execution_id, p_name, p_payload);
    if v_queue is not null then
        perform pg_notify('zart_work', v_queue);
    end if;
    return v_queue is not null;
end
$$;

-- Called by zart_start_child and zart_start_children, with the parent's wait lock and its task
-- row held. On first reach starts the child (idempotent, same rules as zart_start_execution) and
-- records the wait; then, if the child has finished, records its outcome as the step's result.
-- Returns (state 'finished' | 'waiting' | 'detached', created, the child's status, output and
-- error). Suspends nothing. Raises ZA003/ZA004/ZA006.
create or replace function public.zart_child_wait(
    p_bucket       smallint,
    p_execution_id text,
    p_name         text,
    p_seq          integer,
    p_child_id     text,
    p_task_name    text,
    p_input        jsonb,
    p_queue        text,
    p_detached     boolean,
    out state        text,
    out created      boolean,
    out child_status text,
    out output       jsonb,
    out error        jsonb
)
language plpgsql as $$
declare
    v_first    boolean;
    v_child    public.zart_executions%rowtype;
    v_tenant   text;
    v_priority smallint;
begin
    created := false;
    select w.created into v_first
      from public.zart_open_wait(p_bucket, p_execution_id, p_name, p_seq, 'child', null,
                                 jsonb_build_object('child_id', p_child_id)) w;
    if v_first then
        -- In the parent's tenant, at the parent's priority; no session check: the parent's
        -- lease is the authority. A detached child has no parent: nothing cascades to it.
        -- Read first, then inserted by a statement of its own: the child lives in its own
        -- bucket (on Citus another shard), which a statement on the parent's cannot write.
        select e.tenant, e.priority into v_tenant, v_priority
          from public.zart_executions e
         where e.bucket = p_bucket and e.id = p_execution_id;
        if found then
            select st.created into created
              from public.zart_insert_execution(
                       public.zart_bucket(p_child_id), p_child_id, p_task_name, p_input, p_queue,
                       case when p_detached then null else p_execution_id end, null, v_tenant,
                       null, public.zart_payload_limit(), null, v_priority, null) st;
        end if;
    end if;
    if p_detached then
        -- Recorded at once: the parent goes on.
        perform public.zart_close_wait(p_bucket, p_execution_id, p_name, 'completed',
                                       jsonb_build_object('child_id', p_child_id), null);
        state := 'detached';
        return;
    end if;

    select * into v_child from public.zart_executions e
     where e.bucket = public.zart_bucket(p_child_id) and e.id = p_child_id;
    child_status := v_child.status;
    if v_child.status in ('completed', 'failed', 'cancelled') then
        perform public.zart_close_wait(
            p_bucket, p_execution_id, p_name,
            case when v_child.status = 'completed' then 'completed' else 'failed' end,
            case when v_child.status = 'completed' then v_child.output end,
            -- Recorded as the parent's own failure (kind child_failed, the child's message),
            -- so a replay sees exactly what the first run saw.
            case when v_child.status = 'completed' then null
                 else jsonb_build_object(
                     'kind', 'child_failed', 'step', p_name, 'attempts', 1, 'child_id', p_child_id,
                     'message', coalesce(v_child.error->>'message',
                                         format('child "%s" ended %s', p_child_id, v_child.status))) end);
        state := 'finished';
        output := v_child.output;
        error := v_child.error;
        return;
    end if;
    state := 'waiting';
end
$$;

-- Called by TaskContext::child and start_detached. Takes the parent's wait lock, then locks its
-- task row (fenced); starts the child or finds it (zart_child_wait); if it has not finished,
-- releases the parent until the child's outcome wakes it. Returns (state 'finished' | 'waiting'
-- | 'detached', created, the child's status, output and error).
-- Raises ZA001/ZA002/ZA003/ZA004/ZA006.
create or replace function public.zart_start_child(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_name         text,
    p_seq          integer,
    p_child_id     text,
    p_task_name    text,
    p_input        jsonb,
    p_queue        text,
    p_detached     boolean default false
) returns table (state text, created boolean, child_status text, output jsonb, error jsonb)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_wait record;
begin
    perform public.zart_wait_lock(p_execution_id);
    perform public.zart_lock_task(p_bucket, p_execution_id, p_fence);
    v_wait := public.zart_child_wait(p_bucket, p_execution_id, p_name, p_seq, p_child_id,
                                     p_task_name, p_input, p_queue, p_detached);
    if v_wait.state = 'waiting' then
        perform public.zart_suspend(p_bucket, p_execution_id, p_fence, 'infinity', 'waiting',
                                    'child', p_child_id);
    end if;
    return query select v_wait.state, v_wait.created, v_wait.child_status, v_wait.output,
                        v_wait.error;
end
$$;

-- Called by TaskContext::wait_all for its children. Takes the parent's wait lock, then locks its
-- task row (fenced); starts or finds each child, in order (zart_child_wait; the arrays are one
-- child per position), recording the outcome of each that has finished. With p_suspend, if any
-- has not finished, releases the parent until the first unfinished one (in order) finishes: its
-- run then records every child finished by then and waits for the next, so the parent wakes at
-- most once per child. Returns one row per child, in order: (state 'finished' | 'waiting',
-- created, the child's status, output and error). Raises ZA001/ZA002/ZA003/ZA004/ZA006.
create or replace function public.zart_start_children(
    p_bucket       smallint,
    p_execution_id text,
    p_fence        bigint,
    p_names        text[],
    p_seqs         integer[],
    p_child_ids    text[],
    p_task_names   text[],
    p_inputs       jsonb[],
    p_queue        text,
    p_suspend      boolean
) returns table (state text, created boolean, child_status text, output jsonb, error jsonb)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_n       integer := coalesce(cardinality(p_names), 0);
    v_wait    record;
    v_waiting text;
begin
    if cardinality(p_seqs) is distinct from v_n or cardinality(p_child_ids) is distinct from v_n
       or cardinality(p_task_names) is distinct from v_n
       or cardinality(p_inputs) is distinct from v_n then
        raise exception 'invalid children: the arrays differ in length' using errcode = 'ZA004';
    end if;
    perform public.zart_wait_lock(p_execution_id);
    perform public.zart_lock_task(p_bucket, p_execution_id, p_fence);
    for i in 1 .. v_n loop
        v_wait := public.zart_child_wait(p_bucket, p_execution_id, p_names[i], p_seqs[i],
                                         p_child_ids[i], p_task_names[i], p_inputs[i], p_queue,
                                         false);
        if v_wait.state = 'waiting' and v_waiting is null then
            v_waiting := p_child_ids[i];
        end if;
        state := v_wait.state;
        created := v_wait.created;
        child_status := v_wait.child_status;
        output := v_wait.output;
        error := v_wait.error;
        return next;
    end loop;
    if p_suspend and v_waiting is not null then
        perform public.zart_suspend(p_bucket, p_execution_id, p_fence, 'infinity', 'waiting',
                                    'child', v_waiting);
    end if;
end
$$;

-- Entry point for workers (Scheduler::prune: a worker's retention, `zart prune`). Deletes up to
-- p_limit executions of status p_status (completed, failed or cancelled) that finished more than
-- p_older_than_ms ago, oldest first, with their step rows and events; or, with p_dry_run, counts
-- every execution a prune would delete (no limit, no lock, nothing deleted). Never a child whose
-- parent is unfinished: the parent's zart_start_child reads the child's row when it resumes.
-- Only the session's tenants' executions. Returns the count, or null when another session is
-- pruning. Locks: the prune lock (a transaction-level advisory lock on a salted key, tried, never
-- waited for), then the execution rows it deletes (SKIP LOCKED), then their steps and events.
-- Raises ZA004 for a status that is not finished, an age outside 0 ms to 100 years, or a limit
-- outside 1 to 100000.
create or replace function public.zart_prune(
    p_status        text,
    p_older_than_ms bigint,
    p_limit         integer,
    p_dry_run       boolean default false
) returns bigint
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_cutoff  timestamptz;
    v_count   bigint;
begin
    if p_status is null or p_status not in ('completed', 'failed', 'cancelled') then
        raise exception 'invalid status: % is not a finished status (completed, failed, cancelled)',
            coalesce(p_status, 'null') using errcode = 'ZA004';
    end if;
    if p_older_than_ms is null then
        raise exception 'invalid age: null' using errcode = 'ZA004';
    end if;
    perform public.zart_check_ms('age', p_older_than_ms);
    if p_limit is null or p_limit < 1 or p_limit > 100000 then
        raise exception 'invalid batch: % is outside 1 to 100000', coalesce(p_limit::text, 'null')
            using errcode = 'ZA004';
    end if;
    v_cutoff := public.zart_current_time() - p_older_than_ms * interval '1 millisecond';

    if p_dry_run then
        select count(*) into v_count
          from public.zart_executions e
         where e.finished_at < v_cutoff and e.status = p_status
           and (v_tenants is null or e.tenant = any (v_tenants))
           and not exists (select from public.zart_executions p
                            where e.parent_id is not null
                              and p.bucket = public.zart_bucket(e.parent_id) and p.id = e.parent_id
                              and p.status not in ('completed', 'failed', 'cancelled'));
        return v_count;
    end if;

    -- One pruner at a time across the fleet; the others return at once. Salted like the wait
    -- locks, so a login outside Zart cannot hold it to stall retention.
    if not pg_try_advisory_xact_lock(hashtextextended(
            'zart_prune', coalesce((select s.lock_salt from public.zart_settings s), 0))) then
        return null;
    end if;

    with victims as materialized (
        select e.bucket, e.id
          from public.zart_executions e
         where e.finished_at < v_cutoff and e.status = p_status
           and (v_tenants is null or e.tenant = any (v_tenants))
           and not exists (select from public.zart_executions p
                            where e.parent_id is not null
                              and p.bucket = public.zart_bucket(e.parent_id) and p.id = e.parent_id
                              and p.status not in ('completed', 'failed', 'cancelled'))
         order by e.finished_at
         limit p_limit
           for update of e skip locked
    ), steps as (
        delete from public.zart_steps s
         using victims v
         where s.bucket = v.bucket and s.execution_id = v.id
    ), events as (
        delete from public.zart_events x
         using victims v
         where x.bucket = v.bucket and x.execution_id = v.id
    ), executions as (
        delete from public.zart_executions e
         using victims v
         where e.bucket = v.bucket and e.id = v.id
        returning 1
    )
    select count(*) into v_count from executions;
    return v_count;
end
$$;

-- Called by zart_cancel_execution (an execution and its descendants) and
-- zart_complete_executions (the descendants of failed executions, p_include_roots false).
-- Deletes the task rows of the unfinished executions in these trees and marks them cancelled.
-- UNION, not UNION ALL: the walk ends on any data, a cycle of parent ids included. Locks
-- their task rows, then their execution rows. Returns the ids it cancelled. Raises nothing.
create or replace function public.zart_cancel_tree(
    p_buckets       smallint[],
    p_ids           text[],
    p_include_roots boolean
) returns table (execution_id text)
language plpgsql as $$
#variable_conflict use_column
declare
    v_now     timestamptz := public.zart_current_time();
    v_buckets smallint[] := p_buckets;
    v_ids     text[] := p_ids;
    v_level   text[] := p_ids;
    v_next_b  smallint[];
    v_next    text[];
    v_removed_b smallint[];
    v_removed   text[];
    v_attempts  integer[];
    v_started   timestamptz[];
begin
    -- The unfinished descendants, a generation at a time (children live in their own
    -- buckets, so on Citus on other shards, where a recursive query cannot follow them).
    loop
        select array_agg(c.bucket), array_agg(c.id) into v_next_b, v_next
          from public.zart_executions c
         where c.parent_id = any (v_level)
           and c.status not in ('completed', 'failed', 'cancelled')
           and not c.id = any (v_ids);
        exit when v_next is null;
        v_buckets := v_buckets || v_next_b;
        v_ids := v_ids || v_next;
        v_level := v_next;
    end loop;
    if not p_include_roots then
        select array_agg(t.bucket), array_agg(t.id) into v_buckets, v_ids
          from unnest(v_buckets, v_ids) as t(bucket, id)
         where not t.id = any (p_ids);
        if v_ids is null then
            return;
        end if;
    end if;
    -- Statements of their own, each over every target's bucket: on Citus a statement that
    -- writes several shards cannot feed another.
    with removed as (
        delete from public.zart_tasks t
         using unnest(v_buckets, v_ids) as g(bucket, id)
         where t.bucket = g.bucket and t.execution_id = g.id
           and t.bucket = any (v_buckets)
        returning t.bucket, t.execution_id, t.attempts, t.started_at
    )
    select array_agg(r.bucket), array_agg(r.execution_id), array_agg(r.attempts),
           array_agg(r.started_at)
      into v_removed_b, v_removed, v_attempts, v_started
      from removed r;
    -- The attempts and first start of a run the claim did not write down (task row).
    return query
    update public.zart_executions e
       set status = 'cancelled', finished_at = v_now, updated_at = v_now,
           error = jsonb_build_object('kind', 'cancelled', 'message', 'execution was cancelled'),
           attempts = coalesce(r.attempts, e.attempts),
           started_at = coalesce(e.started_at, r.started_at)
      from unnest(v_buckets, v_ids) as g(bucket, id)
      left join unnest(v_removed_b, v_removed, v_attempts, v_started)
                as r(bucket, execution_id, attempts, started_at)
             on r.bucket = g.bucket and r.execution_id = g.id
     where e.bucket = g.bucket and e.id = g.id
       and e.bucket = any (v_buckets)
       and e.status not in ('completed', 'failed', 'cancelled')
    returning e.id;
end
$$;

-- Entry point for clients (DurableScheduler::cancel, and zart_cancel). Locks the execution
-- row, deletes the task rows of it and its unfinished descendants, marks them cancelled, and
-- wakes a parent waiting on it. Returns one row per cancelled execution (woken_queue null),
-- plus one for a woken parent (cancelled false). Cancelling a finished execution returns
-- nothing. Raises ZA005, ZA007 (also for an execution of a tenant this session cannot see).
create or replace function public.zart_cancel_execution(p_bucket smallint, p_execution_id text)
returns table (execution_id text, cancelled boolean, woken_queue text)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_status  text;
    v_parent  text;
    v_queue   text;
begin
    if p_bucket is distinct from public.zart_bucket(p_execution_id) then
        raise exception 'bucket % does not match execution "%"', p_bucket, p_execution_id
            using errcode = 'ZA005';
    end if;
    select e.status, e.parent_id into v_status, v_parent
      from public.zart_executions e
     where e.bucket = p_bucket and e.id = p_execution_id
       and (v_tenants is null or e.tenant = any (v_tenants))
       for update;
    if not found then
        raise exception 'execution "%" not found', p_execution_id using errcode = 'ZA007';
    end if;
    if v_status in ('completed', 'failed', 'cancelled') then
        return;
    end if;

    return query
    select c.execution_id, true, null::text
      from public.zart_cancel_tree(array[p_bucket], array[p_execution_id], true) c;

    if v_parent is not null then
        v_queue := public.zart_wake_waiter(v_parent, 'child', p_execution_id);
        if v_queue is not null then
            return query select v_parent, false, v_queue;
        end if;
    end if;
end
$$;

-- Called from SQL: cancels in the caller's transaction and NOTIFYs zart_done for each cancelled
-- execution (payload: a JSON array holding its id, as the Rust paths send) and zart_work for a
-- woken parent (delivered at commit). Returns how many were cancelled. Same locks and
-- SQLSTATEs as zart_cancel_execution.
create or replace function public.zart_cancel(p_execution_id text) returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row   record;
    v_count integer := 0;
begin
    perform public.zart_check_text('execution id', p_execution_id);
    for v_row in
        select * from public.zart_cancel_execution(public.zart_bucket(p_execution_id), p_execution_id)
    loop
        if v_row.cancelled then
            v_count := v_count + 1;
            perform pg_notify('zart_done', jsonb_build_array(v_row.execution_id)::text);
        else
            perform pg_notify('zart_work', v_row.woken_queue);
        end if;
    end loop;
    return v_count;
end
$$;

-- Entry point for clients (DurableScheduler::retry, `zart retry`, and zart_retry). Re-runs a
-- failed execution from the step that failed it: deletes that step's failed row (the row its
-- error names) and every step row still in back-off ('retrying'), keeps every other recorded
-- step, makes the execution scheduled again and due now (a new task row; fences are random, so
-- no run from before the failure can write to it). The children the execution was waiting on
-- that failed or were cancelled (the child of the failed step, and those of its open waits,
-- which its failure cancelled) are revived the same way, and theirs in turn. Returns one row
-- per revived execution (the one asked for first) with its queue. Locks the execution rows it
-- revives, in walk order. Raises ZA005, ZA007 (also for an execution of a tenant this session
-- cannot see), ZA009 when the execution is not failed or its deadline has passed (a retry
-- would fail at once).
create or replace function public.zart_retry_execution(p_bucket smallint, p_execution_id text)
returns table (execution_id text, queue text)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_now     timestamptz := public.zart_current_time();
    v_ids     text[] := array[p_execution_id];
    v_at      integer := 1;
    v_id      text;
    v_bucket  smallint;
    v_exec    public.zart_executions%rowtype;
    v_kids    text[];
begin
    if p_bucket is distinct from public.zart_bucket(p_execution_id) then
        raise exception 'bucket % does not match execution "%"', p_bucket, p_execution_id
            using errcode = 'ZA005';
    end if;
    select * into v_exec
      from public.zart_executions e
     where e.bucket = p_bucket and e.id = p_execution_id
       and (v_tenants is null or e.tenant = any (v_tenants))
       for update;
    if not found then
        raise exception 'execution "%" not found', p_execution_id using errcode = 'ZA007';
    end if;
    if v_exec.status <> 'failed' then
        raise exception 'execution "%" cannot be retried: it is % (only a failed execution can be)',
            p_execution_id, v_exec.status using errcode = 'ZA009';
    end if;
    if v_exec.deadline_at <= v_now then
        raise exception 'execution "%" cannot be retried: its deadline passed at % (a retry '
            'would fail at once; start a new execution instead)', p_execution_id, v_exec.deadline_at
            using errcode = 'ZA009';
    end if;

    -- The walk: the execution, then the children to revive as they are found. UNION-like by
    -- the visited array, so it ends on any data, a cycle of parent ids included.
    while v_at <= cardinality(v_ids) loop
        v_id := v_ids[v_at];
        v_bucket := public.zart_bucket(v_id);
        v_at := v_at + 1;
        if v_id <> p_execution_id then
            select * into v_exec
              from public.zart_executions e
             where e.bucket = v_bucket and e.id = v_id and e.status in ('failed', 'cancelled')
               for update;
            continue when not found;
        end if;

        with dropped as (
            delete from public.zart_steps s
             where s.bucket = v_bucket and s.execution_id = v_id
               and (s.status = 'retrying'
                    or (s.status = 'failed' and s.name = v_exec.error->>'step'))
            returning s.kind, s.error->>'child_id' as child_id
        )
        select array_agg(d.child_id) filter (where d.kind = 'child' and d.child_id is not null)
          into v_kids from dropped d;
        v_kids := coalesce(v_kids, '{}') ||
                  coalesce((select array_agg(s.output->>'child_id')
                              from public.zart_steps s
                             where s.bucket = v_bucket and s.execution_id = v_id
                               and s.kind = 'child' and s.status = 'waiting'
                               and s.output->>'child_id' is not null), '{}');
        v_ids := v_ids || coalesce((select array_agg(k.id)
                                      from (select distinct u.id from unnest(v_kids) as u(id)) k
                                     where not k.id = any (v_ids)), '{}');

        update public.zart_executions e
           set status = 'scheduled', output = null, error = null, finished_at = null,
               updated_at = v_now
         where e.bucket = v_bucket and e.id = v_id;
        -- attempts as counted so far: the next claim is attempt attempts + 1, and a claim past
        -- the first one hands the worker the recorded steps.
        insert into public.zart_tasks (bucket, execution_id, task_name, queue, run_at, tenant,
                                       attempts, priority, limit_key)
        values (v_bucket, v_id, v_exec.task_name, v_exec.queue, v_now, v_exec.tenant,
                v_exec.attempts, v_exec.priority, v_exec.limit_key);
        execution_id := v_id;
        queue := v_exec.queue;
        return next;
    end loop;
end
$$;

-- Called from SQL: retries in the caller's transaction and NOTIFYs zart_work for the queue of
-- each revived execution (delivered at commit). Returns how many were revived. Same locks and
-- SQLSTATEs as zart_retry_execution.
create or replace function public.zart_retry(p_execution_id text) returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row   record;
    v_count integer := 0;
begin
    perform public.zart_check_text('execution id', p_execution_id);
    for v_row in
        select * from public.zart_retry_execution(public.zart_bucket(p_execution_id), p_execution_id)
    loop
        v_count := v_count + 1;
        perform pg_notify('zart_work', v_row.queue);
    end loop;
    return v_count;
end
$$;

-- Entry point for clients (Scheduler::upsert_schedule, and SQL): stores a cron schedule, or
-- replaces the declaration of the one with this id (in the session's tenant). A new schedule,
-- or one whose expression or time zone changed, gets its next fire time computed again by the
-- next worker that looks (from now); a schedule keeps its pause and history otherwise, and its
-- error is cleared. The cron expression and time zone are read by workers (Rust), which
-- record an error on the schedule if they cannot. NOTIFYs zart_work with the queue (delivered
-- at commit). Returns true when the schedule is new. Locks the schedule row. Raises ZA004
-- for a bad field, ZA003 for an id taken under a tenant this session cannot see.
create or replace function public.zart_schedule(
    p_id             text,
    p_cron           text,
    p_task_name      text,
    p_input          jsonb default '{}'::jsonb,
    p_queue          text default 'default',
    p_time_zone      text default 'UTC',
    p_overlap        text default 'skip',
    p_catch_up       text default 'latest',
    p_catch_up_limit integer default 1
) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now     timestamptz := public.zart_current_time();
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_tenant  text;
    v_new     boolean;
begin
    perform public.zart_check_text('schedule id', p_id);
    if octet_length(p_id) > 234 then
        raise exception 'invalid schedule id: % bytes is over the limit of 234 bytes', octet_length(p_id)
            using errcode = 'ZA004';
    end if;
    if position('@' in p_id) > 0 then
        raise exception 'invalid schedule id: must not contain @ (it separates the schedule from the fire time in execution ids)'
            using errcode = 'ZA004';
    end if;
    perform public.zart_check_text('cron', p_cron);
    perform public.zart_check_text('task name', p_task_name);
    perform public.zart_check_text('queue', p_queue);
    perform public.zart_check_text('time zone', p_time_zone);
    if p_input is null then
        raise exception 'invalid input: must not be null' using errcode = 'ZA004';
    end if;
    perform public.zart_check_payload('input', p_input);
    if p_overlap is null or p_overlap not in ('skip', 'allow', 'cancel_previous') then
        raise exception 'invalid overlap: % is not skip, allow or cancel_previous',
            coalesce(quote_literal(p_overlap), 'null') using errcode = 'ZA004';
    end if;
    if p_catch_up is null or p_catch_up not in ('skip', 'latest', 'all') then
        raise exception 'invalid catch-up: % is not skip, latest or all',
            coalesce(quote_literal(p_catch_up), 'null') using errcode = 'ZA004';
    end if;
    if p_catch_up_limit is null or p_catch_up_limit not between 1 and 1000 then
        raise exception 'invalid catch-up limit: % is outside 1 to 1000',
            coalesce(p_catch_up_limit::text, 'null') using errcode = 'ZA004';
    end if;
    if public.zart_tenancy_on() then
        v_tenant := public.zart_start_tenant(v_tenants);
    end if;

    insert into public.zart_schedules as s
        (id, task_name, queue, input, cron, time_zone, overlap, catch_up, catch_up_limit,
         tenant, created_at, updated_at)
    values (p_id, p_task_name, p_queue, p_input, p_cron, p_time_zone, p_overlap, p_catch_up,
            p_catch_up_limit, v_tenant, v_now, v_now)
    on conflict on constraint zart_schedules_pkey do update
       set task_name = excluded.task_name, queue = excluded.queue, input = excluded.input,
           overlap = excluded.overlap, catch_up = excluded.catch_up,
           catch_up_limit = excluded.catch_up_limit, error = null,
           -- updated_at: when the timing was last declared (a claim's declared_at, from which a
           -- worker computes the first fire time), as in zart-sqlite.
           updated_at = case when s.cron = excluded.cron and s.time_zone = excluded.time_zone
                             then s.updated_at else excluded.updated_at end,
           next_fire_at = case when s.cron = excluded.cron and s.time_zone = excluded.time_zone
                               then s.next_fire_at end,
           -- New timing: a worker firing it now would store a next fire time of the old one.
           locked_by = case when s.cron = excluded.cron and s.time_zone = excluded.time_zone
                            then s.locked_by end,
           locked_until = case when s.cron = excluded.cron and s.time_zone = excluded.time_zone
                               then s.locked_until end,
           cron = excluded.cron, time_zone = excluded.time_zone
     where v_tenants is null or s.tenant = any (v_tenants)
    returning (s.xmax = 0) into v_new;
    if not found then
        raise exception 'schedule "%" already exists under a tenant this session cannot see', p_id
            using errcode = 'ZA003';
    end if;
    perform pg_notify('zart_work', p_queue);
    return v_new;
end
$$;

-- Entry point for clients (Scheduler::pause_schedule, and SQL): pauses a schedule (it does
-- not fire) or resumes it (the times it missed follow its catch-up policy); NOTIFYs zart_work
-- on resume. Locks the schedule row. Raises ZA007 for an unknown id (or one of a tenant this
-- session cannot see).
create or replace function public.zart_pause_schedule(p_id text, p_paused boolean default true)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
    v_queue   text;
begin
    update public.zart_schedules s
       set paused = coalesce(p_paused, true), updated_at = public.zart_current_time()
     where s.id = p_id and (v_tenants is null or s.tenant = any (v_tenants))
    returning s.queue into v_queue;
    if not found then
        raise exception 'schedule "%" not found', p_id using errcode = 'ZA007';
    end if;
    if not coalesce(p_paused, true) then
        perform pg_notify('zart_work', v_queue);
    end if;
end
$$;

-- Entry point for clients (Scheduler::delete_schedule, and SQL): deletes a schedule; the
-- executions it started stay. Returns false when there was none. Raises nothing.
create or replace function public.zart_delete_schedule(p_id text) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
begin
    delete from public.zart_schedules s
     where s.id = p_id and (v_tenants is null or s.tenant = any (v_tenants));
    return found;
end
$$;

-- Entry point for clients (DurableScheduler::set_queue_limits, `zart limits set`): sets the
-- limits of p_queue, replacing any it had; every limit null removes them. Limits bind the
-- whole fleet, so a session limited to some tenants may not set them. Wakes the queue's
-- workers (NOTIFY zart_work, at commit): looser limits may let claims go. Locks the queue's
-- limits row. Returns true when the queue now has limits. Raises ZA004 for a bad queue, a
-- count under 1, a rate without its interval or the reverse, an interval outside 1 ms to 100
-- years; 42501 for a session limited to tenants.
create or replace function public.zart_set_queue_limits(
    p_queue                text,
    p_max_running          integer default null,
    p_rate_limit           integer default null,
    p_rate_interval_ms     bigint default null,
    p_key_max_running      integer default null,
    p_key_rate_limit       integer default null,
    p_key_rate_interval_ms bigint default null
) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now timestamptz := public.zart_current_time();
begin
    perform public.zart_check_text('queue', p_queue);
    if public.zart_tenancy_on() and public.zart_session_tenants() is not null then
        raise exception 'permission denied: queue limits bind every tenant; this session acts for some only'
            using errcode = '42501';
    end if;
    if p_max_running < 1 or p_rate_limit < 1 or p_key_max_running < 1 or p_key_rate_limit < 1 then
        raise exception 'invalid limit: a count must be at least 1' using errcode = 'ZA004';
    end if;
    if (p_rate_limit is null) <> (p_rate_interval_ms is null)
       or (p_key_rate_limit is null) <> (p_key_rate_interval_ms is null) then
        raise exception 'invalid limit: a rate needs both a count and an interval' using errcode = 'ZA004';
    end if;
    if p_rate_interval_ms not between 1 and 3155760000000
       or p_key_rate_interval_ms not between 1 and 3155760000000 then
        raise exception 'invalid limit: a rate interval must be 1 ms to 100 years' using errcode = 'ZA004';
    end if;
    perform pg_notify('zart_work', p_queue);
    if num_nonnulls(p_max_running, p_rate_limit, p_key_max_running, p_key_rate_limit) = 0 then
        delete from public.zart_queue_limits l where l.queue = p_queue;
        -- Before the runs go: on Citus that delete reaches every shard, after which the
        -- function rewrite in here would be refused.
        perform public.zart_apply_settings();
        delete from public.zart_limit_runs r where r.queue = p_queue;
        return false;
    end if;
    insert into public.zart_queue_limits as l
        (queue, max_running, rate_limit, rate_interval_ms, key_max_running, key_rate_limit,
         key_rate_interval_ms, updated_at)
    values (p_queue, p_max_running, p_rate_limit, p_rate_interval_ms, p_key_max_running,
            p_key_rate_limit, p_key_rate_interval_ms, v_now)
    on conflict on constraint zart_queue_limits_pkey do update
       set max_running = excluded.max_running, rate_limit = excluded.rate_limit,
           rate_interval_ms = excluded.rate_interval_ms,
           key_max_running = excluded.key_max_running, key_rate_limit = excluded.key_rate_limit,
           key_rate_interval_ms = excluded.key_rate_interval_ms, updated_at = excluded.updated_at;
    -- The trigger on zart_queue_limits does this too, where there is one (not on Citus).
    perform public.zart_apply_settings();
    return true;
end
$$;

-- Entry point for every role (DurableScheduler::queue_limits, `zart limits list`): the queues
-- with limits, with the runs counting against them now (running, and started within the
-- queue's rate interval). No locks. Raises nothing.
create or replace function public.zart_list_queue_limits()
returns table (
    queue                text,
    max_running          integer,
    rate_limit           integer,
    rate_interval_ms     bigint,
    key_max_running      integer,
    key_rate_limit       integer,
    key_rate_interval_ms bigint,
    running              integer,
    started_in_window    integer,
    updated_at           timestamptz
)
-- A loop, not a join: on Citus a statement over a reference table may run on a worker node,
-- and the counts' call with it, where it cannot read the distributed tables.
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    v_now timestamptz := public.zart_current_time();
    v_l   record;
    v_c   record;
begin
    for v_l in select * from public.zart_queue_limits l order by l.queue loop
        select * into v_c
          from public.zart_limit_counts(v_l.queue, v_l.rate_interval_ms, null, v_now) c;
        queue := v_l.queue;
        max_running := v_l.max_running;
        rate_limit := v_l.rate_limit;
        rate_interval_ms := v_l.rate_interval_ms;
        key_max_running := v_l.key_max_running;
        key_rate_limit := v_l.key_rate_limit;
        key_rate_interval_ms := v_l.key_rate_interval_ms;
        running := v_c.running;
        started_in_window := v_c.in_rate;
        updated_at := v_l.updated_at;
        return next;
    end loop;
end
$$;

-- Called by audit functions for texts the Rust side limits to zart::audit::MAX_AUDIT_TEXT
-- bytes. No locks. Raises ZA004 naming the field.
create or replace function public.zart_check_audit_text(p_field text, p_value text,
                                                        p_may_be_empty boolean) returns void
language plpgsql immutable as $$
begin
    if p_value is null or (p_value = '' and not p_may_be_empty) then
        raise exception 'invalid %: must not be empty', p_field using errcode = 'ZA004';
    end if;
    if octet_length(p_value) > 1024 then
        raise exception 'invalid %: % bytes is over the limit of 1024 bytes', p_field, octet_length(p_value)
            using errcode = 'ZA004';
    end if;
end
$$;

-- Entry point for clients (zart::audit::AuditLog::audit_begin): writes an admin action to the
-- audit log, outcome 'started', at the database clock, with the login that wrote it; returns
-- its id. The caller commits it before acting. No locks. Raises ZA004 naming a bad field.
create or replace function public.zart_audit_begin(p_actor text, p_action text, p_target text,
                                                   p_params jsonb) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_id bigint;
begin
    perform public.zart_check_audit_text('actor', p_actor, false);
    perform public.zart_check_audit_text('action', p_action, false);
    perform public.zart_check_audit_text('target', p_target, true);
    perform public.zart_check_payload('params', coalesce(p_params, '{}'::jsonb));
    insert into public.zart_audit_log (at, db_role, actor, action, target, params)
    values (public.zart_current_time(), session_user, p_actor, p_action, p_target,
            coalesce(p_params, '{}'::jsonb))
    returning id into v_id;
    return v_id;
end
$$;

-- Entry point for clients (zart::audit::AuditLog::audit_finish): records how the action of
-- entry p_id ended. Only an entry still 'started', and written by this login, changes; true
-- when it did. Locks that row. Raises ZA004 naming a bad field.
create or replace function public.zart_audit_finish(p_id bigint, p_outcome text,
                                                    p_detail text) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform public.zart_check_audit_text('outcome', p_outcome, false);
    perform public.zart_check_audit_text('detail', coalesce(p_detail, ''), true);
    update public.zart_audit_log
       set outcome = p_outcome, detail = p_detail, finished_at = public.zart_current_time()
     where id = p_id and outcome = 'started' and db_role = session_user;
    return found;
end
$$;

-- Entry point for workers (Scheduler::record_presence): inserts or refreshes the worker's
-- record with the database clock as seen_at (a record that had stopped starts again); at a
-- worker's start (p_starting) it also deletes the records not seen for a day. Locks the worker's row. Raises ZA004 naming a bad
-- field.
create or replace function public.zart_worker_seen(
    p_worker_id   text,
    p_host        text,
    p_pid         bigint,
    p_queue       text,
    p_task_names  text[],
    p_concurrency integer,
    p_running     integer,
    p_interval_ms bigint,
    p_starting    boolean default false
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now  timestamptz := public.zart_current_time();
    v_name text;
begin
    perform public.zart_check_text('worker id', p_worker_id);
    perform public.zart_check_text('queue', p_queue);
    perform public.zart_check_audit_text('host', coalesce(p_host, ''), true);
    foreach v_name in array coalesce(p_task_names, '{}') loop
        perform public.zart_check_text('task name', v_name);
    end loop;
    if p_interval_ms is null or p_interval_ms < 1 then
        raise exception 'invalid presence interval: must be above zero' using errcode = 'ZA004';
    end if;
    insert into public.zart_workers as w
        (worker_id, host, pid, queue, task_names, concurrency, running, interval_ms, db_role,
         started_at, seen_at)
    values (p_worker_id, coalesce(p_host, ''), coalesce(p_pid, 0), p_queue,
            coalesce(p_task_names, '{}'), coalesce(p_concurrency, 0), coalesce(p_running, 0),
            p_interval_ms, session_user, v_now, v_now)
    on conflict (worker_id) do update
       set host = excluded.host, pid = excluded.pid, queue = excluded.queue,
           task_names = excluded.task_names, concurrency = excluded.concurrency,
           running = excluded.running, interval_ms = excluded.interval_ms,
           db_role = excluded.db_role, seen_at = excluded.seen_at,
           started_at = case when w.stopped_at is null then w.started_at else excluded.started_at end,
           stopped_at = null;
    if p_starting then
        delete from public.zart_workers where seen_at < v_now - interval '1 day';
    end if;
end
$$;

-- Entry point for workers (Scheduler::record_departure): records the worker's graceful stop;
-- true when it had a running record. Locks that row. Raises nothing.
create or replace function public.zart_worker_gone(p_worker_id text) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    update public.zart_workers
       set stopped_at = public.zart_current_time(), running = 0
     where worker_id = p_worker_id and stopped_at is null;
    return found;
end
$$;

-- Entry point for every role (Scheduler::list_schedules): the schedules this session may see,
-- by id. No locks. Raises nothing.
create or replace function public.zart_list_schedules()
returns table (id text, task_name text, queue text, input jsonb, cron text, time_zone text,
               overlap text, catch_up text, catch_up_limit integer, paused boolean,
               next_fire_at timestamptz, last_fire_at timestamptz, last_execution_id text,
               error text, declared_at timestamptz)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select s.id, s.task_name, s.queue, s.input, s.cron, s.time_zone, s.overlap, s.catch_up,
           s.catch_up_limit, s.paused, s.next_fire_at, s.last_fire_at, s.last_execution_id,
           s.error, s.updated_at
      from public.zart_schedules s
     cross join (select case when public.zart_tenancy_on() then public.zart_session_tenants() end as tenants) v
     where v.tenants is null or s.tenant = any (v.tenants)
     order by s.id
$$;

-- Entry point for workers (Scheduler::claim_schedules): holds up to p_limit schedules of the
-- queue and task names that are due within p_ahead_ms (or whose next fire time is not
-- computed yet; the worker waits for the fire time itself), not
-- paused, without an error and not held by another worker, for p_lease_ms; returns them with
-- the database's time. Locks them (SKIP LOCKED). Raises nothing.
create or replace function public.zart_claim_schedules(
    p_worker_id  text,
    p_queue      text,
    p_task_names text[],
    p_limit      integer,
    p_lease_ms   bigint,
    p_ahead_ms   bigint default 0
) returns table (id text, task_name text, queue text, input jsonb, cron text, time_zone text,
                 overlap text, catch_up text, catch_up_limit integer, paused boolean,
                 next_fire_at timestamptz, last_fire_at timestamptz, last_execution_id text,
                 error text, declared_at timestamptz, now timestamptz)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    v_now     timestamptz := public.zart_current_time();
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
begin
    perform public.zart_check_ms('lease', p_lease_ms);
    perform public.zart_check_ms('ahead', p_ahead_ms);
    return query
    with due as (
        select s.id
          from public.zart_schedules s
         where s.queue = p_queue and s.task_name = any (p_task_names)
           and not s.paused and s.error is null
           and (s.next_fire_at is null
                or s.next_fire_at <= v_now + p_ahead_ms * interval '1 millisecond')
           and (s.locked_until is null or s.locked_until < v_now)
           and (v_tenants is null or s.tenant = any (v_tenants))
         order by s.next_fire_at nulls first, s.id
         limit greatest(p_limit, 0)
           for update skip locked
    )
    update public.zart_schedules s
       set locked_by = p_worker_id, locked_until = v_now + p_lease_ms * interval '1 millisecond'
      from due
     where s.id = due.id
    returning s.id, s.task_name, s.queue, s.input, s.cron, s.time_zone, s.overlap, s.catch_up,
              s.catch_up_limit, s.paused, s.next_fire_at, s.last_fire_at, s.last_execution_id,
              s.error, s.updated_at, v_now;
end
$$;

-- Entry point for workers (Scheduler::fire_schedule): fires a schedule this worker holds.
-- For each fire time, in order: with overlap 'skip' and the execution it started last still
-- unfinished, the firing is skipped; with 'cancel_previous', that execution and its
-- unfinished descendants are cancelled first (NOTIFY zart_done for each); then the execution
-- of the given id is started (in the schedule's tenant; an id that exists is left alone).
-- Then the next fire time (or an error that stops the schedule) is stored and the hold
-- given up. NOTIFYs zart_work when something started. Returns one row per execution id with
-- what happened: started, existing, skipped or cancelled. Locks the schedule row, then the
-- executions. Raises ZA002 when this worker does not hold the schedule (nothing changes).
create or replace function public.zart_fire_schedule(
    p_worker_id     text,
    p_id            text,
    p_fire_times    timestamptz[],
    p_execution_ids text[],
    p_next_fire_at  timestamptz,
    p_error         text
) returns table (execution_id text, outcome text)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_s       public.zart_schedules%rowtype;
    v_status  text;
    v_created boolean;
    v_started boolean := false;
    v_id      text;
begin
    select * into v_s from public.zart_schedules s where s.id = p_id for update;
    if not found or v_s.locked_by is distinct from p_worker_id then
        raise exception 'schedule "%" is not held by worker "%"', p_id, p_worker_id
            using errcode = 'ZA002';
    end if;
    if coalesce(cardinality(p_fire_times), 0) <> coalesce(cardinality(p_execution_ids), 0) then
        raise exception 'invalid fire times: % times for % execution ids',
            cardinality(p_fire_times), cardinality(p_execution_ids) using errcode = 'ZA004';
    end if;
    for i in 1 .. coalesce(cardinality(p_execution_ids), 0) loop
        exit when v_s.paused;  -- paused while held: nothing fires; missed times wait for resume
        v_id := p_execution_ids[i];
        perform public.zart_check_text('execution id', v_id);
        -- Fired before (by a worker that died before storing it): recorded, nothing else.
        if exists (select 1 from public.zart_executions e
                    where e.bucket = public.zart_bucket(v_id) and e.id = v_id) then
            execution_id := v_id;
            outcome := 'existing';
            return next;
            v_s.last_execution_id := v_id;
            v_s.last_fire_at := p_fire_times[i];
            continue;
        end if;
        v_status := null;
        if v_s.last_execution_id is not null and v_s.last_execution_id <> v_id then
            select e.status into v_status
              from public.zart_executions e
             where e.bucket = public.zart_bucket(v_s.last_execution_id)
               and e.id = v_s.last_execution_id
               for update;
        end if;
        if v_status in ('scheduled', 'running', 'sleeping', 'waiting') then
            if v_s.overlap = 'skip' then
                execution_id := v_id;
                outcome := 'skipped';
                return next;
                continue;
            elsif v_s.overlap = 'cancel_previous' then
                for execution_id in
                    select c.execution_id
                      from public.zart_cancel_tree(array[public.zart_bucket(v_s.last_execution_id)],
                                                   array[v_s.last_execution_id], true) c
                loop
                    perform pg_notify('zart_done', jsonb_build_array(execution_id)::text);
                    outcome := 'cancelled';
                    return next;
                end loop;
            end if;
        end if;
        begin
            select st.created into v_created
              from public.zart_insert_execution(public.zart_bucket(v_id), v_id, v_s.task_name,
                                                v_s.input, v_s.queue, null, null, v_s.tenant, null,
                                                public.zart_payload_limit(), null, 0::smallint,
                                                null) st;
        exception when sqlstate 'ZA003' then
            -- The id exists with another input (the schedule's input changed after it fired):
            -- that firing happened; it is not started again.
            v_created := false;
        end;
        execution_id := v_id;
        outcome := case when v_created then 'started' else 'existing' end;
        return next;
        v_started := v_started or v_created;
        v_s.last_execution_id := v_id;
        v_s.last_fire_at := p_fire_times[i];
    end loop;
    update public.zart_schedules s
       set last_execution_id = v_s.last_execution_id, last_fire_at = v_s.last_fire_at,
           next_fire_at = case when v_s.paused then s.next_fire_at else p_next_fire_at end,
           error = case when v_s.paused then s.error else left(p_error, 1000) end,
           locked_by = null, locked_until = null
     where s.id = p_id;
    if v_started then
        perform pg_notify('zart_work', v_s.queue);
    end if;
end
$$;

-- Entry point for workers (Scheduler::next_schedule_at): milliseconds until the next schedule
-- of the queue and task names is due (0 when one is; a schedule held by a worker counts at
-- the end of its hold), or null when there is none. Reads only.
create or replace function public.zart_next_schedule_at(p_queue text, p_task_names text[])
returns bigint
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    -- greatest() skips nulls: with no schedule, min() is null and must stay null (not 0).
    select case when min(greatest(coalesce(s.next_fire_at, v.now), coalesce(s.locked_until, v.now)))
                     is not null
                then greatest(0, ceil(extract(epoch from
                         min(greatest(coalesce(s.next_fire_at, v.now),
                                      coalesce(s.locked_until, v.now)) - v.now)) * 1000))::bigint
           end
      from public.zart_schedules s
     cross join (select public.zart_current_time() as now,
                        case when public.zart_tenancy_on() then public.zart_session_tenants() end as tenants) v
     where s.queue = p_queue and s.task_name = any (p_task_names)
       and not s.paused and s.error is null
       and (v.tenants is null or s.tenant = any (v.tenants))
$$;

-- Entry point for every role (DurableScheduler::state, `zart state`): the values an
-- execution published (TaskContext::set_state), the latest of each name, if this session may
-- see the execution. No locks. Raises nothing; no rows for an unknown execution.
create or replace function public.zart_get_state(p_bucket smallint, p_id text)
returns table (name text, value jsonb, set_at timestamptz)
-- PL/pgSQL, not SQL: Citus cannot plan a SQL function's parameters.
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
begin
    return query
    select distinct on (n.name) n.name, s.output, s.updated_at
      from public.zart_executions e
      join public.zart_steps s on s.bucket = e.bucket and s.execution_id = e.id and s.kind = 'state'
     cross join lateral (select substr(s.name, strpos(s.name, ':') + 1) as name) n
     where e.bucket = p_bucket and e.id = p_id and s.bucket = p_bucket
       and (v_tenants is null or e.tenant = any (v_tenants))
     order by n.name, s.seq desc;
end
$$;

-- Every execution as it is now: zart_executions with the live status, attempts and first start.
-- A claim writes only the task row (V13), so while a worker holds an execution its stored
-- status is still the one it had before (scheduled, sleeping or waiting) and this says running;
-- the stored row catches up when the run suspends or ends. The one definition of the live
-- status: the starts, zart_get_execution and the views read it (the admin list spells it out,
-- see LIST_EXECUTIONS). Defined here, before the function below reads it; documented with the
-- other views (docs/sql.md).
create or replace view public.zart_execution_status with (security_invoker = true) as
select e.bucket, e.id, e.task_name, e.queue,
       case when t.locked_by is not null then 'running' else e.status end as status,
       e.input, e.output, e.error,
       coalesce(t.attempts, e.attempts) as attempts,
       e.parent_id, e.deadline_at, e.created_at, coalesce(e.started_at, t.started_at) as started_at,
       e.updated_at, e.finished_at, e.tenant, e.start_at, e.priority, e.limit_key
  from public.zart_executions e
  left join public.zart_tasks t on t.bucket = e.bucket and t.execution_id = e.id;

-- Entry point for every role (DurableScheduler::status and wait): one execution, if this
-- session may see its tenant. No locks. Raises nothing; no row when there is no such execution.
create or replace function public.zart_get_execution(p_bucket smallint, p_id text)
returns table (id text, task_name text, queue text, status text, input jsonb, output jsonb,
               error jsonb, attempts integer, created_at timestamptz, started_at timestamptz,
               finished_at timestamptz, parent_id text, priority smallint)
-- PL/pgSQL, not SQL: Citus cannot plan a SQL function's parameters.
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenants text[] := case when public.zart_tenancy_on() then public.zart_session_tenants() end;
begin
    return query
    select e.id, e.task_name, e.queue, e.status, e.input, e.output, e.error, e.attempts,
           e.created_at, e.started_at, e.finished_at, e.parent_id, e.priority
      from public.zart_execution_status e
     where e.bucket = p_bucket and e.id = p_id
       and (v_tenants is null or e.tenant = any (v_tenants));
end
$$;

-- Row-level security (enabled on the four tables by migration V4): a session reading a table
-- directly sees the rows of its tenants only (all rows when tenancy is off). Policies exist
-- for SELECT only: no role may write to a table. Created once; a changed policy belongs in a
-- migration.
do $$
begin
    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_executions_tenant') then
        create policy zart_executions_tenant on public.zart_executions for select
            using ((select public.zart_visible_tenants()) is null
                   or tenant = any ((select public.zart_visible_tenants())::text[]));
    end if;
    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_tasks_tenant') then
        create policy zart_tasks_tenant on public.zart_tasks for select
            using ((select public.zart_visible_tenants()) is null
                   or tenant = any ((select public.zart_visible_tenants())::text[]));
    end if;
    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_steps_tenant') then
        create policy zart_steps_tenant on public.zart_steps for select
            using ((select public.zart_visible_tenants()) is null
                   or exists (select 1 from public.zart_executions e
                               where e.bucket = zart_steps.bucket and e.id = zart_steps.execution_id
                                 and e.tenant = any ((select public.zart_visible_tenants())::text[])));
    end if;
    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_schedules_tenant') then
        create policy zart_schedules_tenant on public.zart_schedules for select
            using ((select public.zart_visible_tenants()) is null
                   or tenant = any ((select public.zart_visible_tenants())::text[]));
    end if;
    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_audit_log_all_tenants') then
        create policy zart_audit_log_all_tenants on public.zart_audit_log for select
            using ((select public.zart_visible_tenants()) is null);
    end if;
    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_workers_all_tenants') then
        create policy zart_workers_all_tenants on public.zart_workers for select
            using ((select public.zart_visible_tenants()) is null);
    end if;
    if not exists (select from pg_policies where schemaname = 'public' and policyname = 'zart_events_tenant') then
        create policy zart_events_tenant on public.zart_events for select
            using ((select public.zart_visible_tenants()) is null
                   or exists (select 1 from public.zart_executions e
                               where e.bucket = zart_events.bucket and e.id = zart_events.execution_id
                                 and e.tenant = any ((select public.zart_visible_tenants())::text[])));
    end if;
end
$$;

-- Views: the state of executions in plain SQL. Read-only; examples in docs/sql.md. Security
-- invoker: they read the tables as the session does, so row-level security applies.

-- How many executions each task has in each status.
create or replace view public.zart_execution_counts with (security_invoker = true) as
select e.task_name, e.status, count(*) as executions
  from public.zart_execution_status e
 group by e.task_name, e.status;

-- Every step of every execution, in call order, with its wait and timings.
create or replace view public.zart_step_timeline with (security_invoker = true) as
-- An event wait that timed out is stored completed with {"timed_out": true}: shown timed_out.
select s.execution_id, s.seq, s.name, s.kind,
       case when s.kind = 'event' and s.status = 'completed' and s.output ? 'timed_out'
            then 'timed_out' else s.status end as status,
       s.attempts,
       s.output, s.error->>'message' as error_message, s.wake_at,
       s.created_at as first_recorded_at, s.updated_at as last_recorded_at,
       s.updated_at - lag(s.updated_at) over (partition by s.bucket, s.execution_id order by s.seq)
           as since_previous_step
  from public.zart_steps s;

-- The values each execution published (TaskContext::set_state): the latest of each name.
create or replace view public.zart_state with (security_invoker = true) as
select distinct on (s.bucket, s.execution_id, n.name)
       s.execution_id, n.name, s.output as value, s.updated_at as set_at
  from public.zart_steps s
 cross join lateral (select substr(s.name, strpos(s.name, ':') + 1) as name) n
 where s.kind = 'state'
 order by s.bucket, s.execution_id, n.name, s.seq desc;

-- What each suspended execution waits for, and until when (null: no timeout).
create or replace view public.zart_waiting with (security_invoker = true) as
select e.id as execution_id, e.task_name, e.status, t.queue, t.wait_kind, t.wait_name,
       nullif(t.run_at, 'infinity') as wakes_at, e.updated_at as waiting_since
  from public.zart_tasks t
  join public.zart_executions e on e.bucket = t.bucket and e.id = t.execution_id
 where t.locked_by is null and t.wait_kind is not null;

-- Executions that should be moving but are not: due and unclaimed (queue lag), or leased by a
-- worker whose lease has expired (a dead or stalled worker).
create or replace view public.zart_overdue with (security_invoker = true) as
select e.id as execution_id, e.task_name, e.status, t.queue, t.locked_by,
       case when t.locked_by is null then 'due, not claimed' else 'lease expired' end as problem,
       public.zart_current_time() - t.run_at as overdue_by
  from public.zart_tasks t
  join public.zart_execution_status e on e.bucket = t.bucket and e.id = t.execution_id
 where t.run_at < public.zart_current_time();
