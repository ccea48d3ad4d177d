//! `Cart-Reply: minimal`: a cart command answers with the cart's id, its new version and
//! the fill's warnings instead of the priced cart, in JSON or protobuf; the full cart
//! stays the default; a bad value is a structured 422; the ledger replays what it
//! answered, and the same id with the other mode is another request (409/1102).

use std::path::Path;

use async_nats::HeaderMap;
use cart_proto::{v1, COMMAND_ID_HEADER, REPLY_HEADER};
use cart_tests::{cartctl, header_map, lines, nats_url, Client, World};
use prost::Message;
use serde_json::{json, Value};

use crate::{req, PROJECT};

fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// docs/schemas/minimal-reply.json, compiled.
fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas/minimal-reply.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Panics unless `reply` matches docs/schemas/minimal-reply.json.
fn check_schema(reply: &Value) {
    let errors: Vec<String> = schema().iter_errors(reply).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}: {reply}");
}

#[test]
fn the_minimal_reply_schema_requires_the_id_and_an_integer_version() {
    let schema = schema();
    assert!(schema.is_valid(&json!({"cart_id": "c", "version": 1})));
    assert!(!schema.is_valid(&json!({"cart_id": "c"})));
    assert!(!schema.is_valid(&json!({"cart_id": "c", "version": "1"})));
    assert!(!schema.is_valid(&json!({"cart_id": "c", "version": 1, "warnings": [{"sku": 5}]})));
}

/// Sends a JSON request with `headers`; the raw reply body, or the refusal's status and
/// Xsolla code.
async fn send(
    c: &Client,
    endpoint: &str,
    headers: HeaderMap,
    body: &Value,
) -> Result<Vec<u8>, (u16, u32)> {
    c.send(endpoint, headers, serde_json::to_vec(body).unwrap())
        .await
        .map_err(|r| (r.error.status, r.error.code))
}

/// A JSON command sent with `Cart-Reply: minimal` (and a command id when given); its
/// reply, checked for the JSON content type and against the schema.
async fn minimal(c: &Client, endpoint: &str, id: Option<&str>, body: Value) -> Value {
    let mut headers = header_map(&[(REPLY_HEADER, "minimal")]);
    if let Some(id) = id {
        headers.insert(COMMAND_ID_HEADER, id);
    }
    let (headers, bytes) = c
        .raw(endpoint, headers, serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    let headers = headers.as_ref();
    assert_eq!(
        header(headers, "Nats-Service-Error-Code"),
        None,
        "{endpoint}"
    );
    assert_eq!(
        header(headers, "Content-Type").as_deref(),
        Some("application/json")
    );
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    check_schema(&reply);
    reply
}

/// The cart as it was at `version` (`get` with `at_version`).
async fn at_version(c: &Client, user: &str, version: &Value) -> Value {
    let body = req(user, None, json!({"at_version": version}));
    c.json("get", None, body).await.unwrap()
}

#[tokio::test]
async fn a_minimal_reply_is_the_cart_id_its_new_version_and_the_fill_warnings() {
    let w = World::start().await;
    let c = &w.client;
    let fill = json!({"items": [{"sku": "cup01", "quantity": 2}, {"sku": "hut01", "quantity": 1}]});
    let reply = minimal(c, "fill", None, req("ann", None, fill)).await;
    let fields: Vec<&String> = reply.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["cart_id", "version", "warnings"], "{reply}");
    assert!(reply["cart_id"].as_str().unwrap().starts_with("current-"));
    let warning = &reply["warnings"][0];
    assert_eq!(
        (warning["sku"].clone(), warning["errorCode"].clone()),
        (json!("hut01"), json!(4001))
    );
    // The version is the log's: the cart at that version is the cart after the fill,
    // and no later version exists.
    let version = reply["version"].as_i64().unwrap();
    assert_eq!(version, w.db.count_events().await);
    assert_eq!(
        lines(&at_version(c, "ann", &reply["version"]).await),
        [("cup01".into(), 2)]
    );
    let beyond = req("ann", None, json!({"at_version": version + 1}));
    assert_eq!(
        c.json("get", None, beyond).await.unwrap_err().error.status,
        422
    );

    // Without warnings there is no `warnings` key; the header's name is read in any case
    // and its value too.
    let put = req("ann", None, json!({"sku": "gold", "quantity": 3}));
    let headers = header_map(&[("cart-reply", "Minimal")]);
    let reply: Value =
        serde_json::from_slice(&send(c, "item.put", headers, &put).await.unwrap()).unwrap();
    assert_eq!(
        reply,
        json!({"cart_id": reply["cart_id"].clone(), "version": version + 1})
    );

    // A command that changes nothing keeps the version; delete and clear move it on.
    let noop = req("ann", None, json!({"sku": "sword_common"}));
    let reply = minimal(c, "item.delete", None, noop).await;
    assert_eq!(reply["version"], version + 1);
    let reply = minimal(
        c,
        "item.delete",
        None,
        req("ann", None, json!({"sku": "gold"})),
    )
    .await;
    assert_eq!(reply["version"], version + 2);
    let reply = minimal(c, "clear", None, req("ann", None, json!({}))).await;
    assert_eq!(reply["version"], version + 3);
    assert_eq!(w.db.count_events().await, version + 3);

    // A named cart answers with its own id; promo codes without the cart or `rewards`.
    let promo = json!({"project_id": PROJECT, "promo_code": {"code": "WINTER", "discount": {"percent": "10"}}});
    c.json("admin.catalog.promocode.create", None, promo)
        .await
        .unwrap();
    let put = req(
        "ann",
        Some("wishlist"),
        json!({"sku": "cup01", "quantity": 1}),
    );
    let reply = minimal(c, "item.put", None, put).await;
    assert_eq!(reply["cart_id"], "wishlist");
    let redeem = req("ann", Some("wishlist"), json!({"coupon_code": "WINTER"}));
    let reply = minimal(c, "promocode.redeem", None, redeem).await;
    assert_eq!(reply, json!({"cart_id": "wishlist", "version": 3}));
    let remove = req("ann", Some("wishlist"), json!({}));
    let reply = minimal(c, "promocode.remove", None, remove).await;
    assert_eq!(reply, json!({"cart_id": "wishlist", "version": 4}));
    w.finish().await;
}

