-- Zart schema for SQLite, version 7: priorities, limits per queue, deduplicated starts. The
-- same change as zart-pg's V9, without bucket (and tenant always '' in zart_start_keys); times
-- are stored as the other tables store them, intervals as milliseconds.
-- Never edit this file once merged: add V8__... instead.

-- Priorities: an execution's priority (higher first) is copied to its task row; the claim
-- index leads with it after the name, so a claim reads one index range per name and level.
-- limit_key is the key the queue's per-key limits count the execution under.
alter table zart_executions add column priority integer not null default 0;
alter table zart_executions add column limit_key text;
alter table zart_tasks add column priority integer not null default 0;
alter table zart_tasks add column limit_key text;
create index zart_tasks_claim_idx on zart_tasks (queue, task_name, priority, run_at);
drop index zart_tasks_queue_task_name_run_at_idx;

-- Limits per queue: at most max_running runs at once, at most rate_limit runs started per
-- rate_interval_ms; the key_ columns the same per limit key within the queue. A null column
-- is no limit of that kind.
create table zart_queue_limits (
    queue                text    not null primary key,
    max_running          integer
        constraint zart_queue_limits_max_running_check check (max_running > 0),
    rate_limit           integer
        constraint zart_queue_limits_rate_limit_check check (rate_limit > 0),
    rate_interval_ms     integer
        constraint zart_queue_limits_rate_interval_check
            check (rate_interval_ms >= 1 and rate_interval_ms <= 3155760000000),
    key_max_running      integer
        constraint zart_queue_limits_key_max_running_check check (key_max_running > 0),
    key_rate_limit       integer
        constraint zart_queue_limits_key_rate_limit_check check (key_rate_limit > 0),
    key_rate_interval_ms integer
        constraint zart_queue_limits_key_rate_interval_check
            check (key_rate_interval_ms >= 1 and key_rate_interval_ms <= 3155760000000),
    updated_at           text    not null,
    constraint zart_queue_limits_rate_check
        check ((rate_limit is null) = (rate_interval_ms is null)),
    constraint zart_queue_limits_key_rate_check
        check ((key_rate_limit is null) = (key_rate_interval_ms is null))
) strict;

-- One row per run started in a limited queue (a claim): what counts against its limits. A
-- run is running while its task row still holds this fence with a lease not yet expired; a
-- row is kept while it is running or inside a rate window, and deleted by a later claim.
create table zart_limit_runs (
    queue        text    not null,
    execution_id text    not null,
    fence        integer not null,
    limit_key    text,
    started_at   text    not null,
    constraint zart_limit_runs_pkey primary key (queue, execution_id, fence)
) strict;

-- Deduplicated and debounced starts: a start key of a task names the execution it started
-- until expires_at; a start with the same key before then returns that execution.
create table zart_start_keys (
    task_name    text    not null,
    start_key    text    not null,
    -- Always '' here (no tenancy); kept so the key is zart-pg's.
    tenant       text    not null default '',
    execution_id text    not null,
    debounce     integer not null
        constraint zart_start_keys_debounce_check check (debounce = 0 or debounce = 1),
    expires_at   text    not null,
    constraint zart_start_keys_pkey primary key (task_name, start_key, tenant)
) strict;
create index zart_start_keys_expires_at_idx on zart_start_keys (expires_at);
