//! Replays a stream of its own on the real nats-server at NATS_URL (JetStream enabled).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use cart_analytics::{replay, Options, Source, Timestamp};
use cart_proto::subject;
use clap::Parser;
use futures::FutureExt;

struct Event<'a> {
    project: i64,
    cart: &'a str,
    version: i64,
    at: &'a str,
    event_type: &'a str,
    sku: Option<&'a str>,
    /// The envelope's `event` as JSON, so that an event type this build does not know
    /// can be published too.
    event: serde_json::Value,
}

fn body(e: &Event<'_>) -> serde_json::Value {
    serde_json::json!({
        "event_id": format!("{}-{}", e.cart, e.version),
        "position": format!("1:{}", e.version),
        "stream_id": format!("stream-{}", e.cart),
        "version": e.version,
        "project_id": e.project,
        "user_id": "user@example.com",
        "cart_id": e.cart,
        "event_type": e.event_type,
        "schema_version": 1,
        "recorded_at": e.at,
        "event": e.event,
    })
}

async fn publish(js: &jetstream::Context, prefix: &str, e: &Event<'_>, message_id: &str) {
    let subject = subject::event_subject(
        prefix,
        e.project,
        "user@example.com",
        e.cart,
        e.event_type,
        e.sku,
    );
    let message = PublishMessage::build()
        .payload(serde_json::to_vec(&body(e)).unwrap().into())
        .message_id(message_id)
        .header("Cart-Event-Type", e.event_type)
        .header("Cart-Stream-Id", format!("stream-{}", e.cart).as_str())
        .header("Cart-Version", e.version.to_string().as_str());
    let ack = js
        .send_publish(subject, message)
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!ack.duplicate);
}

fn events() -> Vec<Event<'static>> {
    use serde_json::json;
    let set = |cart, version, at, sku, quantity| Event {
        project: 7,
        cart,
        version,
        at,
        event_type: "ItemQuantitySet",
        sku: Some(sku),
        event: json!({"item_quantity_set": {"sku": sku, "quantity": quantity}}),
    };
    let opened = |project, cart, at| Event {
        project,
        cart,
        version: 1,
        at,
        event_type: "CartOpened",
        sku: None,
        event: json!({"cart_opened": {}}),
    };
    let day1 = "2026-11-20T10:00:00.000000Z";
    let day3 = "2026-11-22T10:00:00.000000Z";
    vec![
        // Kept: holds 2 x cup.01, idle two days before the newest event.
        opened(7, "kept", day1),
        set("kept", 2, day1, "cup.01", 2),
        set("kept", 3, day1, "mug", 1),
        Event {
            event_type: "ItemRemoved",
            event: json!({"item_removed": {"sku": "mug"}}),
            ..set("kept", 4, day1, "mug", 0)
        },
        // Cleared by the shopper, then an event type from a later schema.
        opened(7, "cleared", day1),
        set("cleared", 2, day1, "cup.01", 1),
        Event {
            event_type: "CartCleared",
            sku: None,
            event: json!({"cart_cleared": {"reason": "shopper"}}),
            ..set("cleared", 3, day1, "", 0)
        },
        Event {
            event_type: "OrderPlaced",
            sku: None,
            event: json!({"order_placed": {"order_id": "o-1"}}),
            ..set("cleared", 4, day3, "", 0)
        },
        // Another project, fresh.
        opened(8, "fresh", day3),
        Event {
            project: 8,
            ..set("fresh", 2, day3, "tee", 3)
        },
    ]
}

