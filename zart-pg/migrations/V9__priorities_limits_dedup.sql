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
-- Runs that count against a queue's concurrency limits: claimed in a limited queue (counted)
-- and still holding a lease (a run holds its slot until run_at, its lease expiry, passes).
-- Claims in queues without limits leave counted false, so they add nothing to this index.
alter table public.zart_tasks add column counted boolean not null default false;
create index zart_tasks_running_idx on public.zart_tasks (queue, limit_key, run_at)
    where counted and locked_by is not null;

-- Limits per queue: at most max_running runs at once, at most rate_limit runs started per
-- rate_interval_ms; the key_ columns the same per limit key within the queue. A null column
-- is no limit of that kind. Limits are the fleet's, not a tenant's. held_back: the queue's
-- last claim took less than it asked for because of the limits, so a run that ends wakes
-- the queue's workers.
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
    held_back            boolean     not null default false,
    updated_at           timestamptz not null,
    constraint zart_queue_limits_rate_check
        check ((rate_limit is null) = (rate_interval_ms is null)),
    constraint zart_queue_limits_key_rate_check
        check ((key_rate_limit is null) = (key_rate_interval_ms is null)),
    constraint zart_queue_limits_pkey primary key (queue)
);

-- One row per run started in a queue with a rate limit (a claim): what counts against its
-- rates. Kept for the longest rate interval of the queue, then deleted by a later claim.
create table public.zart_limit_runs (
    queue        text        not null,
    started_at   timestamptz not null,
    bucket       smallint    not null,
    execution_id text        not null,
    fence        bigint      not null,
    limit_key    text,
    constraint zart_limit_runs_pkey primary key (queue, started_at, bucket, execution_id, fence)
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
