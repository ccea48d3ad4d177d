-- Cost per command (issue 17).
--
-- cart_projection is updated by every append. Its updates are HOT (heap-only: no new
-- index entries, no index page written) when no indexed column changes and the new row
-- fits on the old row's page. The upsert now leaves `updated_at` (indexed for the cart
-- expiry, 0012) alone unless it is over an hour old, and a fillfactor of 80 keeps a
-- fifth of each page free for the next versions of its rows. Only pages written from
-- now on keep that room; an existing table gets it for every page at its next rewrite
-- (VACUUM FULL, or pg_repack without the lock), which is not needed for correctness.
alter table cart_projection set (fillfactor = 80);

-- The command ledger's replies are compressed with lz4 instead of pglz. PostgreSQL
-- compresses a value only when its row passes about 2 kB (TOAST_TUPLE_THRESHOLD; the
-- table's toast_tuple_target cannot lower that), so most replies (protobuf carts of
-- about 1 kB) stay as they are either way; those that are compressed cost about 40 %
-- less time to insert with lz4, and read back faster, for 5 % more bytes (measured on
-- the rows of a load run, issue 17). Rows written before keep pglz; both read the same.
-- A server built without lz4 keeps pglz: the service works the same, only slower there.
do $$
begin
    alter table processed_commands alter column reply set compression lz4;
exception when feature_not_supported then
    raise notice 'this PostgreSQL has no lz4: processed_commands.reply keeps pglz';
end
$$;
