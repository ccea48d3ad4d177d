use super::*;
use cart_domain::{
    CartId, Currency, Discount, OrderLine, OrderSnapshot, OrderTotal, PaymentMode, ProjectId,
    PromotionRef, Sku, UserId,
};

fn line(sku: &str, qty: u32, amount: &str, before: &str) -> OrderLine {
    OrderLine {
        sku: Sku::parse(sku).unwrap(),
        quantity: qty,
        item_type: Some("virtual_good".into()),
        price: Some(LinePrice {
            amount: amount.parse().unwrap(),
            amount_without_discount: before.parse().unwrap(),
            currency: Currency::parse("USD").unwrap(),
        }),
        is_free: false,
        is_bonus: false,
        promotions: vec![OrderPromotion {
            source: PromotionRef::Promotion(7),
            discount: Some(Discount::Percent("5".parse().unwrap())),
            bonus: vec![],
            step: Some((before.parse().unwrap(), amount.parse().unwrap())),
        }],
        problem: None,
    }
}

fn created() -> OrderEvent {
    let bonus = OrderLine {
        sku: Sku::parse("gem").unwrap(),
        quantity: 2,
        item_type: None,
        price: None,
        is_free: true,
        is_bonus: true,
        promotions: vec![],
        problem: None,
    };
    OrderEvent::OrderCreated {
        order_id: 641,
        payment_token: "tok".into(),
        project: ProjectId::parse(44056).unwrap(),
        user: UserId::parse("u.1").unwrap(),
        cart_id: Some(CartId::parse("c1").unwrap()),
        snapshot: OrderSnapshot {
            lines: vec![line("sword", 3, "6.8400", "7.2"), bonus],
            promo_code: Some("WINTER".into()),
            promotions: vec![OrderPromotion {
                source: PromotionRef::PromoCode("WINTER".into()),
                discount: None,
                bonus: vec![(Sku::parse("gem").unwrap(), 2)],
                step: None,
            }],
            total: Some(OrderTotal {
                amount: "20.52".parse().unwrap(),
                amount_without_discount: "21.6".parse().unwrap(),
                currency: Currency::parse("USD").unwrap(),
            }),
            currency: Some(Currency::parse("USD").unwrap()),
        },
        catalog_version: 3,
        created_at: Timestamp::from_unix(1_700_000_000),
        custom_parameters: Some(r#"{"character_id":"hero"}"#.into()),
    }
}

#[test]
fn every_order_event_survives_the_log_with_exact_amounts() {
    let events = vec![
        created(),
        OrderEvent::OrderPaid {
            invoice_id: "inv-1".into(),
            amount: "20.5200".parse().unwrap(),
            currency: Currency::parse("USD").unwrap(),
            mode: PaymentMode::Sandbox,
        },
        OrderEvent::OrderDone,
        OrderEvent::OrderCanceled {
            reason: "refund".into(),
        },
        OrderEvent::OrderExpired { by_order: 642 },
    ];
    for event in events {
        let encoded = encode(&event);
        let text = encoded.payload.to_string();
        let decoded = decode(
            encoded.event_type,
            encoded.schema_version,
            serde_json::from_str(&text).unwrap(),
        )
        .unwrap();
        assert_eq!(decoded, event, "{}", encoded.event_type);
        if let (OrderEvent::OrderPaid { amount: a, .. }, OrderEvent::OrderPaid { amount: b, .. }) =
            (&decoded, &event)
        {
            // The scale is kept, not only the value.
            assert_eq!(a.to_string(), b.to_string());
        }
    }
}

#[test]
fn malformed_or_unknown_stored_events_are_errors_not_panics() {
    assert!(decode("OrderShipped", 1, serde_json::json!({})).is_err());
    assert!(decode("OrderPaid", 2, serde_json::json!({})).is_err());
    assert!(decode("OrderPaid", 1, serde_json::json!({"invoice_id": "x"})).is_err());
    assert!(decode(
        "OrderPaid",
        1,
        serde_json::json!({"invoice_id": "x", "amount": "1.0e", "currency": "USD", "mode": "default"})
    )
    .is_err());
    assert!(decode("OrderExpired", 1, serde_json::json!({})).is_err());
    let mut payload = encode(&created()).payload;
    payload["lines"][0]["price"]["currency"] = "dollars".into();
    assert!(decode("OrderCreated", 1, payload).is_err());
}

#[test]
fn the_view_shows_line_amounts_steps_and_the_total_at_the_scale() {
    let order = Order::replay(&[
        created(),
        OrderEvent::OrderPaid {
            invoice_id: "inv-1".into(),
            amount: "20.52".parse().unwrap(),
            currency: Currency::parse("USD").unwrap(),
            mode: PaymentMode::Default,
        },
    ]);
    let view = view(&order, AmountFormat { scale: 2 }).unwrap();
    assert_eq!(view.status, "paid");
    assert_eq!(view.invoice_id.as_deref(), Some("inv-1"));
    assert_eq!(view.mode.as_deref(), Some("default"));
    assert_eq!(view.date_created, "2023-11-14T22:13:20Z");
    let price = view.content.price.unwrap();
    assert_eq!(
        (
            price.amount.as_str(),
            price.amount_without_discount.as_str()
        ),
        ("20.52", "21.60")
    );
    let sword = &view.content.items[0];
    assert_eq!(sword.amount.as_deref(), Some("20.52"));
    assert_eq!(sword.price.as_ref().unwrap().amount, "6.84");
    assert_eq!(
        sword.promotions,
        vec![PromotionStepView {
            amount_without_discount: "7.20".into(),
            amount_with_discount: "6.84".into(),
            sequence: 1
        }]
    );
    let gem = &view.content.items[1];
    assert!(gem.is_bonus && gem.is_free && gem.amount.is_none());
    assert_eq!(
        view.custom_parameters,
        Some(serde_json::json!({"character_id": "hero"}))
    );
}
