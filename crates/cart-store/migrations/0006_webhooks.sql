-- Webhooks to each project's fulfilment server (cart-webhook, docs/webhooks.md):
-- the settings per project, the outbox of deliveries (one per order_paid or
-- order_canceled event) and every attempt at one.

create table webhook_settings (
    project_id bigint primary key,
    url        text not null check (url ~ '^https?://'),
    secret     text not null check (secret <> ''),
    enabled    boolean not null default true,
    -- Version 2 adds is_free, is_bonus and is_bundle_content to items[].
    version    smallint not null default 1 check (version in (1, 2)),
    updated_at timestamptz not null default now()
);

create table webhook_deliveries (
    -- The order event that caused it: a redelivered JetStream message inserts nothing.
    event_id          uuid primary key,
    -- Intake order, for operators; per-order order is `version` below.
    id                bigint generated always as identity unique,
    project_id        bigint not null,
    order_id          bigint not null,
    -- The event's version in the order's stream: an order's deliveries go out in this
    -- order, one at a time (order_paid before order_canceled).
    version           bigint not null,
    notification_type text not null check (notification_type in ('order_paid', 'order_canceled')),
    -- The relay's envelope (cart_proto::order::OrderEventEnvelope). The body is built
    -- from it at each attempt, so a changed version or secret applies to the retries;
    -- the idempotency key (project:order:type) is the same on every attempt.
    envelope          jsonb not null,
    status            text not null default 'pending'
                      check (status in ('pending', 'delivered', 'failed')),
    attempts          integer not null default 0,
    next_attempt_at   timestamptz not null default now(),
    created_at        timestamptz not null default now(),
    finished_at       timestamptz,
    -- Work after a delivery finished, retried by the worker until done, so a crash
    -- between the delivery's commit and this work loses nothing: for a delivered
    -- order_paid, marking the order done (OrderDone); for a failed delivery, publishing
    -- its dead letter. Null while still to do (or nothing to do).
    followed_up_at    timestamptz,
    follow_up_error   text,
    -- One delivery per notification of an order, whatever the event id.
    constraint webhook_deliveries_notification_key unique (project_id, order_id, notification_type)
);

-- The claim query: due pending deliveries, and the earlier pending ones of an order.
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_order on webhook_deliveries (project_id, order_id, version);
create index webhook_deliveries_follow_up on webhook_deliveries (finished_at)
    where followed_up_at is null and finished_at is not null;

create table webhook_attempts (
    event_id    uuid not null references webhook_deliveries (event_id),
    attempt     integer not null check (attempt > 0),
    started_at  timestamptz not null,
    status_code smallint,
    latency_ms  integer not null,
    outcome     text not null check (outcome in ('success', 'retry', 'permanent', 'timeout', 'error')),
    error       text,
    constraint webhook_attempts_pkey primary key (event_id, attempt)
);
