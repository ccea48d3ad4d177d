//! Orders through the real service: checkout, payment, refunds, limits, ownership and bad
//! input, and the order events on their JetStream stream.

use cart_tests::*;
use serde_json::{json, Value};

use crate::{req, PROJECT};

async fn ok(w: &World, endpoint: &str, body: Value) -> Value {
    w.client
        .json(endpoint, None, body)
        .await
        .unwrap_or_else(|e| panic!("{endpoint} refused: {e:?}"))
}

async fn refused(w: &World, endpoint: &str, body: Value) -> cart_proto::ErrorReply {
    match w.client.json(endpoint, None, body).await {
        Ok(v) => panic!("{endpoint} accepted: {v}"),
        Err(r) => r.error,
    }
}

async fn order(w: &World, user: &str, id: u64) -> Value {
    ok(w, "order.get", req(user, None, json!({"order_id": id}))).await
}

fn pay(id: u64, amount: &str, invoice: &str) -> Value {
    json!({"project_id": PROJECT, "order_id": id, "invoice_id": invoice, "amount": amount, "currency": "USD"})
}

/// Adds an item with limits to the project's catalog (admin endpoint).
async fn limited_item(w: &World, sku: &str, limits: Value) {
    ok(
        w,
        "admin.catalog.item.create",
        json!({"project_id": PROJECT, "item": {
            "sku": sku, "type": "virtual_good", "name": {"en": sku},
            "prices": [{"currency": "USD", "amount": "10", "is_default": true}],
            "limits": limits
        }}),
    )
    .await;
}

#[tokio::test]
async fn checkout_then_payment_empties_the_cart_and_every_status_goes_out_on_the_stream() {
    let w = World::start_with(|c| c.relay = true).await;
    ok(
        &w,
        "fill",
        req(
            "ann",
            None,
            json!({"items": [{"sku": "cup01", "quantity": 2}, {"sku": "gold", "quantity": 10}]}),
        ),
    )
    .await;
    let created = ok(
        &w,
        "order.checkout",
        req(
            "ann",
            None,
            json!({"custom_parameters": {"character_id": "hero"}}),
        ),
    )
    .await;
    assert_eq!(created["order_id"], 1);
    assert_eq!(created["status"], "new");
    assert!(created["token"].as_str().unwrap().len() >= 32);

    let new = order(&w, "ann", 1).await;
    assert_eq!(new["status"], "new");
    assert_eq!(
        new["content"]["price"],
        json!({"amount": "21.88", "amount_without_discount": "21.88", "currency": "USD"})
    );
    assert_eq!(new["content"]["items"][0]["amount"], "11.98");
    assert_eq!(new["custom_parameters"], json!({"character_id": "hero"}));
    // The cart is kept until the order is paid.
    let cart = ok(&w, "get", req("ann", None, json!({}))).await;
    assert_eq!(lines(&cart).len(), 2);

    let paid = ok(&w, "payment.confirm", pay(1, "21.88", "inv-1")).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["invoice_id"], "inv-1");
    assert_eq!(paid["mode"], "default");
    let cart = ok(&w, "get", req("ann", None, json!({}))).await;
    assert!(lines(&cart).is_empty(), "{cart}");

    let refund = ok(
        &w,
        "payment.cancel",
        json!({"project_id": PROJECT, "order_id": 1, "reason": "chargeback"}),
    )
    .await;
    assert_eq!(refund["status"], "canceled");
    assert_eq!(refund["cancel_reason"], "chargeback");

    let stream = orders_stream_name(&w.prefix);
    let p = &w.prefix;
    let expected = [
        format!("{p}.orders.{PROJECT}.1.new"),
        format!("{p}.orders.{PROJECT}.1.paid"),
        format!("{p}.orders.{PROJECT}.1.canceled"),
    ];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let messages = loop {
        let messages = stream_contents(&w.client.nats, &stream).await;
        if messages.len() >= 3 || tokio::time::Instant::now() > deadline {
            break messages;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, expected);
    let paid_event = &messages[1].envelope;
    assert_eq!(paid_event["event_type"], "OrderPaid");
    assert_eq!(paid_event["status"], "paid");
    assert_eq!(paid_event["user_id"], "ann");
    assert_eq!(paid_event["order"]["invoice_id"], "inv-1");
    assert_eq!(paid_event["order"]["content"]["price"]["amount"], "21.88");
    assert_eq!(messages[1].msg_id, paid_event["event_id"].as_str().unwrap());

    let search = ok(&w, "order.search", req("ann", None, json!({}))).await;
    assert_eq!(search["total_items_count"], 1);
    assert_eq!(search["has_more"], false);
    // Xsolla's admin order search (v3) shape.
    let found = &search["orders"][0];
    assert_eq!(found["status"], "canceled");
    assert_eq!(found["invoice_id"], "inv-1");
    assert_eq!(
        found["price"],
        json!({"amount": "21.88", "amount_without_discount": "21.88", "currency": "USD",
               "is_virtual_currency": false})
    );
    assert_eq!(found["user"], json!({"id": "ann"}));
    assert_eq!(found["items"][0]["price"]["amount"], "5.99");
    assert_eq!(found["items"][0]["is_bonus"], false);
    assert!(["default", "sandbox"].contains(&found["mode"].as_str().unwrap()));
    assert_eq!(found["coupons"], json!([]));
    w.finish().await;
}

