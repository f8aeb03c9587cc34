-- Zart schema for SQLite, version 8: published state. TaskContext::set_state records a value
-- a workflow publishes as a step row of kind 'state' (named state:<name>, or
-- state#<n>:<name> for the n-th time in the execution). The same change as zart-pg's V10.
-- SQLite cannot alter a constraint, so zart_steps is rebuilt as V4 did.
-- Never edit this file once merged: add V9__... instead.

create table zart_steps_v8 (
    execution_id text    not null,
    name         text    not null,
    seq          integer not null,
    kind         text    not null default 'step'
        constraint zart_steps_kind_check check (
            kind = 'step' or kind = 'sleep' or kind = 'event' or kind = 'child'
            or kind = 'patch' or kind = 'state'),
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
insert into zart_steps_v8 select * from zart_steps;
drop table zart_steps;
alter table zart_steps_v8 rename to zart_steps;
