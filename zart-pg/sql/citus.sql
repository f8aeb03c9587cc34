-- Zart on Citus: applied by `zart migrate` after zart.sql and roles.sql, in a transaction of its
-- own, when the database has the citus extension (docs/scale.md). On plain PostgreSQL it is
-- never run. Safe to run again: each step checks Citus's metadata first.
--
-- What it does, in order:
-- 1. The claim plans each call afresh: Citus routes a statement to one shard only when it can
--    see the bucket set's value, which a plan kept for every call (what zart.sql asks for on
--    one PostgreSQL) does not show it.
-- 2. The two tables whose triggers rewrite the constant settings functions (zart_settings,
--    zart_queue_limits) lose the triggers: Citus refuses to replicate a table with triggers.
--    zart_set_queue_limits applies the settings itself; after changing zart_settings by hand
--    on Citus, run `select zart_apply_settings()` (or `zart migrate`).
-- 3. The row-level security policies take a form without subqueries (Citus refuses a policy
--    with one on a distributed table): a tenant-scoped session sees the executions, tasks and
--    schedules of its tenants, and the steps and events of none (they carry no tenant of
--    their own; the functions that read them check the tenant). A session that sees every
--    tenant sees every row, as on one PostgreSQL.
-- 4. The tables shared by every execution become reference tables (a copy on every node).
-- 5. The five bucketed tables are distributed by bucket, co-located with zart_executions, so
--    all the rows of one execution live on one shard.

do $$
declare
    v_table text;
begin
    -- First: Citus refuses a function command after a table was distributed in the same
    -- transaction.
    if exists (select from pg_catalog.pg_proc p
                where p.oid = 'public.zart_claim_tasks(text, text, text[], integer, bigint, smallint[], boolean)'::regprocedure
                  and p.proconfig @> array['plan_cache_mode=force_generic_plan']) then
        alter function public.zart_claim_tasks(text, text, text[], integer, bigint, smallint[], boolean)
            reset plan_cache_mode;
    end if;

    -- Checked first: Citus refuses even DROP TRIGGER IF EXISTS on a reference table.
    for v_table in select c.relname from pg_catalog.pg_trigger g
                     join pg_catalog.pg_class c on c.oid = g.tgrelid
                    where g.tgname in ('zart_settings_apply', 'zart_queue_limits_apply') loop
        execute format('drop trigger %I on public.%I', v_table || '_apply', v_table);
    end loop;

    -- Policies: replaced only while they still have a subquery (the form zart.sql creates).
    for v_table in select unnest(array['zart_executions', 'zart_tasks', 'zart_steps',
                                       'zart_schedules', 'zart_audit_log', 'zart_workers',
                                       'zart_events']) loop
        if exists (select from pg_catalog.pg_policies p
                    where p.schemaname = 'public' and p.tablename = v_table
                      and p.qual ilike '%select%') then
            execute (select format('drop policy %I on public.%I', p.policyname, v_table)
                       from pg_catalog.pg_policies p
                      where p.schemaname = 'public' and p.tablename = v_table);
            execute format(
                'create policy %I on public.%I for select using (%s)',
                case when v_table in ('zart_audit_log', 'zart_workers') then v_table || '_all_tenants'
                     else v_table || '_tenant' end,
                v_table,
                case when v_table in ('zart_executions', 'zart_tasks', 'zart_schedules')
                     then 'public.zart_visible_tenants() is null '
                          'or tenant = any (public.zart_visible_tenants())'
                     else 'public.zart_visible_tenants() is null' end);
        end if;
    end loop;

    for v_table in select unnest(array['zart_clock', 'zart_settings', 'zart_tenant_access',
                                       'zart_schedules', 'zart_queue_limits', 'zart_start_keys',
                                       'zart_audit_log', 'zart_workers']) loop
        if not exists (select from pg_catalog.pg_dist_partition d
                        where d.logicalrelid = format('public.%I', v_table)::regclass) then
            perform create_reference_table(format('public.%I', v_table));
            -- The rows were copied to every node; the coordinator's own copy goes.
            perform truncate_local_data_after_distributing_table(format('public.%I', v_table));
        end if;
    end loop;

    for v_table in select unnest(array['zart_executions', 'zart_tasks', 'zart_steps',
                                       'zart_events', 'zart_limit_runs']) loop
        if not exists (select from pg_catalog.pg_dist_partition d
                        where d.logicalrelid = format('public.%I', v_table)::regclass) then
            perform create_distributed_table(format('public.%I', v_table), 'bucket',
                                             colocate_with => case when v_table = 'zart_executions'
                                                                   then 'default'
                                                                   else 'public.zart_executions' end);
            perform truncate_local_data_after_distributing_table(format('public.%I', v_table));
        end if;
    end loop;

end
$$;