#[tokio::test]
async fn the_full_cart_stays_the_default_and_queries_ignore_the_header() {
    let w = World::start().await;
    let c = &w.client;
    let put = |q: u64| req("bob", None, json!({"sku": "cup01", "quantity": q}));
    let cart = c.json("item.put", None, put(1)).await.unwrap();
    assert_eq!(lines(&cart), [("cup01".into(), 1)]);
    assert!(cart["price"]["amount"].is_string(), "{cart}");
    let full = header_map(&[(REPLY_HEADER, "full")]);
    let cart: Value =
        serde_json::from_slice(&send(c, "item.put", full, &put(2)).await.unwrap()).unwrap();
    assert_eq!(lines(&cart), [("cup01".into(), 2)]);
    assert!(cart.get("version").is_none(), "{cart}");

    // A query reads the cart: the header is checked, then has no effect.
    let asking = header_map(&[(REPLY_HEADER, "minimal")]);
    let get = req("bob", None, json!({}));
    let cart: Value = serde_json::from_slice(&send(c, "get", asking, &get).await.unwrap()).unwrap();
    assert_eq!(lines(&cart), [("cup01".into(), 2)]);
    w.finish().await;
}

#[tokio::test]
async fn protobuf_commands_get_a_protobuf_minimal_reply() {
    let w = World::start().await;
    let mut headers = header_map(&[
        ("Content-Type", "application/protobuf"),
        (REPLY_HEADER, "minimal"),
    ]);
    let fill = v1::FillRequest {
        project_id: PROJECT,
        user_id: "pb-user".into(),
        items: vec![
            v1::FillItem {
                sku: "cup01".into(),
                quantity: 3,
            },
            v1::FillItem {
                sku: "nope".into(),
                quantity: 1,
            },
        ],
        ..Default::default()
    };
    let (reply_headers, bytes) = w
        .client
        .raw("fill", headers.clone(), fill.encode_to_vec())
        .await
        .unwrap();
    assert_eq!(
        header(reply_headers.as_ref(), "Content-Type").as_deref(),
        Some("application/protobuf")
    );
    let reply = v1::MinimalReply::decode(bytes.as_slice()).expect("a protobuf MinimalReply");
    assert!(reply.cart_id.starts_with("current-"), "{reply:?}");
    assert_eq!(reply.version, w.db.count_events().await);
    assert_eq!(reply.warnings.len(), 1);
    assert_eq!(
        (reply.warnings[0].sku.as_str(), reply.warnings[0].error_code),
        ("nope", 4001)
    );

    // With a command id, a retry gets the same bytes and writes nothing.
    headers.insert(COMMAND_ID_HEADER, "pb-1");
    let clear = v1::ClearRequest {
        project_id: PROJECT,
        user_id: "pb-user".into(),
        ..Default::default()
    };
    let first = w
        .client
        .send("clear", headers.clone(), clear.encode_to_vec())
        .await
        .unwrap();
    let cleared = v1::MinimalReply::decode(first.as_slice()).unwrap();
    assert_eq!(cleared.version, reply.version + 1);
    assert!(cleared.warnings.is_empty());
    let again = w
        .client
        .send("clear", headers, clear.encode_to_vec())
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(w.db.count_events().await, cleared.version);
    w.finish().await;
}

