//! A cart is priced against the current catalog when it is read: admin changes of
//! prices, of `enabled` and of promotions show in the next get of an existing cart, on
//! the instance that took the change at once and on another instance within the
//! catalog cache's poll interval.

use std::time::{Duration, Instant};

use cart_tests::{Client, World};
use serde_json::{json, Value};

use crate::{req, PROJECT};

async fn admin(c: &Client, endpoint: &str, body: Value) -> Value {
    c.json(&format!("admin.catalog.{endpoint}"), None, body)
        .await
        .unwrap_or_else(|e| panic!("{endpoint} refused: {e:?}"))
}

/// The stored document of an item of the demo project.
async fn item_document(c: &Client, sku: &str) -> Value {
    admin(
        c,
        "get",
        json!({"project_id": PROJECT, "kind": "item", "key": sku}),
    )
    .await["document"]
        .clone()
}

async fn update_item(c: &Client, item: Value) {
    admin(
        c,
        "item.update",
        json!({"project_id": PROJECT, "item": item}),
    )
    .await;
}

/// The item with its USD price set to `usd` (the default price).
fn with_usd(mut item: Value, usd: &str) -> Value {
    for price in item["prices"].as_array_mut().unwrap() {
        if price["currency"] == "USD" && price.get("country").is_none() {
            price["amount"] = json!(usd);
        }
    }
    item
}

/// A money string without trailing zeros, so that "7.20", "7.2" and "7.2000" compare
/// equal whatever the configured scale.
fn money(v: &Value) -> String {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{v} is not a money string"));
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

async fn get(c: &Client, user: &str) -> Value {
    c.json("get", None, req(user, None, json!({})))
        .await
        .unwrap()
}

fn line<'a>(cart: &'a Value, sku: &str) -> &'a Value {
    cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sku"] == sku)
        .unwrap_or_else(|| panic!("no line {sku} in {cart}"))
}

#[tokio::test]
async fn a_get_prices_the_cart_against_the_current_catalog() {
    let w = World::start().await;
    let c = &w.client;
    let filled = c
        .json(
            "fill",
            None,
            req(
                "alice",
                None,
                json!({"items": [{"sku": "cup01", "quantity": 2}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(money(&line(&filled, "cup01")["price"]["amount"]), "5.99");

    // A new price: the cart did not change, its next read is priced anew.
    let cup = item_document(c, "cup01").await;
    update_item(c, with_usd(cup.clone(), "10")).await;
    let got = get(c, "alice").await;
    let cup_line = line(&got, "cup01");
    assert_eq!(money(&cup_line["price"]["amount"]), "10");
    assert_eq!(money(&got["price"]["amount"]), "20");
    assert_eq!(cup_line["can_be_bought"], true);

    // Two promotions stack per step: $10 - 10 % - 20 % = $7.20.
    for (id, percent) in [("ten", "10"), ("twenty", "20")] {
        admin(
            c,
            "promotion.create",
            json!({"project_id": PROJECT, "promotion": {
                "id": id, "name": format!("{percent} % off mugs"),
                "date_start": "2020-01-01T00:00:00Z",
                "skus": ["cup01"], "discount": {"percent": percent}}}),
        )
        .await;
    }
    let got = get(c, "alice").await;
    let cup_line = line(&got, "cup01");
    assert_eq!(money(&cup_line["price"]["amount"]), "7.2");
    assert_eq!(money(&cup_line["price"]["amount_without_discount"]), "10");
    let names: Vec<&str> = cup_line["promotions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "both promotions on the line: {cup_line}");
    assert!(names.contains(&"10 % off mugs") && names.contains(&"20 % off mugs"));
    assert_eq!(money(&got["price"]["amount"]), "14.4");

    // A deleted promotion no longer applies.
    admin(
        c,
        "promotion.delete",
        json!({"project_id": PROJECT, "id": "twenty"}),
    )
    .await;
    let got = get(c, "alice").await;
    assert_eq!(money(&line(&got, "cup01")["price"]["amount"]), "9");

    // A disabled item stays in the cart but cannot be bought.
    let mut disabled = with_usd(cup, "10");
    disabled["enabled"] = json!(false);
    update_item(c, disabled).await;
    let got = get(c, "alice").await;
    assert_eq!(line(&got, "cup01")["can_be_bought"], false);
    w.finish().await;
}

#[tokio::test]
async fn another_instance_prices_against_the_change_within_seconds() {
    let w = World::start().await;
    // A second instance on the same database but subjects of its own, so that the
    // change is certainly made through the first one and only the poll brings it here.
    let prefix = cart_tests::unique_prefix();
    let config = cart_tests::config(&w.db.url, &cart_tests::nats_url(), &prefix);
    let other = cartd::start(&config).await.expect("start the second cartd");
    let o = Client::connect(&cart_tests::nats_url(), &prefix).await;

    o.json(
        "fill",
        None,
        req(
            "bob",
            None,
            json!({"items": [{"sku": "t-shirt01", "quantity": 1}]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        money(&line(&get(&o, "bob").await, "t-shirt01")["price"]["amount"]),
        "3.99"
    );

    let shirt = item_document(&w.client, "t-shirt01").await;
    let changed = Instant::now();
    update_item(&w.client, with_usd(shirt, "4.5")).await;
    // The first instance at once, the second within its poll interval.
    assert_eq!(
        money(&line(&get(&w.client, "bob").await, "t-shirt01")["price"]["amount"]),
        "4.5"
    );
    let deadline = changed + Duration::from_secs(5);
    loop {
        let price = money(&line(&get(&o, "bob").await, "t-shirt01")["price"]["amount"]);
        if price == "4.5" {
            break;
        }
        assert_eq!(price, "3.99", "the old price or the new one");
        assert!(
            Instant::now() < deadline,
            "the second instance still prices the old catalog after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    other.shutdown().await;
    w.finish().await;
}
