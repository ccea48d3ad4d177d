//! Per-user limits of item promotions: uses counted from bought orders, under the
//! promotion's lock, at checkout and at payment, against the real database.

use super::*;

/// `sword` at 5.00 with `sale`, 10 % off (4.50), which a user may get `limit` times
/// (none: not limited).
fn sale_catalog(limit: Option<u32>) -> Arc<Catalog> {
    let mut sale = serde_json::json!({
        "id": "sale", "name": "Sale", "date_start": "2020-01-01T00:00:00Z",
        "skus": ["sword"], "discount": { "percent": "10" }
    });
    if let Some(limit) = limit {
        sale["limits"] = serde_json::json!({ "per_user": limit });
    }
    let doc = serde_json::json!({ "projects": [{
        "project_id": P,
        "items": [{ "sku": "sword", "type": "virtual_good", "name": {"en": "Sword"},
                    "prices": [{ "currency": "USD", "amount": "5.00", "is_default": true }] }],
        "promotions": [sale]
    }]});
    Arc::new(cart_proto::catalog::parse(doc.to_string().as_bytes()).unwrap())
}

fn sale_id(catalog: &Catalog) -> u64 {
    catalog.promotions(project()).next().unwrap().id
}

/// How many times `who` got the sale, as pricing counts it.
async fn uses(store: &OrderStore, catalog: &Catalog, who: &str) -> u32 {
    let skus = [Sku::parse("sword").unwrap()];
    let now = Timestamp::from_unix(1_790_000_200);
    let counted = store
        .purchases_for(catalog, project(), &user(who), &skus, None, now)
        .await
        .unwrap();
    counted.promotion_uses(sale_id(catalog))
}

fn limit_reached(result: &Decided) -> bool {
    matches!(result, Err(OrderError::PromotionLimitReached { .. }))
}

#[tokio::test]
async fn racing_checkouts_and_payments_of_one_user_give_the_promotion_once() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = sale_catalog(Some(1));
    let snap = snapshot(&catalog, &cart_of(&[("sword", 2)], None));
    assert_eq!(snap.total.as_ref().unwrap().amount, "9.00".parse().unwrap());
    let (a, b) = tokio::join!(
        checkout(&store, &catalog, request("ann", Some("c1"), snap.clone())),
        checkout(&store, &catalog, request("ann", Some("c2"), snap.clone())),
    );
    let (a, b) = (created(a), created(b));
    // The later order expires the earlier one that got the same limited promotion.
    let (first, second) = if a.order_id < b.order_id {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(second.expired, [first.order_id]);
    let (pa, pb) = tokio::join!(
        store.confirm_payment(&catalog, payment(first.order_id, "9", "inv-a")),
        store.confirm_payment(&catalog, payment(second.order_id, "9", "inv-b")),
    );
    let (pa, pb) = (pa.unwrap(), pb.unwrap());
    assert!(pb.is_ok(), "{pb:?}");
    assert!(
        matches!(pa, Err(OrderError::InvalidTransition { .. })),
        "{pa:?}"
    );
    assert_eq!(uses(&store, &catalog, "ann").await, 1);
    // A checkout priced before the use (it still has the sale) is refused; priced now,
    // the cart has no sale any more.
    let stale = checkout(&store, &catalog, request("ann", Some("c3"), snap.clone())).await;
    assert!(
        matches!(
            stale,
            CheckoutOutcome::Refused(OrderError::PromotionLimitReached { .. })
        ),
        "{stale:?}"
    );
    // Another user still gets it.
    created(checkout(&store, &catalog, request("bob", Some("c1"), snap)).await);
}

#[tokio::test]
async fn two_payable_orders_racing_for_the_last_use_one_is_paid() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    // The first order was made while the sale had no limit, so the second one (made
    // after the limit came) does not expire it: both are payable, with the sale.
    let unlimited = sale_catalog(None);
    let limited = sale_catalog(Some(1));
    let snap = snapshot(&limited, &cart_of(&[("sword", 1)], None));
    let a = created(checkout(&store, &unlimited, request("ann", Some("c1"), snap.clone())).await);
    let b = created(checkout(&store, &limited, request("ann", Some("c2"), snap)).await);
    assert!(b.expired.is_empty());
    let (pa, pb) = tokio::join!(
        store.confirm_payment(&limited, payment(a.order_id, "4.50", "inv-a")),
        store.confirm_payment(&limited, payment(b.order_id, "4.50", "inv-b")),
    );
    let results = [pa.unwrap(), pb.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().any(limit_reached), "{results:?}");
    assert_eq!(uses(&store, &limited, "ann").await, 1);
    // The refused payment changed nothing: a retry is refused the same way.
    let refused = if results[0].is_ok() { &b } else { &a };
    let again = store
        .confirm_payment(&limited, payment(refused.order_id, "4.50", "inv-c"))
        .await
        .unwrap();
    assert!(limit_reached(&again), "{again:?}");
}

#[tokio::test]
async fn each_bought_order_is_one_use_whatever_its_quantity_and_refunds_give_none_back() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = sale_catalog(Some(2));
    assert_eq!(uses(&store, &catalog, "ann").await, 0);
    let snap = snapshot(&catalog, &cart_of(&[("sword", 3)], None));
    for (n, invoice) in ["inv-1", "inv-2"].iter().enumerate() {
        let cart = format!("c{n}");
        let order =
            created(checkout(&store, &catalog, request("ann", Some(&cart), snap.clone())).await);
        let paid = store
            .confirm_payment(&catalog, payment(order.order_id, "13.50", invoice))
            .await
            .unwrap();
        assert!(paid.is_ok(), "{paid:?}");
        // The same invoice again is a no-op, not a second use.
        let repeat = store
            .confirm_payment(&catalog, payment(order.order_id, "13.50", invoice))
            .await
            .unwrap();
        assert!(repeat.is_ok(), "{repeat:?}");
        store
            .cancel(project(), order.order_id, "refund".into())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(uses(&store, &catalog, "ann").await, 2);
    // Used up: pricing no longer gives it, and an order priced before is refused.
    let mut purchases = Purchases::default();
    purchases.promotions.insert(sale_id(&catalog), 2);
    let usd = Currency::usd();
    let priced = price(
        &cart_of(&[("sword", 1)], None),
        &PricingContext {
            project: project(),
            catalog: &catalog,
            currency: &usd,
            country: None,
            now: Timestamp::from_unix(1_790_000_000),
            purchases: &purchases,
            promo_code: None,
        },
    );
    assert_eq!(
        priced.total.as_ref().unwrap().0.amount,
        "5.00".parse().unwrap()
    );
    let stale = checkout(&store, &catalog, request("ann", Some("c9"), snap)).await;
    assert!(matches!(
        stale,
        CheckoutOutcome::Refused(OrderError::PromotionLimitReached { .. })
    ));
}
