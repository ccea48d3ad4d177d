//! Golden payloads: the demo catalog's items and promotions, priced by the domain,
//! frozen into orders, rendered as the relay renders them, and turned into the webhook
//! body. The money a receiver reconciles: line totals in `items[].promotions`, the promo
//! code's cart-wide discount in `order.promotions`, and a free order's currency.

use std::collections::BTreeMap;

use cart_domain::{
    apply_order, price, Cart, CartEvent, Catalog, Currency, Order, OrderEvent, OrderSnapshot,
    PaymentMode, PricingContext, ProjectId, Purchases, Sku, Timestamp, UserId,
};
use cart_proto::order::{view, OrderEventEnvelope};
use cart_proto::view::AmountFormat;
use serde_json::{json, Value};

use super::{body, NotificationType};

const PROJECT: u64 = 44056;

/// The demo catalog's items and promotions (deploy/catalog.json), with fixed windows so
/// that the numbers hold whatever the date.
fn catalog() -> Catalog {
    let usd = |amount: &str| json!([{ "currency": "USD", "amount": amount, "is_default": true }]);
    let doc = json!({ "projects": [{
        "project_id": PROJECT,
        "items": [
            { "sku": "com.xsolla.booster_mega_1", "type": "virtual_good", "name": { "en": "Mega booster" }, "prices": usd("50") },
            { "sku": "cup01", "type": "physical_good", "name": { "en": "Mug" }, "prices": usd("5.99") },
            { "sku": "com.xsolla.swords_1", "type": "virtual_good", "name": { "en": "Swords" }, "prices": usd("2.99") },
            { "sku": "daily_gift", "type": "virtual_good", "name": { "en": "Daily gift" }, "is_free": true }
        ],
        "promotions": [{
            "id": "merch_sale", "name": "Merch sale", "date_start": "2026-01-01T00:00:00Z",
            "skus": ["cup01"], "discount": { "percent": "10" }, "limits": { "per_user": 5 }
        }],
        "promo_codes": [
            { "code": "WINTER2026", "name": "10 % off", "discount": { "percent": "10" } },
            { "code": "BOOSTER50", "name": "Half-price boosters",
              "discounted_items": [{ "sku": "com.xsolla.booster_mega_1", "discount": { "percent": "50" } }],
              "bonus": [{ "sku": "com.xsolla.swords_1", "quantity": 1 }],
              "excluded_promotions": ["merch_sale"] }
        ]
    }]});
    cart_proto::catalog::parse(doc.to_string().as_bytes()).expect("the golden catalog")
}

/// The `order_paid` body (version 2) of an order of `lines` with `code`, priced in
/// `currency`, paid when it is not free.
fn order_paid(lines: &[(&str, u32)], code: Option<&str>, currency: &str) -> Value {
    let catalog = catalog();
    let project = ProjectId::parse(PROJECT).unwrap();
    let mut events: Vec<CartEvent> = lines
        .iter()
        .map(|(sku, quantity)| CartEvent::ItemQuantitySet {
            sku: Sku::parse(*sku).unwrap(),
            quantity: *quantity,
        })
        .collect();
    events.extend(code.map(|code| CartEvent::PromoCodeRedeemed {
        code: code.to_owned(),
        selected_unit_items: BTreeMap::new(),
    }));
    let cart = Cart::replay(&events);
    let currency = Currency::parse(currency).unwrap();
    let purchases = Purchases::default();
    let priced = price(
        &cart,
        &PricingContext {
            project,
            catalog: &catalog,
            currency: &currency,
            country: None,
            now: Timestamp::from_unix(1_796_000_000), // 2026-11-30
            purchases: &purchases,
            promo_code: cart.promo_code(),
        },
    );
    let snapshot = OrderSnapshot::from_priced(&priced);
    let free = snapshot.is_free();
    let total = snapshot.total.clone();
    let mut history = vec![OrderEvent::OrderCreated {
        order_id: 17,
        payment_token: "token".into(),
        project,
        user: UserId::parse("ann").unwrap(),
        cart_id: None,
        snapshot,
        catalog_version: 1,
        created_at: Timestamp::from_unix(1_796_000_000),
        custom_parameters: None,
    }];
    history.push(match total {
        Some(total) if !free => OrderEvent::OrderPaid {
            invoice_id: "inv-1".into(),
            amount: total.amount,
            currency: total.currency,
            mode: PaymentMode::Default,
        },
        _ => OrderEvent::OrderDone,
    });
    let order = history.iter().fold(Order::default(), apply_order);
    let view = view(&order, AmountFormat { scale: 2 }).unwrap();
    let envelope = OrderEventEnvelope {
        event_id: "e".into(),
        position: "1:1".into(),
        project_id: PROJECT,
        order_id: 17,
        user_id: "ann".into(),
        version: 2,
        event_type: if free { "OrderDone" } else { "OrderPaid" }.into(),
        status: view.status.clone(),
        recorded_at: view.date_created.clone(),
        order: view,
    };
    assert_eq!(
        NotificationType::for_event(&envelope),
        Some(NotificationType::OrderPaid)
    );
    serde_json::from_slice(&body(NotificationType::OrderPaid, &envelope, 2)).unwrap()
}

