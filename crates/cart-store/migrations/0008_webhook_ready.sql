-- A claim that costs the same at any backlog (issue 16, docs/webhooks.md "The tables").
--
-- Before, each claim decided with correlated subqueries whether a pending delivery was
-- the head of its order's queue and whether its order's other notification allowed it,
-- and swept every pending row for superseded order_paid deliveries: its cost grew with
-- pending rows times all rows. Now that decision is kept in `ready`, written when it can
-- change: when a delivery is recorded (intake) and when one finishes (the outcome), both
-- under the order's advisory lock. An order has at most two deliveries (order_paid and
-- order_canceled), so each write reads one sibling row through the unique key.
--
-- ready: the delivery is pending, no earlier pending delivery of its order exists (by
-- `version`), and, for an order_canceled, its order_paid is finished (a paid order's
-- cancel) or may never come (no invoice: its wait for an order_paid, --cancel-grace, is
-- kept in next_attempt_at). A claim is then an index range scan of due, ready rows.

alter table webhook_deliveries add column ready boolean not null default false;

-- Pending rows recorded before this migration, by the rules the claim applied until now
-- (a no-invoice cancel's grace is taken as passed).
update webhook_deliveries d set ready = true
where d.status = 'pending'
  and not exists (
    select 1 from webhook_deliveries e
    where e.project_id = d.project_id and e.order_id = d.order_id
      and e.status = 'pending' and e.version < d.version)
  and (d.notification_type = 'order_paid'
    or exists (
      select 1 from webhook_deliveries p
      where p.project_id = d.project_id and p.order_id = d.order_id
        and p.notification_type = 'order_paid' and p.status in ('delivered', 'failed'))
    or not (d.envelope -> 'order' ->> 'invoice_id' is not null
            and coalesce((d.envelope -> 'order' ->> 'is_free')::boolean, false) = false));

-- The claim: `where status = 'pending' and ready and next_attempt_at <= now ... order by
-- next_attempt_at, id limit n for update skip locked`. The order by is the index's, so
-- the scan stops after n rows it can lock, whatever the backlog; rows that wait (for an
-- earlier notification, for a paid order's order_paid) are not in the index at all.
drop index webhook_deliveries_due;
create index webhook_deliveries_ready on webhook_deliveries (next_attempt_at, id)
    where status = 'pending' and ready;