#[tokio::test]
async fn another_users_order_id_or_token_is_not_found() {
    let w = World::start().await;
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await;
    let created = ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    let token = created["token"].as_str().unwrap();
    let by_token = ok(&w, "order.get", req("ann", None, json!({"token": token}))).await;
    assert_eq!(by_token["order_id"], 1);
    for body in [json!({"order_id": 1}), json!({"token": token})] {
        let e = refused(&w, "order.get", req("bob", None, body)).await;
        assert_eq!((e.status, e.code), (404, 9001), "{e:?}");
        assert_eq!(e.message(), "[0401-9001]: Order not found");
    }
    let e = refused(&w, "order.get", req("ann", None, json!({"order_id": 2}))).await;
    assert_eq!((e.status, e.code), (404, 9001));
    let search = ok(&w, "order.search", req("bob", None, json!({}))).await;
    assert_eq!(search["total_items_count"], 0);
    // Bob cannot check out Ann's cart: a cart id is scoped to its user.
    let e = refused(
        &w,
        "order.checkout",
        req(
            "bob",
            Some(created["order_id"].to_string().as_str()),
            json!({}),
        ),
    )
    .await;
    assert_eq!((e.status, e.code), (422, 1401), "{e:?}");
    w.finish().await;
}

#[tokio::test]
async fn bad_payment_input_is_refused_and_changes_nothing() {
    let w = World::start().await;
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await;
    ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    let before = order(&w, "ann", 1).await;
    let base = pay(1, "5.99", "inv-1");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("order_id", json!(99)), 404, 9001),
        (with("amount", json!("abc")), 422, 1102),
        (with("amount", json!("-5.99")), 422, 1102),
        (with("amount", json!("5.99e0")), 422, 1102),
        (with("amount", json!(5.99)), 400, 1102),
        (with("amount", json!("6.00")), 422, 1102),
        (with("currency", json!("EUR")), 422, 1102),
        (with("currency", json!("dollars")), 422, 1102),
        (with("mode", json!("live")), 422, 1102),
        (with("invoice_id", json!("")), 422, 1102),
        (with("surprise", json!(1)), 400, 1102),
        (json!({"project_id": PROJECT, "order_id": 1}), 400, 1102),
    ];
    for (body, status, code) in cases {
        let e = refused(&w, "payment.confirm", body.clone()).await;
        assert_eq!((e.status, e.code), (status, code), "{body}: {e:?}");
    }
    let raw = w
        .client
        .send(
            "payment.confirm",
            async_nats::HeaderMap::new(),
            b"{not json".to_vec(),
        )
        .await
        .unwrap_err();
    assert_eq!(raw.error.status, 400);
    assert_eq!(order(&w, "ann", 1).await, before);
    let cart = ok(&w, "get", req("ann", None, json!({}))).await;
    assert_eq!(lines(&cart), [("cup01".to_owned(), 1)]);
    w.finish().await;
}

