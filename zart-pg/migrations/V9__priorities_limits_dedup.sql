-- Zart schema, version 9: priorities, limits per queue, deduplicated starts.
-- Never edit this file once merged: add V10__... instead.
--
-- Priorities: an execution's priority (higher first) is copied to its task row; the claim
-- index leads with it after the name, so a claim reads one index range per name and level.
-- Adding a NOT NULL column with a constant default rewrites nothing. Building the index locks
-- writes to zart_tasks for as long as it takes (the live queue only, not the history).
alter table public.zart_executions add column priority smallint not null default 0;
alter table public.zart_executions add column limit_key text;
alter table public.zart_tasks add column priority smallint not null default 0;
alter table public.zart_tasks add column limit_key text;
create index zart_tasks_claim_idx on public.zart_tasks (queue, task_name, priority, run_at);
drop index public.zart_tasks_queue_task_run_at_idx;

-- Limits per queue: at most max_running runs at once, at most rate_limit runs started per
-- rate_interval_ms; the key_ columns the same per limit key within the queue. A null column
-- is no limit of that kind. Limits are the fleet's, not a tenant's.
create table public.zart_queue_limits (
    queue                text        not null,
    max_running          integer
        constraint zart_queue_limits_max_running_check check (max_running > 0),
    rate_limit           integer
        constraint zart_queue_limits_rate_limit_check check (rate_limit > 0),
    rate_interval_ms     bigint
        constraint zart_queue_limits_rate_interval_check
            check (rate_interval_ms between 1 and 3155760000000),
    key_max_running      integer
        constraint zart_queue_limits_key_max_running_check check (key_max_running > 0),
    key_rate_limit       integer
        constraint zart_queue_limits_key_rate_limit_check check (key_rate_limit > 0),
    key_rate_interval_ms bigint
        constraint zart_queue_limits_key_rate_interval_check
            check (key_rate_interval_ms between 1 and 3155760000000),
    updated_at           timestamptz not null,
    constraint zart_queue_limits_rate_check
        check ((rate_limit is null) = (rate_interval_ms is null)),
    constraint zart_queue_limits_key_rate_check
        check ((key_rate_limit is null) = (key_rate_interval_ms is null)),
    constraint zart_queue_limits_pkey primary key (queue)
);

-- One row per run started in a limited queue (a claim): what counts against its limits. A
-- run is running while its task row still holds this fence with a lease not yet expired; a
-- row is kept while it is running or inside a rate window, and deleted by a later claim.
create table public.zart_limit_runs (
    queue        text        not null,
    bucket       smallint    not null,
    execution_id text        not null,
    fence        bigint      not null,
    limit_key    text,
    started_at   timestamptz not null,
    constraint zart_limit_runs_pkey primary key (queue, bucket, execution_id, fence)
);
alter table public.zart_limit_runs enable row level security;

-- Deduplicated and debounced starts: a start key of a task names the execution it started
-- until expires_at; a start with the same key before then returns that execution.
create table public.zart_start_keys (
    task_name    text        not null,
    start_key    text        not null,
    -- The tenant of the session that set the key ('' with tenancy off): keys are per tenant.
    tenant       text        not null,
    bucket       smallint    not null,
    execution_id text        not null,
    debounce     boolean     not null,
    expires_at   timestamptz not null,
    constraint zart_start_keys_pkey primary key (task_name, start_key, tenant)
);
create index zart_start_keys_expires_at_idx on public.zart_start_keys (expires_at);
alter table public.zart_start_keys enable row level security;
