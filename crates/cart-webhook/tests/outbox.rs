//! The outbox's store functions, called directly.

mod common;

use std::time::Duration;

use cart_webhook::store::{self, Attempt, Next};
use common::World;

#[tokio::test]
async fn a_lease_is_timed_from_the_clock_not_the_claims_start() {
    let w = World::new().await;
    let event_id = w.insert_paid(1).await;
    let mut tx = w.pool.begin().await.unwrap();
    let started: f64 = sqlx::query_scalar("select extract(epoch from now())::float8")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let claimed = store::claim(&mut tx).await.unwrap().unwrap();
    assert_eq!(claimed.event_id, event_id);
    sqlx::query("select pg_sleep(0.5)")
        .execute(&mut *tx)
        .await
        .unwrap();
    store::lease(
        &mut tx,
        event_id,
        uuid::Uuid::new_v4(),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (at, until): (f64, f64) = sqlx::query_as(
        "select extract(epoch from leased_at)::float8, extract(epoch from leased_until)::float8
         from webhook_deliveries where event_id = $1",
    )
    .bind(event_id)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert!(
        at - started >= 0.45,
        "leased at the lease's time: {}",
        at - started
    );
    assert!((until - at - 3.0).abs() < 0.01);
}

#[tokio::test]
async fn a_late_success_is_recorded_after_a_postponing_claim() {
    let w = World::new().await;
    let event_id = w.insert_paid(2).await;
    let stalled = uuid::Uuid::new_v4();
    let mut tx = w.pool.begin().await.unwrap();
    store::claim(&mut tx).await.unwrap().unwrap();
    let number = store::lease(&mut tx, event_id, stalled, Duration::from_secs(3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The stalled worker's lease expires; another loop claims the delivery, finds no
    // enabled webhook and postpones it, sending nothing.
    sqlx::query("update webhook_deliveries set leased_until = now() - interval '1 second'")
        .execute(&w.pool)
        .await
        .unwrap();
    let mut tx = w.pool.begin().await.unwrap();
    let again = store::claim(&mut tx).await.unwrap().unwrap();
    assert_eq!(again.event_id, event_id);
    store::postpone(&mut tx, event_id, Duration::from_secs(60))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The stalled worker comes back with a success: nobody sent it since, so it ends
    // the delivery.
    let attempt = Attempt {
        attempt: number,
        started_at: std::time::SystemTime::now(),
        status_code: Some(204),
        latency: Duration::from_millis(5),
        outcome: "success",
        error: None,
    };
    let kept = store::finish_attempt(&w.pool, event_id, stalled, &attempt, Next::Delivered)
        .await
        .unwrap();
    assert!(kept, "the late success is recorded");
    w.wait_status(2, "order_paid", "delivered").await;
}

/// The order store's refusals reach the worker as refusals (given up, not retried),
/// told apart from failures by their type, with the order store's reason.
#[tokio::test]
async fn the_order_store_marker_tells_refusals_by_their_type() {
    let w = World::new_without_orders_stream().await;
    let mark = cart_webhook::order_store_marker(w.pool.clone());
    match mark(1, 404).await {
        Err(cart_webhook::MarkError::Refused(reason)) => {
            assert!(reason.contains("order 404 refused"), "{reason}");
        }
        other => panic!("an unknown order is a refusal, got {other:?}"),
    }
    match mark(0, 1).await {
        Err(cart_webhook::MarkError::Refused(reason)) => {
            assert!(reason.contains("project 0"), "{reason}");
        }
        other => panic!("project 0 is a refusal, got {other:?}"),
    }
}
