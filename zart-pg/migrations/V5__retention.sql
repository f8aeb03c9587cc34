-- Zart schema, version 5: retention (zart_prune) finds finished executions by finish time.
-- Never edit this file once merged: add V6__... instead.
--
-- On finished_at alone, and only for finished rows: an index that names status (in its key,
-- INCLUDE list or predicate) would make every claim and suspension, which change status, a
-- non-HOT update. finished_at is written once, by the outcome (or a cancellation), so only
-- that update pays for one more index entry; claims and waits are unaffected. A prune walks
-- it oldest first and checks the status of each row it meets.
create index zart_executions_finished_at_idx on public.zart_executions (finished_at)
    where finished_at is not null;
