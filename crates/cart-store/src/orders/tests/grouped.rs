//! The grouped purchase reader (`GroupPurchases`): the counts of many users' asks read
//! in one statement are, for each ask, those `purchases_for` reads alone.

use super::*;
use crate::group::GroupConfig;

/// `sword` with a sale a user may get once, `potion` (2 per user), `relic` (1 in all),
/// `daily` (1 per user a day) and `HALF` (one redemption per user).
fn limited_catalog() -> Arc<Catalog> {
    let doc = serde_json::json!({ "projects": [{
        "project_id": P,
        "items": [
            { "sku": "sword", "type": "virtual_good", "name": {"en": "Sword"},
              "prices": [{ "currency": "USD", "amount": "5.00", "is_default": true }] },
            { "sku": "potion", "type": "virtual_good", "name": {"en": "Potion"},
              "prices": [{ "currency": "USD", "amount": "1.50", "is_default": true }],
              "limits": { "per_user": 2 } },
            { "sku": "relic", "type": "virtual_good", "name": {"en": "Relic"},
              "prices": [{ "currency": "USD", "amount": "10", "is_default": true }],
              "limits": { "per_item": 1 } },
            { "sku": "daily", "type": "virtual_good", "name": {"en": "Daily chest"},
              "prices": [{ "currency": "USD", "amount": "2", "is_default": true }],
              "limits": { "per_user": 1, "recurrent_schedule":
                  { "interval_type": "daily", "time": "03:00:00+03:00" } } }
        ],
        "promotions": [{ "id": "sale", "name": "Sale", "date_start": "2020-01-01T00:00:00Z",
            "skus": ["sword"], "discount": { "percent": "10" }, "limits": { "per_user": 1 } }],
        "promo_codes": [{ "code": "HALF", "name": "Half", "discount": { "percent": "50" },
            "redeem_user_limit": 1 }]
    }]});
    Arc::new(cart_proto::catalog::parse(doc.to_string().as_bytes()).unwrap())
}

#[tokio::test]
async fn grouped_counts_equal_each_users_own_read() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let carts = EventStore::new(pool);
    let catalog = limited_catalog();
    // Ann buys two potions, the relic, a chest and a sword on sale, with HALF.
    let lines = [("potion", 2), ("relic", 1), ("daily", 1), ("sword", 1)];
    stored_cart(&carts, "ann", "c", &lines, Some("HALF")).await;
    let key = StreamKey::new(project(), user("ann"), CartId::parse("c").unwrap());
    let snap = snapshot(&catalog, &carts.load(&key).await.unwrap().cart);
    let total = snap.total.as_ref().unwrap().amount.to_string();
    let c = created(checkout(&store, &catalog, request("ann", Some("c"), snap)).await);
    store
        .confirm_payment(&catalog, payment(c.order_id, &total, "inv-1"))
        .await
        .unwrap()
        .unwrap();

    let grouped = store.group_purchases(GroupConfig::default());
    let now = Timestamp::from_unix(1_790_000_200);
    let skus: Vec<Sku> = ["potion", "relic", "daily", "sword", "gift"]
        .map(|s| Sku::parse(s).unwrap())
        .into();
    let asks = [
        ("ann", &skus[..], Some("HALF")),
        ("bob", &skus[..], Some("HALF")),
        ("ann", &skus[..1], None),
        ("ann", &[][..], None),
        ("bob", &skus[3..], Some("NOPE")),
    ];
    // Sent together, so that they share batches.
    let reads = asks.iter().map(|(who, skus, code)| {
        let needs = Needs::of(&catalog, project(), skus, *code, now);
        let who = user(who);
        let grouped = grouped.clone();
        async move { grouped.read(project(), &who, needs).await.unwrap() }
    });
    let got = futures::future::join_all(reads).await;
    for ((who, skus, code), got) in asks.iter().zip(got) {
        let alone = store
            .purchases_for(&catalog, project(), &user(who), skus, *code, now)
            .await
            .unwrap();
        assert_eq!(got, alone, "{who} {skus:?} {code:?}");
    }
    let ann = &grouped
        .read(
            project(),
            &user("ann"),
            Needs::of(&catalog, project(), &skus, Some("HALF"), now),
        )
        .await
        .unwrap();
    assert_eq!(ann.of(&skus[0]).total, 2);
    assert_eq!(ann.sold(&skus[1]), 1);
    assert_eq!(ann.of(&skus[2]).in_window, 1);
    assert_eq!(ann.promotions.values().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(ann.promo_codes["HALF"].by_user, 1);

    // A superset's read, restricted, is the read of the smaller needs.
    let small = Needs::of(&catalog, project(), &skus[..1], None, now);
    let big = Needs::of(&catalog, project(), &skus, Some("HALF"), now);
    assert!(big.covers(&small) && !small.covers(&big));
    let alone = grouped.read(project(), &user("ann"), small.clone()).await;
    assert_eq!(small.restrict(ann), alone.unwrap());
}
