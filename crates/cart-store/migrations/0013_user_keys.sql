-- Right to erasure (docs/operations.md): one random 256-bit key per (project, user),
-- made on the user's first order event that carries personal data. The personal fields
-- of order events are sealed under it; `cartctl users erase` deletes the row, and with it
-- every way to open them. Never copied elsewhere (no cache), so a deleted key is gone
-- for every instance at once.
create table if not exists user_keys (
    project_id bigint not null,
    user_id    text   not null,
    key        bytea  not null check (octet_length(key) = 32),
    created_at timestamptz not null default now(),
    primary key (project_id, user_id)
);
