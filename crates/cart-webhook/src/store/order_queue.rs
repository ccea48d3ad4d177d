//! An order's queue of notifications, kept in `webhook_deliveries.ready` (migration 0008)
//! so that a claim needs no correlated subquery and no sweep: whether a delivery may go
//! out is decided when it can change, i.e. when a delivery is recorded (`insert`) and
//! when one finishes (`after_finish`), never per claim.
//!
//! An order has at most two deliveries (the unique `(project, order, type)`): its
//! order_paid and its order_canceled, each the other's "sibling". Both writers take the
//! order's advisory lock first, then lock the sibling's row, so an intake that records
//! one while another records or finishes the other always sees it: without the lock two
//! concurrent writers could each miss the other's uncommitted row and leave a cancel
//! waiting for ever. The sibling's row lock also waits for a claim of that sibling (a
//! claim holds its row until the lease commits), so a cancel's first attempt and the
//! recording of its order's order_paid never overlap unseen.

use std::time::Duration;

use sqlx::{PgPool, Postgres, Row, Transaction};

use super::{pid, NewDelivery, StoreError};
use crate::payload::NotificationType;

/// The NOTIFY channel on which intake announces a recorded delivery: each worker
/// process LISTENs on it and wakes its loops (`crate::wake`).
pub const CHANNEL: &str = "cart_webhook_deliveries";

/// The advisory lock of one order's deliveries: class "WHOK" in the two-integer key
/// space (cart-store's classes are other words), the order's hash as the key.
pub const LOCK_ORDER_SQL: &str = "select pg_advisory_xact_lock(1464356683,
    hashtext($1::bigint::text || ':' || $2::bigint::text))";

/// The lock of the order of a recorded delivery, by its event id (the ids never change).
pub const LOCK_ORDER_OF_SQL: &str = "select pg_advisory_xact_lock(1464356683,
    hashtext(project_id::text || ':' || order_id::text))
    from webhook_deliveries where event_id = $1";

/// The other notification of an order, locked (waits for a claim of it to commit).
pub const SIBLING_SQL: &str = "select event_id, notification_type, version, status, attempts
    from webhook_deliveries
    where project_id = $1 and order_id = $2 and notification_type <> $3
    for update";

/// What the sibling row was when it was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sibling {
    pub event_id: uuid::Uuid,
    pub kind: NotificationType,
    pub version: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
}

impl Sibling {
    fn pending(&self) -> bool {
        self.status == "pending"
    }
}

/// Where a newly recorded delivery goes, and what changes for its sibling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The head of its order's queue, with nothing else to wait for.
    pub ready: bool,
    /// An order_paid whose order's order_canceled was already attempted or finished:
    /// failed at once (dead letter `superseded`), never sent after the cancel.
    pub superseded: bool,
    /// An order_canceled that may have no order_paid to wait for (no invoice): it waits
    /// `--cancel-grace` from now (in `next_attempt_at`) unless an order_paid comes.
    pub grace: bool,
    /// The sibling stops being ready: the new delivery goes before it.
    pub sibling_waits: bool,
}

/// Whether an order_canceled is a paid order's (its envelope's order has an invoice and
/// is not free): such a cancel waits, without limit, for its order_paid to finish.
pub fn is_paid_orders_cancel(envelope: &serde_json::Value) -> bool {
    let order = &envelope["order"];
    let invoice = order["invoice_id"].as_str().is_some();
    let free = order["is_free"].as_bool().unwrap_or(false);
    invoice && !free
}

/// The rules of an order's queue, as the claim applied them before migration 0008:
/// notifications go out in version order, one at a time; a paid order's cancel waits
/// for its order_paid to finish; another cancel waits up to the grace for an order_paid
/// to be recorded; an order_paid recorded after its cancel was attempted is superseded.
pub fn place(
    kind: NotificationType,
    version: i64,
    paid_orders_cancel: bool,
    sibling: Option<&Sibling>,
) -> Placement {
    let mut p = Placement {
        ready: false,
        superseded: false,
        grace: false,
        sibling_waits: false,
    };
    let Some(s) = sibling else {
        // Alone: an order_paid goes; a cancel waits for an order_paid (a paid order's,
        // without limit; another's, for the grace).
        p.ready = kind == NotificationType::OrderPaid || !paid_orders_cancel;
        p.grace = kind == NotificationType::OrderCanceled && !paid_orders_cancel;
        return p;
    };
    match kind {
        NotificationType::OrderPaid => {
            if !s.pending() || s.attempts > 0 {
                p.superseded = true;
            } else if version < s.version {
                p.ready = true;
                p.sibling_waits = true;
            }
        }
        NotificationType::OrderCanceled => {
            // The order_paid exists: no grace. A finished one lets the cancel go; a
            // pending one goes first (it has the lower version in every real history).
            p.ready = if s.pending() {
                s.version > version && !paid_orders_cancel
            } else {
                true
            };
        }
    }
    p
}

