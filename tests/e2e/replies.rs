//! The reply cache of gets (`crates/cartd/src/app/rendered.rs`): a cached get is the
//! uncached render byte for byte, in JSON and in protobuf; it never hides a change made
//! by another instance or written straight into the log (gets still read PostgreSQL);
//! and a paid order that changes what the cart counts changes the get.

use async_nats::HeaderMap;
use cart_proto::v1;
use cart_tests::*;
use prost::Message;
use serde_json::{json, Value};

use crate::{req, PROJECT};

/// A second instance on the same database, on subjects of its own, that renders every
/// get (no reply cache): the reference the cached instance's replies must equal.
async fn uncached(w: &mut World) -> Client {
    let prefix = unique_prefix();
    let mut config = config(&w.db.url, &nats_url(), &prefix);
    config.cache_reply_bytes = 0;
    let server = cartd::start(&config).await.expect("start cartd");
    w.servers.push(server);
    Client::connect(&nats_url(), &prefix).await
}

fn protobuf() -> HeaderMap {
    header_map(&[("Content-Type", "application/protobuf")])
}

/// The bytes of a get, in JSON or protobuf.
async fn get(client: &Client, user: &str, pb: bool) -> Vec<u8> {
    if pb {
        let body = v1::GetCartRequest {
            project_id: PROJECT,
            user_id: user.into(),
            ..Default::default()
        };
        let bytes = client.send("get", protobuf(), body.encode_to_vec()).await;
        let bytes = bytes.expect("get answers");
        v1::Cart::decode(bytes.as_slice()).expect("a protobuf cart");
        bytes
    } else {
        let body = serde_json::to_vec(&req(user, None, json!({}))).unwrap();
        client
            .send("get", HeaderMap::new(), body)
            .await
            .expect("get answers")
    }
}

/// The bytes of a command's full reply, in JSON or protobuf.
async fn put(client: &Client, user: &str, sku: &str, quantity: i64, pb: bool) -> Vec<u8> {
    let reply = if pb {
        let body = v1::PutItemRequest {
            project_id: PROJECT,
            user_id: user.into(),
            sku: sku.into(),
            quantity,
            ..Default::default()
        };
        client
            .send("item.put", protobuf(), body.encode_to_vec())
            .await
    } else {
        let body = req(user, None, json!({"sku": sku, "quantity": quantity}));
        let body = serde_json::to_vec(&body).unwrap();
        client.send("item.put", HeaderMap::new(), body).await
    };
    reply.expect("the put is accepted")
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a JSON cart")
}

#[tokio::test]
async fn a_cached_get_is_the_uncached_render_byte_for_byte_in_each_encoding() {
    let mut w = World::start().await;
    let reference = uncached(&mut w).await;
    for (user, pb) in [("json-user", false), ("pb-user", true)] {
        // A command's full reply is the get of its version: it seeds the cache.
        let reply = put(&w.client, user, "cup01", 2, pb).await;
        let seeded = get(&w.client, user, pb).await;
        let rendered = get(&reference, user, pb).await;
        assert_eq!(seeded, rendered, "{user}: a seeded get");
        assert_eq!(reply, rendered, "{user}: the command's reply");
        // Rendered by a get, then served from the cache.
        put(&w.client, user, "t-shirt01", 1, pb).await;
        let first = get(&reference, user, pb).await;
        assert_eq!(get(&w.client, user, pb).await, first, "{user}: a hit");
        assert_eq!(get(&w.client, user, pb).await, first, "{user}: another hit");
    }
    // A fill's reply carries its warnings, which a get never has: the reply is not kept
    // as the get of the version it made, the get after it is rendered.
    let items = json!({"items": [{"sku": "cup01", "quantity": 4}, {"sku": "nope", "quantity": 1}]});
    let filled = w
        .client
        .json("fill", None, req("json-user", None, items))
        .await
        .unwrap();
    assert_eq!(filled["warnings"][0]["sku"], "nope");
    let after = get(&w.client, "json-user", false).await;
    assert_eq!(after, get(&reference, "json-user", false).await);
    assert!(json_of(&after)["warnings"].is_null(), "{}", json_of(&after));
    // Another view of the same cart is another reply.
    let euros = w
        .client
        .json(
            "get",
            None,
            req("json-user", None, json!({"currency": "EUR"})),
        )
        .await
        .unwrap();
    assert_ne!(euros, json_of(&after));
    assert_eq!(get(&w.client, "json-user", false).await, after);
    w.finish().await;
}

