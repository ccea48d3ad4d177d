-- Retention (docs/operations.md, "Data that does not grow for ever"): the background
-- sweeps of cartd find what is due through these indexes, oldest first, in small
-- batches, without reading the rest of the table. `if not exists`: on a large database
-- an operator may build them beforehand with CREATE INDEX CONCURRENTLY under these
-- names, so that the migration does not block writes while it builds them.

-- The command ledger, pruned after the idempotency window.
create index if not exists processed_commands_by_age on processed_commands (created_at);

-- Carts untouched for the expiry setting's days. `updated_at` moves with every append
-- that changes the cart (UPSERT_PROJECTIONS).
create index if not exists cart_projection_by_age on cart_projection (updated_at);

-- Unpaid orders past their payment window. Partial: only `new` orders are ever due,
-- and they are few next to the paid ones.
create index if not exists orders_unpaid_by_age on orders (created_at) where status = 'new';
