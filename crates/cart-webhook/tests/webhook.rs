//! The worker against real NATS, PostgreSQL and a local receiver.

mod common;

use std::time::Duration;

use cart_webhook::payload;
use common::{canceled, envelope, paid, Answer, Receiver, World};

const V1_PAID: &str = r#"{"notification_type":"order_paid","items":[{"sku":"big_rocket","type":"virtual_good","quantity":2,"amount":"18.00","promotions":[{"amount_without_discount":"20.00","amount_with_discount":"18.00","sequence":1}],"is_pre_order":false,"custom_attributes":{}},{"sku":"bonus_gem","type":"virtual_currency","quantity":1,"amount":"0.00","promotions":[],"is_pre_order":false,"custom_attributes":{}}],"order":{"id":11,"mode":"sandbox","currency_type":"real","currency":"USD","amount":"18.00","status":"paid","platform":"xsolla","comment":null,"invoice_id":"inv-1","promotions":[],"promocodes":[{"code":"WINTER","external_id":"WINTER"}]},"user":{"external_id":"user-1","email":null},"custom_parameters":{"a":1}}"#;

const V2_CANCELED: &str = r#"{"notification_type":"order_canceled","items":[{"sku":"big_rocket","type":"virtual_good","quantity":2,"amount":"18.00","promotions":[{"amount_without_discount":"20.00","amount_with_discount":"18.00","sequence":1}],"is_pre_order":false,"custom_attributes":{},"is_free":false,"is_bonus":false,"is_bundle_content":false},{"sku":"bonus_gem","type":"virtual_currency","quantity":1,"amount":"0.00","promotions":[],"is_pre_order":false,"custom_attributes":{},"is_free":true,"is_bonus":true,"is_bundle_content":false}],"order":{"id":12,"mode":"sandbox","currency_type":"real","currency":"USD","amount":"18.00","status":"canceled","platform":"xsolla","comment":null,"invoice_id":"inv-1","promotions":[],"promocodes":[{"code":"WINTER","external_id":"WINTER"}]},"user":{"external_id":"user-1","email":null},"custom_parameters":{"a":1}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_payloads_v1_and_v2_are_signed_and_sent_once() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let worker = w.start_worker();
    w.set_webhook(1, &receiver.url, "secret-1", 1).await;
    w.set_webhook(2, &receiver.url, "secret-2", 2).await;

    let paid_event = paid(1, 11);
    w.publish(&paid_event).await;
    // The same event again under another message id (a re-relay): one delivery.
    let mut again = paid_event.clone();
    again.event_id = uuid::Uuid::new_v4().to_string();
    w.publish(&again).await;
    // Events that cause no webhook.
    w.publish(&envelope(1, 11, "OrderCreated", "new", 1)).await;
    w.publish(&envelope(1, 11, "OrderDone", "done", 3)).await;
    // Project 2's order is paid, then canceled (version 2 payloads).
    w.publish(&paid(2, 12)).await;
    w.publish(&canceled(2, 12)).await;

    w.wait_status(11, "order_paid", "delivered").await;
    w.wait_status(12, "order_canceled", "delivered").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = receiver.calls();
    assert_eq!(calls.len(), 3, "one call per paid/canceled notification");

    let v1 = calls.iter().find(|c| c.key() == "1:11:order_paid").unwrap();
    assert_eq!(std::str::from_utf8(&v1.body).unwrap(), V1_PAID);
    assert_eq!(
        v1.header("authorization"),
        format!(
            "Signature {}",
            payload::signature(V1_PAID.as_bytes(), "secret-1")
        )
    );
    assert_eq!(v1.header("content-type"), "application/json");
    assert_eq!(v1.header("x-webhook-attempt"), "1");

    let v2 = calls
        .iter()
        .find(|c| c.key() == "2:12:order_canceled")
        .unwrap();
    assert_eq!(std::str::from_utf8(&v2.body).unwrap(), V2_CANCELED);
    assert!(payload::verify(
        Some(&v2.header("authorization")),
        &v2.body,
        "secret-2"
    ));
    assert!(!payload::verify(
        Some(&v2.header("authorization")),
        &v2.body,
        "secret-1"
    ));
    let paid2 = calls
        .iter()
        .position(|c| c.key() == "2:12:order_paid")
        .unwrap();
    let canceled2 = calls
        .iter()
        .position(|c| c.key() == "2:12:order_canceled")
        .unwrap();
    assert!(paid2 < canceled2, "order_paid goes before order_canceled");

    // Both delivered order_paid orders were marked done.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut marked = w.marked.lock().unwrap().clone();
    marked.sort_unstable();
    assert_eq!(marked, vec![(1, 11), (2, 12)]);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_admin_validates_and_never_shows_the_secret() {
    let w = World::new().await;
    let worker = w.start_worker();
    w.set_webhook(5, "http://127.0.0.1:1/hook", "s3cr3t", 2)
        .await;
    let reply = w.admin("get", serde_json::json!({"project_id": 5})).await;
    let got: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"project_id": 5, "url": "http://127.0.0.1:1/hook", "enabled": true, "version": 2, "secret_set": true})
    );
    assert!(!String::from_utf8_lossy(&reply.payload).contains("s3cr3t"));

    let reply = w
        .admin("set", serde_json::json!({"project_id": 5, "url": "ftp://x", "secret": "s", "enabled": true, "version": 1}))
        .await;
    let headers = reply.headers.clone().unwrap();
    assert_eq!(
        headers.get("Nats-Service-Error-Code").unwrap().as_str(),
        "422"
    );
    let error: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(error["statusCode"], 422);
    assert_eq!(error["errorCode"], 1102);
    assert!(error["errorMessage"].as_str().unwrap().contains("url"));
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_refusal_fails_once_and_is_dead_lettered() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![Answer::Status(422)]).await;
    let worker = w.start_worker();
    w.set_webhook(1, &receiver.url, "s", 1).await;
    let event = paid(1, 21);
    w.publish(&event).await;
    w.wait_status(21, "order_paid", "failed").await;
    assert_eq!(
        w.attempts(21, "order_paid").await,
        vec![(1, Some(422), "permanent".into())]
    );

    let stream = w.jetstream.get_stream(&w.config.dead_stream).await.unwrap();
    let subject = format!("{}.webhooks.dead.1.21", w.config.prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let message = loop {
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => break m,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "no dead letter: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let dead: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(dead["reason"], "permanent");
    assert_eq!(dead["event_id"], event.event_id);
    assert_eq!(dead["last_status_code"], 422);
    assert_eq!(receiver.calls().len(), 1);
    assert!(
        w.marked.lock().unwrap().is_empty(),
        "a failed order_paid marks nothing"
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_are_retried_on_the_schedule_until_success() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![Answer::Status(500), Answer::Status(503)]).await;
    let worker = w.start_worker();
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 31)).await;
    w.wait_status(31, "order_paid", "delivered").await;
    assert_eq!(
        w.attempts(31, "order_paid").await,
        vec![
            (1, Some(500), "retry".into()),
            (2, Some(503), "retry".into()),
            (3, Some(204), "success".into())
        ]
    );
    let calls = receiver.calls();
    assert!(
        calls.iter().all(|c| c.key() == "1:31:order_paid"),
        "one key on every attempt"
    );
    assert_eq!(
        calls
            .iter()
            .map(|c| c.header("x-webhook-attempt"))
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(100),
        "the schedule's delay"
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_retries_fail_and_dead_letter() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![Answer::Status(500); 10]).await;
    let mut config = w.config.clone();
    config.retry_schedule = "2x50ms".parse().unwrap();
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 35)).await;
    w.wait_status(35, "order_paid", "failed").await;
    assert_eq!(
        w.attempts(35, "order_paid").await.len(),
        3,
        "the first try and two retries"
    );
    let stream = w.jetstream.get_stream(&w.config.dead_stream).await.unwrap();
    let subject = format!("{}.webhooks.dead.1.35", w.config.prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(m) = stream.get_last_raw_message_by_subject(&subject).await {
            let dead: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(dead["reason"], "retries_exhausted");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_hangs_times_out_and_is_retried() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![Answer::After(Duration::from_secs(5), 204)]).await;
    let mut config = w.config.clone();
    config.timeout = Duration::from_millis(400);
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 41)).await;
    w.wait_status(41, "order_paid", "delivered").await;
    let attempts = w.attempts(41, "order_paid").await;
    assert_eq!(
        attempts,
        vec![
            (1, None, "timeout".into()),
            (2, Some(204), "success".into())
        ]
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_delivery_is_replaced_and_the_repeat_has_the_same_key() {
    let w = World::new().await;
    // The first request is held long past the kill; the repeat is answered at once.
    let receiver = Receiver::start(vec![Answer::After(Duration::from_secs(30), 204)]).await;
    // The lease is the timeout plus the margin: 2 s + 1 s.
    let mut config = w.config.clone();
    config.timeout = Duration::from_secs(2);
    let first = w.start_worker_with(config.clone());
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 51)).await;
    receiver.wait_calls(1).await;
    first.abort();
    let _ = first.await;

    let second = w.start_worker_with(config);
    w.wait_status(51, "order_paid", "delivered").await;
    let calls = receiver.wait_calls(2).await;
    assert_eq!(calls.len(), 2, "one repeat");
    assert_eq!(calls[0].key(), "1:51:order_paid");
    assert_eq!(calls[1].key(), calls[0].key());
    assert_eq!(calls[0].body, calls[1].body);
    assert!(
        calls[1].at - calls[0].at >= Duration::from_secs(2),
        "the repeat waits for the lease to end"
    );
    assert_eq!(calls[1].header("x-webhook-attempt"), "2");
    let delivered: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries where order_id = 51 and status = 'delivered'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(delivered, 1);
    // The killed attempt's lease expired without an outcome: it is recorded as an
    // error of unknown outcome, and the repeat is attempt 2.
    assert_eq!(
        w.attempts(51, "order_paid").await,
        vec![(1, None, "error".into()), (2, Some(204), "success".into())]
    );
    second.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_transaction_is_held_while_a_receiver_hangs() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![Answer::After(Duration::from_secs(2), 204)]).await;
    let mut config = w.config.clone();
    config.timeout = Duration::from_secs(5);
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 55)).await;
    receiver.wait_calls(1).await;
    // While the receiver hangs, the delivery is leased and no session of this database
    // holds a transaction with an xid (which would hold back every event relay of the
    // cluster: they read below pg_snapshot_xmin).
    for _ in 0..10 {
        let (leased, pending): (bool, bool) = sqlx::query_as(
            "select leased_by is not null and leased_until > now(), status = 'pending'
             from webhook_deliveries where order_id = 55",
        )
        .fetch_one(&w.pool)
        .await
        .unwrap();
        assert!(leased && pending, "the delivery is leased during the call");
        assert_eq!(w.transactions_with_xid().await, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.calls().len(), 1, "still the first call");
    w.wait_status(55, "order_paid", "delivered").await;
    assert_eq!(
        w.attempts(55, "order_paid").await,
        vec![(1, Some(204), "success".into())]
    );
    let lease: (Option<uuid::Uuid>, i32) =
        sqlx::query_as("select leased_by, attempts from webhook_deliveries where order_id = 55")
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(lease, (None, 1), "the outcome ends the lease");
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_that_outlives_its_lease_records_its_attempt_but_not_its_state() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![
        Answer::After(Duration::from_secs(2), 500),
        Answer::Status(204),
    ])
    .await;
    let mut config = w.config.clone();
    config.timeout = Duration::from_secs(5);
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 57)).await;
    receiver.wait_calls(1).await;
    // The lease ends while the first call is still out (as after a long stall).
    sqlx::query(
        "update webhook_deliveries set leased_until = now() - interval '1 second'
         where order_id = 57",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    // Another delivery loop claims it again and delivers (attempt 2)...
    w.wait_status(57, "order_paid", "delivered").await;
    assert_eq!(
        w.attempts(57, "order_paid").await,
        vec![(1, None, "error".into()), (2, Some(204), "success".into())]
    );
    // ...then the first call's 500 comes back: its attempt is recorded, but it does not
    // turn the delivered notification back into a retry.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.attempts(57, "order_paid").await[0].2 == "error" {
        assert!(
            std::time::Instant::now() < deadline,
            "attempt 1 never recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        w.attempts(57, "order_paid").await,
        vec![
            (1, Some(500), "retry".into()),
            (2, Some(204), "success".into())
        ]
    );
    let row: (String, i32, Option<uuid::Uuid>) = sqlx::query_as(
        "select status, attempts, leased_by from webhook_deliveries where order_id = 57",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(row, ("delivered".into(), 2, None));
    assert_eq!(receiver.calls().len(), 2);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_never_deliver_one_order_at_once() {
    let w = World::new().await;
    let slow = Answer::After(Duration::from_millis(150), 204);
    let receiver = Receiver::start(vec![slow; 40]).await;
    let a = w.start_worker();
    let b = w.start_worker();
    w.set_webhook(1, &receiver.url, "s", 1).await;
    for order in 60..70 {
        w.publish(&paid(1, order)).await;
        w.publish(&canceled(1, order)).await;
    }
    for order in 60..70 {
        w.wait_status(order, "order_canceled", "delivered").await;
    }
    let calls = receiver.calls();
    assert_eq!(calls.len(), 20);
    assert_eq!(
        receiver.max_in_flight_per_order(),
        1,
        "one request per order at a time"
    );
    for order in 60..70 {
        let at = |kind: &str| {
            calls
                .iter()
                .position(|c| c.key() == format!("1:{order}:{kind}"))
                .unwrap()
        };
        assert!(at("order_paid") < at("order_canceled"), "order {order}");
    }
    a.abort();
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_store_refusing_an_unknown_order_is_given_up_not_retried() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let config = w.config.clone();
    let worker = tokio::spawn(async move {
        let pool = cart_webhook::connect(&config).await.unwrap();
        let mark = cart_webhook::order_store_marker(pool.clone());
        cart_webhook::run_with(config, pool, mark, std::future::pending())
            .await
            .unwrap();
    });
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 81)).await;
    w.wait_status(81, "order_paid", "delivered").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row: (Option<String>, Option<String>) = sqlx::query_as(
            "select followed_up_at::text, follow_up_error from webhook_deliveries where order_id = 81",
        )
        .fetch_one(&w.pool)
        .await
        .unwrap();
        if row.0.is_some() {
            assert!(row.1.is_some(), "the refusal is kept");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not followed up: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_free_orders_done_event_is_its_order_paid_and_its_refund_follows() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let worker = w.start_worker();
    w.set_webhook(1, &receiver.url, "s", 2).await;
    // A free checkout: OrderCreated then OrderDone, never OrderPaid.
    w.publish(&common::free(1, 71, "OrderCreated", "new", 1))
        .await;
    w.publish(&common::free(1, 71, "OrderDone", "done", 2))
        .await;
    // A paid order's OrderDone (after its order_paid) causes nothing.
    w.publish(&envelope(1, 72, "OrderDone", "done", 3)).await;
    w.wait_status(71, "order_paid", "delivered").await;
    let calls = receiver.wait_calls(1).await;
    assert_eq!(calls[0].key(), "1:71:order_paid");
    let body = calls[0].json();
    assert_eq!(body["notification_type"], "order_paid");
    assert_eq!(body["order"]["status"], "paid");
    assert_eq!(body["order"]["currency_type"], "unknown");
    // Xsolla types `currency` as a string: never null, USD for an envelope without a
    // price (`payload::tests` has the zero-priced view of a free order).
    assert_eq!(body["order"]["currency"], "USD");
    assert_eq!(body["order"]["amount"], "0");
    assert_eq!(body["order"]["invoice_id"], serde_json::Value::Null);
    assert_eq!(body["items"][0]["is_free"], true);
    assert_eq!(body["items"][0]["amount"], "0");

    // A refund of the done free order: order_canceled, after it.
    w.publish(&common::free(1, 71, "OrderCanceled", "canceled", 3))
        .await;
    w.wait_status(71, "order_canceled", "delivered").await;
    let calls = receiver.calls();
    let keys: Vec<String> = calls.iter().map(common::Call::key).collect();
    assert_eq!(keys, ["1:71:order_paid", "1:71:order_canceled"]);
    assert_eq!(calls[1].json()["order"]["status"], "canceled");
    // The order is done already: it is not marked again, and no follow-up error is kept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.marked.lock().unwrap().is_empty());
    let row: (bool, Option<String>) = sqlx::query_as(
        "select followed_up_at is not null, follow_up_error from webhook_deliveries
         where order_id = 71 and notification_type = 'order_paid'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(row, (true, None));
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_orders_cancel_waits_for_a_paid_event_later_than_the_grace() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let mut config = w.config.clone();
    config.cancel_grace = Duration::from_millis(300);
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&canceled(1, 91)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver.calls().is_empty(),
        "the cancel waited for order_paid"
    );
    w.publish(&paid(1, 91)).await;
    w.wait_status(91, "order_canceled", "delivered").await;
    let keys: Vec<String> = receiver.calls().iter().map(common::Call::key).collect();
    assert_eq!(keys, ["1:91:order_paid", "1:91:order_canceled"]);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_paid_recorded_after_its_cancel_was_sent_is_superseded_not_sent() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let mut config = w.config.clone();
    config.cancel_grace = Duration::from_millis(200);
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    // No invoice: no order_paid is certain to come, so the grace applies.
    let mut cancel = canceled(1, 93);
    cancel.order.invoice_id = None;
    w.publish(&cancel).await;
    w.wait_status(93, "order_canceled", "delivered").await;
    w.publish(&paid(1, 93)).await;
    w.wait_status(93, "order_paid", "failed").await;
    let keys: Vec<String> = receiver.calls().iter().map(common::Call::key).collect();
    assert_eq!(keys, ["1:93:order_canceled"]);
    let stream = w.jetstream.get_stream(&w.config.dead_stream).await.unwrap();
    let subject = format!("{}.webhooks.dead.1.93", w.config.prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let message = loop {
        if let Ok(m) = stream.get_last_raw_message_by_subject(&subject).await {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let dead: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(dead["reason"], "superseded");
    assert_eq!(dead["notification_type"], "order_paid");
    assert!(w.marked.lock().unwrap().is_empty());
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecodable_paid_event_is_dead_lettered_not_lost() {
    let w = World::new().await;
    let worker = w.start_worker();
    // The worker is up once its admin endpoint answers.
    w.set_webhook(1, "http://127.0.0.1:1/hook", "s", 1).await;
    let subject = format!("{}.orders.1.95.paid", w.config.prefix);
    let broken = br#"{"event_type":"OrderPaid","project_id":1,"order_id":95}"#;
    w.jetstream
        .publish(subject.clone(), broken.as_slice().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Not JSON: terminated, with no dead letter.
    w.jetstream
        .publish(subject.clone(), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut stream = w.jetstream.get_stream(&w.config.dead_stream).await.unwrap();
    let dead_subject = format!("{}.webhooks.dead.intake", w.config.prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let message = loop {
        if let Ok(m) = stream.get_last_raw_message_by_subject(&dead_subject).await {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let dead: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(dead["reason"], "undecodable");
    assert_eq!(dead["event_type"], "OrderPaid");
    assert_eq!(dead["subject"], subject);
    assert_eq!(dead["payload"], std::str::from_utf8(broken).unwrap());
    assert!(dead["error"].as_str().unwrap().contains("missing field"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = stream.info().await.unwrap().state.messages;
    assert_eq!(messages, 1, "a dead letter for the paid event only");
    let rows: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_error_recording_an_outcome_is_retried_not_resent() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    // Recording attempts fails while the flag table has a row.
    sqlx::raw_sql(
        "create table fail_outcomes (x int);
         insert into fail_outcomes values (1);
         create function fail_outcome() returns trigger language plpgsql as $$
         begin
           if exists (select 1 from fail_outcomes) then
             raise exception 'injected failure';
           end if;
           return new;
         end $$;
         create trigger fail_outcome before insert or update on webhook_attempts
           for each row execute function fail_outcome();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    // Lease: 2 s timeout + 1 s margin.
    let worker = w.start_worker();
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 97)).await;
    receiver.wait_calls(1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    sqlx::query("delete from fail_outcomes")
        .execute(&w.pool)
        .await
        .unwrap();
    w.wait_status(97, "order_paid", "delivered").await;
    // Past the lease: nobody claimed it again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        receiver.calls().len(),
        1,
        "the answered call is not repeated"
    );
    assert_eq!(
        w.attempts(97, "order_paid").await,
        vec![(1, Some(204), "success".into())]
    );
    worker.abort();
}
