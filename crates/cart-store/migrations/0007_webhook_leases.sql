-- Webhook deliveries are claimed by a lease instead of a transaction held during the
-- HTTP call (docs/webhooks.md, "Failure semantics"): a transaction holding row locks
-- has an xid, and the event relays only read below the cluster's oldest running xid,
-- so a held claim stalled every relay for up to the request timeout.
--
-- A claim commits `leased_until` (now + timeout + margin), `leased_by` (the worker
-- instance) and `leased_at`, and counts the attempt in `attempts` before the call; the
-- outcome is written afterwards only while `leased_by` and `attempts` still match.
-- A lease that expires without an outcome (the worker died or stalled) is free to
-- claim again.

alter table webhook_deliveries
    add column leased_until timestamptz,
    add column leased_by    uuid,
    add column leased_at    timestamptz;

-- Pending deliveries under a lease, for operators and the claim's expiry check.
create index webhook_deliveries_leased on webhook_deliveries (leased_until)
    where status = 'pending' and leased_until is not null;
