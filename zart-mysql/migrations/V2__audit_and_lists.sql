-- zart-mysql schema, version 2: the admin API's audit log, the workers seen, and the index
-- the executions list needs over a long history. The same change as zart-pg's V12.
-- Statements are separated by lines holding only `;`. The table is created "if not exists" and
-- the index last, so a run cut short between them completes when run again.

-- One row per mutating call of the admin API, written before it acts (outcome 'started') and
-- finished after (outcome 'ok' or an error code); see zart::audit. Never updated once
-- finished, never pruned by Zart. db_role is the server login that wrote it (current_user()).
create table if not exists zart_audit_log (
    id          bigint not null auto_increment primary key,
    at          char(24) character set ascii collate ascii_bin not null,
    db_role     varchar(300) character set utf8mb4 collate utf8mb4_bin not null,
    actor       varchar(1024) character set utf8mb4 collate utf8mb4_bin not null,
    action      varchar(1024) character set utf8mb4 collate utf8mb4_bin not null,
    target      varchar(1024) character set utf8mb4 collate utf8mb4_bin not null,
    params      longtext character set utf8mb4 collate utf8mb4_bin not null,
    outcome     varchar(1024) character set utf8mb4 collate utf8mb4_bin not null default 'started',
    detail      text character set utf8mb4 collate utf8mb4_bin,
    finished_at char(24) character set ascii collate ascii_bin
) engine = InnoDB
;
-- One row per worker process seen in the last day (zart::presence), written by the worker at
-- start, every presence interval and at a graceful stop. task_names is a JSON array.
create table if not exists zart_workers (
    worker_id   varbinary(255) not null primary key,
    host        varchar(255) character set utf8mb4 collate utf8mb4_bin not null,
    pid         bigint not null,
    queue       varbinary(255) not null,
    task_names  longtext character set utf8mb4 collate utf8mb4_bin not null,
    concurrency bigint not null,
    running     bigint not null,
    interval_ms bigint not null,
    db_role     varchar(300) character set utf8mb4 collate utf8mb4_bin not null,
    started_at  char(24) character set ascii collate ascii_bin not null,
    seen_at     char(24) character set ascii collate ascii_bin not null,
    stopped_at  char(24) character set ascii collate ascii_bin
) engine = InnoDB
;
-- The executions list pages newest first by (created_at, id): one index range, not a sort.
create index zart_executions_created_at_idx on zart_executions (created_at, id)
;
