//! The one front door (docs/protocol.md, "Requests and replies"): whatever arrives on
//! any subject gets a structured reply, header values stay valid, the endpoints keep
//! serving, and the header and body rules are the same on every endpoint.

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::HeaderMap;
use cart_proto::{v1, ErrorReply};
use cart_tests::{header_map, World};
use futures::future::join_all;
use prost::Message;
use serde_json::json;

use crate::{req, PROJECT};

/// Every subject the service answers, after the prefix.
const SUBJECTS: [&str; 30] = [
    "fill",
    "item.put",
    "item.delete",
    "clear",
    "get",
    "promocode.redeem",
    "promocode.remove",
    "promocode.rewards",
    "promocode.verify",
    "feed.status",
    "order.checkout",
    "order.checkout_item",
    "order.checkout_free",
    "order.get",
    "order.search",
    "payment.confirm",
    "payment.cancel",
    "admin.catalog.item.create",
    "admin.catalog.item.update",
    "admin.catalog.item.delete",
    "admin.catalog.promotion.create",
    "admin.catalog.promotion.update",
    "admin.catalog.promotion.delete",
    "admin.catalog.promocode.create",
    "admin.catalog.promocode.update",
    "admin.catalog.promocode.delete",
    "admin.catalog.import",
    "admin.catalog.export",
    "admin.catalog.get",
    "admin.catalog.changes",
];

#[test]
fn the_list_of_subjects_is_the_services() {
    let mut ours = SUBJECTS.to_vec();
    let mut theirs = cartd::endpoint_subjects();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
}

/// A JSON body whose unknown property name holds CR and LF: the refusal quotes it.
const CRLF_BODY: &[u8] = b"{\"project_id\":44056,\"user_id\":\"u\",\"bad\\r\\nX: y\":1}";