fn step(without: &str, with: &str) -> Value {
    json!([{ "amount_without_discount": without, "amount_with_discount": with, "sequence": 1 }])
}

#[test]
fn item_promotions_are_line_totals() {
    let body = order_paid(
        &[("cup01", 2), ("com.xsolla.booster_mega_1", 123)],
        Some("BOOSTER50"),
        "USD",
    );
    let items = &body["items"];
    // cup01 x 2 under merch_sale's 10 %: 2 x 5.99 -> 2 x 5.39 (the code discounts no
    // mug, so merch_sale stays on them).
    assert_eq!(items[0]["sku"], "cup01");
    assert_eq!(items[0]["amount"], "10.78");
    assert_eq!(items[0]["promotions"], step("11.98", "10.78"));
    // 123 mega boosters under BOOSTER50: 6150.00 -> 3075.00.
    assert_eq!(items[1]["amount"], "3075.00");
    assert_eq!(items[1]["promotions"], step("6150.00", "3075.00"));
    // The bonus swords: given, zero.
    assert_eq!(items[2]["sku"], "com.xsolla.swords_1");
    assert_eq!(items[2]["amount"], "0.00");
    assert_eq!(items[2]["is_bonus"], true);
    assert_eq!(body["order"]["amount"], "3085.78");
    // BOOSTER50 discounts items only: no order-level step.
    assert_eq!(body["order"]["promotions"], json!([]));
    assert_eq!(
        body["order"]["promocodes"],
        json!([{ "code": "BOOSTER50", "external_id": "BOOSTER50" }])
    );
}

#[test]
fn a_cart_wide_code_is_an_order_level_step() {
    let body = order_paid(
        &[("com.xsolla.booster_mega_1", 1)],
        Some("WINTER2026"),
        "USD",
    );
    // WINTER2026's 10 % off the cart: 50.00 -> 45.00, as Xsolla's order_paid reports an
    // order-level promotion.
    assert_eq!(body["order"]["promotions"], step("50.00", "45.00"));
    assert_eq!(body["order"]["amount"], "45.00");
    assert_eq!(body["items"][0]["amount"], "45.00");
    // No step of the line's own: the cart-wide discount is the order's.
    assert_eq!(body["items"][0]["promotions"], json!([]));
}

#[test]
fn a_cart_wide_step_starts_from_the_lines_after_their_own_discounts() {
    let body = order_paid(
        &[("cup01", 2), ("com.xsolla.booster_mega_1", 1)],
        Some("WINTER2026"),
        "USD",
    );
    // Mugs 2 x 5.39 = 10.78 after merch_sale, then 10 %: 2 x 4.85; booster 50.00 -> 45.00.
    assert_eq!(body["items"][0]["promotions"], step("11.98", "10.78"));
    assert_eq!(body["items"][0]["amount"], "9.70");
    assert_eq!(body["order"]["promotions"], step("60.78", "54.70"));
    assert_eq!(body["order"]["amount"], "54.70");
}

#[test]
fn a_free_orders_currency_is_a_string() {
    let body = order_paid(&[("daily_gift", 1)], None, "EUR");
    let order = &body["order"];
    assert_eq!(order["currency_type"], "unknown");
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["amount"], "0.00");
    assert_eq!(order["invoice_id"], Value::Null);
    assert_eq!(body["items"][0]["amount"], "0.00");
    assert_eq!(body["items"][0]["is_free"], true);
}
