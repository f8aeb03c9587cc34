-- Zart schema for SQLite, version 9: the admin API's audit log, the workers seen, and the index
-- the executions list needs over a long history. The same change as zart-pg's V12.
-- Never edit this file once merged: add V10__... instead.

-- One row per mutating call of the admin API, written before it acts (outcome 'started') and
-- finished after (outcome 'ok' or an error code); see zart::audit. Never updated once
-- finished, never pruned by Zart. SQLite has no logins: db_role is always 'sqlite'.
create table zart_audit_log (
    id          integer not null primary key autoincrement,
    at          text    not null,
    db_role     text    not null,
    actor       text    not null,
    action      text    not null,
    target      text    not null,
    params      text    not null,
    outcome     text    not null default 'started',
    detail      text,
    finished_at text
) strict;

-- The executions list pages newest first by (created_at, id): one index range, not a sort.
create index zart_executions_created_at_idx on zart_executions (created_at, id);

-- One row per worker process seen in the last day (zart::presence), written by the worker at
-- start, every presence interval and at a graceful stop. task_names is a JSON array.
create table zart_workers (
    worker_id   text    not null primary key,
    host        text    not null,
    pid         integer not null,
    queue       text    not null,
    task_names  text    not null,
    concurrency integer not null,
    running     integer not null,
    interval_ms integer not null,
    started_at  text    not null,
    seen_at     text    not null,
    stopped_at  text
) strict;
