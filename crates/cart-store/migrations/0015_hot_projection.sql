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
