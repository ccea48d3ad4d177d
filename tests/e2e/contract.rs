//! The machine-readable contract against the real service: the committed JSON Schemas
//! (docs/schemas) are what the types generate, docs/asyncapi.yaml names every one of
//! them, and real replies, errors and stream messages validate against them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_nats::HeaderMap;
use cart_proto::schema;
use cart_tests::*;
use serde_json::{json, Value};

use crate::{req, PROJECT};

mod admin;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// Every schema of docs/schemas, compiled, by file name without `.json`.
struct Schemas(BTreeMap<&'static str, jsonschema::Validator>);

impl Schemas {
    fn load() -> Schemas {
        let mut validators = BTreeMap::new();
        for file in schema::all() {
            let path = docs().join(format!("schemas/{}.json", file.name));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run `make schemas`)", path.display()));
            let schema: Value = serde_json::from_str(&text).unwrap();
            let validator = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", file.name));
            validators.insert(file.name, validator);
        }
        Schemas(validators)
    }

    /// Panics with every violation when `value` does not match schema `name`.
    fn check(&self, name: &str, value: &Value) {
        let validator = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no schema {name}"));
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "does not match docs/schemas/{name}.json:\n  {}\n{value:#}",
            errors.join("\n  ")
        );
    }

    fn rejects(&self, name: &str, value: &Value) -> bool {
        !self.0[name].is_valid(value)
    }
}

fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// Sends a JSON request that the request schema `request` must accept, and checks the
/// reply: an OK reply against `reply`, an error against `error.json` and its headers.
/// Returns the reply body and whether it was an error.
async fn call(
    s: &Schemas,
    w: &World,
    endpoint: &str,
    request: Option<&str>,
    body: Value,
    reply: &str,
) -> (Value, bool) {
    if let Some(request) = request {
        s.check(request, &body);
    }
    let (headers, bytes) = w
        .client
        .raw(
            endpoint,
            HeaderMap::new(),
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    let value: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{endpoint} replied with no JSON: {e}"));
    let headers = headers.as_ref();
    match header(headers, "Nats-Service-Error-Code") {
        None => {
            s.check(reply, &value);
            // feed.status has sent no Content-Type so far (issue 11, the edge's part).
            if reply != "feed-status" {
                assert_eq!(
                    header(headers, "Content-Type").as_deref(),
                    Some("application/json"),
                    "{endpoint}"
                );
            }
            (value, false)
        }
        Some(status) => {
            check_error(s, headers, &status, &value);
            (value, true)
        }
    }
}

/// An error reply: the body matches error.json and the headers carry the same values,
/// as docs/asyncapi.yaml's ErrorHeaders say.
fn check_error(s: &Schemas, headers: Option<&HeaderMap>, status: &str, body: &Value) {
    s.check("error", body);
    assert_eq!(status, body["statusCode"].to_string());
    assert_eq!(
        header(headers, "Cart-Error-Code").as_deref(),
        Some(body["errorCode"].to_string().as_str())
    );
    assert_eq!(
        header(headers, "Nats-Service-Error").as_deref(),
        body["errorMessage"].as_str()
    );
    assert_eq!(
        header(headers, "Content-Type").as_deref(),
        Some("application/json")
    );
    let message = body["errorMessage"].as_str().unwrap();
    let prefix = format!("[0401-{:04}]: ", body["errorCode"].as_u64().unwrap());
    assert!(message.starts_with(&prefix), "{message}");
}

async fn ok(
    s: &Schemas,
    w: &World,
    endpoint: &str,
    request: &str,
    body: Value,
    reply: &str,
) -> Value {
    let (value, error) = call(s, w, endpoint, Some(request), body, reply).await;
    assert!(!error, "{endpoint} refused: {value}");
    value
}

async fn refused(s: &Schemas, w: &World, endpoint: &str, body: Value) -> Value {
    let (value, error) = call(s, w, endpoint, None, body, "error").await;
    assert!(error, "{endpoint} accepted: {value}");
    value
}

/// One message of a JetStream stream: subject, headers and JSON body.
struct Streamed {
    subject: String,
    headers: HeaderMap,
    body: Value,
}

/// Reads a stream until it holds `at_least` messages (at most 200 reads, 50 ms apart).
async fn read_stream(w: &World, stream: &str, at_least: usize) -> Vec<Streamed> {
    let js = async_nats::jetstream::new(w.client.nats.clone());
    for _ in 0..200 {
        if let Ok(mut s) = js.get_stream(stream).await {
            let state = s.info().await.expect("stream info").state.clone();
            if state.messages as usize >= at_least {
                let mut out = vec![];
                for seq in state.first_sequence..=state.last_sequence {
                    let m = s.get_raw_message(seq).await.expect("message");
                    out.push(Streamed {
                        subject: m.subject.to_string(),
                        headers: m.headers.clone(),
                        body: serde_json::from_slice(&m.payload).expect("JSON body"),
                    });
                }
                return out;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("stream {stream} never held {at_least} messages");
}

fn stream_header(m: &Streamed, name: &str) -> String {
    header(Some(&m.headers), name).unwrap_or_else(|| panic!("{} has no {name}", m.subject))
}

#[test]
fn committed_schemas_are_what_the_types_generate() {
    let problems = schema::check_dir(&docs().join("schemas")).unwrap();
    assert!(
        problems.is_empty(),
        "docs/schemas drifted from the types; run `make schemas`:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_asyncapi_document_references_every_schema_and_only_existing_ones() {
    let text = std::fs::read_to_string(docs().join("asyncapi.yaml")).unwrap();
    for file in schema::all() {
        let reference = format!("'./schemas/{}.json'", file.name);
        assert!(
            text.contains(&reference),
            "asyncapi.yaml never uses {reference}"
        );
    }
    for reference in text.split("./schemas/").skip(1) {
        let name = reference.split('\'').next().unwrap();
        assert!(
            docs().join("schemas").join(name).is_file(),
            "asyncapi.yaml references a missing schemas/{name}"
        );
    }
}

#[test]
fn the_schemas_are_not_vacuous() {
    let s = Schemas::load();
    assert!(s.rejects("error", &json!({"statusCode": 404})));
    assert!(s.rejects("cart", &json!({"cart_id": 5})));
    assert!(s.rejects(
        "fill-request",
        &json!({"project_id": 1, "user_id": "u", "colour": 1})
    ));
    assert!(s.rejects("fill-request", &json!({"user_id": "u"})));
    assert!(s.rejects("confirm-payment-request", &json!({"project_id": 1, "order_id": 1, "invoice_id": "i", "amount": 5.99, "currency": "USD"})));
    assert!(s.rejects("order-event-envelope", &json!({"event_id": "e"})));
    assert!(s.rejects("event-envelope", &json!({"event_id": "e", "version": 1})));
    assert!(s.rejects("feed-status", &json!({"stream": "S", "relay": {}})));
}

#[tokio::test]
async fn every_subject_the_service_announces_is_in_the_asyncapi_document() {
    let w = World::start().await;
    let text = std::fs::read_to_string(docs().join("asyncapi.yaml")).unwrap();
    // Every test's service has this name and the same endpoints, under its own prefix.
    let reply = w
        .client
        .nats
        .request("$SRV.INFO.cart-test", "".into())
        .await
        .expect("$SRV.INFO answers");
    let info: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(info["type"], "io.nats.micro.v1.info_response");
    let endpoints = info["endpoints"].as_array().expect("endpoints");
    assert!(endpoints.len() > 20, "{info}");
    for endpoint in endpoints {
        let subject = endpoint["subject"].as_str().unwrap();
        // The tests' prefixes are three tokens, `t<12 hex digits>.cart.v1`.
        let name = subject.splitn(4, '.').nth(3).unwrap_or_default();
        let address = format!("address: '{{prefix}}.{name}'");
        assert!(text.contains(&address), "asyncapi.yaml has no {address}");
        assert_eq!(endpoint["queue_group"], "q", "{endpoint}");
    }
    w.finish().await;
}

#[tokio::test]
async fn real_replies_errors_and_stream_messages_match_the_schemas() {
    let s = Schemas::load();
    let w = World::start_with(|c| {
        c.relay = true;
        c.projections = true;
    })
    .await;
    let ann = |extra: Value| req("ann", None, extra);

    // Cart commands and queries.
    let promo = json!({"project_id": PROJECT, "promo_code": {"code": "WINTER", "discount": {"percent": "10"}}});
    w.client
        .json("admin.catalog.promocode.create", None, promo)
        .await
        .expect("promo code created");
    let fill = json!({"items": [{"sku": "cup01", "quantity": 2}, {"sku": "nope", "quantity": 1}]});
    let cart = ok(&s, &w, "fill", "fill-request", ann(fill), "cart").await;
    assert_eq!(cart["warnings"][0]["errorCode"], 4001);
    let put = json!({"sku": "starter_pack", "quantity": 1});
    ok(&s, &w, "item.put", "put-item-request", ann(put), "cart").await;
    let redeem = json!({"coupon_code": "WINTER"});
    let cart = ok(
        &s,
        &w,
        "promocode.redeem",
        "redeem-promo-code-request",
        ann(redeem),
        "cart",
    )
    .await;
    assert_eq!(cart["promo_code"]["applies"], true);
    let by_code = json!({"project_id": PROJECT, "user_id": "ann", "code": "WINTER"});
    ok(
        &s,
        &w,
        "promocode.rewards",
        "promo-code-rewards-request",
        by_code.clone(),
        "rewards",
    )
    .await;
    ok(
        &s,
        &w,
        "promocode.verify",
        "verify-promo-code-request",
        by_code,
        "promo-code-verification",
    )
    .await;
    let old = json!({"at_version": 2});
    ok(&s, &w, "get", "get-cart-request", ann(old), "cart").await;
    ok(
        &s,
        &w,
        "item.delete",
        "delete-item-request",
        ann(json!({"sku": "starter_pack"})),
        "cart",
    )
    .await;
    ok(
        &s,
        &w,
        "promocode.remove",
        "remove-promo-code-request",
        ann(json!({})),
        "cart",
    )
    .await;
    ok(&s, &w, "get", "get-cart-request", ann(json!({})), "cart").await;

    // Errors of every kind of endpoint.
    refused(
        &s,
        &w,
        "item.put",
        ann(json!({"sku": "nope", "quantity": 1})),
    )
    .await;
    refused(
        &s,
        &w,
        "get",
        json!({"project_id": PROJECT, "user_id": "ann", "colour": 1}),
    )
    .await;
    refused(&s, &w, "get", ann(json!({"cart_id": "never"}))).await;
    refused(
        &s,
        &w,
        "promocode.verify",
        json!({"project_id": PROJECT, "user_id": "ann", "code": "NOPE"}),
    )
    .await;
    refused(&s, &w, "order.get", ann(json!({"order_id": 999}))).await;
    refused(&s, &w, "payment.confirm", json!({"project_id": PROJECT})).await;

    // Orders and payments: a paid and refunded order, and a single-item one.
    let created = ok(
        &s,
        &w,
        "order.checkout",
        "checkout-request",
        ann(json!({"custom_parameters": {"k": "v"}})),
        "checkout-reply",
    )
    .await;
    let id = created["order_id"].as_u64().unwrap();
    let by_token = json!({"token": created["token"]});
    let order = ok(
        &s,
        &w,
        "order.get",
        "get-order-request",
        ann(by_token),
        "order",
    )
    .await;
    let total = order["content"]["price"]["amount"].clone();
    let pay = json!({"project_id": PROJECT, "order_id": id, "invoice_id": "inv-1", "amount": total, "currency": "USD"});
    ok(
        &s,
        &w,
        "payment.confirm",
        "confirm-payment-request",
        pay,
        "order",
    )
    .await;
    let item = json!({"sku": "cup01", "quantity": 1});
    ok(
        &s,
        &w,
        "order.checkout_item",
        "checkout-item-request",
        ann(item),
        "checkout-reply",
    )
    .await;
    let refund = json!({"project_id": PROJECT, "order_id": id, "reason": "changed mind"});
    let canceled = ok(
        &s,
        &w,
        "payment.cancel",
        "cancel-order-request",
        refund,
        "order",
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    let search = ann(json!({"limit": 10, "created_date_from": "2020-01-01"}));
    let found = ok(
        &s,
        &w,
        "order.search",
        "search-orders-request",
        search,
        "order-search-reply",
    )
    .await;
    assert_eq!(found["total_items_count"], 2);

    // The streams: every cart event and every order event, with their headers.
    let events = read_stream(&w, &w.stream(), 7).await;
    let mut types = std::collections::BTreeSet::new();
    for m in &events {
        s.check("event-envelope", &m.body);
        assert_eq!(
            stream_header(m, "Nats-Msg-Id"),
            m.body["event_id"].as_str().unwrap()
        );
        assert_eq!(
            stream_header(m, "Cart-Event-Type"),
            m.body["event_type"].as_str().unwrap()
        );
        assert_eq!(
            stream_header(m, "Cart-Position"),
            m.body["position"].as_str().unwrap()
        );
        assert_eq!(
            stream_header(m, "Cart-Stream-Id"),
            m.body["stream_id"].as_str().unwrap()
        );
        assert_eq!(
            stream_header(m, "Cart-Version"),
            m.body["version"].to_string()
        );
        assert_eq!(stream_header(m, "Content-Type"), "application/json");
        // Proto3 JSON: the event's member beside the envelope's fields.
        let envelope =
            cart_proto::event::envelope_from_json(&serde_json::to_vec(&m.body).unwrap()).unwrap();
        assert!(envelope.event.is_some(), "{}", m.body);
        types.insert(m.body["event_type"].as_str().unwrap().to_owned());
    }
    for t in [
        "CartOpened",
        "ItemQuantitySet",
        "ItemRemoved",
        "PromoCodeRedeemed",
        "PromoCodeRemoved",
        "CartCleared",
    ] {
        assert!(types.contains(t), "no {t} on the stream: {types:?}");
    }
    let orders = read_stream(&w, &orders_stream_name(&w.prefix), 4).await;
    for m in &orders {
        s.check("order-event-envelope", &m.body);
        assert_eq!(
            stream_header(m, "Nats-Msg-Id"),
            m.body["event_id"].as_str().unwrap()
        );
        assert_eq!(
            stream_header(m, "Order-Event-Type"),
            m.body["event_type"].as_str().unwrap()
        );
        assert_eq!(
            stream_header(m, "Order-Position"),
            m.body["position"].as_str().unwrap()
        );
        assert_eq!(
            stream_header(m, "Order-Version"),
            m.body["version"].to_string()
        );
        assert_eq!(stream_header(m, "Content-Type"), "application/json");
        let status = m.body["status"].as_str().unwrap();
        assert!(
            m.subject
                .ends_with(&format!(".{}.{status}", m.body["order_id"])),
            "{}",
            m.subject
        );
    }

    // feed.status, once the relay has published.
    let (status, error) = call(&s, &w, "feed.status", None, json!({}), "feed-status").await;
    assert!(!error, "{status}");
    assert_eq!(status["stream"], w.stream());
    w.finish().await;
}
