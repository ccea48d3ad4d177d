//! The outbox's store functions, called directly.

mod common;

use std::time::Duration;

use cart_webhook::store::{self, Attempt, Next};
use common::World;

/// Project 1's webhook, on or off, straight into the settings table.
async fn webhook(w: &World, enabled: bool) {
    store::put_settings(
        &w.pool,
        &store::Settings {
            project_id: 1,
            url: "http://127.0.0.1:9/hook".to_owned(),
            secret: "s".to_owned(),
            enabled,
            version: 1,
        },
    )
    .await
    .unwrap();
}

const LEASE: Duration = Duration::from_secs(3);
const POSTPONE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_lease_is_timed_from_the_clock_not_the_claims_start() {
    let w = World::new().await;
    webhook(&w, true).await;
    let event_id = w.insert_paid(1).await;
    // A claim inside a transaction that began earlier: the lease is still timed from
    // the claim's own clock, not from the transaction's `now()`.
    let mut tx = w.pool.begin().await.unwrap();
    let started: f64 = sqlx::query_scalar("select extract(epoch from now())::float8")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select pg_sleep(0.5)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let claim = store::claim(&mut *tx, uuid::Uuid::new_v4(), LEASE, POSTPONE)
        .await
        .unwrap()
        .unwrap();
    let store::Claim::Leased {
        delivery, number, ..
    } = claim
    else {
        panic!("an enabled webhook leases: {claim:?}")
    };
    assert_eq!(
        (delivery.event_id, delivery.attempts, number),
        (event_id, 0, 1)
    );
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
async fn a_claim_without_an_enabled_webhook_postpones_and_counts_nothing() {
    let w = World::new().await;
    let event_id = w.insert_paid(3).await;
    let claim = store::claim(&w.pool, uuid::Uuid::new_v4(), LEASE, POSTPONE)
        .await
        .unwrap();
    assert!(
        matches!(&claim, Some(store::Claim::Postponed(d)) if d.event_id == event_id),
        "no settings: postponed, {claim:?}"
    );
    let (attempts, leased, wait): (i32, bool, f64) = sqlx::query_as(
        "select attempts, leased_until is not null,
                extract(epoch from next_attempt_at - clock_timestamp())::float8
         from webhook_deliveries where event_id = $1",
    )
    .bind(event_id)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!((attempts, leased), (0, false));
    assert!(
        (55.0..=60.0).contains(&wait),
        "due again in a minute: {wait}"
    );
    // Not due: nothing to claim, even once the webhook is on.
    webhook(&w, true).await;
    let none = store::claim(&w.pool, uuid::Uuid::new_v4(), LEASE, POSTPONE)
        .await
        .unwrap();
    assert!(none.is_none(), "{none:?}");
}

#[tokio::test]
async fn a_late_success_is_recorded_after_a_postponing_claim() {
    let w = World::new().await;
    webhook(&w, true).await;
    let event_id = w.insert_paid(2).await;
    let stalled = uuid::Uuid::new_v4();
    let Some(store::Claim::Leased { number, .. }) = store::claim(&w.pool, stalled, LEASE, POSTPONE)
        .await
        .unwrap()
    else {
        panic!("leased")
    };
    // The stalled worker's lease expires; the project turns its webhook off; another
    // loop claims the delivery, finds no enabled webhook and postpones it, sending
    // nothing. The lost lease's attempt is recorded as of unknown outcome.
    sqlx::query("update webhook_deliveries set leased_until = now() - interval '1 second'")
        .execute(&w.pool)
        .await
        .unwrap();
    webhook(&w, false).await;
    let again = store::claim(&w.pool, uuid::Uuid::new_v4(), LEASE, POSTPONE)
        .await
        .unwrap();
    assert!(
        matches!(&again, Some(store::Claim::Postponed(d)) if d.event_id == event_id && d.attempts == 1),
        "{again:?}"
    );
    assert_eq!(
        w.attempts(2, "order_paid").await,
        [(1, None, "error".to_owned())],
        "the lost lease's attempt"
    );
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
    assert_eq!(
        w.attempts(2, "order_paid").await,
        [(1, Some(204), "success".to_owned())],
        "the late outcome replaces the unknown one"
    );
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
