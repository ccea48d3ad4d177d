-- The cart event log, the command ledger and the inline cart projection.

-- One row per cart stream: who owns it. Written with the stream's first event.
create table cart_streams (
    stream_id  uuid primary key,
    project_id bigint not null,
    user_id    text not null,
    cart_id    text not null,
    created_at timestamptz not null default now(),
    unique (project_id, user_id, cart_id)
);

-- The log. Append-only: rows are never updated or deleted by the service.
create table cart_events (
    -- Tie-breaker inside one transaction and a human-friendly order. CACHE 1 so that no
    -- session holds a block of values that would commit far out of order.
    global_position bigint generated always as identity (cache 1),
    -- The writing transaction. Readers of the global order only read rows whose
    -- transaction is older than every transaction still in flight (see read_all), so a
    -- late commit can never be skipped.
    tx_id          xid8 not null default pg_current_xact_id(),
    stream_id      uuid not null,
    version        bigint not null check (version > 0),
    event_id       uuid not null,
    project_id     bigint not null,
    event_type     text not null,
    schema_version smallint not null,
    payload        jsonb not null,
    metadata       jsonb not null,
    -- Diagnostics only; never used for ordering.
    recorded_at    timestamptz not null default now(),
    -- The optimistic concurrency guard: one event per (stream, version).
    constraint cart_events_pkey primary key (stream_id, version),
    constraint cart_events_event_id_key unique (event_id)
);

create index cart_events_global_order on cart_events (tx_id, global_position);

-- Every command answered OK with a command id, with its reply, so that a retry gets the
-- same reply and appends nothing. Scoped to the user so that one user's id can never
-- fetch another user's reply.
create table processed_commands (
    project_id   bigint not null,
    user_id      text not null,
    command_id   text not null,
    fingerprint  bytea not null,
    stream_id    uuid not null,
    content_type text not null,
    reply        bytea not null,
    created_at   timestamptz not null default now(),
    constraint processed_commands_pkey primary key (project_id, user_id, command_id)
);

-- The cart projection, written in the same transaction as the events it folds.
create table cart_projection (
    stream_id  uuid primary key,
    project_id bigint not null,
    user_id    text not null,
    cart_id    text not null,
    version    bigint not null,
    -- [{"sku": ..., "quantity": ...}] in the order the shopper added them.
    lines      jsonb not null,
    updated_at timestamptz not null default now()
);
