//! Unpaid orders expired by time (`expire_unpaid`), against a real PostgreSQL: both
//! sides of the payment window, and a payment racing the expiry.

use super::*;

const CREATED: i64 = 1_790_000_000;
const WINDOW: u64 = 86_400;

/// The sweep's cut-off when the clock reads `now`.
fn at(now: i64) -> Timestamp {
    crate::retention::cutoff(Timestamp::from_unix(now), Duration::from_secs(WINDOW))
}

#[tokio::test]
async fn an_unpaid_order_expires_when_its_payment_window_closes_and_then_cannot_be_paid() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let unpaid = created(checkout(&store, &catalog, request("ann", Some("c"), snap.clone())).await);
    let paid = created(checkout(&store, &catalog, request("bob", Some("c"), snap)).await);
    store
        .confirm_payment(&catalog, payment(paid.order_id, "5.00", "inv-bob"))
        .await
        .unwrap()
        .unwrap();

    // One second before the window closes: nothing is due.
    let inside = at(CREATED + 86_400 - 1);
    assert_eq!(store.expire_unpaid(inside, 100).await.unwrap(), vec![]);
    // One second after: the unpaid order expires, the paid one is never touched.
    let after = at(CREATED + 86_400 + 1);
    assert_eq!(
        store.expire_unpaid(after, 100).await.unwrap(),
        vec![(project(), unpaid.order_id)]
    );
    let expired = store
        .load(project(), unpaid.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.order.status(), Some(OrderStatus::Expired));
    assert_eq!(
        expired.order.expired_by(),
        None,
        "by time, not by a newer order"
    );
    let still_paid = store.load(project(), paid.order_id).await.unwrap().unwrap();
    assert_eq!(still_paid.order.status(), Some(OrderStatus::Paid));
    assert_eq!(store.expire_unpaid(after, 100).await.unwrap(), vec![]);

    let refused = store
        .confirm_payment(&catalog, payment(unpaid.order_id, "5.00", "inv-ann"))
        .await
        .unwrap();
    assert_eq!(refused, Err(expired_to_paid()));
}

#[tokio::test]
async fn a_payment_racing_the_expiry_of_its_order_exactly_one_wins() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let due = at(CREATED + 86_400 + 1);
    let (mut paid, mut expired) = (0, 0);
    for round in 0..30 {
        let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
        let order = created(checkout(&store, &catalog, request("ann", None, snap)).await);
        let invoice = format!("inv-{round}");
        let (swept, payment) = tokio::join!(
            store.expire_unpaid(due, 1),
            store.confirm_payment(&catalog, payment(order.order_id, "5.00", &invoice)),
        );
        let swept = swept.unwrap();
        let status = store
            .load(project(), order.order_id)
            .await
            .unwrap()
            .unwrap()
            .order
            .status();
        match payment.unwrap() {
            Ok(_) => {
                assert_eq!(status, Some(OrderStatus::Paid), "round {round}");
                assert_eq!(
                    swept,
                    vec![],
                    "round {round}: the sweep lost, so it expired nothing"
                );
                paid += 1;
            }
            Err(refusal) => {
                assert_eq!(refusal, expired_to_paid(), "round {round}");
                assert_eq!(status, Some(OrderStatus::Expired), "round {round}");
                assert_eq!(swept, vec![(project(), order.order_id)], "round {round}");
                expired += 1;
            }
        }
    }
    // Both outcomes happen; which one a round gets depends on the scheduler, not on
    // what the test checks (exactly one winner in every round).
    assert_eq!(paid + expired, 30);
}