#[tokio::test]
async fn duplicate_and_out_of_order_confirmations_are_idempotent_or_refused() {
    let w = World::start().await;
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await;
    ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    // A refund before the payment: an unpaid order cannot be refunded.
    let e = refused(
        &w,
        "payment.cancel",
        json!({"project_id": PROJECT, "order_id": 1}),
    )
    .await;
    assert_eq!((e.status, e.code), (422, 1102), "{e:?}");
    assert!(e.text.contains("from new to canceled"), "{e:?}");
    let paid = ok(&w, "payment.confirm", pay(1, "5.99", "inv-1")).await;
    assert_eq!(paid["status"], "paid");
    // The same confirmation again: the same answer, nothing new.
    assert_eq!(
        ok(&w, "payment.confirm", pay(1, "5.99", "inv-1")).await,
        paid
    );
    // Another invoice for a paid order: refused.
    let e = refused(&w, "payment.confirm", pay(1, "5.99", "inv-2")).await;
    assert_eq!((e.status, e.code), (409, 1102), "{e:?}");
    let canceled = ok(
        &w,
        "payment.cancel",
        json!({"project_id": PROJECT, "order_id": 1}),
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(
        ok(
            &w,
            "payment.cancel",
            json!({"project_id": PROJECT, "order_id": 1})
        )
        .await,
        canceled
    );
    // The payment's confirmation arriving late, after the refund: no change.
    assert_eq!(
        ok(&w, "payment.confirm", pay(1, "5.99", "inv-1")).await,
        canceled
    );
    let pool = w.db.pool().await;
    let types: Vec<String> =
        sqlx::query_scalar("select event_type from order_events order by version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(types, ["OrderCreated", "OrderPaid", "OrderCanceled"]);
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn two_users_racing_for_the_last_unit_one_order_wins() {
    let w = World::start().await;
    limited_item(&w, "relic", json!({"per_item": 1})).await;
    for user in ["ann", "bob"] {
        ok(
            &w,
            "item.put",
            req(user, None, json!({"sku": "relic", "quantity": 1})),
        )
        .await;
    }
    let (a, b) = tokio::join!(
        w.client
            .json("order.checkout", None, req("ann", None, json!({}))),
        w.client
            .json("order.checkout", None, req("bob", None, json!({}))),
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("exactly one checkout must win: {other:?}"),
    };
    assert_eq!(
        (lost.error.status, lost.error.code),
        (422, 1460),
        "{lost:?}"
    );
    let id = won["order_id"].as_u64().unwrap();
    ok(&w, "payment.confirm", pay(id, "10.00", "inv")).await;
    // Sold out now for everyone: the cart shows nothing left.
    let cart = ok(&w, "get", req("carl", None, json!({}))).await;
    assert!(lines(&cart).is_empty());
    let filled = ok(
        &w,
        "fill",
        req(
            "carl",
            None,
            json!({"items": [{"sku": "relic", "quantity": 1}]}),
        ),
    )
    .await;
    assert_eq!(filled["warnings"][0]["errorCode"], 1460, "{filled}");
    w.finish().await;
}

#[tokio::test]
async fn a_newer_order_expires_the_older_one_and_paying_it_is_refused() {
    let w = World::start().await;
    limited_item(&w, "potion", json!({"per_user": 1})).await;
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "potion", "quantity": 1})),
    )
    .await;
    ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    let first = order(&w, "ann", 1).await;
    assert_eq!(first["status"], "expired");
    assert_eq!(first["expired_by"], 2);
    let e = refused(&w, "payment.confirm", pay(1, "10.00", "inv-1")).await;
    assert_eq!((e.status, e.code), (422, 1102), "{e:?}");
    assert!(e.text.contains("from expired to paid"), "{e:?}");
    ok(&w, "payment.confirm", pay(2, "10.00", "inv-2")).await;
    // The per-user limit is used up: the cart shows it, and checkout refuses.
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "potion", "quantity": 1})),
    )
    .await;
    let cart = ok(&w, "get", req("ann", None, json!({}))).await;
    assert_eq!(
        cart["items"][0]["limits"]["per_user"]["available"], 0,
        "{cart}"
    );
    let e = refused(&w, "order.checkout", req("ann", None, json!({}))).await;
    assert_eq!((e.status, e.code), (422, 1460), "{e:?}");
    // A refund gives nothing back.
    ok(
        &w,
        "payment.cancel",
        json!({"project_id": PROJECT, "order_id": 2}),
    )
    .await;
    let e = refused(&w, "order.checkout", req("ann", None, json!({}))).await;
    assert_eq!(e.code, 1460);
    w.finish().await;
}

