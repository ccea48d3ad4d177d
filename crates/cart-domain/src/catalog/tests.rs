//! The catalog predicates the order store counts and locks by.

use super::*;
use crate::time::Interval;

fn project() -> ProjectId {
    ProjectId::parse(7).unwrap()
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn item(name: &str, limits: ItemLimits) -> Item {
    let mut item = Item::new(sku(name), "virtual_good");
    item.limits = limits;
    item
}

fn per_user(total: u32, recurrent_schedule: Option<RecurrentSchedule>) -> ItemLimits {
    ItemLimits {
        per_user: Some(PerUserLimit {
            total,
            recurrent_schedule,
        }),
        per_item: None,
    }
}

fn catalog() -> Catalog {
    let mut catalog = Catalog::default();
    catalog.insert(project(), item("free-for-all", ItemLimits::default()));
    catalog.insert(project(), item("one-each", per_user(1, None)));
    catalog.insert(
        project(),
        item(
            "stock",
            ItemLimits {
                per_user: None,
                per_item: Some(10),
            },
        ),
    );
    catalog.insert_promo_code(project(), PromoCode::new("OPEN"));
    let mut limited = PromoCode::new("ONCE");
    limited.redeem_user_limit = Some(1);
    catalog.insert_promo_code(project(), limited);
    catalog
}

#[test]
fn an_item_is_limited_by_a_per_user_or_a_global_limit_only() {
    assert!(!ItemLimits::default().is_limited());
    assert!(per_user(3, None).is_limited());
    let stock = ItemLimits {
        per_user: None,
        per_item: Some(0),
    };
    assert!(stock.is_limited(), "a stock of zero is still a limit");
}

#[test]
fn limits_of_keeps_only_the_limited_listed_skus() {
    let catalog = catalog();
    let asked = [
        sku("free-for-all"),
        sku("one-each"),
        sku("stock"),
        sku("not-listed"),
    ];
    let limited = catalog.limits_of(project(), &asked);
    assert_eq!(
        limited.keys().map(Sku::as_str).collect::<Vec<_>>(),
        ["one-each", "stock"]
    );
    assert_eq!(limited[&sku("stock")].per_item, Some(10));
    let other = ProjectId::parse(8).unwrap();
    assert!(catalog.limits_of(other, &asked).is_empty());
}

#[test]
fn a_code_is_limited_by_any_of_its_three_redemption_limits() {
    let mut code = PromoCode::new("X");
    assert!(!code.redemptions_limited());
    for set in [
        |c: &mut PromoCode| c.redeem_total_limit = Some(5),
        |c: &mut PromoCode| c.redeem_user_limit = Some(1),
        |c: &mut PromoCode| c.redeem_code_limit = Some(0),
    ] {
        code = PromoCode::new("X");
        set(&mut code);
        assert!(code.redemptions_limited());
    }
}

#[test]
fn limited_code_finds_only_a_listed_limited_code() {
    let catalog = catalog();
    assert_eq!(
        catalog
            .limited_code(project(), "ONCE")
            .map(|c| c.code.as_str()),
        Some("ONCE")
    );
    assert!(catalog.limited_code(project(), "OPEN").is_none());
    assert!(catalog.limited_code(project(), "UNKNOWN").is_none());
    assert!(
        catalog.limited_code(project(), "once").is_none(),
        "codes are case-sensitive"
    );
}

#[test]
fn a_window_starts_at_the_epoch_without_a_schedule_and_at_the_last_reset_with_one() {
    // 2026-11-22T10:30:00Z.
    let now = Timestamp::from_unix(1_795_343_400);
    assert_eq!(per_user(1, None).window_start(now), Timestamp::from_unix(0));
    let daily = RecurrentSchedule {
        interval: Interval::Daily,
        hour: 9,
        utc_offset_minutes: 0,
    };
    // Reset at 09:00 UTC the same day.
    assert_eq!(
        per_user(1, Some(daily)).window_start(now),
        Timestamp::from_unix(1_795_338_000)
    );
    let stock = ItemLimits {
        per_user: None,
        per_item: Some(1),
    };
    assert_eq!(stock.window_start(now), Timestamp::from_unix(0));
}

fn promotion(id: PromotionId, skus: &[&str], per_user_limit: Option<u32>) -> Promotion {
    Promotion {
        id,
        name: BTreeMap::new(),
        window: DateWindow::default(),
        skus: skus.iter().map(|s| sku(s)).collect(),
        kind: PromotionKind::Bonus {
            items: vec![(sku("stock"), 1)],
        },
        per_user_limit,
    }
}

#[test]
fn only_per_user_limited_promotions_a_cart_could_get_are_counted() {
    let mut catalog = catalog();
    // Nothing limited: nothing to count, whatever the cart.
    catalog.insert_promotion(project(), promotion(1, &["one-each"], None));
    assert!(catalog
        .limited_promotions(project(), &[sku("one-each")])
        .is_empty());
    catalog.insert_promotion(project(), promotion(2, &["stock"], Some(3)));
    // A bonus promotion for any cart.
    catalog.insert_promotion(project(), promotion(3, &[], Some(1)));
    assert_eq!(
        catalog.limited_promotions(project(), &[sku("one-each")]),
        BTreeMap::from([(3, 1)])
    );
    assert_eq!(
        catalog.limited_promotions(project(), &[sku("stock"), sku("one-each")]),
        BTreeMap::from([(2, 3), (3, 1)])
    );
    // An order's promotions: the limits of those the catalog limits.
    assert_eq!(
        catalog.promotion_limits(project(), &BTreeSet::from([1, 2, 9])),
        BTreeMap::from([(2, 3)])
    );
}

#[test]
fn a_promotion_is_used_up_at_its_limit() {
    let limits = BTreeMap::from([(2, 3), (3, 1)]);
    assert_eq!(
        crate::availability::check_promotion_limits(&limits, &BTreeMap::from([(2, 2)])),
        Ok(())
    );
    assert_eq!(
        crate::availability::check_promotion_limits(&limits, &BTreeMap::from([(3, 1)])),
        Err(crate::order::OrderError::PromotionLimitReached { promotion_id: 3 })
    );
}
