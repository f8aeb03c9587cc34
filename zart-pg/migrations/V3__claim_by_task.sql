-- Zart schema, version 3: the claim index leads with the task name.
-- Never edit this file once merged: add V4__... instead.
--
-- A worker claims only the task names it has registered. With (queue, run_at) a claim walked
-- over every due row of the other names in its queue (a mixed queue made claims several times
-- slower); with (queue, task_name, run_at) each registered name is one index range, read
-- from its earliest due row.
create index zart_tasks_queue_task_run_at_idx on public.zart_tasks (queue, task_name, run_at);
drop index public.zart_tasks_queue_run_at_idx;
