-- Zart schema, version 7: delayed starts. StartOptions::with_delay / with_start_at (and
-- zart_start's p_start_at) make an execution due later; start_at records when it was set to
-- start (null: at once), and its deadline counts from then.
-- Never edit this file once merged: add V8__... instead.
alter table public.zart_executions add column start_at timestamptz;
