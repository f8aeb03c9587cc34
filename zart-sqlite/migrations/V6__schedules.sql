-- Zart schema for SQLite, version 6: cron schedules (zart::schedule). One row per schedule: its
-- declaration, its next fire time (computed by workers, which read the cron expression; null
-- until one has), what it started last, and which worker is firing it now (locked_by, until
-- locked_until). updated_at is when its timing (cron, time zone) was last declared: the first
-- fire time comes after it. The same table as zart-pg's V8, without tenant; the checks are
-- equalities joined by OR, as V2 explains. Times are stored as the other tables store them.
-- Never edit this file once merged: add V7__... instead.
create table zart_schedules (
    id                text    not null primary key,
    task_name         text    not null,
    queue             text    not null,
    input             text    not null
        constraint zart_schedules_input_check check (json_valid(input)),
    cron              text    not null,
    time_zone         text    not null,
    overlap           text    not null
        constraint zart_schedules_overlap_check check (
            overlap = 'skip' or overlap = 'allow' or overlap = 'cancel_previous'),
    catch_up          text    not null
        constraint zart_schedules_catch_up_check check (
            catch_up = 'skip' or catch_up = 'latest' or catch_up = 'all'),
    catch_up_limit    integer not null
        constraint zart_schedules_catch_up_limit_check check (
            catch_up_limit >= 1 and catch_up_limit <= 1000),
    paused            integer not null default 0
        constraint zart_schedules_paused_check check (paused = 0 or paused = 1),
    next_fire_at      text,
    last_fire_at      text,
    last_execution_id text,
    error             text,
    locked_by         text,
    locked_until      text,
    created_at        text    not null,
    updated_at        text    not null
) strict;
-- Workers look for due schedules of their queue and tasks (one range per task name).
create index zart_schedules_due_idx on zart_schedules (queue, task_name, next_fire_at)
    where paused = 0 and error is null;
