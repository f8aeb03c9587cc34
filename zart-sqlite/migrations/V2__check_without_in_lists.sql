-- Zart schema for SQLite, version 2: the same tables, with each CHECK on a column's allowed
-- names written as equalities joined by OR instead of an IN list. SQLite builds a constant IN
-- list into a temporary b-tree every time a statement that writes the column runs (three per
-- step result); the equalities are checked in place, with the same meaning (NULL still
-- passes). SQLite cannot alter a constraint, so each table is rebuilt: created under a new
-- name, filled, the old one dropped, the new one renamed, its indexes created again. The
-- migration runs inside migrate's one transaction, so a failure leaves version 1 as it was.
-- Never edit this file once merged: add V3__... instead.

create table zart_executions_v2 (
    id          text    not null primary key,
    task_name   text    not null,
    queue       text    not null,
    input       text    not null,
    status      text    not null default 'scheduled'
        constraint zart_executions_status_check check (
            status = 'scheduled' or status = 'running' or status = 'sleeping' or status = 'waiting'
            or status = 'completed' or status = 'failed' or status = 'cancelled'),
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
insert into zart_executions_v2 select * from zart_executions;
drop table zart_executions;
alter table zart_executions_v2 rename to zart_executions;
create index zart_executions_parent_id_idx on zart_executions (parent_id)
    where parent_id is not null;

create table zart_tasks_v2 (
    execution_id text    not null primary key,
    task_name    text    not null,
    queue        text    not null,
    run_at       text    not null,
    locked_by    text,
    fence        integer not null default 0,
    attempts     integer not null default 0,
    recoveries   integer not null default 0,
    wait_kind    text
        constraint zart_tasks_wait_kind_check check (
            wait_kind = 'sleep' or wait_kind = 'retry' or wait_kind = 'event'
            or wait_kind = 'child'),
    wait_name    text
) strict;
insert into zart_tasks_v2 select * from zart_tasks;
drop table zart_tasks;
alter table zart_tasks_v2 rename to zart_tasks;
create index zart_tasks_queue_task_name_run_at_idx on zart_tasks (queue, task_name, run_at);

create table zart_steps_v2 (
    execution_id text    not null,
    name         text    not null,
    seq          integer not null,
    kind         text    not null default 'step'
        constraint zart_steps_kind_check check (
            kind = 'step' or kind = 'sleep' or kind = 'event' or kind = 'child'),
    status       text    not null
        constraint zart_steps_status_check check (
            status = 'completed' or status = 'failed' or status = 'retrying'
            or status = 'waiting'),
    output       text,
    error        text,
    attempts     integer not null,
    wake_at      text,
    created_at   text    not null,
    updated_at   text    not null,
    constraint zart_steps_pkey primary key (execution_id, name)
) strict;
insert into zart_steps_v2 select * from zart_steps;
drop table zart_steps;
alter table zart_steps_v2 rename to zart_steps;
