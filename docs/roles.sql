-- Least-privilege roles for Zart: three NOLOGIN group roles, each with only what it needs.
--
--   zart_worker  runs workflows: claims tasks, records steps, sleeps, waits for events, starts
--                child workflows, heartbeats, releases and completes.
--   zart_client  starts executions, sends events, cancels, and reads executions.
--   zart_reader  reads the tables and views; changes nothing.
--
-- Not applied by `zart migrate`. Apply it after `zart migrate`, as the owner of the Zart objects
-- (the role that ran the migration) or a superuser, in every database that has the Zart schema:
--
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/roles.sql
--
-- and apply it again after every `zart migrate` that upgrades the schema (a new function starts
-- out executable by PUBLIC). It is idempotent. Then give your login roles a group role:
--
--     create role orders_worker login password '...' in role zart_worker;
--
-- The functions are SECURITY INVOKER: they run with the caller's privileges. So each role gets
-- EXECUTE on the functions it calls, including the ones those call in turn, plus the table
-- privileges the function bodies use. See docs/roles.md.

-- 1. The group roles. Roles belong to the cluster, so they are created only once.
do $$
declare
    v_role text;
begin
    foreach v_role in array array['zart_worker', 'zart_client', 'zart_reader'] loop
        if not exists (select from pg_catalog.pg_roles where rolname = v_role) then
            execute format('create role %I nologin', v_role);
        end if;
    end loop;
end
$$;

-- 2. Nobody runs a Zart function unless granted below. PostgreSQL grants EXECUTE on every new
-- function to PUBLIC; take it back from each zart_* function in the schema.
do $$
declare
    v_fn regprocedure;
begin
    for v_fn in
        select p.oid::regprocedure
          from pg_catalog.pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname like 'zart\_%'
    loop
        execute format('revoke execute on function %s from public', v_fn);
    end loop;
end
$$;
revoke all on table public.zart_executions, public.zart_tasks, public.zart_steps,
    public.zart_events, public.zart_clock, public.zart_schema_history,
    public.zart_execution_counts, public.zart_step_timeline, public.zart_waiting,
    public.zart_overdue
    from public;

grant usage on schema public to zart_worker, zart_client, zart_reader;

-- Read-only helpers every role may call: the schema version (checked by workers and clients at
-- start), the bucket of an id, and the database clock (used by the view zart_overdue). The test
-- clock table is read by zart_current_time() only in sessions with zart.test_clock = on.
grant execute on function public.zart_schema_version(), public.zart_bucket(text),
    public.zart_current_time()
    to zart_worker, zart_client, zart_reader;
grant select on table public.zart_clock to zart_worker, zart_client, zart_reader;

-- 3. zart_reader: SELECT on the tables and views, nothing else.
grant select on table public.zart_executions, public.zart_tasks, public.zart_steps,
    public.zart_events, public.zart_schema_history,
    public.zart_execution_counts, public.zart_step_timeline, public.zart_waiting,
    public.zart_overdue
    to zart_reader;

-- 4. zart_client: DurableScheduler::start/send_event/cancel/status/wait, and from SQL
-- zart_start, zart_emit_event and zart_cancel.
grant execute on function
    public.zart_check_text(text, text),
    public.zart_check_payload(text, jsonb),
    public.zart_start_execution(smallint, text, text, jsonb, text, text, bigint),
    public.zart_start(text, text, jsonb, text),
    public.zart_send_event(smallint, text, text, jsonb),
    public.zart_emit_event(text, text, jsonb),
    public.zart_wake_waiter(text, text, text),
    public.zart_wait_lock(text),
    public.zart_deliver_event(smallint, text, text),
    public.zart_cancel_execution(smallint, text),
    public.zart_cancel(text)
    to zart_client;
-- Starts insert an execution and its task row; cancels lock the execution (FOR UPDATE needs
-- UPDATE), mark it and its children cancelled and delete their task rows; events are inserted
-- and wake the waiter by moving its task row's run_at.
grant select, insert, update on table public.zart_executions to zart_client;
grant select, insert, update, delete on table public.zart_tasks to zart_client;
grant insert on table public.zart_events to zart_client;

-- 5. zart_worker: Worker and TaskContext (steps, retries, sleeps, event waits, children).
grant execute on function
    public.zart_check_text(text, text),
    public.zart_claim_tasks(text, text, text[], integer, bigint, smallint[]),
    public.zart_sleep_is_over(text, timestamptz, timestamptz),
    public.zart_try_lock_task(smallint, text, bigint),
    public.zart_lock_task(smallint, text, bigint),
    public.zart_raise_fence(smallint, text, bigint),
    public.zart_fence_code(smallint, text),
    public.zart_suspend(smallint, text, bigint, timestamptz, text, text, text),
    public.zart_commit_step(smallint, text, bigint, text, integer, text, jsonb, jsonb, integer),
    public.zart_try_commit_step(smallint, text, bigint, text, integer, text, jsonb, jsonb, integer),
    public.zart_try_complete_execution(smallint, text, bigint, text, jsonb, jsonb),
    public.zart_retry_step(smallint, text, bigint, text, integer, jsonb, integer, bigint),
    public.zart_complete_execution(smallint, text, bigint, text, jsonb, jsonb),
    public.zart_commit_steps(smallint[], text[], bigint[], text[], integer[], text[], jsonb[],
                             jsonb[], integer[]),
    public.zart_complete_executions(smallint[], text[], bigint[], text[], jsonb[], jsonb[]),
    public.zart_wake_waiter(text, text, text),
    public.zart_wait_lock(text),
    public.zart_heartbeat(text, bigint, smallint[], text[], bigint[]),
    public.zart_lock_leases(text, smallint[], text[], bigint[]),
    public.zart_release_tasks(text, smallint[], text[], bigint[]),
    public.zart_next_run_at(text, text[]),
    public.zart_open_wait(smallint, text, text, integer, text, timestamptz, jsonb),
    public.zart_close_wait(smallint, text, text, text, jsonb, jsonb),
    public.zart_sleep(smallint, text, bigint, text, integer, bigint, timestamptz),
    public.zart_await_event(smallint, text, bigint, text, integer, text, bigint),
    public.zart_take_event(smallint, text, text, text, timestamptz, timestamptz),
    public.zart_start_child(smallint, text, bigint, text, integer, text, text, jsonb, text),
    public.zart_start_execution(smallint, text, text, jsonb, text, text, bigint)
    to zart_worker;
-- Claims, heartbeats, releases and suspensions update task rows and execution statuses; a
-- verdict deletes the task row; children are started (inserts); steps are recorded and updated;
-- events are consumed (UPDATE, and FOR UPDATE needs UPDATE).
grant select, insert, update on table public.zart_executions to zart_worker;
grant select, insert, update, delete on table public.zart_tasks to zart_worker;
grant select, insert, update on table public.zart_steps to zart_worker;
grant select, update on table public.zart_events to zart_worker;
