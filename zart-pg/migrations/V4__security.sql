-- Zart schema, version 4: settings only the owner can change, tenants, row-level security.
-- Never edit this file once merged: add V5__... instead.

-- Settings of the installation, one row. Only the owner of the Zart objects writes it (no
-- role is granted anything on it); Zart's functions read it as their owner. A session cannot
-- raise these with SET, as it could a custom setting.
--   max_payload_bytes  the largest JSON (bytes of text) Zart stores: inputs, outputs, errors,
--                      event payloads
--   tenancy            whether executions belong to tenants (see docs/security.md)
--   lock_salt          seeds the hash of the per-execution wait locks (advisory locks), so a
--                      login that can run pg_advisory_lock cannot guess a lock Zart waits on
create table public.zart_settings (
    singleton         boolean primary key default true constraint zart_settings_singleton check (singleton),
    max_payload_bytes bigint  not null default 1048576
        constraint zart_settings_max_payload_bytes_check check (max_payload_bytes > 0),
    tenancy           boolean not null default false,
    lock_salt         bigint  not null
        default (floor(random() * 2147483648)::bigint << 31) | floor(random() * 2147483648)::bigint
);
insert into public.zart_settings default values;

-- Which login or group roles act for which tenants. '*' stands for every tenant. Read by
-- Zart's functions (as their owner) to find a session's tenants; written by the owner only.
create table public.zart_tenant_access (
    role_name name not null,
    tenant    text not null
        constraint zart_tenant_access_tenant_check check (octet_length(tenant) between 1 and 255),
    constraint zart_tenant_access_pkey primary key (role_name, tenant)
);

-- The tenant an execution belongs to, fixed at start and inherited by children; null when
-- tenancy is off. The task row carries it too, so a claim can keep to a worker's tenants.
alter table public.zart_executions add column tenant text;
alter table public.zart_tasks add column tenant text;

-- Row-level security: sessions that read the tables directly (the reader and client roles)
-- see only their tenants' rows. Zart's functions run as the owner, who is not subject to it;
-- they check tenants themselves. The policies are defined in sql/zart.sql (they call
-- zart_visible_tenants()).
alter table public.zart_executions enable row level security;
alter table public.zart_tasks enable row level security;
alter table public.zart_steps enable row level security;
alter table public.zart_events enable row level security;

-- One name per concept: a claim of an execution is an attempt, as zart_executions.attempts
-- already says (each claim sets it to this count).
alter table public.zart_tasks rename column claims to attempts;
