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
        OrderEvent::OrderExpired {
            by_order: Some(642),
        },
        OrderEvent::OrderExpired { by_order: None },
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
    assert!(decode("OrderExpired", 1, serde_json::json!({"reason": "bored"})).is_err());
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
    // The step as line totals: 3 x 7.20 -> 3 x 6.84.
    assert_eq!(
        sword.promotions,
        vec![PromotionStepView {
            amount_without_discount: "21.60".into(),
            amount_with_discount: "20.52".into(),
            sequence: 1
        }]
    );
    // A bonus line: a zero price in the order's currency, not null.
    let gem = &view.content.items[1];
    assert!(gem.is_bonus && gem.is_free);
    assert_eq!(gem.amount.as_deref(), Some("0.00"));
    assert_eq!(
        gem.price,
        Some(PriceView {
            amount: "0.00".into(),
            amount_without_discount: "0.00".into(),
            currency: "USD".into()
        })
    );
    // The code gave bonus items, no cart-wide discount: no order-level step.
    assert!(view.content.promotions.is_empty());
    assert_eq!(
        view.custom_parameters,
        Some(serde_json::json!({"character_id": "hero"}))
    );
}

/// A free order as checkout makes it: one free line, priced in EUR, done at once.
fn free_order(currency: Option<&str>) -> Order {
    let gift = OrderLine {
        price: None,
        is_free: true,
        promotions: vec![],
        ..line("gift", 2, "0", "0")
    };
    Order::replay(&[
        OrderEvent::OrderCreated {
            order_id: 9,
            payment_token: "tok".into(),
            project: ProjectId::parse(44056).unwrap(),
            user: UserId::parse("ann").unwrap(),
            cart_id: None,
            snapshot: OrderSnapshot {
                lines: vec![gift],
                promo_code: None,
                promotions: vec![],
                total: None,
                currency: currency.map(|c| Currency::parse(c).unwrap()),
            },
            catalog_version: 1,
            created_at: Timestamp::from_unix(1_700_000_000),
            custom_parameters: None,
        },
        OrderEvent::OrderDone,
    ])
}

#[test]
fn a_free_order_has_real_zero_prices_in_its_currency() {
    let seen = view(&free_order(Some("EUR")), AmountFormat { scale: 2 }).unwrap();
    assert!(seen.is_free && seen.content.is_free);
    let zero = Some(PriceView {
        amount: "0.00".into(),
        amount_without_discount: "0.00".into(),
        currency: "EUR".into(),
    });
    assert_eq!(seen.content.price, zero);
    assert_eq!(seen.content.items[0].price, zero);
    assert_eq!(seen.content.items[0].amount.as_deref(), Some("0.00"));
    // A free order recorded before its currency was kept: USD, the checkout's default.
    let old = view(&free_order(None), AmountFormat { scale: 2 }).unwrap();
    assert_eq!(old.content.price.unwrap().currency, "USD");
}

/// `created()` with its snapshot changed by `change`.
fn created_with(change: impl FnOnce(&mut OrderSnapshot)) -> OrderEvent {
    let mut event = created();
    if let OrderEvent::OrderCreated { snapshot, .. } = &mut event {
        change(snapshot);
    }
    event
}

#[test]
fn a_cart_wide_code_is_an_order_level_step_from_the_lines_after_their_own_steps() {
    // The code's 10 % off the cart after the line's 5 %: 3 x 6.84 = 20.52 -> 3 x 6.16.
    let order = Order::replay(&[created_with(|snapshot| {
        snapshot.promotions[0].discount = Some(Discount::Percent("10".parse().unwrap()));
        snapshot.lines[0].price.as_mut().unwrap().amount = "6.16".parse().unwrap();
        snapshot.total.as_mut().unwrap().amount = "18.48".parse().unwrap();
    })]);
    let view = view(&order, AmountFormat { scale: 2 }).unwrap();
    assert_eq!(
        view.content.promotions,
        vec![PromotionStepView {
            amount_without_discount: "20.52".into(),
            amount_with_discount: "18.48".into(),
            sequence: 1
        }]
    );
    // order.search: Xsolla's admin shape, with the order's fields beside.
    let entry = search_entry(&order, AmountFormat { scale: 2 }).unwrap();
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(json["mode"], "default");
    assert_eq!(json["price"]["amount"], "18.48");
    assert_eq!(json["price"]["is_virtual_currency"], false);
    assert_eq!(json["user"], serde_json::json!({"id": "u.1"}));
    assert_eq!(json["items"][0]["price"]["amount"], "6.16");
    assert_eq!(json["items"][1]["is_bonus"], true);
    assert_eq!(json["promotions"], serde_json::json!([{"promotion_id": 7}]));
    assert_eq!(
        json["coupons"],
        serde_json::json!([{"code": "WINTER", "type": "promocode"}])
    );
    assert_eq!(json["discounts"][0]["amount_with_discount"], "18.48");
    assert_eq!(json["user_id"], "u.1");
}
