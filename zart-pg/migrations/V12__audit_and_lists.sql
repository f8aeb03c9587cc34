-- Zart schema, version 12: the admin API's audit log, the workers seen, and the indexes the
-- executions list needs to stay fast over a long history.
-- Never edit this file once merged: add V13__... instead.

-- One row per mutating call of the admin API, written before it acts (outcome 'started') and
-- finished after (outcome 'ok' or an error code); see zart::audit. Written only through
-- zart_audit_begin and zart_audit_finish; never updated once finished, never pruned by Zart.
-- db_role is the database login that wrote it, actor the API token's name.
create table public.zart_audit_log (
    id          bigint      generated always as identity,
    at          timestamptz not null,
    db_role     text        not null,
    actor       text        not null,
    action      text        not null,
    target      text        not null,
    params      jsonb       not null,
    outcome     text        not null default 'started',
    detail      text,
    finished_at timestamptz,
    constraint zart_audit_log_pkey primary key (id)
);
-- Targets name executions of every tenant: only sessions that see every tenant read it (the
-- policy is in sql/zart.sql).
alter table public.zart_audit_log enable row level security;

-- The executions list (zart::admin::Admin::list_executions, `zart list`, the admin API) pages
-- newest first by (created_at, id): one index range instead of a sort of the whole history.
-- Both columns never change after the insert, so updates of an execution stay HOT.
create index zart_executions_created_at_idx on public.zart_executions (created_at, id);

-- No index serves the list's id prefix search: one on (id collate "C") made the one-step drain
-- (Z2) 14 % slower (measured with zart-load), since every update of an execution adds an entry
-- to each of its indexes. The search is a filter along the time index instead.

-- A status filter of the list walks the (created_at, id) index until it has a page; for the
-- rare statuses an operator looks for most (failed, cancelled) that walk could cross the whole
-- history, so they get an index of their own. Partial: an execution that completes never
-- enters it, so the drain pays nothing for it.
create index zart_executions_unsuccessful_idx on public.zart_executions (created_at, id)
    where status in ('failed', 'cancelled');

-- One row per worker process seen in the last day (zart::presence): written by the worker
-- itself through zart_worker_seen (at start and every presence interval) and zart_worker_gone
-- (a graceful stop); rows not seen for a day are deleted by the next zart_worker_seen. The
-- fleet is small: no index besides the key.
create table public.zart_workers (
    worker_id   text        not null,
    host        text        not null,
    pid         bigint      not null,
    queue       text        not null,
    task_names  text[]      not null,
    concurrency integer     not null,
    running     integer     not null,
    interval_ms bigint      not null,
    db_role     text        not null,
    started_at  timestamptz not null,
    seen_at     timestamptz not null,
    stopped_at  timestamptz,
    constraint zart_workers_pkey primary key (worker_id)
);
-- Readable by sessions that see every tenant, as the audit log (policy in sql/zart.sql).
alter table public.zart_workers enable row level security;
