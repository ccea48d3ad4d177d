//! Retention through the real service: what gets answer once a cart expired, and what
//! a payment gets once its order expired unpaid. The sweeps are the store's, called
//! with a cut-off as data (the service runs the same calls on its clock); rows are
//! aged by writing their time, never by waiting.

use std::time::Duration;

use cart_domain::Timestamp;
use cart_store::retention::{cutoff, expire_carts};
use cart_tests::*;
use serde_json::json;

use crate::{req, PROJECT};

async fn db_now(pool: &sqlx::PgPool) -> Timestamp {
    let now: f64 = sqlx::query_scalar("select extract(epoch from now())::float8")
        .fetch_one(pool)
        .await
        .unwrap();
    Timestamp::from_unix(now as i64)
}

#[tokio::test]
async fn an_expired_current_cart_reads_empty_and_an_expired_named_cart_is_not_found() {
    let w = World::start().await;
    let c = &w.client;
    let put = json!({"sku": "cup01", "quantity": 2});
    c.json("item.put", None, req("alice", None, put.clone()))
        .await
        .unwrap();
    c.json("item.put", None, req("alice", Some("wish"), put.clone()))
        .await
        .unwrap();
    let pool = w.db.pool().await;
    sqlx::query("update cart_projection set updated_at = updated_at - interval '31 days'")
        .execute(&pool)
        .await
        .unwrap();
    let before = cutoff(db_now(&pool).await, Duration::from_secs(30 * 86_400));
    assert_eq!(expire_carts(&pool, before, 100).await.unwrap().done, 2);

    let current = c
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&current), []);
    let named = c
        .json("get", None, req("alice", Some("wish"), json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        (named.error.status, named.error.code),
        (404, 1401),
        "{named:?}"
    );
    // A command decided on the instance's cached cart meets the expiry's version and
    // is decided again on the log: the named cart is new again, not the old one plus.
    let again = c
        .json(
            "item.put",
            None,
            req(
                "alice",
                Some("wish"),
                json!({"sku": "cup01", "quantity": 1}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(lines(&again), [("cup01".into(), 1)]);
    let current = c
        .json("item.put", None, req("alice", None, put))
        .await
        .unwrap();
    assert_eq!(lines(&current), [("cup01".into(), 2)]);
    w.finish().await;
}

#[tokio::test]
async fn an_order_left_unpaid_past_its_window_expires_and_its_payment_is_refused() {
    let w = World::start().await;
    let c = &w.client;
    c.json(
        "item.put",
        None,
        req("ann", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await
    .unwrap();
    let order = c
        .json("order.checkout", None, req("ann", None, json!({})))
        .await
        .unwrap();
    let id = order["order_id"].as_u64().unwrap();
    let pool = w.db.pool().await;
    let orders = cart_store::orders::OrderStore::new(pool.clone());
    let now = db_now(&pool).await;
    let window = Duration::from_secs(86_400);
    // Within its 24 hours: not due.
    let early = Timestamp::from_unix(now.unix() + 86_400 - 60);
    assert_eq!(
        orders
            .expire_unpaid(cutoff(early, window), 100)
            .await
            .unwrap(),
        vec![]
    );
    let late = Timestamp::from_unix(now.unix() + 86_400 + 60);
    assert_eq!(
        orders
            .expire_unpaid(cutoff(late, window), 100)
            .await
            .unwrap()
            .len(),
        1
    );

    let got = c
        .json("order.get", None, req("ann", None, json!({"order_id": id})))
        .await
        .unwrap();
    assert_eq!(got["status"], "expired");
    assert_eq!(got["expired_by"], serde_json::Value::Null);
    let pay = json!({"project_id": PROJECT, "order_id": id, "invoice_id": "inv-1",
                     "amount": "5.99", "currency": "USD"});
    let refused = c.json("payment.confirm", None, pay).await.unwrap_err();
    assert_eq!(
        (refused.error.status, refused.error.code),
        (422, 1102),
        "{refused:?}"
    );
    assert!(
        refused.error.text.contains("from expired to paid"),
        "{refused:?}"
    );
    w.finish().await;
}