#[tokio::test]
async fn a_bad_reply_header_is_a_structured_422_on_every_endpoint_and_writes_nothing() {
    let w = World::start().await;
    let c = &w.client;
    let put = req("eve", None, json!({"sku": "cup01", "quantity": 1}));
    for pairs in [
        &[(REPLY_HEADER, "compact")][..],
        &[(REPLY_HEADER, "")],
        &[(REPLY_HEADER, "return=minimal")],
        &[("cart-reply", "minimal"), ("Cart-Reply", "full")],
    ] {
        let refusal = c
            .send(
                "item.put",
                header_map(pairs),
                serde_json::to_vec(&put).unwrap(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (refusal.error.status, refusal.error.code),
            (422, 1102),
            "{pairs:?}"
        );
        assert!(
            refusal.error.message().contains("The header Cart-Reply "),
            "{}",
            refusal.error.message()
        );
        assert_eq!(refusal.header_status, "422");
    }
    assert_eq!(w.db.count_events().await, 0);
    // Checked everywhere, like Cart-Command-Id: a query and an order endpoint too.
    let bad = || header_map(&[(REPLY_HEADER, "compact")]);
    assert_eq!(
        send(c, "get", bad(), &req("eve", None, json!({})))
            .await
            .unwrap_err(),
        (422, 1102)
    );
    let search = req("eve", None, json!({}));
    assert_eq!(
        send(c, "order.search", bad(), &search).await.unwrap_err(),
        (422, 1102)
    );
    w.finish().await;
}

#[tokio::test]
async fn a_retry_gets_what_was_recorded_and_the_other_mode_is_another_request() {
    let w = World::start().await;
    let c = &w.client;
    let put = req("kim", None, json!({"sku": "cup01", "quantity": 2}));
    let first = minimal(c, "item.put", Some("m-1"), put.clone()).await;
    let events = w.db.count_events().await;
    // The cart moves on; the retry still gets the version it was answered first.
    c.json(
        "item.put",
        None,
        req("kim", None, json!({"sku": "gold", "quantity": 1})),
    )
    .await
    .unwrap();
    let again = minimal(c, "item.put", Some("m-1"), put.clone()).await;
    assert_eq!(again, first);
    assert_eq!(w.db.count_events().await, events + 1);
    // The same id asking for the full cart: the ledger holds a minimal reply, so the
    // request is another one, refused, and nothing is applied.
    let refusal = c
        .json("item.put", Some("m-1"), put.clone())
        .await
        .unwrap_err();
    assert_eq!((refusal.error.status, refusal.error.code), (409, 1102));
    assert!(refusal.error.message().contains("m-1"));

    // And the other way round: a full reply recorded, a minimal retry refused.
    let put = req("kim", None, json!({"sku": "cup01", "quantity": 5}));
    let full = c.json("item.put", Some("f-1"), put.clone()).await.unwrap();
    assert_eq!(
        c.json("item.put", Some("f-1"), put.clone()).await.unwrap(),
        full
    );
    let mut headers = header_map(&[(REPLY_HEADER, "minimal")]);
    headers.insert(COMMAND_ID_HEADER, "f-1");
    assert_eq!(
        send(c, "item.put", headers, &put).await.unwrap_err(),
        (409, 1102)
    );
    // `Cart-Reply: full` is the default spelled out: the same request as none.
    let mut headers = header_map(&[(REPLY_HEADER, "full")]);
    headers.insert(COMMAND_ID_HEADER, "f-1");
    let explicit: Value =
        serde_json::from_slice(&send(c, "item.put", headers, &put).await.unwrap()).unwrap();
    assert_eq!(explicit, full);
    assert_eq!(w.db.count_events().await, events + 2);
    w.finish().await;
}

#[tokio::test]
async fn cartctl_minimal_prints_the_minimal_reply_and_refuses_it_on_a_query() {
    let w = World::start().await;
    let url = nats_url();
    let base = [
        "--nats-url",
        url.as_str(),
        "--subject-prefix",
        w.prefix.as_str(),
        "--user",
        "cli",
    ];
    let run = |extra: &'static [&'static str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        async move { cartctl(&args).await }
    };
    let out = run(&["--minimal", "put", "gold", "3"]).await;
    assert!(out.status.success(), "{out:?}");
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["version"], 2, "{reply}");
    assert!(reply.get("items").is_none(), "{reply}");
    let out = run(&["--minimal", "--protobuf", "fill", "cup01=1", "hut01=1"]).await;
    assert!(out.status.success(), "{out:?}");
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["version"], 3, "{reply}");
    assert_eq!(reply["warnings"][0]["errorCode"], 4001, "{reply}");
    let out = run(&["--minimal", "get"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--minimal applies only to cart commands")
    );
    w.finish().await;
}
