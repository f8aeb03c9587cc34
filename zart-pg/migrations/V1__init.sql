-- Zart schema, version 1: the four tables and their indexes.
-- Functions live in sql/zart.sql (CREATE OR REPLACE, re-applied by every `zart migrate`).
-- Never edit this file once merged: add V2__... instead.

-- One row per execution, keyed by the caller's id (the idempotency key). The history users query.
create table public.zart_executions (
    bucket      smallint    not null,
    id          text        not null,
    task_name   text        not null,
    queue       text        not null,
    input       jsonb       not null,
    status      text        not null default 'scheduled'
        constraint zart_executions_status_check check (status in
            ('scheduled', 'running', 'sleeping', 'waiting', 'completed', 'failed', 'cancelled')),
    output      jsonb,
    error       jsonb,
    attempts    integer     not null default 0,
    parent_id   text,
    created_at  timestamptz not null,
    started_at  timestamptz,
    updated_at  timestamptz not null,
    finished_at timestamptz,
    constraint zart_executions_pkey primary key (bucket, id)
);

-- The live queue: one row per unfinished execution. When leased, run_at is the lease expiry,
-- so an expired lease is due again and the ordinary claim takes it over.
create table public.zart_tasks (
    bucket       smallint    not null,
    execution_id text        not null,
    task_name    text        not null,
    queue        text        not null,
    run_at       timestamptz not null,
    locked_by    text,
    fence        bigint      not null default 0,
    claims       integer     not null default 0,
    constraint zart_tasks_pkey primary key (bucket, execution_id)
);
create index zart_tasks_queue_run_at_idx on public.zart_tasks (queue, run_at);

-- One row per (execution, step name): the recorded result that replay returns.
create table public.zart_steps (
    bucket       smallint    not null,
    execution_id text        not null,
    name         text        not null,
    seq          integer     not null,
    status       text        not null
        constraint zart_steps_status_check check (status in ('completed', 'failed', 'retrying')),
    output       jsonb,
    error        jsonb,
    attempts     integer     not null,
    created_at   timestamptz not null,
    updated_at   timestamptz not null,
    constraint zart_steps_pkey primary key (bucket, execution_id, name)
);

-- Events addressed to an execution by name, buffered until the workflow consumes them.
create table public.zart_events (
    bucket       smallint    not null,
    execution_id text        not null,
    event_id     bigint      generated always as identity,
    name         text        not null,
    payload      jsonb       not null,
    created_at   timestamptz not null,
    consumed_at  timestamptz,
    constraint zart_events_pkey primary key (bucket, execution_id, event_id)
);
