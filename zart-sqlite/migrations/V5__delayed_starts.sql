-- Zart schema for SQLite, version 5: delayed starts (StartOptions::with_delay, with_start_at).
-- start_at records when an execution was set to start (null: at once); its deadline counts
-- from then. The same change as zart-pg's V7.
-- Never edit this file once merged: add V6__... instead.
alter table zart_executions add column start_at text;
