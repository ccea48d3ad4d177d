-- Per-user limits of item promotions (a promotion's `limits.per_user`): one row per order
-- and limited promotion the order's prices include, written with the order under the
-- promotion's advisory lock. `used_at` is set when the order is bought (paid, or a free
-- order at creation); only such rows count as uses, and a refund gives none back.
create table order_promotions (
    project_id   bigint not null,
    order_id     bigint not null,
    user_id      text not null,
    promotion_id bigint not null,
    used_at      timestamptz,
    constraint order_promotions_pkey primary key (project_id, order_id, promotion_id)
);

create index order_promotions_by_user on order_promotions (project_id, promotion_id, user_id);
