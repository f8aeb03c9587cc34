-- Zart schema for SQLite, version 1: the tables and indexes of every Zart object.
-- Same table and column names as zart-pg where the types allow; no bucket (one file, one
-- machine) and no tenants. JSON is stored as text; times as fixed-width ISO-8601 UTC text
-- with milliseconds ('2026-12-06T22:00:00.123Z'), so text order is time order and
-- '9999-12-31T23:59:59.999Z' stands for infinity.
-- Never edit this file once merged: add V2__... instead.

-- One row per execution, keyed by the caller's id (the idempotency key). The history.
create table zart_executions (
    id          text    not null primary key,
    task_name   text    not null,
    queue       text    not null,
    input       text    not null,
    status      text    not null default 'scheduled'
        constraint zart_executions_status_check check (status in
            ('scheduled', 'running', 'sleeping', 'waiting', 'completed', 'failed', 'cancelled')),
    output      text,
    error       text,
    attempts    integer not null default 0,
    parent_id   text,
    deadline_at text,
    created_at  text    not null,
    started_at  text,
    updated_at  text    not null,
    finished_at text
) strict;
create index zart_executions_parent_id_idx on zart_executions (parent_id)
    where parent_id is not null;

-- The live queue: one row per unfinished execution. When leased, run_at is the lease expiry,
-- so an expired lease is due again and the ordinary claim takes it over.
create table zart_tasks (
    execution_id text    not null primary key,
    task_name    text    not null,
    queue        text    not null,
    run_at       text    not null,
    locked_by    text,
    fence        integer not null default 0,
    attempts     integer not null default 0,
    recoveries   integer not null default 0,
    wait_kind    text
        constraint zart_tasks_wait_kind_check check (wait_kind in ('sleep', 'retry', 'event', 'child')),
    wait_name    text
) strict;
create index zart_tasks_queue_task_name_run_at_idx on zart_tasks (queue, task_name, run_at);

-- One row per (execution, step name): the recorded result that replay returns, or an open
-- wait (sleep, event, child) with its wake time in wake_at.
create table zart_steps (
    execution_id text    not null,
    name         text    not null,
    seq          integer not null,
    kind         text    not null default 'step'
        constraint zart_steps_kind_check check (kind in ('step', 'sleep', 'event', 'child')),
    status       text    not null
        constraint zart_steps_status_check check (status in ('completed', 'failed', 'retrying', 'waiting')),
    output       text,
    error        text,
    attempts     integer not null,
    wake_at      text,
    created_at   text    not null,
    updated_at   text    not null,
    constraint zart_steps_pkey primary key (execution_id, name)
) strict;

-- Events addressed to an execution by name, buffered until the workflow consumes them.
create table zart_events (
    event_id     integer not null primary key autoincrement,
    execution_id text    not null,
    name         text    not null,
    payload      text    not null,
    created_at   text    not null,
    consumed_at  text,
    consumed_by  text
) strict;
create index zart_events_pending_idx on zart_events (execution_id, name, event_id)
    where consumed_at is null;

-- The test clock: a scheduler built with a test clock adds this offset to the system time,
-- read inside every transaction, so tests move time for every connection at once. At most
-- one row; production schedulers never read it.
create table zart_clock (
    singleton       integer not null primary key default 1
        constraint zart_clock_singleton check (singleton = 1),
    clock_offset_ms integer not null default 0
) strict;
