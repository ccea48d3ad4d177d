-- Readers of the global order that keep a checkpoint: the JetStream relay and the
-- asynchronous projections. An asynchronous projection writes its checkpoint in the same
-- transaction as its rows, so a crash can neither lose nor repeat an event.
create table feed_checkpoints (
    name            text primary key,
    tx_id           xid8 not null default '0',
    global_position bigint not null default 0,
    updated_at      timestamptz not null default now()
);

-- The last version of each cart stream an asynchronous projection applied, so that an
-- event delivered again (or an older one after a newer) is ignored.
create table projection_versions (
    projection text not null,
    stream_id  uuid not null,
    version    bigint not null,
    constraint projection_versions_pkey primary key (projection, stream_id)
);

-- An asynchronous projection for analysts: per project and SKU, how many carts hold it
-- now, the units they hold, and how often it was added to or taken out of a cart.
create table sku_activity (
    project_id    bigint not null,
    sku           text not null,
    carts_holding bigint not null default 0,
    units_held    bigint not null default 0,
    times_added   bigint not null default 0,
    times_removed bigint not null default 0,
    constraint sku_activity_pkey primary key (project_id, sku)
);

-- The lines sku_activity needs to know what a removal or a clear takes away.
create table sku_activity_lines (
    stream_id uuid not null,
    sku       text not null,
    quantity  bigint not null,
    constraint sku_activity_lines_pkey primary key (stream_id, sku)
);
