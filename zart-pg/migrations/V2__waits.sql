-- Zart schema, version 2: durable waits (sleeps, events, child workflows) and cancellation.
-- Never edit this file once merged: add V3__... instead.

-- A step row may now stand for a wait: a sleep, an event wait or a child workflow. While the
-- wait is open the row is 'waiting' and wake_at holds the wake-up time or the timeout.
alter table public.zart_steps
    add column kind text not null default 'step'
        constraint zart_steps_kind_check check (kind in ('step', 'sleep', 'event', 'child')),
    add column wake_at timestamptz;
alter table public.zart_steps drop constraint zart_steps_status_check;
alter table public.zart_steps add constraint zart_steps_status_check
    check (status in ('completed', 'failed', 'retrying', 'waiting'));

-- recoveries: claims that took the task over from an expired lease (a dead or stalled worker)
-- since the execution last suspended; workers give up past a limit (poison workflows).
-- What a suspended execution waits for: wait_kind 'sleep', 'retry', 'event' or 'child', and
-- wait_name the step, event name or child id. Cleared when the task is claimed again.
alter table public.zart_tasks
    add column recoveries integer not null default 0,
    add column wait_kind text
        constraint zart_tasks_wait_kind_check check (wait_kind in ('sleep', 'retry', 'event', 'child')),
    add column wait_name text;

-- An optional deadline for the whole execution: past it, the execution fails.
alter table public.zart_executions add column deadline_at timestamptz;

-- Children are found by parent (cancellation cascades, the SQL surface lists them).
create index zart_executions_parent_id_idx on public.zart_executions (parent_id)
    where parent_id is not null;

-- Which wait consumed an event; unconsumed events are found by name in arrival order.
alter table public.zart_events add column consumed_by text;
create index zart_events_pending_idx on public.zart_events (bucket, execution_id, name, event_id)
    where consumed_at is null;

-- The test clock: when a session has zart.test_clock = 'on' (tests set it per database),
-- zart_current_time() adds this offset to now(), so tests move time instead of waiting.
-- Production sessions never read it. At most one row.
create table public.zart_clock (
    singleton boolean primary key default true constraint zart_clock_singleton check (singleton),
    clock_offset interval not null default interval '0'
);