async fn scenario(js: &jetstream::Context, stream: &str, prefix: &str) {
    let source = Source {
        stream: stream.to_owned(),
        subject_prefix: prefix.to_owned(),
        project: None,
    };
    let empty = tokio::time::timeout(Duration::from_secs(10), replay(js, &source))
        .await
        .expect("an empty stream must not hang")
        .unwrap();
    assert_eq!(empty.summary(None, Duration::ZERO).carts_seen, 0);

    let events = events();
    for e in &events {
        publish(js, prefix, e, &format!("{}-{}", e.cart, e.version)).await;
    }
    // A copy after the duplicate window: JetStream stores it under a new message id.
    publish(js, prefix, &events[1], "kept-2-again").await;

    let report = replay(js, &source).await.unwrap();
    let day = Duration::from_secs(86_400);
    let summary = report.summary(None, day);
    assert_eq!(
        summary.reference_time.as_deref(),
        Some("2026-11-22T10:00:00.000000Z")
    );
    assert_eq!(summary.carts_seen, 3);
    assert_eq!(summary.events_applied, 9);
    assert_eq!(summary.duplicates_ignored, 1);
    assert_eq!(summary.unknown_events, 1);
    assert_eq!(summary.unknown[0].event_type, "OrderPlaced");
    assert_eq!(summary.version_gaps, 0);
    assert_eq!(
        (summary.open_carts, summary.abandoned_carts),
        (2, 1),
        "{summary}"
    );
    assert_eq!((summary.empty_carts, summary.emptied_by_shopper), (1, 1));
    let skus: Vec<_> = summary
        .skus
        .iter()
        .map(|s| {
            (
                s.project_id,
                s.sku.as_str(),
                s.carts_added,
                s.carts_holding,
                s.units_held,
            )
        })
        .collect();
    assert_eq!(
        skus,
        [
            (7, "cup.01", 2, 1, 2),
            (7, "mug", 1, 0, 0),
            (8, "tee", 1, 1, 3)
        ]
    );
    assert_eq!(summary.skus[0].kept_rate, 0.5);

    // The same through the binary's entry point, one project, JSON out.
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let options = Options::try_parse_from([
        "cart-analytics",
        "--nats-url",
        &nats_url,
        "--stream",
        stream,
        "--subject-prefix",
        prefix,
        "--project",
        "7",
        "--now",
        "2026-11-20T12:00:00+01:00",
        "--json",
        "--no-orders",
    ])
    .unwrap();
    assert_eq!(
        options.now,
        Some(Timestamp::parse("2026-11-20T11:00:00Z").unwrap())
    );
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    let summary = cart_analytics::run(&options, &mut out, &mut warnings)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["carts_seen"], 2);
    assert_eq!(json["open_carts"], 1);
    assert_eq!(json["abandoned_carts"], 0, "idle one hour at --now");
    assert_eq!(json["unknown_events"], 1);
    assert_eq!(json["skus"].as_array().map(Vec::len), Some(2));
    assert!(json.get("orders").is_none(), "--no-orders: {json}");
    assert_eq!(summary.duplicates_ignored, 1);
    let warnings = String::from_utf8(warnings).unwrap();
    assert!(
        warnings.contains("unknown event \"OrderPlaced\""),
        "{warnings}"
    );
}

const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

