-- Zart schema for SQLite, version 4: versioning markers. TaskContext::patched records whether
-- an execution takes a patch's new code path as a step row of kind 'patch' (named
-- patch:<id>). SQLite cannot alter a constraint, so zart_steps is rebuilt as V2 did: created
-- under a new name, filled, the old one dropped, the new one renamed (it has no index but its
-- primary key). The migration runs inside migrate's one transaction.
-- Never edit this file once merged: add V5__... instead.

create table zart_steps_v4 (
    execution_id text    not null,
    name         text    not null,
    seq          integer not null,
    kind         text    not null default 'step'
        constraint zart_steps_kind_check check (
            kind = 'step' or kind = 'sleep' or kind = 'event' or kind = 'child'
            or kind = 'patch'),
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
insert into zart_steps_v4 select * from zart_steps;
drop table zart_steps;
alter table zart_steps_v4 rename to zart_steps;