#[tokio::test]
async fn a_get_shows_what_another_instance_or_the_log_changed_since_it_was_cached() {
    let mut w = World::start().await;
    let other = uncached(&mut w).await;
    put(&w.client, "ann", "cup01", 1, false).await;
    assert_eq!(
        lines(&json_of(&get(&w.client, "ann", false).await)),
        [("cup01".into(), 1)]
    );
    // Another instance changes the cart: the next get here shows it.
    put(&other, "ann", "cup01", 5, false).await;
    let seen = json_of(&get(&w.client, "ann", false).await);
    assert_eq!(lines(&seen), [("cup01".into(), 5)]);

    // An append straight into the log (as any writer of the database could).
    let store = cart_store::EventStore::new(w.db.pool().await);
    let project = cart_domain::ProjectId::parse(PROJECT).unwrap();
    let user = cart_domain::UserId::parse("ann").unwrap();
    let key = cart_store::StreamKey::new(
        project,
        user.clone(),
        cartd::current_cart_id(project, &user),
    );
    let loaded = store.load(&key).await.unwrap();
    let command = cart_domain::CartCommand::PutItem {
        sku: cart_domain::Sku::parse("t-shirt01").unwrap(),
        quantity: cart_domain::Quantity::parse(3).unwrap(),
        listed: true,
    };
    let events = cart_domain::decide(&loaded.cart, &command).unwrap();
    let cart = events.iter().fold(loaded.cart.clone(), cart_domain::apply);
    store
        .append(cart_store::Append {
            key: &key,
            expected: loaded.version,
            events: &events,
            cart: &cart,
            command: None,
            metadata: json!({}),
        })
        .await
        .unwrap();
    let seen = get(&w.client, "ann", false).await;
    assert_eq!(
        lines(&json_of(&seen)),
        [("cup01".into(), 5), ("t-shirt01".into(), 3)]
    );
    assert_eq!(seen, get(&other, "ann", false).await);
    w.finish().await;
}

/// A command decided on this instance's cached cart that changes nothing (a delete of
/// a line the cached cart lacks) stands only while the cart is still at the cached
/// version: here another instance added that line since, so the delete is decided again
/// on the log, and takes the line away.
#[tokio::test]
async fn a_no_op_on_a_cached_cart_that_another_instance_changed_is_decided_again() {
    let mut w = World::start().await;
    let other = uncached(&mut w).await;
    put(&w.client, "cyd", "cup01", 1, false).await;
    put(&other, "cyd", "t-shirt01", 2, false).await;
    let body = req("cyd", None, json!({"sku": "t-shirt01"}));
    let after = w.client.json("item.delete", None, body).await.unwrap();
    assert_eq!(lines(&after), [("cup01".into(), 1)], "{after}");
    let seen = json_of(&get(&other, "cyd", false).await);
    assert_eq!(lines(&seen), [("cup01".into(), 1)]);
    // On an unchanged cart the same no-op is answered as it is.
    let body = req("cyd", None, json!({"sku": "t-shirt01"}));
    let again = w.client.json("item.delete", None, body).await.unwrap();
    assert_eq!(lines(&again), [("cup01".into(), 1)]);
    w.finish().await;
}

#[tokio::test]
async fn a_paid_order_that_changes_the_counts_changes_the_get() {
    let w = World::start().await;
    w.client
        .json(
            "admin.catalog.item.create",
            None,
            json!({"project_id": PROJECT, "item": {
                "sku": "relic", "type": "virtual_good", "name": {"en": "relic"},
                "prices": [{"currency": "USD", "amount": "10", "is_default": true}],
                "limits": {"per_item": 3}
            }}),
        )
        .await
        .unwrap();
    let available = |cart: &Value| cart["items"][0]["limits"]["per_item"]["available"].clone();
    put(&w.client, "bob", "relic", 1, false).await;
    let before = get(&w.client, "bob", false).await;
    assert_eq!(available(&json_of(&before)), 3, "{}", json_of(&before));
    assert_eq!(get(&w.client, "bob", false).await, before, "a hit");
    // Ann buys one: Bob's cart is at the same version, but one relic fewer is left.
    put(&w.client, "ann", "relic", 1, false).await;
    let order = w
        .client
        .json("order.checkout", None, req("ann", None, json!({})))
        .await
        .unwrap();
    let id = order["order_id"].as_u64().unwrap();
    let payment = json!({"project_id": PROJECT, "order_id": id, "invoice_id": "inv",
        "amount": "10.00", "currency": "USD"});
    w.client
        .json("payment.confirm", None, payment)
        .await
        .unwrap();
    let after = get(&w.client, "bob", false).await;
    assert_eq!(available(&json_of(&after)), 2, "{}", json_of(&after));
    assert_eq!(json_of(&after)["cart_id"], json_of(&before)["cart_id"]);
    assert_eq!(get(&w.client, "bob", false).await, after, "a hit again");
    w.finish().await;
}