#[tokio::test]
async fn replays_a_real_stream_ignoring_a_late_duplicate() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let client = async_nats::connect(&url)
        .await
        .expect("nats-server at NATS_URL");
    let js = jetstream::new(client);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let stream = format!("CART_ANALYTICS_TEST_{}", &id[..12]);
    let prefix = format!("t{}.cart.v1", &id[..12]);
    js.create_stream(stream::Config {
        name: stream.clone(),
        subjects: vec![subject::events_wildcard(&prefix)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        // Should the deletion below not happen, the messages go by themselves.
        max_age: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .unwrap();

    let outcome = AssertUnwindSafe(scenario(&js, &stream, &prefix))
        .catch_unwind()
        .await;
    js.delete_stream(&stream).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// An order event as the order relay publishes it (`OrderEventEnvelope`).
fn order_body(project: u64, order_id: u64, version: i64, event_type: &str, total: &str) -> Vec<u8> {
    let status = match event_type {
        "OrderCreated" => "new",
        "OrderPaid" => "paid",
        "OrderCanceled" => "canceled",
        _ => "done",
    };
    let order = serde_json::json!({
        "order_id": order_id, "project_id": project, "status": status, "user_id": "ann",
        "cart_id": null, "date_created": "2026-12-04T17:39:12Z", "mode": null,
        "invoice_id": null, "is_free": total == "0.00", "promo_code": null, "expired_by": null,
        "cancel_reason": null, "custom_parameters": null,
        "content": {"price": {"amount": total, "amount_without_discount": total,
                              "currency": "USD"},
                    "is_free": total == "0.00", "items": [], "promotions": []}
    });
    serde_json::to_vec(&serde_json::json!({
        "event_id": format!("{project}-{order_id}-{version}"),
        "position": format!("9:{order_id}{version}"), "project_id": project,
        "order_id": order_id, "user_id": "ann", "version": version, "event_type": event_type,
        "status": status, "recorded_at": "2026-12-04T17:40:00.123456Z", "order": order
    }))
    .unwrap()
}

async fn orders_scenario(js: &jetstream::Context, carts: &str, orders: &str, prefix: &str) {
    let events: [(u64, u64, i64, &str, &str); 7] = [
        (7, 1, 1, "OrderCreated", "21.88"),
        (7, 1, 2, "OrderPaid", "21.88"),
        (7, 1, 3, "OrderCanceled", "21.88"),
        (7, 2, 1, "OrderCreated", "0.10"),
        (7, 2, 2, "OrderPaid", "0.10"),
        (7, 3, 1, "OrderCreated", "0.00"),
        (8, 1, 1, "OrderCreated", "99.00"),
    ];
    for (i, (project, order, version, event_type, total)) in events.iter().enumerate() {
        let subject = format!("{prefix}.orders.{project}.{order}.{i}");
        let body = order_body(*project, *order, *version, event_type, total);
        js.publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A late copy of the payment, stored under another message id.
    let copy = order_body(7, 2, 2, "OrderPaid", "0.10");
    js.publish(format!("{prefix}.orders.7.2.paid"), copy.into())
        .await
        .unwrap()
        .await
        .unwrap();

    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let options = Options::try_parse_from([
        "cart-analytics",
        "--nats-url",
        &nats_url,
        "--stream",
        carts,
        "--orders-stream",
        orders,
        "--subject-prefix",
        prefix,
        "--project",
        "7",
        "--json",
    ])
    .unwrap();
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    let summary = cart_analytics::run(&options, &mut out, &mut warnings)
        .await
        .unwrap();
    let orders = summary.orders.unwrap();
    assert_eq!(orders.orders_seen, 3, "project 7 only");
    assert_eq!(
        (orders.counts.checkouts, orders.counts.free_checkouts),
        (3, 1)
    );
    assert_eq!((orders.counts.payments, orders.counts.refunds), (2, 1));
    assert_eq!(orders.duplicates_ignored, 1);
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        json["orders"]["revenue"]["USD"],
        serde_json::json!({"paid": "21.98", "refunded": "21.88", "net": "0.10"})
    );
    assert_eq!(json["orders"]["status_now"]["canceled"], 1);
    assert!(
        warnings.is_empty(),
        "{}",
        String::from_utf8_lossy(&warnings)
    );
}

#[tokio::test]
async fn replays_the_order_stream_and_counts_payments_refunds_and_revenue() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let client = async_nats::connect(&url)
        .await
        .expect("nats-server at NATS_URL");
    let js = jetstream::new(client);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let carts = format!("CART_ANALYTICS_TEST_{}", &id[..12]);
    let orders = format!("CART_ANALYTICS_ORDERS_{}", &id[..12]);
    let prefix = format!("t{}.cart.v1", &id[..12]);
    for (name, subjects) in [
        (&carts, subject::events_wildcard(&prefix)),
        (&orders, cart_proto::order::orders_wildcard(&prefix)),
    ] {
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subjects],
            max_age: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let outcome = AssertUnwindSafe(orders_scenario(&js, &carts, &orders, &prefix))
        .catch_unwind()
        .await;
    js.delete_stream(&carts).await.unwrap();
    js.delete_stream(&orders).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