/// What a finished delivery changes for its pending sibling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFinish {
    /// Nothing (no pending sibling).
    Nothing,
    /// The sibling is the head now, and nothing else holds it back; `now` when it never
    /// had an attempt (a cancel's grace ends once an order_paid exists).
    Ready { now: bool },
    /// A never-attempted order_paid behind a finished cancel: failed as superseded.
    Superseded,
}

pub fn after_finish(finished: NotificationType, sibling: Option<&Sibling>) -> AfterFinish {
    match sibling {
        Some(s) if s.pending() => {
            if finished == NotificationType::OrderCanceled && s.attempts == 0 {
                AfterFinish::Superseded
            } else {
                AfterFinish::Ready {
                    now: s.attempts == 0,
                }
            }
        }
        _ => AfterFinish::Nothing,
    }
}

async fn sibling(
    tx: &mut Transaction<'_, Postgres>,
    project_id: i64,
    order_id: i64,
    kind: &str,
) -> Result<Option<Sibling>, StoreError> {
    let row = sqlx::query(SIBLING_SQL)
        .bind(project_id)
        .bind(order_id)
        .bind(kind)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(r) = row else { return Ok(None) };
    let event_id: uuid::Uuid = r.get("event_id");
    let kind_text: String = r.get("notification_type");
    let kind = NotificationType::parse(&kind_text).ok_or_else(|| StoreError::Corrupt {
        event_id: event_id.to_string(),
        reason: format!("notification type {kind_text:?}"),
    })?;
    Ok(Some(Sibling {
        event_id,
        kind,
        version: r.get("version"),
        status: r.get("status"),
        attempts: r.get("attempts"),
    }))
}

/// Fails a never-attempted order_paid as superseded (its dead letter is the follow-up's).
const SUPERSEDE_SQL: &str = "update webhook_deliveries set status = 'failed', ready = false,
      finished_at = clock_timestamp(), next_attempt_at = now(), leased_until = null
    where event_id = $1 and status = 'pending' and attempts = 0";

