-- The catalog as data: the current items, promotions and promo codes of each project
-- (validated JSONB documents in the admin format of cart-proto's `admin` module), and an
-- append-only log of every change, written in the same transaction as the change.

-- One row per project with a catalog: its version, raised by one per admin change. The
-- row is locked (select ... for update) by every change, so a project's changes are
-- serialized and their versions gapless.
create table catalog_versions (
    project_id bigint primary key,
    version    bigint not null default 0 check (version >= 0),
    updated_at timestamptz not null default now()
);

create table catalog_items (
    project_id bigint not null,
    sku        text not null,
    document   jsonb not null,
    version    bigint not null,
    constraint catalog_items_pkey primary key (project_id, sku)
);

create table catalog_promotions (
    project_id   bigint not null,
    promotion_id text not null,
    document     jsonb not null,
    version      bigint not null,
    constraint catalog_promotions_pkey primary key (project_id, promotion_id)
);

create table catalog_promo_codes (
    project_id bigint not null,
    code       text not null,
    document   jsonb not null,
    version    bigint not null,
    constraint catalog_promo_codes_pkey primary key (project_id, code)
);

-- Every change of an entity. A version may hold several changes (an import); the
-- catalog at version V is, per entity, the document of its last change at or before V,
-- unless that change is a delete.
create table catalog_changes (
    project_id  bigint not null,
    version     bigint not null check (version >= 1),
    kind        text not null check (kind in ('item', 'promotion', 'promo_code')),
    key         text not null,
    operation   text not null check (operation in ('create', 'update', 'delete')),
    document    jsonb,
    recorded_at timestamptz not null default clock_timestamp(),
    constraint catalog_changes_pkey primary key (project_id, version, kind, key),
    constraint catalog_changes_document check ((operation = 'delete') = (document is null))
);

create index catalog_changes_entity on catalog_changes (project_id, kind, key, version);

-- The catalog never forgets: changes are only ever appended.
create function catalog_changes_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'catalog_changes is append-only';
end
$$;

create trigger catalog_changes_append_only
    before update or delete on catalog_changes
    for each statement execute function catalog_changes_append_only();
