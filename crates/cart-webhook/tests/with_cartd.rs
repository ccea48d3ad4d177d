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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_order_is_delivered_then_done_and_its_refund_is_delivered_after() {
    let w = World::new_without_orders_stream().await;
    let mut service = cartd::Config::from_env();
    service.database_url = w.config.database_url.clone();
    service.catalog = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/catalog.json"
    )
    .into();
    service.subject_prefix = w.config.prefix.clone();
    service.service_name = "cart-webhook-test".into();
    service.events_stream = format!("{}_EVENTS", w.config.orders_stream);
    service.orders_stream = w.config.orders_stream.clone();
    service.projections = false;
    service.admin_addr = "127.0.0.1:0".parse().unwrap();
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