#[tokio::test]
async fn free_single_item_and_empty_checkouts() {
    let w = World::start().await;
    let e = refused(&w, "order.checkout", req("ann", None, json!({}))).await;
    assert_eq!((e.status, e.code), (422, 1401), "empty cart: {e:?}");
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "daily_gift", "quantity": 1})),
    )
    .await;
    let e = refused(&w, "order.checkout", req("ann", None, json!({}))).await;
    assert_eq!(
        (e.status, e.code),
        (422, 1401),
        "all free on the paid path: {e:?}"
    );
    let free = ok(&w, "order.checkout_free", req("ann", None, json!({}))).await;
    assert_eq!(free["status"], "done");
    let free_id = free["order_id"].as_u64().unwrap();
    let free_order = order(&w, "ann", free_id).await;
    assert_eq!(free_order["content"]["is_free"], true);
    // Real zero prices in the order's currency, never null (Xsolla types them objects).
    let zero = json!({"amount": "0.00", "amount_without_discount": "0.00", "currency": "USD"});
    assert_eq!(free_order["content"]["price"], zero);
    assert_eq!(free_order["content"]["items"][0]["price"], zero);
    assert_eq!(free_order["content"]["items"][0]["amount"], "0.00");
    // Bought at once, so the cart is emptied as a paid order's is.
    let cart = ok(&w, "get", req("ann", None, json!({}))).await;
    assert!(lines(&cart).is_empty(), "{cart}");
    ok(
        &w,
        "fill",
        req("ann", None, json!({"items": [{"sku": "daily_gift", "quantity": 1}, {"sku": "cup01", "quantity": 1}]})),
    )
    .await;
    let e = refused(&w, "order.checkout", req("ann", None, json!({}))).await;
    assert_eq!(
        (e.status, e.code),
        (422, 1401),
        "a free item among paid ones: {e:?}"
    );

    let single = ok(
        &w,
        "order.checkout_item",
        req("bob", None, json!({"sku": "gold", "quantity": 3})),
    )
    .await;
    let single = order(&w, "bob", single["order_id"].as_u64().unwrap()).await;
    assert_eq!(single["cart_id"], Value::Null);
    assert_eq!(single["content"]["price"]["amount"], "2.97");
    let e = refused(
        &w,
        "order.checkout_item",
        req("bob", None, json!({"sku": "nope"})),
    )
    .await;
    assert_eq!((e.status, e.code), (404, 4001), "{e:?}");
    let e = refused(
        &w,
        "order.checkout_item",
        req("bob", None, json!({"sku": "gold", "quantity": 0})),
    )
    .await;
    assert_eq!(e.code, 1102);
    w.finish().await;
}

#[tokio::test]
async fn a_retried_checkout_with_its_command_id_makes_one_order() {
    let w = World::start().await;
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await;
    let body = req("ann", None, json!({}));
    let first = w
        .client
        .json("order.checkout", Some("k-1"), body.clone())
        .await
        .unwrap();
    let again = w
        .client
        .json("order.checkout", Some("k-1"), body)
        .await
        .unwrap();
    assert_eq!(first, again);
    let search = ok(&w, "order.search", req("ann", None, json!({}))).await;
    assert_eq!(search["total_items_count"], 1);
    // Paid, the cart is empty; a late retry still gets its first answer, not 1401.
    ok(&w, "payment.confirm", pay(1, "5.99", "inv-1")).await;
    let late = w
        .client
        .json("order.checkout", Some("k-1"), req("ann", None, json!({})))
        .await
        .unwrap();
    assert_eq!(late, first);
    let reused = w
        .client
        .json(
            "order.checkout",
            Some("k-1"),
            req("ann", None, json!({"currency": "EUR"})),
        )
        .await
        .unwrap_err();
    assert_eq!(reused.error.status, 409);
    w.finish().await;
}

