-- Zart's roles and privileges: the one place they are set. `zart migrate` applies this file
-- after zart.sql, in the same transaction, on every run, so a new function never stays
-- executable by PUBLIC. docs/roles.md explains each grant; docs/security.md the threat model.
--
--   zart_worker  runs workflows: claims, records steps, sleeps, waits, starts children,
--                heartbeats, releases, records outcomes; prunes old finished executions
--   zart_client  starts executions, sends events, cancels, reads one execution
--   zart_reader  reads the tables and views; changes nothing
--
-- No role has INSERT, UPDATE or DELETE on any Zart table: the worker and the client act only
-- through their entry points (SECURITY DEFINER functions with search_path pinned), so what a
-- role can do is exactly what those functions allow. Give login roles a group role:
--
--     create role orders_worker login password '...' in role zart_worker;

-- 1. The group roles (NOLOGIN). Roles belong to the cluster: created once, by a migrating role
-- that may create roles; otherwise a NOTICE says to create them (then run zart migrate again).
do $$
declare
    v_role text;
begin
    foreach v_role in array array['zart_worker', 'zart_client', 'zart_reader'] loop
        continue when exists (select from pg_catalog.pg_roles where rolname = v_role);
        if exists (select from pg_catalog.pg_roles
                    where rolname = current_user and (rolsuper or rolcreaterole)) then
            begin
                execute format('create role %I nologin', v_role);
            exception when duplicate_object or unique_violation then
                null; -- created meanwhile by a migration of another database
            end;
        else
            raise notice 'role % does not exist and % may not create roles: create it (create role % nologin), then run zart migrate again',
                v_role, current_user, v_role;
        end if;
    end loop;
end
$$;

-- 2. Nothing for PUBLIC: no EXECUTE on any zart_* function (PostgreSQL grants it to PUBLIC on
-- every new function), no privilege on any Zart table or view.
do $$
declare
    v_fn regprocedure;
begin
    for v_fn in
        select p.oid::regprocedure
          from pg_catalog.pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname like 'zart\_%'
    loop
        execute format('revoke all on function %s from public', v_fn);
    end loop;
end
$$;
revoke all on table public.zart_executions, public.zart_tasks, public.zart_steps,
    public.zart_events, public.zart_clock, public.zart_settings, public.zart_tenant_access,
    public.zart_schema_history, public.zart_execution_counts, public.zart_step_timeline,
    public.zart_waiting, public.zart_overdue, public.zart_audit_log,
    public.zart_workers, public.zart_execution_status
    from public;

-- 3. The grants, to each group role that exists: first everything is taken back (grants of an
-- older schema, or made by hand, included), so the privileges below are exactly what each
-- role has. In one transaction with the rest: no session sees a role without its grants.
do $$
declare
    v_role text;
    v_fn   regprocedure;
begin
    for v_role in
        select r.rolname from pg_catalog.pg_roles r
         where r.rolname in ('zart_worker', 'zart_client', 'zart_reader')
    loop
        execute format('revoke all on table public.zart_executions, public.zart_tasks,
                            public.zart_steps, public.zart_events, public.zart_clock,
                            public.zart_settings, public.zart_tenant_access,
                            public.zart_schema_history, public.zart_execution_counts,
                            public.zart_step_timeline, public.zart_waiting, public.zart_overdue,
                            public.zart_state, public.zart_audit_log, public.zart_workers,
                            public.zart_execution_status
                          from %I', v_role);
        for v_fn in
            select p.oid::regprocedure
              from pg_catalog.pg_proc p
             where p.pronamespace = 'public'::regnamespace and p.proname like 'zart\_%'
        loop
            execute format('revoke all on function %s from %I', v_fn, v_role);
        end loop;
    end loop;
end
$$;
do $$
declare
    -- Every role: the schema version (checked at start), the bucket of an id, the clock and
    -- the visible tenants (both used by the views and row-level security), one execution.
    v_shared text[] := array['zart_schema_version', 'zart_bucket', 'zart_current_time',
                             'zart_visible_tenants', 'zart_get_execution', 'zart_list_schedules',
                             'zart_list_queue_limits', 'zart_get_state'];
    v_client text[] := array['zart_start_execution', 'zart_start', 'zart_send_event',
                             'zart_emit_event', 'zart_cancel_execution', 'zart_cancel',
                             'zart_retry_execution', 'zart_retry', 'zart_schedule',
                             'zart_pause_schedule', 'zart_delete_schedule', 'zart_set_queue_limits',
                             'zart_audit_begin', 'zart_audit_finish'];
    v_worker text[] := array['zart_claim_tasks', 'zart_commit_step', 'zart_commit_steps',
                             'zart_retry_step', 'zart_complete_execution',
                             'zart_complete_executions', 'zart_heartbeat', 'zart_release_tasks',
                             'zart_claim_started',
                             'zart_next_run_at', 'zart_sleep', 'zart_await_event',
                             'zart_prune', 'zart_start_child', 'zart_start_children',
                             'zart_claim_schedules',
                             'zart_fire_schedule', 'zart_next_schedule_at',
                             'zart_worker_seen', 'zart_worker_gone'];
    v_grant  record;
begin
    for v_grant in
        select p.oid::regprocedure as fn, r.rolname
          from (values ('zart_worker', v_shared || v_worker),
                       ('zart_client', v_shared || v_client),
                       ('zart_reader', v_shared)) as g(role, functions)
          join pg_catalog.pg_roles r on r.rolname = g.role
          join pg_catalog.pg_proc p
            on p.pronamespace = 'public'::regnamespace and p.proname = any (g.functions)
    loop
        execute format('grant execute on function %s to %I', v_grant.fn, v_grant.rolname);
    end loop;

    for v_grant in
        select r.rolname from pg_catalog.pg_roles r
         where r.rolname in ('zart_worker', 'zart_client', 'zart_reader')
    loop
        execute format('grant usage on schema public to %I', v_grant.rolname);
        -- zart_current_time() reads the test clock in sessions with zart.test_clock = on.
        execute format('grant select on table public.zart_clock to %I', v_grant.rolname);
    end loop;

    -- The reader: SELECT on the tables (row-level security keeps it to its tenants) and views.
    if exists (select from pg_catalog.pg_roles where rolname = 'zart_reader') then
        grant select on table public.zart_executions, public.zart_tasks, public.zart_steps,
            public.zart_events, public.zart_schedules, public.zart_queue_limits,
            public.zart_schema_history,
            public.zart_execution_status, public.zart_execution_counts,
            public.zart_step_timeline, public.zart_waiting, public.zart_overdue, public.zart_state,
            public.zart_audit_log, public.zart_workers
            to zart_reader;
    end if;
end
$$;
