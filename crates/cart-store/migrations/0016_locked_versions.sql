-- An append batch in one round trip (issue 17).
--
-- A batch takes the advisory locks of its streams and command ids, then reads the
-- streams' versions; the version read must come after the locks. Within one SQL
-- statement it cannot: in READ COMMITTED a statement reads with the snapshot taken when
-- it started, before any lock it takes, so it could miss an append that committed while
-- it waited. Each statement of a PL/pgSQL function takes a snapshot of its own, so this
-- function takes the locks in one statement and reads the versions in the next, after
-- them. The append statement (`APPEND_ONE_TRIP` in cart-store/src/store/one_trip.rs)
-- calls it first and writes from its answer, and runs outside an explicit transaction:
-- locks, versions, ledger rows, events, owners, projection and the commit in one round
-- trip instead of six.
--
-- `lock_classes`/`lock_keys`: the keys, in the lock order (cart-store/src/locks.rs).
-- `streams`: the batch's stream ids. Answers the latest version of each that has events.
-- The version read is the text of `CURRENT_VERSIONS` (a probe per key, whatever plan it
-- gets; tests/plans.rs checks that text).
create function cart_locked_versions(lock_classes int4[], lock_keys int4[], streams uuid[])
returns table (locked_stream uuid, locked_version int8)
language plpgsql volatile
as $$
begin
    -- A function scan of unnest yields the rows, and so takes the locks, in array order.
    perform pg_advisory_xact_lock(l.c, l.k) from unnest(lock_classes, lock_keys) as l(c, k);
    return query select s.id, v.version from unnest(streams) as s(id)
        cross join lateral (select e.version from cart_events e where e.stream_id = s.id
            order by e.version desc limit 1) as v;
end
$$;
