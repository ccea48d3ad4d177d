//! One OpenTelemetry trace from a caller's request to the merchant's webhook, checked on
//! what a real OTLP/HTTP receiver in this test decodes (opentelemetry-proto's prost
//! types): cartd's request span continuing the caller's `traceparent`, its decode,
//! decide and transaction spans, the group commit's batch span linked to the command,
//! the relays' publish spans linked to it, the `traceparent` on the JetStream messages,
//! the worker's intake and POST spans in the same trace, and the receiver's
//! `traceparent`.
//!
//! The tracer provider and the subscriber are process-wide: this binary holds this one
//! test only.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use common::{Receiver, World};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// Every span the receiver was sent, with its resource's `service.name`.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

async fn export(State(c): State<Collector>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut spans = c.spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

impl Collector {
    async fn start() -> (Self, String) {
        let collector = Collector::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (collector, url)
    }

    fn spans(&self) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A span's attribute as text.
fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (trace id, parent span id) of a `traceparent`.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// The one span that `matches`, with a readable failure.
fn one<'a>(spans: &'a [Span], what: &str, matches: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| matches(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: {} spans match; spans: {:#?}",
        found.len(),
        spans
            .iter()
            .map(|s| (&s.name, hex(&s.trace_id), hex(&s.parent_span_id)))
            .collect::<Vec<_>>()
    );
    found[0]
}

async fn request(
    w: &World,
    endpoint: &str,
    traceparent: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", traceparent);
    let reply = w
        .client
        .request_with_headers(
            format!("{}.{endpoint}", w.config.prefix),
            headers,
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap();
    assert!(
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error-Code"))
            .is_none(),
        "{endpoint}: {}",
        String::from_utf8_lossy(&reply.payload)
    );
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_runs_from_the_callers_request_to_the_merchants_webhook() {
    let (collector, endpoint) = Collector::start().await;
    let mut settings = cart_telemetry::Settings::new("cart-trace-test", Default::default());
    settings.endpoint = Some(endpoint);
    let telemetry = cart_telemetry::init(&settings).expect("telemetry");
    assert!(telemetry.exporting());

    let w = World::new_without_orders_stream().await;
    let mut service = w.cartd_config();
    service.service_name = "cart-trace-test".into();
    let server = cartd::start(&service).await.expect("start cartd");
    let receiver = Receiver::start(vec![]).await;
    let config = w.config.clone();
    let worker = tokio::spawn(async move {
        let pool = cart_webhook::connect(&config).await.unwrap();
        let mark = cart_webhook::order_store_marker(pool.clone());
        cart_webhook::run_with(config, pool, mark, std::future::pending())
            .await
            .unwrap();
    });
    w.set_webhook(44056, &receiver.url, "trace-secret", 2).await;

    // Three callers' traces: the fill, the checkout, the payment.
    let fill = cart_telemetry::new_traceparent().traceparent;
    let checkout = cart_telemetry::new_traceparent().traceparent;
    let pay = cart_telemetry::new_traceparent().traceparent;
    let (fill_trace, fill_parent) = ids(&fill);
    let (pay_trace, pay_parent) = ids(&pay);
    let user = "trace-e2e";
    request(
        &w,
        "fill",
        &fill,
        serde_json::json!({"project_id": 44056, "user_id": user,
                           "items": [{"sku": "gold", "quantity": 3}]}),
    )
    .await;
    let order = request(
        &w,
        "order.checkout",
        &checkout,
        serde_json::json!({"project_id": 44056, "user_id": user, "currency": "USD"}),
    )
    .await;
    let order_id = order["order_id"].as_u64().unwrap();
    request(
        &w,
        "payment.confirm",
        &pay,
        serde_json::json!({"project_id": 44056, "order_id": order_id, "invoice_id": "inv-trace",
                           "amount": "2.97", "currency": "USD", "mode": "sandbox"}),
    )
    .await;

    // The merchant's receiver gets the payment's trace.
    let calls = receiver.wait_calls(1).await;
    let received = calls[0].header("traceparent");
    let (received_trace, post_span_id) = ids(&received);
    assert_eq!(received_trace, pay_trace, "the POST's traceparent");
    w.wait_status(order_id, "order_paid", "delivered").await;

    // The JetStream messages carry the command's trace.
    let carts = w.jetstream.get_stream(&service.events_stream).await;
    let carts = carts.expect("the cart events stream");
    let first = carts
        .get_raw_message(1)
        .await
        .expect("the fill's first event");
    let header = first
        .headers
        .get("traceparent")
        .expect("a traceparent header");
    assert_eq!(ids(header.as_str()).0, fill_trace);
    let orders = w
        .jetstream
        .get_stream(&w.config.orders_stream)
        .await
        .unwrap();
    let created = orders.get_raw_message(1).await.expect("OrderCreated");
    let header = created
        .headers
        .get("traceparent")
        .expect("a traceparent header");
    assert_eq!(ids(header.as_str()).0, ids(&checkout).0);

    // Every span ended by now (the order is done after the POST returned): flush them.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    worker.abort();
    server.shutdown().await;
    let _ = w.jetstream.delete_stream(&service.events_stream).await;
    let spans = collector.spans();
    let in_trace = |trace: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| hex(&s.trace_id) == trace)
            .cloned()
            .collect()
    };
    check_fill(&spans, &in_trace(&fill_trace), &fill_trace, &fill_parent);
    check_payment(
        &spans,
        &in_trace(&pay_trace),
        &pay_trace,
        &pay_parent,
        &post_span_id,
        &w.config.orders_stream,
    );
    let services: Vec<String> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert!(
        services.iter().all(|s| s == "cart-trace-test"),
        "{services:?}"
    );
}

/// The fill: its request span continues the caller's, decode and decide are its
/// children, the group commit's batch span is a root linked to it, and the cart relay's
/// publish span links to it.
fn check_fill(all: &[Span], fill: &[Span], trace: &str, caller: &str) {
    let request = one(fill, "the fill's request span", |s| s.name == "cart");
    assert_eq!(hex(&request.parent_span_id), caller, "continues the caller");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(attr(request, "messaging.system").as_deref(), Some("nats"));
    assert_eq!(
        attr(request, "messaging.operation.type").as_deref(),
        Some("process")
    );
    assert!(attr(request, "messaging.destination.name").is_some_and(|d| d.ends_with(".fill")));
    assert_eq!(attr(request, "project").as_deref(), Some("44056"));
    assert_eq!(attr(request, "user").as_deref(), Some("trace-e2e"));
    assert_eq!(attr(request, "outcome").as_deref(), Some("ok"));
    assert_eq!(attr(request, "status").as_deref(), Some("200"));
    for name in ["decode", "decide"] {
        let child = one(fill, name, |s| s.name == name);
        assert_eq!(child.parent_span_id, request.span_id, "{name}'s parent");
    }
    // The batch: a root of its own, linked to the command's span.
    let linked_to_request = |s: &Span| {
        s.links
            .iter()
            .any(|l| hex(&l.trace_id) == trace && l.span_id == request.span_id)
    };
    let batch = one(all, "the fill's batch span", |s| {
        s.name == "group commit" && linked_to_request(s)
    });
    assert!(batch.parent_span_id.is_empty(), "a batch span is a root");
    assert_eq!(attr(batch, "db.system.name").as_deref(), Some("postgresql"));
    assert!(attr(batch, "batch.size").is_some_and(|n| n.parse::<u64>().unwrap() >= 1));
    // Under the batch (through append_batch's own span): the transaction.
    let transaction = one(all, "the batch's transaction", |s| {
        s.name == "append batch" && s.trace_id == batch.trace_id
    });
    assert!(!transaction.parent_span_id.is_empty());
    assert_eq!(
        attr(transaction, "db.system.name").as_deref(),
        Some("postgresql")
    );
    // The cart relay's publish links to the command.
    let publish = all
        .iter()
        .find(|s| {
            s.name.starts_with("publish ") && s.name.ends_with("_EVENTS") && linked_to_request(s)
        })
        .expect("a cart relay publish span linked to the fill");
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert_eq!(attr(publish, "messaging.system").as_deref(), Some("nats"));
}

/// The payment: request span (continuing the caller), its transaction, the order
/// relay's publish linked to that transaction, the worker's intake continuing it, the
/// POST continuing the intake, and the receiver's `traceparent` naming the POST.
fn check_payment(
    all: &[Span],
    pay: &[Span],
    trace: &str,
    caller: &str,
    post_span_id: &str,
    orders_stream: &str,
) {
    let request = one(pay, "the payment's request span", |s| s.name == "cart");
    assert_eq!(hex(&request.parent_span_id), caller, "continues the caller");
    assert!(attr(request, "messaging.destination.name")
        .is_some_and(|d| d.ends_with(".payment.confirm")));
    let transaction = one(pay, "the payment's transaction", |s| s.name == "payment");
    assert_eq!(transaction.parent_span_id, request.span_id);
    assert_eq!(
        attr(transaction, "db.system.name").as_deref(),
        Some("postgresql")
    );
    // The order relay: a producer span of its own, linked to the payment's transaction
    // (the context recorded with OrderPaid).
    let publish_name = format!("publish {orders_stream}");
    let publish = all
        .iter()
        .find(|s| {
            s.name == publish_name
                && s.links
                    .iter()
                    .any(|l| hex(&l.trace_id) == trace && l.span_id == transaction.span_id)
        })
        .expect("an order relay publish span linked to the payment");
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert_ne!(hex(&publish.trace_id), trace, "the relay's span is its own");
    // The worker: intake continues the message's traceparent (the transaction's).
    let intake = one(pay, "the OrderPaid intake", |s| {
        s.name == format!("process {orders_stream}")
    });
    assert_eq!(intake.kind, SpanKind::Consumer as i32);
    assert!(attr(intake, "messaging.destination.name").is_some_and(|d| d.ends_with(".paid")));
    assert!(attr(intake, "messaging.consumer.group.name").is_some());
    assert_eq!(intake.parent_span_id, transaction.span_id);
    assert_eq!(attr(intake, "messaging.system").as_deref(), Some("nats"));
    let post = one(pay, "the webhook POST", |s| s.name == "POST");
    assert_eq!(post.kind, SpanKind::Client as i32);
    assert_eq!(post.parent_span_id, intake.span_id);
    assert_eq!(attr(post, "http.request.method").as_deref(), Some("POST"));
    assert!(attr(post, "url.full").is_some_and(|u| u.ends_with("/hook")));
    assert_eq!(
        attr(post, "http.response.status_code").as_deref(),
        Some("204"),
        "the receiver's answer"
    );
    assert_eq!(
        hex(&post.span_id),
        post_span_id,
        "the receiver's parent is the POST"
    );
}
