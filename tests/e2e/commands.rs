use cart_proto::v1;
use cart_tests::{lines, World};
use prost::Message;
use serde_json::json;

use crate::req;

#[tokio::test]
async fn fill_put_delete_clear_and_get_over_nats() {
    let w = World::start().await;
    let c = &w.client;

    // The current cart exists before it is used, empty and with a null price.
    let empty = c
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(empty["price"], json!(null));
    assert_eq!(empty["items"], json!([]));
    assert!(empty["cart_id"].as_str().unwrap().starts_with("current-"));

    // Fill upserts known SKUs and reports unknown ones in Xsolla's form.
    let filled = c
        .json(
            "fill",
            None,
            req(
                "alice",
                None,
                json!({"items": [
                    {"sku": "cup01", "quantity": 2},
                    {"sku": "hut01", "quantity": 1},
                    {"sku": "t-shirt01", "quantity": 1},
                ]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        lines(&filled),
        [("cup01".into(), 2), ("t-shirt01".into(), 1)]
    );
    assert_eq!(
        filled["price"],
        json!({"amount": "15.97", "amount_without_discount": "15.97", "currency": "USD"})
    );
    assert_eq!(
        filled["warnings"],
        json!([{"sku": "hut01", "quantity": 1, "errorCode": 4001,
                "errorMessage": "[0401-4001]: Item with Project Id = 44056 and Sku = hut01 not found"}])
    );
    assert_eq!(filled["cart_id"], empty["cart_id"]);

    // A get right after the reply sees the command's effect.
    let got = c
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&got), lines(&filled));
    assert!(
        got.get("warnings").is_none(),
        "warnings belong to fill replies only"
    );
    let item = &got["items"][0];
    assert_eq!(item["name"], "Mug");
    assert_eq!(item["type"], "physical_good");
    assert_eq!(
        item["price"],
        json!({"amount": "5.99", "amount_without_discount": "5.99", "currency": "USD"})
    );
    assert_eq!(
        item["groups"],
        json!([{"external_id": "merch", "name": "Merchandise"}])
    );
    for field in [
        "is_free",
        "is_bonus",
        "promotions",
        "can_be_bought",
        "limits",
        "periods",
        "attributes",
        "virtual_prices",
        "image_url",
        "description",
    ] {
        assert!(item.get(field).is_some(), "item field {field} missing");
    }

    // Fill sets rather than adds, keeps lines not named, and 0 removes.
    let refilled = c
        .json(
            "fill",
            None,
            req(
                "alice",
                None,
                json!({"items": [{"sku": "cup01", "quantity": 5}, {"sku": "gold", "quantity": 3}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        lines(&refilled),
        [
            ("cup01".into(), 5),
            ("t-shirt01".into(), 1),
            ("gold".into(), 3)
        ]
    );
    let put = c
        .json(
            "item.put",
            None,
            req("alice", None, json!({"sku": "t-shirt01", "quantity": 0})),
        )
        .await
        .unwrap();
    assert_eq!(lines(&put), [("cup01".into(), 5), ("gold".into(), 3)]);

    // Currency and locale: EUR prices where the item has one, German names.
    let de = c
        .json(
            "get",
            None,
            req("alice", None, json!({"currency": "EUR", "locale": "de"})),
        )
        .await
        .unwrap();
    assert_eq!(de["items"][0]["name"], "Tasse");
    assert_eq!(de["items"][0]["price"]["amount"], "5.49");
    assert_eq!(
        de["price"],
        json!({"amount": "30.12", "amount_without_discount": "30.12", "currency": "EUR"})
    );

    // Replace mode clears first, in the same change.
    let replaced = c
        .json(
            "fill",
            None,
            req(
                "alice",
                None,
                json!({"items": [{"sku": "sword_common", "quantity": 1}], "replace": true}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(lines(&replaced), [("sword_common".into(), 1)]);
    assert_eq!(replaced["items"][0]["virtual_prices"][0]["sku"], "gold");

    // Delete, then clear.
    let deleted = c
        .json(
            "item.delete",
            None,
            req("alice", None, json!({"sku": "sword_common"})),
        )
        .await
        .unwrap();
    assert_eq!(lines(&deleted), []);
    assert_eq!(deleted["price"], json!(null));
    c.json(
        "item.put",
        None,
        req("alice", None, json!({"sku": "gold", "quantity": 1})),
    )
    .await
    .unwrap();
    let cleared = c
        .json("clear", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&cleared), []);

    // A free item makes a free cart with no price.
    let free = c
        .json(
            "item.put",
            None,
            req("alice", None, json!({"sku": "daily_gift", "quantity": 1})),
        )
        .await
        .unwrap();
    assert_eq!(free["is_free"], true);
    assert_eq!(free["price"], json!(null));
    assert_eq!(free["items"][0]["price"], json!(null));
    w.finish().await;
}

#[tokio::test]
async fn carts_by_id_are_separate_from_the_current_cart() {
    let w = World::start().await;
    let c = &w.client;
    let not_yet = c
        .json("get", None, req("alice", Some("wishlist"), json!({})))
        .await
        .unwrap_err();
    assert_eq!((not_yet.error.status, not_yet.error.code), (404, 1401));
    // Clearing a never-used cart id creates it, empty (as Xsolla's SDK tests expect).
    c.json("clear", None, req("alice", Some("wishlist"), json!({})))
        .await
        .unwrap();
    let wishlist = c
        .json("get", None, req("alice", Some("wishlist"), json!({})))
        .await
        .unwrap();
    assert_eq!(wishlist["cart_id"], "wishlist");
    assert_eq!(lines(&wishlist), []);
    c.json(
        "item.put",
        None,
        req(
            "alice",
            Some("wishlist"),
            json!({"sku": "gold", "quantity": 7}),
        ),
    )
    .await
    .unwrap();
    let current = c
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&current), []);
    // The current cart's id addresses the same cart as "no id".
    let id = current["cart_id"].as_str().unwrap().to_owned();
    c.json(
        "item.put",
        None,
        req("alice", Some(&id), json!({"sku": "cup01", "quantity": 1})),
    )
    .await
    .unwrap();
    let current = c
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&current), [("cup01".into(), 1)]);
    w.finish().await;
}

#[tokio::test]
async fn protobuf_requests_get_protobuf_replies() {
    let w = World::start().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/protobuf");
    let request = v1::FillRequest {
        project_id: crate::PROJECT,
        user_id: "pb-user".into(),
        currency: "EUR".into(),
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
    let reply = w
        .client
        .send("fill", headers.clone(), request.encode_to_vec())
        .await
        .unwrap();
    let cart = v1::Cart::decode(reply.as_slice()).expect("a protobuf Cart");
    assert_eq!(cart.items.len(), 1);
    assert_eq!(cart.items[0].quantity, 3);
    assert_eq!(cart.price.unwrap().amount, "16.47");
    assert_eq!(cart.warnings[0].error_code, 4001);
    // Errors stay JSON, with the service error headers, whatever the request encoding.
    let bad = v1::PutItemRequest {
        project_id: crate::PROJECT,
        user_id: "pb-user".into(),
        sku: "cup01".into(),
        quantity: -1,
        ..Default::default()
    };
    let refusal = w
        .client
        .send("item.put", headers, bad.encode_to_vec())
        .await
        .unwrap_err();
    assert_eq!((refusal.error.status, refusal.error.code), (422, 1102));
    w.finish().await;
}

#[tokio::test]
async fn state_survives_a_restart_and_the_projection_rebuilds_equal() {
    let mut w = World::start().await;
    let c = w.client.clone();
    for user in ["u1", "u2", "u3"] {
        c.json(
            "fill",
            None,
            req(
                user,
                None,
                json!({"items": [{"sku": "cup01", "quantity": 2}, {"sku": "gold", "quantity": 9}]}),
            ),
        )
        .await
        .unwrap();
        c.json(
            "item.put",
            None,
            req(user, Some("second"), json!({"sku": "gold", "quantity": 1})),
        )
        .await
        .unwrap();
        c.json(
            "item.delete",
            None,
            req(user, None, json!({"sku": "cup01"})),
        )
        .await
        .unwrap();
    }
    c.json("clear", None, req("u2", None, json!({})))
        .await
        .unwrap();
    let before = c
        .json("get", None, req("u1", None, json!({})))
        .await
        .unwrap();

    w.stop_instances().await;
    w.add_instance().await;
    let after = c
        .json("get", None, req("u1", None, json!({})))
        .await
        .unwrap();
    assert_eq!(after, before);
    assert_eq!(lines(&after), [("gold".into(), 9)]);
    let next = c
        .json(
            "item.put",
            None,
            req("u1", None, json!({"sku": "cup01", "quantity": 1})),
        )
        .await
        .unwrap();
    assert_eq!(lines(&next), [("gold".into(), 9), ("cup01".into(), 1)]);

    let pool = w.db.pool().await;
    let report = cart_store::rebuild_projection(&pool, |_| {}).await.unwrap();
    assert_eq!(report.streams, 6);
    assert_eq!(report.differences, 0, "{report:?}");
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn the_service_answers_the_micro_discovery_subjects() {
    let w = World::start().await;
    w.client
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    // Other tests' instances answer too; find ours through its subjects.
    let mut ours = None;
    let inbox_subject = w.client.nats.new_inbox();
    let mut inbox = w
        .client
        .nats
        .subscribe(inbox_subject.clone())
        .await
        .unwrap();
    w.client
        .nats
        .publish_with_reply("$SRV.INFO.cart-test", inbox_subject, "".into())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while let Ok(Some(msg)) =
        tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut inbox)).await
    {
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        if v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == format!("{}.get", w.prefix))
        {
            ours = Some(v);
            break;
        }
    }
    let info = ours.expect("our instance answered $SRV.INFO");
    assert_eq!(info["type"], "io.nats.micro.v1.info_response");
    let mut subjects: Vec<String> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort();
    let p = &w.prefix;
    // The catalog admin endpoints (tests/e2e/catalog.rs), then the cart's own.
    let admin_prefix = format!("{p}.admin.catalog.");
    let (admin, subjects): (Vec<String>, Vec<String>) = subjects
        .into_iter()
        .partition(|s| s.starts_with(&admin_prefix));
    assert_eq!(admin.len(), 13, "{admin:?}");
    assert_eq!(
        subjects,
        [
            format!("{p}.clear"),
            format!("{p}.feed.status"),
            format!("{p}.fill"),
            format!("{p}.get"),
            format!("{p}.item.delete"),
            format!("{p}.item.put"),
            format!("{p}.order.checkout"),
            format!("{p}.order.checkout_free"),
            format!("{p}.order.checkout_item"),
            format!("{p}.order.get"),
            format!("{p}.order.search"),
            format!("{p}.payment.cancel"),
            format!("{p}.payment.confirm"),
            format!("{p}.promocode.redeem"),
            format!("{p}.promocode.remove"),
            format!("{p}.promocode.rewards"),
            format!("{p}.promocode.verify")
        ]
    );
    assert!(info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["queue_group"] == "q"));

    // STATS of this instance counts requests, and error replies in the endpoint's data.
    w.client
        .json(
            "item.put",
            None,
            req("alice", None, json!({"sku": "nope", "quantity": 1})),
        )
        .await
        .unwrap_err();
    let id = info["id"].as_str().unwrap();
    let stats = w
        .client
        .nats
        .request(format!("$SRV.STATS.cart-test.{id}"), "".into())
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.payload).unwrap();
    assert_eq!(stats["type"], "io.nats.micro.v1.stats_response");
    let endpoint = |name: &str| {
        stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(endpoint("get")["num_requests"], 1);
    let put = endpoint("item-put");
    assert_eq!(put["num_requests"], 1);
    assert_eq!(put["data"]["num_error_replies"], 1);
    assert!(put["data"]["last_error_reply"]
        .as_str()
        .unwrap()
        .starts_with("404:[0401-4001]"));
    w.finish().await;
}