fn header(headers: &Option<HeaderMap>, name: &str) -> Option<String> {
    headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// Sends `body` and checks that the reply is a structured error: JSON body, error
/// headers whose message is the body's, with no line break. Returns the error.
async fn structured_error(w: &World, subject: &str, headers: HeaderMap, body: &[u8]) -> ErrorReply {
    let (reply_headers, reply) = w
        .client
        .raw(subject, headers, body.to_vec())
        .await
        .unwrap_or_else(|e| panic!("{subject} did not answer: {e}"));
    let error = ErrorReply::from_body(&reply).unwrap_or_else(|| {
        panic!(
            "{subject}: not a JSON error: {:?}",
            String::from_utf8_lossy(&reply)
        )
    });
    assert_eq!(
        header(&reply_headers, NATS_SERVICE_ERROR_CODE),
        Some(error.status.to_string()),
        "{subject}"
    );
    let message = header(&reply_headers, NATS_SERVICE_ERROR).expect("an error message header");
    assert!(!message.contains(['\r', '\n']), "{subject}: {message:?}");
    assert_eq!(
        header(&reply_headers, "Content-Type").as_deref(),
        Some("application/json"),
        "{subject}"
    );
    error
}

#[tokio::test]
async fn line_breaks_in_a_property_name_get_a_structured_refusal_and_every_endpoint_keeps_serving()
{
    let w = World::start().await;
    // On a cart, an order and an admin subject: a refusal, never silence or a panic.
    for subject in ["fill", "order.checkout", "admin.catalog.item.create"] {
        let error = structured_error(&w, subject, HeaderMap::new(), CRLF_BODY).await;
        assert!(matches!(error.status, 400 | 422), "{subject}: {error:?}");
        assert_eq!(error.code, 1102, "{subject}");
    }
    // A burst of 200 on each subject (but feed.status, which reads no request data).
    // Subject after subject, so that no request waits behind thousands of others.
    for subject in SUBJECTS.iter().filter(|s| **s != "feed.status") {
        let burst = (0..200).map(|_| w.client.raw(subject, HeaderMap::new(), CRLF_BODY.to_vec()));
        for reply in join_all(burst).await {
            let (headers, body) = reply.expect("every request of the burst is answered");
            let status: u16 = header(&headers, NATS_SERVICE_ERROR_CODE)
                .expect("a refusal")
                .parse()
                .unwrap();
            let body = String::from_utf8_lossy(&body);
            assert!((400..500).contains(&status), "{subject}: {status} {body}");
        }
    }
    // Every endpoint is still subscribed and answering.
    for subject in SUBJECTS.iter().filter(|s| **s != "feed.status") {
        structured_error(&w, subject, HeaderMap::new(), CRLF_BODY).await;
    }
    // And valid requests are served as before.
    let cart = w
        .client
        .json(
            "fill",
            None,
            req(
                "after",
                None,
                json!({"items": [{"sku": "cup01", "quantity": 1}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(cart["items"][0]["sku"], "cup01");
    w.client
        .json("order.search", None, req("after", None, json!({})))
        .await
        .unwrap();
    w.client
        .json("admin.catalog.export", None, json!({"project_id": PROJECT}))
        .await
        .unwrap();
    w.client.json("feed.status", None, json!({})).await.unwrap();
    w.finish().await;
}

#[tokio::test]
async fn a_lower_case_cart_command_id_is_honoured() {
    let w = World::start().await;
    let fill = serde_json::to_vec(&req(
        "lc",
        None,
        json!({"items": [{"sku": "cup01", "quantity": 2}]}),
    ))
    .unwrap();
    let first = w
        .client
        .send(
            "fill",
            header_map(&[("cart-command-id", "lc-1")]),
            fill.clone(),
        )
        .await
        .unwrap();
    let events = w.db.count_events().await;
    let retry = w
        .client
        .send(
            "fill",
            header_map(&[("cart-command-id", "lc-1")]),
            fill.clone(),
        )
        .await
        .unwrap();
    assert_eq!(retry, first, "the retry gets the first reply");
    assert_eq!(w.db.count_events().await, events, "and changes nothing");
    let cart = w
        .client
        .json("get", None, req("lc", None, json!({})))
        .await
        .unwrap();
    assert_eq!(cart["items"][0]["quantity"], 2);
    // Any spelling of the name is the same header: reusing the id for another request
    // is refused, as it is with the canonical spelling.
    let other = serde_json::to_vec(&req(
        "lc",
        None,
        json!({"items": [{"sku": "cup01", "quantity": 3}]}),
    ))
    .unwrap();
    let reused = w
        .client
        .send("fill", header_map(&[("CART-COMMAND-ID", "lc-1")]), other)
        .await
        .unwrap_err();
    assert_eq!((reused.error.status, reused.error.code), (409, 1102));
    // The same for a checkout: one order, whatever the case of the header.
    let checkout = serde_json::to_vec(&req("lc", None, json!({}))).unwrap();
    let order = w
        .client
        .send(
            "order.checkout",
            header_map(&[("cart-command-id", "lc-o")]),
            checkout.clone(),
        )
        .await
        .unwrap();
    let again = w
        .client
        .send(
            "order.checkout",
            header_map(&[("Cart-Command-Id", "lc-o")]),
            checkout,
        )
        .await
        .unwrap();
    assert_eq!(again, order);
    let found = w
        .client
        .json("order.search", None, req("lc", None, json!({})))
        .await
        .unwrap();
    assert_eq!(found["total_items_count"], 1);
    w.finish().await;
}

#[tokio::test]
async fn an_invalid_command_id_is_refused_on_queries_too() {
    let w = World::start().await;
    let body = serde_json::to_vec(&req("q", None, json!({}))).unwrap();
    for subject in ["get", "order.search", "admin.catalog.export"] {
        for id in ["has space", "", &"x".repeat(129)] {
            let error =
                structured_error(&w, subject, header_map(&[("Cart-Command-Id", id)]), &body).await;
            assert_eq!((error.status, error.code), (422, 1102), "{subject} {id:?}");
            assert!(error.text.contains("Cart-Command-Id"), "{}", error.text);
        }
    }
    // A valid one is accepted and changes nothing.
    let cart = w
        .client
        .send("get", header_map(&[("cart-command-id", "fine")]), body)
        .await
        .unwrap();
    assert!(!cart.is_empty());
    w.finish().await;
}

#[tokio::test]
async fn protobuf_with_a_charset_parameter_is_protobuf() {
    let w = World::start().await;
    let request = v1::FillRequest {
        project_id: PROJECT,
        user_id: "pb-charset".into(),
        items: vec![v1::FillItem {
            sku: "cup01".into(),
            quantity: 2,
        }],
        ..Default::default()
    };
    for content_type in [
        "application/protobuf; charset=utf-8",
        "Application/Protobuf;charset=\"UTF-8\"",
    ] {
        let (headers, reply) = w
            .client
            .raw(
                "fill",
                header_map(&[("Content-Type", content_type)]),
                request.encode_to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(
            header(&headers, NATS_SERVICE_ERROR_CODE),
            None,
            "{content_type}"
        );
        assert_eq!(
            header(&headers, "Content-Type").as_deref(),
            Some("application/protobuf")
        );
        let cart = v1::Cart::decode(reply.as_slice()).expect("a protobuf Cart");
        assert_eq!(cart.items[0].sku, "cup01");
    }
    w.finish().await;
}

#[tokio::test]
async fn an_admin_body_over_64_kib_is_too_large_and_imports_nothing() {
    let w = World::start().await;
    let padding = "x".repeat(cartd::MAX_PAYLOAD);
    let body = json!({
        "catalog": {"projects": [{"project_id": 77, "items": [{
            "sku": "big", "type": "virtual_good", "name": {"en": padding},
            "prices": [{"currency": "USD", "amount": "1", "is_default": true}]
        }]}]},
    });
    let error = structured_error(
        &w,
        "admin.catalog.import",
        HeaderMap::new(),
        &serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!((error.status, error.code), (413, 1102));
    let exported = w
        .client
        .json("admin.catalog.export", None, json!({"project_id": 77}))
        .await
        .unwrap();
    assert_eq!(exported["projects"][0]["items"], json!([]));
    w.finish().await;
}

#[tokio::test]
async fn feed_status_replies_carry_a_content_type() {
    let w = World::start().await;
    let (headers, body) = w
        .client
        .raw("feed.status", HeaderMap::new(), b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        header(&headers, "Content-Type").as_deref(),
        Some("application/json")
    );
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(status.get("relay").is_some(), "{status}");
    w.finish().await;
}
