-- Zart schema, version 13: a claim no longer writes the execution row. The task row records
-- when the execution was first claimed (started_at, kept across suspensions); the execution
-- row gets it, with the attempt count, when the run suspends or ends. Readers work the live
-- status out from the task row: an execution whose task row is leased is running
-- (view zart_execution_status, zart_get_execution). See "Claims write one row" in
-- docs/architecture.md.
-- Never edit this file once merged: add V14__... instead.
alter table public.zart_tasks add column started_at timestamptz;