/// Records a delivery; false when it was there already (a redelivered message, or the
/// same notification of the order under another event id). In the same transaction: its
/// place in its order's queue (`place`), its sibling's, and a NOTIFY on `CHANNEL`, sent
/// at commit, which wakes the delivery loops of every worker process.
pub async fn insert(
    pool: &PgPool,
    d: &NewDelivery,
    cancel_grace: Duration,
) -> Result<bool, StoreError> {
    let (project_id, order_id) = (pid(d.project_id), pid(d.order_id));
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_ORDER_SQL)
        .bind(project_id)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    let sibling = sibling(&mut tx, project_id, order_id, d.kind.as_str()).await?;
    let placed = place(
        d.kind,
        d.version,
        is_paid_orders_cancel(&d.envelope),
        sibling.as_ref(),
    );
    let grace = if placed.grace {
        cancel_grace.as_secs_f64()
    } else {
        0.0
    };
    let inserted = sqlx::query(
        "insert into webhook_deliveries
           (event_id, project_id, order_id, version, notification_type, envelope, ready,
            next_attempt_at)
         values ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
         on conflict do nothing",
    )
    .bind(d.event_id)
    .bind(project_id)
    .bind(order_id)
    .bind(d.version)
    .bind(d.kind.as_str())
    .bind(&d.envelope)
    .bind(placed.ready)
    .bind(grace)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        if placed.superseded {
            sqlx::query(SUPERSEDE_SQL)
                .bind(d.event_id)
                .execute(&mut *tx)
                .await?;
        }
        if let (true, Some(s)) = (placed.sibling_waits, &sibling) {
            sqlx::query("update webhook_deliveries set ready = false where event_id = $1")
                .bind(s.event_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("select pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Takes the lock of a delivery's order, before anything else of the transaction that
/// finishes it (the intake's order is lock, then sibling row: the same here).
pub(super) async fn lock_order_of(
    tx: &mut Transaction<'_, Postgres>,
    event_id: uuid::Uuid,
) -> Result<(), StoreError> {
    sqlx::query(LOCK_ORDER_OF_SQL)
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// After a delivery of `(project, order, kind)` finished in `tx` (under the order's
/// lock): lets its sibling go, or supersedes it (`after_finish`).
pub(super) async fn release_sibling(
    tx: &mut Transaction<'_, Postgres>,
    project_id: i64,
    order_id: i64,
    kind: NotificationType,
) -> Result<(), StoreError> {
    let sibling = sibling(tx, project_id, order_id, kind.as_str()).await?;
    match (after_finish(kind, sibling.as_ref()), sibling) {
        (AfterFinish::Ready { now }, Some(s)) => {
            sqlx::query(
                "update webhook_deliveries set ready = true,
                   next_attempt_at = case when $2 then least(next_attempt_at, now())
                                     else next_attempt_at end
                 where event_id = $1",
            )
            .bind(s.event_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        (AfterFinish::Superseded, Some(s)) => {
            sqlx::query(SUPERSEDE_SQL)
                .bind(s.event_id)
                .execute(&mut **tx)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use NotificationType::{OrderCanceled as Cancel, OrderPaid as Paid};

    fn sib(kind: NotificationType, version: i64, status: &str, attempts: i32) -> Sibling {
        Sibling {
            event_id: uuid::Uuid::nil(),
            kind,
            version,
            status: status.into(),
            attempts,
        }
    }

    #[test]
    fn an_order_paid_alone_goes_and_a_cancel_alone_waits_for_it() {
        let paid = place(Paid, 2, false, None);
        assert!(paid.ready && !paid.grace && !paid.superseded);
        let cancel = place(Cancel, 3, true, None);
        assert!(
            !cancel.ready && !cancel.grace,
            "a paid order's cancel waits"
        );
        let free = place(Cancel, 3, false, None);
        assert!(
            free.ready && free.grace,
            "another cancel waits the grace only"
        );
    }

    #[test]
    fn an_order_paid_goes_before_its_waiting_cancel_and_is_superseded_by_a_sent_one() {
        let before = place(Paid, 2, false, Some(&sib(Cancel, 3, "pending", 0)));
        assert!(before.ready && before.sibling_waits && !before.superseded);
        for s in [
            sib(Cancel, 3, "pending", 1),
            sib(Cancel, 3, "delivered", 1),
            sib(Cancel, 3, "failed", 4),
        ] {
            let p = place(Paid, 2, false, Some(&s));
            assert!(p.superseded && !p.ready && !p.sibling_waits, "{s:?}");
        }
    }

    #[test]
    fn a_cancel_goes_only_once_its_order_paid_finished() {
        for paid_orders in [true, false] {
            let waiting = place(Cancel, 3, paid_orders, Some(&sib(Paid, 2, "pending", 1)));
            assert!(!waiting.ready && !waiting.grace);
            for status in ["delivered", "failed"] {
                let p = place(Cancel, 3, paid_orders, Some(&sib(Paid, 2, status, 1)));
                assert!(p.ready && !p.grace);
            }
        }
    }

    #[test]
    fn a_finish_lets_the_sibling_go_or_supersedes_a_never_attempted_order_paid() {
        assert_eq!(
            after_finish(Paid, Some(&sib(Cancel, 3, "pending", 0))),
            AfterFinish::Ready { now: true }
        );
        assert_eq!(
            after_finish(Cancel, Some(&sib(Paid, 2, "pending", 0))),
            AfterFinish::Superseded
        );
        assert_eq!(
            after_finish(Cancel, Some(&sib(Paid, 2, "pending", 2))),
            AfterFinish::Ready { now: false }
        );
        assert_eq!(
            after_finish(Paid, Some(&sib(Cancel, 3, "delivered", 1))),
            AfterFinish::Nothing
        );
        assert_eq!(after_finish(Paid, None), AfterFinish::Nothing);
    }
}