async fn wait_for_messages(w: &World, n: usize) -> Vec<StreamedEvent> {
    let stream = orders_stream_name(&w.prefix);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let messages = stream_contents(&w.client.nats, &stream).await;
        if messages.len() >= n || tokio::time::Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_relay_that_restarts_before_its_checkpoint_publishes_each_order_event_once() {
    let mut w = World::start_with(|c| c.relay = true).await;
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await;
    ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    ok(&w, "payment.confirm", pay(1, "5.99", "inv-1")).await;
    assert_eq!(wait_for_messages(&w, 2).await.len(), 2);
    // A crash between the publish and the checkpoint: the checkpoint is back at the start.
    w.stop_instances().await;
    let pool = w.db.pool().await;
    let moved =
        sqlx::query("update feed_checkpoints set tx_id = '0', global_position = 0 where name = $1")
            .bind(format!("relay:{}", orders_stream_name(&w.prefix)))
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected();
    assert_eq!(moved, 1, "the order relay keeps its own checkpoint");
    pool.close().await;
    let mut config = config(&w.db.url, &nats_url(), &w.prefix);
    config.relay = true;
    w.servers.push(cartd::start(&config).await.unwrap());
    ok(
        &w,
        "payment.cancel",
        json!({"project_id": PROJECT, "order_id": 1}),
    )
    .await;
    let messages = wait_for_messages(&w, 3).await;
    // Give a wrong re-publish time to show, then check nothing came twice.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let messages = if messages.len() == 3 {
        stream_contents(&w.client.nats, &orders_stream_name(&w.prefix)).await
    } else {
        messages
    };
    let statuses: Vec<&str> = messages
        .iter()
        .map(|m| m.envelope["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["new", "paid", "canceled"]);
    let ids: std::collections::HashSet<&str> = messages.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    w.finish().await;
}

/// Issue 11, points 2 to 5, through the real service: NUL characters are refused naming
/// the property (they once reached PostgreSQL and got 500), an array body is not read by
/// position, search dates are parsed before any SQL (never PostgreSQL's `now`), and the
/// promo-code queries take no currency or locale. Nothing is written by any of them.
#[tokio::test]
async fn control_characters_arrays_and_words_for_dates_are_refused_before_the_store() {
    let w = World::start().await;
    ok(
        &w,
        "item.put",
        req("ann", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await;
    let cases = [
        (
            "order.checkout",
            req(
                "ann",
                None,
                json!({"custom_parameters": {"note": "a\u{0}b"}}),
            ),
            "custom_parameters.note",
        ),
        (
            "order.checkout",
            req("ann", None, json!({"custom_parameters": {"a\u{0}": 1}})),
            "custom_parameters",
        ),
        (
            "order.checkout_item",
            req(
                "ann",
                None,
                json!({"sku": "cup01", "custom_parameters": {"n": "\u{0}"}}),
            ),
            "custom_parameters.n",
        ),
        (
            "order.get",
            req("ann", None, json!({"token": "tok\u{0}"})),
            "token",
        ),
        (
            "order.search",
            req("ann", None, json!({"created_date_from": "not a date"})),
            "created_date_from",
        ),
        (
            "order.search",
            req("ann", None, json!({"created_date_until": "now"})),
            "created_date_until",
        ),
        (
            "order.search",
            req("ann", None, json!({"created_date_from": "infinity"})),
            "created_date_from",
        ),
        (
            "order.search",
            req("ann", None, json!({"created_date_from": "epoch"})),
            "created_date_from",
        ),
    ];
    for (endpoint, body, property) in cases {
        let e = refused(&w, endpoint, body.clone()).await;
        assert_eq!((e.status, e.code), (422, 1102), "{endpoint} {body}: {e:?}");
        assert!(e.text.contains(property), "{endpoint} {body}: {e:?}");
    }
    // A user with no orders gets the same refusal, not an empty 200.
    let e = refused(
        &w,
        "order.search",
        req("nobody", None, json!({"created_date_from": "yesterday"})),
    )
    .await;
    assert_eq!((e.status, e.code), (422, 1102), "{e:?}");

    // An order body is one object: an array is not read by position.
    let e = refused(&w, "order.checkout", json!([PROJECT, "ann"])).await;
    assert_eq!(e.status, 400, "{e:?}");
    // A cancel reason with a NUL, on an order that exists.
    ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    let e = refused(
        &w,
        "payment.cancel",
        json!({"project_id": PROJECT, "order_id": 1, "reason": "x\u{0}"}),
    )
    .await;
    assert_eq!((e.status, e.code), (422, 1102), "{e:?}");
    assert_eq!(order(&w, "ann", 1).await["status"], "new");

    // Only the one order of the valid checkout exists.
    let found = ok(&w, "order.search", req("ann", None, json!({}))).await;
    assert_eq!(found["orders"].as_array().map(Vec::len), Some(1), "{found}");

    // The promo-code queries take neither currency nor locale, as their protobuf.
    for endpoint in ["promocode.verify", "promocode.rewards"] {
        for extra in [json!({"currency": "USD"}), json!({"locale": "en"})] {
            let mut body = req("ann", None, json!({"code": "WINTER2026"}));
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let e = refused(&w, endpoint, body.clone()).await;
            assert!(matches!(e.status, 400 | 422), "{endpoint} {body}: {e:?}");
        }
    }
    w.finish().await;
}
