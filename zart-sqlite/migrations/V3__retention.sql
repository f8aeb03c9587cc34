-- Zart schema for SQLite, version 3: retention (Scheduler::prune) finds finished executions by
-- finish time, and the events of an execution by its id (consumed ones included; the index of
-- version 1 holds only unconsumed events). Never edit this file once merged: add V4__... instead.
create index zart_executions_finished_at_idx on zart_executions (finished_at)
    where finished_at is not null;
create index zart_events_execution_id_idx on zart_events (execution_id);
