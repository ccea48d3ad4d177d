//! The whole path with the real service: checkout and payment in cartd, the order relay,
//! the worker, the receiver, and the order marked done by the order store.

mod common;

use std::time::{Duration, Instant};

use common::{Receiver, World};

async fn request(w: &World, endpoint: &str, body: serde_json::Value) -> serde_json::Value {
    let subject = format!("{}.{endpoint}", w.config.prefix);
    let reply = w
        .client
        .request(subject, serde_json::to_vec(&body).unwrap().into())
        .await
        .unwrap();
    let error = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Service-Error-Code"));
    assert!(
        error.is_none(),
        "{endpoint}: {}",
        String::from_utf8_lossy(&reply.payload)
    );
    serde_json::from_slice(&reply.payload).unwrap()
}

/// Checks out one unit of gold for `user` and pays for it; the order id.
async fn buy(w: &World, user: &str) -> u64 {
    let checkout = request(
        w,
        "order.checkout_item",
        serde_json::json!({"project_id": 44056, "user_id": user, "sku": "gold", "quantity": 1,
                           "currency": "USD"}),
    )
    .await;
    let order_id = checkout["order_id"].as_u64().unwrap();
    request(
        w,
        "payment.confirm",
        serde_json::json!({"project_id": 44056, "order_id": order_id, "invoice_id": format!("inv-{order_id}"),
                           "amount": "0.99", "currency": "USD", "mode": "sandbox"}),
    )
    .await;
    order_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paid_orders_whose_messages_were_purged_before_the_worker_saw_them_are_delivered_once() {
    let w = World::new_without_orders_stream().await;
    let mut service = w.cartd_config();
    // The relay must not heal the stream during the test: this is the worker's own
    // reconciliation against the order log.
    service.relay_verify_every = 3600;
    let server = cartd::start(&service).await.expect("start cartd");
    let receiver = Receiver::start(vec![]).await;
    // No worker runs yet (its admin endpoint with it): the settings go in directly.
    let settings = cart_webhook::store::Settings {
        project_id: 44056,
        url: receiver.url.clone(),
        secret: "e2e-secret".into(),
        enabled: true,
        version: 2,
    };
    cart_webhook::store::put_settings(&w.pool, &settings)
        .await
        .unwrap();

    let mut lost = Vec::new();
    for i in 0..3 {
        lost.push(buy(&w, &format!("lost-{i}")).await);
    }
    // The order relay published them (created and paid, three orders); then JetStream
    // loses them before any worker ran.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        if let Ok(mut stream) = w.jetstream.get_stream(&w.config.orders_stream).await {
            if stream.info().await.unwrap().state.messages >= 6 {
                break stream;
            }
        }
        assert!(Instant::now() < deadline, "the order relay did not publish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stream.purge().await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);

    let mut config = w.config.clone();
    config.reconcile_every = Duration::from_millis(200);
    let worker = w.start_worker_with(config.clone());
    // An order paid while the worker runs comes through intake as usual.
    let live = buy(&w, "live").await;
    let calls = receiver.wait_calls(4).await;
    let mut keys: Vec<String> = calls.iter().map(common::Call::key).collect();
    keys.sort();
    let mut expected: Vec<String> = lost
        .iter()
        .chain([&live])
        .map(|order| format!("44056:{order}:order_paid"))
        .collect();
    expected.sort();
    assert_eq!(keys, expected, "every paid order delivered, each once");
    for order in lost.iter().chain([&live]) {
        w.wait_status(*order, "order_paid", "delivered").await;
    }
    // Rounds after the deliveries record nothing again: one row per order.
    let watermark = cart_webhook::reconcile::checkpoint_name(&config);
    let pool = &w.pool;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let head: Option<String> = sqlx::query_scalar(
            "select (select global_position from feed_checkpoints where name = $1)::text",
        )
        .bind(&watermark)
        .fetch_one(pool)
        .await
        .unwrap();
        let last: Option<String> =
            sqlx::query_scalar("select max(global_position)::text from order_events")
                .fetch_one(pool)
                .await
                .unwrap();
        if head.is_some() && head == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watermark did not reach the log's end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows, 4);
    assert_eq!(receiver.calls().len(), 4);

    worker.abort();
    server.shutdown().await;
    let _ = w.jetstream.delete_stream(&service.events_stream).await;
    let _ = w.jetstream.delete_stream(&w.config.orders_stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_order_is_delivered_then_done_and_its_refund_is_delivered_after() {
    let w = World::new_without_orders_stream().await;
    let service = w.cartd_config();
    let server = cartd::start(&service).await.expect("start cartd");

    // The worker starts before the relay has created the orders stream, and waits.
    let receiver = Receiver::start(vec![]).await;
    let config = w.config.clone();
    let worker = tokio::spawn(async move {
        let pool = cart_webhook::connect(&config).await.unwrap();
        let mark = cart_webhook::order_store_marker(pool.clone());
        cart_webhook::run_with(config, pool, mark, std::future::pending())
            .await
            .unwrap();
    });
    w.set_webhook(44056, &receiver.url, "e2e-secret", 2).await;

    let user = "webhook-e2e";
    let checkout = request(
        &w,
        "order.checkout_item",
        serde_json::json!({"project_id": 44056, "user_id": user, "sku": "gold", "quantity": 3,
                           "currency": "USD", "custom_parameters": {"campaign": "winter"}}),
    )
    .await;
    let order_id = checkout["order_id"].as_u64().unwrap();
    request(
        &w,
        "payment.confirm",
        serde_json::json!({"project_id": 44056, "order_id": order_id, "invoice_id": "inv-e2e",
                           "amount": "2.97", "currency": "USD", "mode": "sandbox"}),
    )
    .await;

    let calls = receiver.wait_calls(1).await;
    let paid = &calls[0];
    assert_eq!(paid.key(), format!("44056:{order_id}:order_paid"));
    assert!(cart_webhook::payload::verify(
        Some(&paid.header("authorization")),
        &paid.body,
        "e2e-secret"
    ));
    let body = paid.json();
    assert_eq!(body["notification_type"], "order_paid");
    assert_eq!(body["order"]["id"], order_id);
    assert_eq!(body["order"]["status"], "paid");
    assert_eq!(body["order"]["mode"], "sandbox");
    assert_eq!(body["order"]["invoice_id"], "inv-e2e");
    assert_eq!(body["order"]["currency"], "USD");
    assert_eq!(body["order"]["currency_type"], "real");
    assert_eq!(body["user"]["external_id"], user);
    assert_eq!(
        body["custom_parameters"],
        serde_json::json!({"campaign": "winter"})
    );
    assert_eq!(body["items"][0]["sku"], "gold");
    assert_eq!(body["items"][0]["quantity"], 3);
    assert_eq!(body["items"][0]["is_free"], false);
    println!("order_paid as sent: {body}");

    // The order store moved the order to done.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let order = request(
            &w,
            "order.get",
            serde_json::json!({"project_id": 44056, "user_id": user, "order_id": order_id}),
        )
        .await;
        if order["status"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "order not done: {order}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A refund of the done order: order_canceled, after order_paid.
    request(
        &w,
        "payment.cancel",
        serde_json::json!({"project_id": 44056, "order_id": order_id, "reason": "refund"}),
    )
    .await;
    let calls = receiver.wait_calls(2).await;
    assert_eq!(calls[1].key(), format!("44056:{order_id}:order_canceled"));
    assert_eq!(calls[1].json()["order"]["status"], "canceled");
    w.wait_status(order_id, "order_canceled", "delivered").await;

    // A free checkout (OrderCreated then OrderDone, no OrderPaid) is granted too.
    request(
        &w,
        "item.put",
        serde_json::json!({"project_id": 44056, "user_id": user, "sku": "daily_gift", "quantity": 1}),
    )
    .await;
    let free = request(
        &w,
        "order.checkout_free",
        serde_json::json!({"project_id": 44056, "user_id": user}),
    )
    .await;
    assert_eq!(free["status"], "done");
    let free_id = free["order_id"].as_u64().unwrap();
    let calls = receiver.wait_calls(3).await;
    assert_eq!(calls[2].key(), format!("44056:{free_id}:order_paid"));
    let body = calls[2].json();
    assert_eq!(body["order"]["status"], "paid");
    assert_eq!(body["order"]["currency_type"], "unknown");
    // Zero at the service's scale, in the currency the order was priced in (a string:
    // Xsolla types it so).
    assert_eq!(body["order"]["amount"], "0.00");
    assert_eq!(body["order"]["currency"], "USD");
    assert_eq!(body["order"]["invoice_id"], serde_json::Value::Null);
    assert_eq!(body["items"][0]["sku"], "daily_gift");
    assert_eq!(body["items"][0]["is_free"], true);
    w.wait_status(free_id, "order_paid", "delivered").await;

    worker.abort();
    server.shutdown().await;
    let _ = w.jetstream.delete_stream(&service.events_stream).await;
}
