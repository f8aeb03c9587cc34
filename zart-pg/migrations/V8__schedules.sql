-- Zart schema, version 8: cron schedules (zart::schedule). One row per schedule: its
-- declaration, its next fire time (computed by workers, which read the cron expression; null
-- until one has), what it started last, and which worker is firing it now.
-- Never edit this file once merged: add V9__... instead.
create table public.zart_schedules (
    id                text        not null,
    task_name         text        not null,
    queue             text        not null,
    input             jsonb       not null,
    cron              text        not null,
    time_zone         text        not null,
    overlap           text        not null
        constraint zart_schedules_overlap_check check (overlap in ('skip', 'allow', 'cancel_previous')),
    catch_up          text        not null
        constraint zart_schedules_catch_up_check check (catch_up in ('skip', 'latest', 'all')),
    catch_up_limit    integer     not null
        constraint zart_schedules_catch_up_limit_check check (catch_up_limit between 1 and 1000),
    paused            boolean     not null default false,
    next_fire_at      timestamptz,
    last_fire_at      timestamptz,
    last_execution_id text,
    error             text,
    locked_by         text,
    locked_until      timestamptz,
    tenant            text,
    created_at        timestamptz not null,
    updated_at        timestamptz not null,
    constraint zart_schedules_pkey primary key (id)
);
-- Workers look for due schedules of their queue and tasks.
create index zart_schedules_due_idx on public.zart_schedules (queue, task_name, next_fire_at)
    where not paused and error is null;
alter table public.zart_schedules enable row level security;
