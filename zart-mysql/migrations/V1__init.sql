-- zart-mysql schema, version 1: the tables of zart-pg under the same names and columns.
-- Identifiers are varbinary (byte comparison: case and trailing spaces count), JSON is utf8mb4
-- text as serialised, times are fixed-width ISO-8601 UTC text (text order is time order).
-- Statements are separated by lines holding only `;`.

create table zart_executions (
    id          varbinary(255) not null primary key,
    task_name   varbinary(255) not null,
    queue       varbinary(255) not null,
    input       longtext character set utf8mb4 collate utf8mb4_bin not null,
    status      varchar(16) character set ascii collate ascii_bin not null default 'scheduled',
    output      longtext character set utf8mb4 collate utf8mb4_bin,
    error       longtext character set utf8mb4 collate utf8mb4_bin,
    attempts    bigint not null default 0,
    parent_id   varbinary(255),
    deadline_at char(24) character set ascii collate ascii_bin,
    created_at  char(24) character set ascii collate ascii_bin not null,
    started_at  char(24) character set ascii collate ascii_bin,
    updated_at  char(24) character set ascii collate ascii_bin not null,
    finished_at char(24) character set ascii collate ascii_bin,
    start_at    char(24) character set ascii collate ascii_bin,
    priority    smallint not null default 0,
    limit_key   varbinary(255),
    constraint zart_executions_status_check check (status in
        ('scheduled', 'running', 'sleeping', 'waiting', 'completed', 'failed', 'cancelled')),
    key zart_executions_parent_id_idx (parent_id),
    key zart_executions_finished_at_idx (finished_at),
    key zart_executions_updated_at_idx (updated_at)
) engine = InnoDB
;
create table zart_tasks (
    execution_id varbinary(255) not null primary key,
    task_name    varbinary(255) not null,
    queue        varbinary(255) not null,
    run_at       char(24) character set ascii collate ascii_bin not null,
    locked_by    varbinary(255),
    fence        bigint not null default 0,
    attempts     bigint not null default 0,
    recoveries   bigint not null default 0,
    wait_kind    varchar(16) character set ascii collate ascii_bin,
    wait_name    varbinary(1024),
    priority     smallint not null default 0,
    limit_key    varbinary(255),
    constraint zart_tasks_wait_kind_check check (wait_kind in ('sleep', 'retry', 'event', 'child')),
    key zart_tasks_claim_idx (queue, task_name, priority, run_at)
) engine = InnoDB
;
create table zart_steps (
    execution_id varbinary(255) not null,
    name         varbinary(1024) not null,
    seq          bigint not null,
    kind         varchar(16) character set ascii collate ascii_bin not null default 'step',
    status       varchar(16) character set ascii collate ascii_bin not null,
    output       longtext character set utf8mb4 collate utf8mb4_bin,
    error        longtext character set utf8mb4 collate utf8mb4_bin,
    attempts     bigint not null,
    wake_at      char(24) character set ascii collate ascii_bin,
    created_at   char(24) character set ascii collate ascii_bin not null,
    updated_at   char(24) character set ascii collate ascii_bin not null,
    constraint zart_steps_pkey primary key (execution_id, name),
    constraint zart_steps_kind_check check (kind in
        ('step', 'sleep', 'event', 'child', 'patch', 'state')),
    constraint zart_steps_status_check check (status in
        ('completed', 'failed', 'retrying', 'waiting'))
) engine = InnoDB
;
create table zart_events (
    event_id     bigint not null auto_increment primary key,
    execution_id varbinary(255) not null,
    name         varbinary(255) not null,
    payload      longtext character set utf8mb4 collate utf8mb4_bin not null,
    created_at   char(24) character set ascii collate ascii_bin not null,
    consumed_at  char(24) character set ascii collate ascii_bin,
    consumed_by  varbinary(1024),
    key zart_events_pending_idx (execution_id, name, event_id)
) engine = InnoDB
;
create table zart_clock (
    singleton       int not null primary key default 1,
    clock_offset_ms bigint not null default 0,
    constraint zart_clock_singleton check (singleton = 1)
) engine = InnoDB
;
create table zart_schedules (
    id                varbinary(255) not null primary key,
    task_name         varbinary(255) not null,
    queue             varbinary(255) not null,
    input             longtext character set utf8mb4 collate utf8mb4_bin not null,
    cron              varchar(255) character set utf8mb4 collate utf8mb4_bin not null,
    time_zone         varchar(255) character set utf8mb4 collate utf8mb4_bin not null,
    overlap           varchar(32) character set ascii collate ascii_bin not null,
    catch_up          varchar(32) character set ascii collate ascii_bin not null,
    catch_up_limit    bigint not null,
    paused            tinyint not null default 0,
    next_fire_at      char(24) character set ascii collate ascii_bin,
    last_fire_at      char(24) character set ascii collate ascii_bin,
    last_execution_id varbinary(255),
    error             longtext character set utf8mb4 collate utf8mb4_bin,
    locked_by         varbinary(255),
    locked_until      char(24) character set ascii collate ascii_bin,
    created_at        char(24) character set ascii collate ascii_bin not null,
    updated_at        char(24) character set ascii collate ascii_bin not null,
    constraint zart_schedules_overlap_check check (overlap in ('skip', 'allow', 'cancel_previous')),
    constraint zart_schedules_catch_up_check check (catch_up in ('skip', 'latest', 'all')),
    constraint zart_schedules_catch_up_limit_check check (catch_up_limit between 1 and 1000),
    key zart_schedules_due_idx (queue, task_name, next_fire_at)
) engine = InnoDB
;
create table zart_queue_limits (
    queue                varbinary(255) not null primary key,
    max_running          bigint,
    rate_limit           bigint,
    rate_interval_ms     bigint,
    key_max_running      bigint,
    key_rate_limit       bigint,
    key_rate_interval_ms bigint,
    updated_at           char(24) character set ascii collate ascii_bin not null,
    constraint zart_queue_limits_max_running_check check (max_running > 0),
    constraint zart_queue_limits_rate_limit_check check (rate_limit > 0),
    constraint zart_queue_limits_rate_interval_check
        check (rate_interval_ms between 1 and 3155760000000),
    constraint zart_queue_limits_key_max_running_check check (key_max_running > 0),
    constraint zart_queue_limits_key_rate_limit_check check (key_rate_limit > 0),
    constraint zart_queue_limits_key_rate_interval_check
        check (key_rate_interval_ms between 1 and 3155760000000),
    constraint zart_queue_limits_rate_check
        check ((rate_limit is null) = (rate_interval_ms is null)),
    constraint zart_queue_limits_key_rate_check
        check ((key_rate_limit is null) = (key_rate_interval_ms is null))
) engine = InnoDB
;
create table zart_limit_runs (
    queue        varbinary(255) not null,
    execution_id varbinary(255) not null,
    fence        bigint not null,
    limit_key    varbinary(255),
    started_at   char(24) character set ascii collate ascii_bin not null,
    constraint zart_limit_runs_pkey primary key (queue, execution_id, fence)
) engine = InnoDB
;
create table zart_start_keys (
    task_name    varbinary(255) not null,
    start_key    varbinary(255) not null,
    tenant       varbinary(255) not null default '',
    execution_id varbinary(255) not null,
    debounce     tinyint not null,
    expires_at   char(24) character set ascii collate ascii_bin not null,
    constraint zart_start_keys_pkey primary key (task_name, start_key, tenant),
    key zart_start_keys_expires_at_idx (expires_at)
) engine = InnoDB
