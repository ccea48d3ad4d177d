-- Orders: their own event log (one stream per order), the order projection, and the ledgers purchase limits and promo-code redemption
-- limits are counted from. Everything here is written in the order command's
-- transaction, under the locks that serialize purchases of limited items.

create table order_events (
    -- The same gap-safe global order as cart_events (see 0001): readers only read rows
    -- whose transaction is older than every transaction still in flight.
    global_position bigint generated always as identity (cache 1),
    tx_id          xid8 not null default pg_current_xact_id(),
    stream_id      uuid not null,
    version        bigint not null check (version > 0),
    event_id       uuid not null,
    project_id     bigint not null,
    order_id       bigint not null,
    user_id        text not null,
    event_type     text not null,
    schema_version smallint not null,
    payload        jsonb not null,
    metadata       jsonb not null,
    recorded_at    timestamptz not null default now(),
    constraint order_events_pkey primary key (stream_id, version),
    constraint order_events_event_id_key unique (event_id)
);

create index order_events_global_order on order_events (tx_id, global_position);

-- Order numbers come from one sequence per project, `order_ids_<project_id>`, created by
-- the order store on the project's first checkout: a sequence hands out numbers without
-- a lock held to commit, so checkouts of one project do not queue behind each other.

-- The order projection, written with the events it folds.
create table orders (
    project_id    bigint not null,
    order_id      bigint not null,
    stream_id     uuid not null unique,
    user_id       text not null,
    cart_id       text,
    payment_token text not null unique,
    status        text not null,
    promo_code    text,
    version       bigint not null,
    created_at    timestamptz not null,
    updated_at    timestamptz not null default now(),
    constraint orders_pkey primary key (project_id, order_id)
);

create index orders_by_user on orders (project_id, user_id, order_id);
create index orders_by_status on orders (project_id, status, created_at);

-- Units of each bought (not bonus) line of each order, with the order's status: the
-- ledger purchase limits are counted from. A canceled order's units stay counted
-- (refunds do not give limits back); an unpaid order's units hold stock for a while.
create table order_units (
    project_id bigint not null,
    order_id   bigint not null,
    user_id    text not null,
    sku        text not null,
    quantity   bigint not null,
    status     text not null,
    created_at timestamptz not null,
    paid_at    timestamptz,
    constraint order_units_pkey primary key (project_id, order_id, sku)
);

create index order_units_by_sku on order_units (project_id, sku, status);
create index order_units_by_user on order_units (project_id, user_id, sku);

-- One row per paid order that redeemed a promo code (redemption counts at payment).
create table promo_code_redemptions (
    project_id  bigint not null,
    order_id    bigint not null,
    user_id     text not null,
    code        text not null,
    redeemed_at timestamptz not null default now(),
    constraint promo_code_redemptions_pkey primary key (project_id, order_id)
);

create index promo_code_redemptions_by_code on promo_code_redemptions (project_id, code, user_id);
