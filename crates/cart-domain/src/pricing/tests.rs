//! Golden tests: Xsolla's documented numbers, recomputed.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use super::*;
use crate::availability::PromoCodeUsage;
use crate::cart::{apply, CartEvent};
use crate::catalog::{CompareOp, ItemPrice, PriceCondition};

pub(super) fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub(super) fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn item(s: &str, prices: &[(&str, &str, bool)], is_free: bool) -> Item {
    let mut item = Item::new(sku(s), "virtual_good");
    item.name = BTreeMap::from([("en".into(), format!("{s} name"))]);
    item.prices = prices
        .iter()
        .map(|(c, a, d)| ItemPrice {
            currency: Currency::parse(c).unwrap(),
            amount: dec(a),
            is_default: *d,
            country: None,
        })
        .collect();
    item.is_free = is_free;
    item
}

fn cart(lines: &[(&str, u32)]) -> Cart {
    lines.iter().fold(Cart::default(), |c, (s, q)| {
        apply(
            c,
            &CartEvent::ItemQuantitySet {
                sku: sku(s),
                quantity: *q,
            },
        )
    })
}

fn project() -> ProjectId {
    ProjectId::parse(44056).unwrap()
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.insert(
        project(),
        item(
            "cup",
            &[("USD", "5.99", true), ("EUR", "5.49", false)],
            false,
        ),
    );
    c.insert(project(), item("shirt", &[("USD", "3.99", true)], false));
    c.insert(project(), item("gift", &[], true));
    c
}

struct Ctx {
    catalog: Catalog,
    currency: Currency,
    country: Option<String>,
    now: Timestamp,
    purchases: Purchases,
    code: Option<AppliedCode>,
}

impl Ctx {
    fn new(catalog: Catalog) -> Self {
        Self {
            catalog,
            currency: Currency::usd(),
            country: None,
            now: Timestamp::from_unix(1_700_000_000),
            purchases: Purchases::default(),
            code: None,
        }
    }

    fn with_code(mut self, code: &str) -> Self {
        self.code = Some(AppliedCode {
            code: code.into(),
            selected_unit_items: BTreeMap::new(),
        });
        self
    }

    fn price(&self, c: &Cart) -> PricedCart<'_> {
        price(
            c,
            &PricingContext {
                project: project(),
                catalog: &self.catalog,
                currency: &self.currency,
                country: self.country.as_deref(),
                now: self.now,
                purchases: &self.purchases,
                promo_code: self.code.as_ref(),
            },
        )
    }
}

fn amounts(p: &PricedCart<'_>) -> (String, String) {
    let (a, w) = p.total.clone().unwrap();
    (
        a.amount.normalize().to_string(),
        w.amount.normalize().to_string(),
    )
}

fn discount_promotion(id: u64, skus: &[&str], discount: Discount) -> Promotion {
    Promotion {
        id,
        name: BTreeMap::from([("en".into(), format!("promotion {id}"))]),
        window: DateWindow::default(),
        skus: skus.iter().map(|s| sku(s)).collect(),
        kind: PromotionKind::Discount(discount),
        per_user_limit: None,
    }
}

#[test]
fn totals_are_exact_sums_of_unit_times_quantity() {
    // Xsolla's admin fill example: 2 x 5.99 + 3.99 = 15.97.
    let ctx = Ctx::new(catalog());
    let priced = ctx.price(&cart(&[("cup", 2), ("shirt", 1)]));
    assert_eq!(amounts(&priced), ("15.97".into(), "15.97".into()));
    assert_eq!(priced.total.unwrap().0.currency.as_str(), "USD");
    assert!(!priced.is_free);
    assert!(priced.lines.iter().all(|l| l.can_be_bought && !l.is_bonus));
}

#[test]
fn requested_currency_is_used_when_the_item_has_it() {
    let mut ctx = Ctx::new(catalog());
    ctx.currency = Currency::parse("EUR").unwrap();
    let priced = ctx.price(&cart(&[("cup", 3)]));
    assert_eq!(amounts(&priced).0, "16.47");
}

#[test]
fn a_country_price_comes_first_when_the_country_matches() {
    let mut c = catalog();
    let mut cup = c.item(project(), &sku("cup")).unwrap().clone();
    cup.prices.push(ItemPrice {
        currency: Currency::usd(),
        amount: dec("4.99"),
        is_default: false,
        country: Some("BR".into()),
    });
    c.insert(project(), cup);
    let mut ctx = Ctx::new(c);
    assert_eq!(amounts(&ctx.price(&cart(&[("cup", 1)]))).0, "5.99");
    ctx.country = Some("br".into());
    assert_eq!(amounts(&ctx.price(&cart(&[("cup", 1)]))).0, "4.99");
    ctx.country = Some("DE".into());
    assert_eq!(amounts(&ctx.price(&cart(&[("cup", 1)]))).0, "5.99");
}

#[test]
fn mixed_currencies_leave_the_total_null() {
    let mut ctx = Ctx::new(catalog());
    ctx.currency = Currency::parse("EUR").unwrap();
    // cup has EUR, shirt falls back to its USD default.
    let priced = ctx.price(&cart(&[("cup", 1), ("shirt", 1)]));
    assert_eq!(
        priced.lines[1].unit.as_ref().unwrap().currency.as_str(),
        "USD"
    );
    assert!(priced.total.is_none());
}

#[test]
fn free_and_empty_carts() {
    let ctx = Ctx::new(catalog());
    let empty = ctx.price(&Cart::default());
    assert!(empty.total.is_none() && !empty.is_free);
    let free = ctx.price(&cart(&[("gift", 1)]));
    assert!(free.is_free && free.total.is_none() && free.lines[0].unit.is_none());
    let mixed = ctx.price(&cart(&[("gift", 1), ("cup", 1)]));
    assert!(!mixed.is_free);
    assert_eq!(amounts(&mixed), ("5.99".into(), "5.99".into()));
}

#[test]
fn a_line_the_catalog_dropped_has_no_item_and_no_price() {
    let ctx = Ctx::new(catalog());
    let priced = ctx.price(&cart(&[("gone", 1), ("cup", 1)]));
    let gone = &priced.lines[0];
    assert!(gone.item.is_none() && gone.unit.is_none() && !gone.can_be_bought);
    assert_eq!(amounts(&priced).0, "5.99");
}

#[test]
fn stacked_discounts_give_xsollas_documented_6_84() {
    // $10 with 10 %, 20 % and a 5 % promo code: ((10 - 10 %) - 20 %) - 5 % = 6.84.
    let mut c = Catalog::default();
    c.insert(project(), item("sword", &[("USD", "10", true)], false));
    // Inserted out of order: they apply by id.
    c.insert_promotion(
        project(),
        discount_promotion(2, &["sword"], Discount::Percent(dec("20"))),
    );
    c.insert_promotion(
        project(),
        discount_promotion(1, &["sword"], Discount::Percent(dec("10"))),
    );
    let mut code = PromoCode::new("FIVE");
    code.discount_percent = Some(dec("5"));
    c.insert_promo_code(project(), code);
    let ctx = Ctx::new(c).with_code("FIVE");
    let priced = ctx.price(&cart(&[("sword", 1)]));
    let line = &priced.lines[0];
    assert_eq!(line.unit.as_ref().unwrap().amount, dec("6.84"));
    assert_eq!(
        line.unit_without_discount.as_ref().unwrap().amount,
        dec("10")
    );
    assert_eq!(amounts(&priced), ("6.84".into(), "10".into()));
    // Item-level: the two promotions, in id order, with their steps.
    let steps: Vec<_> = line
        .promotions
        .iter()
        .map(|p| (p.discount, p.step))
        .collect();
    assert_eq!(
        steps,
        [
            (
                Some(Discount::Percent(dec("10"))),
                Some((dec("10"), dec("9.00")))
            ),
            (
                Some(Discount::Percent(dec("20"))),
                Some((dec("9.00"), dec("7.20")))
            ),
        ]
    );
    // Cart-level: the promo code's cart-wide discount.
    assert_eq!(priced.promotions.len(), 1);
    assert!(matches!(
        priced.promotions[0].source,
        PromotionSource::PromoCode(c) if c.code == "FIVE"
    ));
    assert_eq!(
        priced.promotions[0].discount,
        Some(Discount::Percent(dec("5")))
    );
    assert!(priced.promo_code.as_ref().unwrap().applies());
}

#[test]
fn each_percent_step_is_rounded_to_two_decimals() {
    assert_eq!(
        discounted(dec("0.99"), Discount::Percent(dec("15"))),
        dec("0.84")
    );
    // 1.25 * 0.9 = 1.125 -> 1.13 (half away from zero).
    assert_eq!(
        discounted(dec("1.25"), Discount::Percent(dec("10"))),
        dec("1.13")
    );
    assert_eq!(discounted(dec("3"), Discount::Value(dec("5"))), dec("0"));
    assert_eq!(
        discounted(dec("3"), Discount::Value(dec("0.5"))),
        dec("2.5")
    );
    assert_eq!(
        discounted(dec("3"), Discount::Percent(dec("150"))),
        dec("0")
    );
}

#[test]
fn fixed_value_discounts_and_virtual_prices() {
    let mut c = Catalog::default();
    let mut gem = item("gem", &[("USD", "2.00", true)], false);
    gem.virtual_prices.push(crate::catalog::VirtualPrice {
        sku: sku("gold"),
        amount: 100,
        is_default: true,
        name: "Gold".into(),
        image_url: None,
        description: None,
    });
    c.insert(project(), gem);
    c.insert_promotion(
        project(),
        discount_promotion(7, &["gem"], Discount::Value(dec("0.75"))),
    );
    let ctx = Ctx::new(c);
    let priced = ctx.price(&cart(&[("gem", 4)]));
    assert_eq!(amounts(&priced), ("5".into(), "8".into()));
    // Virtual prices are the item's, never discounted.
    assert_eq!(priced.lines[0].item.unwrap().virtual_prices[0].amount, 100);
}

/// The promo-code redeem example: booster x123, unit 100 with 50 % off the item, and a
/// bonus line `com.xsolla.swords_1` outside both totals.
fn redeem_example() -> Ctx {
    let mut c = Catalog::default();
    c.insert(
        project(),
        item("com.xsolla.booster_mega_1", &[("USD", "100", true)], false),
    );
    c.insert(
        project(),
        item("com.xsolla.swords_1", &[("USD", "3", true)], false),
    );
    let mut code = PromoCode::new("WINTER2021");
    code.discounted_items = vec![(sku("com.xsolla.booster_mega_1"), dec("50.00"))];
    code.bonus = vec![(sku("com.xsolla.swords_1"), 1)];
    c.insert_promo_code(project(), code);
    Ctx::new(c).with_code("WINTER2021")
}

#[test]
fn the_promo_code_redeem_example() {
    let ctx = redeem_example();
    let priced = ctx.price(&cart(&[("com.xsolla.booster_mega_1", 123)]));
    assert_eq!(amounts(&priced), ("6150".into(), "12300".into()));
    assert_eq!(priced.lines.len(), 2);
    let booster = &priced.lines[0];
    assert_eq!(booster.unit.as_ref().unwrap().amount, dec("50"));
    assert_eq!(booster.promotions.len(), 1);
    assert_eq!(booster.line_total(), Some((dec("6150"), dec("12300"))));
    let bonus = &priced.lines[1];
    assert_eq!(bonus.sku.as_str(), "com.xsolla.swords_1");
    assert!(bonus.is_bonus && bonus.is_free && bonus.unit.is_none());
    assert_eq!(bonus.quantity, 1);
    assert!(!priced.is_free);
    // Cart-level: the code, for its bonus (it has no cart-wide discount).
    assert_eq!(priced.promotions.len(), 1);
    assert_eq!(priced.promotions[0].discount, None);
    assert_eq!(
        priced.promotions[0].bonus,
        [(sku("com.xsolla.swords_1"), 1)]
    );
    let outcome = priced.promo_code.unwrap();
    let r = outcome.rewards.unwrap();
    assert_eq!(r.discount_percent, None);
    assert_eq!(
        r.discounted_items,
        [(sku("com.xsolla.booster_mega_1"), dec("50.00"))]
    );
    assert!(!r.is_selectable);
    // Without the code: no bonus line, no discount.
    let mut plain = redeem_example();
    plain.code = None;
    let priced = plain.price(&cart(&[("com.xsolla.booster_mega_1", 123)]));
    assert_eq!(priced.lines.len(), 1);
    assert_eq!(amounts(&priced), ("12300".into(), "12300".into()));
}

#[test]
fn bonus_promotions_add_a_line_and_a_cart_promotion() {
    let mut c = catalog();
    c.insert_promotion(
        project(),
        Promotion {
            id: 9,
            name: BTreeMap::new(),
            window: DateWindow::default(),
            skus: BTreeSet::from([sku("cup")]),
            kind: PromotionKind::Bonus {
                items: vec![(sku("gift"), 2)],
            },
            per_user_limit: Some(1),
        },
    );
    let mut ctx = Ctx::new(c);
    let priced = ctx.price(&cart(&[("shirt", 1)]));
    assert_eq!(priced.lines.len(), 1);
    assert!(priced.promotions.is_empty());
    let priced = ctx.price(&cart(&[("cup", 1), ("shirt", 1)]));
    assert_eq!(priced.lines.len(), 3);
    assert!(priced.lines[2].is_bonus && priced.lines[2].quantity == 2);
    assert_eq!(amounts(&priced), ("9.98".into(), "9.98".into()));
    assert_eq!(
        priced.promotions[0].per_user,
        Some(Availability {
            total: 1,
            available: 1
        })
    );
    // Once the user got it, it is no longer given.
    ctx.purchases.promotions.insert(9, 1);
    let priced = ctx.price(&cart(&[("cup", 1), ("shirt", 1)]));
    assert_eq!(priced.lines.len(), 2);
    assert!(priced.promotions.is_empty());
}

#[test]
fn promotions_outside_their_window_do_not_apply() {
    let mut c = catalog();
    let mut p = discount_promotion(1, &["cup"], Discount::Percent(dec("50")));
    p.window = DateWindow {
        start: Some(Timestamp::from_unix(100)),
        end: Some(Timestamp::from_unix(200)),
    };
    c.insert_promotion(project(), p);
    let mut ctx = Ctx::new(c);
    ctx.now = Timestamp::from_unix(150);
    assert_eq!(amounts(&ctx.price(&cart(&[("cup", 1)]))).0, "3");
    ctx.now = Timestamp::from_unix(200);
    let priced = ctx.price(&cart(&[("cup", 1)]));
    assert_eq!(amounts(&priced).0, "5.99");
    assert!(priced.lines[0].promotions.is_empty());
}

#[test]
fn lines_over_a_limit_or_off_sale_cannot_be_bought() {
    let mut c = catalog();
    let mut cup = c.item(project(), &sku("cup")).unwrap().clone();
    cup.limits.per_user = Some(crate::catalog::PerUserLimit {
        total: 3,
        recurrent_schedule: None,
    });
    c.insert(project(), cup);
    let mut shirt = c.item(project(), &sku("shirt")).unwrap().clone();
    shirt.enabled = false;
    c.insert(project(), shirt);
    let mut ctx = Ctx::new(c);
    ctx.purchases.by_user.insert(
        sku("cup"),
        crate::availability::SkuPurchases {
            in_window: 0,
            total: 2,
        },
    );
    let priced = ctx.price(&cart(&[("cup", 2), ("shirt", 1)]));
    let cup = &priced.lines[0];
    assert!(!cup.can_be_bought);
    assert_eq!(
        cup.unavailable,
        Some(Unavailable::PerUserLimit { available: 1 })
    );
    assert_eq!(cup.limits.unwrap().per_user.unwrap().available, 1);
    assert_eq!(priced.lines[1].unavailable, Some(Unavailable::Disabled));
    // They keep their price.
    assert_eq!(amounts(&priced).0, "15.97");
}

fn code_ctx(code: PromoCode) -> Ctx {
    let name = code.code.clone();
    let mut c = catalog();
    c.insert_promo_code(project(), code);
    Ctx::new(c).with_code(&name)
}

fn status(ctx: &Ctx, lines: &[(&str, u32)]) -> Result<(), PromoCodeRejection> {
    ctx.price(&cart(lines)).promo_code.unwrap().status
}

#[test]
fn promo_code_validity_reasons() {
    let ten = |mut c: PromoCode| {
        c.discount_percent = Some(dec("10"));
        c
    };
    // Unknown code: attached, gives nothing, says why.
    let ctx = Ctx::new(catalog()).with_code("NOPE");
    let priced = ctx.price(&cart(&[("cup", 1)]));
    let outcome = priced.promo_code.as_ref().unwrap();
    assert_eq!(outcome.status, Err(PromoCodeRejection::NotFound));
    assert_eq!(outcome.status.as_ref().unwrap_err().error_code(), 9807);
    assert!(outcome.rewards.is_none());
    assert_eq!(amounts(&priced).0, "5.99");

    // Window.
    let mut code = ten(PromoCode::new("W"));
    code.window = DateWindow {
        start: Some(Timestamp::from_unix(1_800_000_000)),
        end: None,
    };
    let e = status(&code_ctx(code.clone()), &[("cup", 1)]).unwrap_err();
    assert_eq!(
        (e.clone(), e.error_code()),
        (PromoCodeRejection::NotStarted, 9810)
    );
    code.window = DateWindow {
        start: None,
        end: Some(Timestamp::from_unix(1_600_000_000)),
    };
    let e = status(&code_ctx(code), &[("cup", 1)]).unwrap_err();
    assert_eq!(
        (e.clone(), e.error_code()),
        (PromoCodeRejection::Expired, 9810)
    );

    // Limits: total, per user, per code.
    let mut code = ten(PromoCode::new("L"));
    code.redeem_total_limit = Some(10);
    code.redeem_user_limit = Some(1);
    code.redeem_code_limit = Some(5);
    let mut ctx = code_ctx(code);
    assert_eq!(status(&ctx, &[("cup", 1)]), Ok(()));
    let mut usage = |u: PromoCodeUsage| {
        ctx.purchases.promo_codes.insert("L".into(), u);
        status(&ctx, &[("cup", 1)])
    };
    let e = usage(PromoCodeUsage {
        total: 10,
        by_user: 0,
        by_code: 0,
    })
    .unwrap_err();
    assert_eq!(
        (e.clone(), e.error_code()),
        (PromoCodeRejection::TotalLimitReached, 9804)
    );
    let e = usage(PromoCodeUsage {
        total: 1,
        by_user: 1,
        by_code: 1,
    });
    assert_eq!(e, Err(PromoCodeRejection::UserLimitReached));
    let e = usage(PromoCodeUsage {
        total: 5,
        by_user: 0,
        by_code: 5,
    });
    assert_eq!(e, Err(PromoCodeRejection::CodeLimitReached));

    // Region: an unknown country is refused too.
    let mut code = ten(PromoCode::new("R"));
    code.countries = BTreeSet::from(["DE".to_owned()]);
    let mut ctx = code_ctx(code);
    let e = status(&ctx, &[("cup", 1)]).unwrap_err();
    assert_eq!(
        (e.clone(), e.error_code()),
        (PromoCodeRejection::Region, 9808)
    );
    ctx.country = Some("de".into());
    assert_eq!(status(&ctx, &[("cup", 1)]), Ok(()));

    // Price conditions on the cart total (before the code).
    let mut code = ten(PromoCode::new("P"));
    code.price_conditions = vec![PriceCondition {
        op: CompareOp::Ge,
        value: dec("10"),
    }];
    let ctx = code_ctx(code);
    assert_eq!(
        status(&ctx, &[("cup", 1)]),
        Err(PromoCodeRejection::PriceConditions)
    );
    let priced = ctx.price(&cart(&[("cup", 2)]));
    assert_eq!(amounts(&priced), ("10.78".into(), "11.98".into()));

    // Item price conditions: only lines that meet them get the cart-wide percent.
    let mut code = ten(PromoCode::new("I"));
    code.item_price_conditions = vec![PriceCondition {
        op: CompareOp::Gt,
        value: dec("5"),
    }];
    let ctx = code_ctx(code);
    assert_eq!(
        status(&ctx, &[("shirt", 1)]),
        Err(PromoCodeRejection::ItemPriceConditions)
    );
    let priced = ctx.price(&cart(&[("cup", 1), ("shirt", 1)]));
    assert_eq!(amounts(&priced), ("9.38".into(), "9.98".into()));

    // Excluded promotions never stop the code: it wins (tests/exclusions.rs).
    let mut c = catalog();
    c.insert_promotion(
        project(),
        discount_promotion(3, &["shirt"], Discount::Percent(dec("10"))),
    );
    let mut code = ten(PromoCode::new("X"));
    code.excluded_promotions = BTreeSet::from([3]);
    c.insert_promo_code(project(), code);
    let ctx = Ctx::new(c).with_code("X");
    let priced = ctx.price(&cart(&[("cup", 1), ("shirt", 1)]));
    assert_eq!(priced.promo_code.as_ref().unwrap().status, Ok(()));
    // The code's 10 % on both lines, promotion 3 off the shirt: 5.39 + 3.59.
    assert_eq!(amounts(&priced), ("8.98".into(), "9.98".into()));
    assert!(priced.lines[1].promotions.is_empty());
}

mod exclusions;

#[test]
fn selectable_rewards_add_the_picked_item() {
    let mut code = PromoCode::new("GAME");
    code.selectable = BTreeMap::from([(sku("game_1"), vec![sku("cup"), sku("shirt")])]);
    let mut ctx = code_ctx(code);
    ctx.code.as_mut().unwrap().selected_unit_items =
        BTreeMap::from([(sku("game_1"), sku("shirt"))]);
    let priced = ctx.price(&cart(&[("cup", 1)]));
    assert_eq!(priced.lines.len(), 2);
    assert!(priced.lines[1].is_bonus && priced.lines[1].sku.as_str() == "shirt");
    let r = priced.promo_code.unwrap().rewards.unwrap();
    assert!(r.is_selectable);
    assert_eq!(r.bonus, [(sku("shirt"), 1)]);

    ctx.code.as_mut().unwrap().selected_unit_items = BTreeMap::from([(sku("game_1"), sku("gift"))]);
    let e = status(&ctx, &[("cup", 1)]).unwrap_err();
    assert_eq!(e.error_code(), 1102);
}

#[test]
fn check_promo_code_needs_no_cart() {
    let mut code = PromoCode::new("ABC");
    code.discount_percent = Some(dec("10.10"));
    let ctx = code_ctx(code);
    let found = check_promo_code(
        &ctx.catalog,
        project(),
        "ABC",
        ctx.now,
        None,
        &ctx.purchases,
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(
        rewards(found, &BTreeMap::new()).discount_percent,
        Some(dec("10.10"))
    );
    // Codes are case-sensitive.
    let e = check_promo_code(
        &ctx.catalog,
        project(),
        "abc",
        ctx.now,
        None,
        &ctx.purchases,
        &BTreeMap::new(),
    );
    assert_eq!(e, Err(PromoCodeRejection::NotFound));
}

#[test]
fn a_bonus_only_code_gives_nothing_to_an_empty_or_free_only_cart() {
    let mut code = PromoCode::new("GIFTS");
    code.bonus = vec![(sku("shirt"), 1)];
    let ctx = code_ctx(code);
    // An empty cart (a clear keeps the code): no bonus line, not free.
    let priced = ctx.price(&cart(&[]));
    assert!(priced.lines.is_empty());
    assert!(!priced.is_free);
    assert!(priced.promotions.is_empty());
    let outcome = priced.promo_code.unwrap();
    assert_eq!(outcome.status, Err(PromoCodeRejection::NoPaidLine));
    assert_eq!(outcome.status.unwrap_err().error_code(), 9807);
    // A free line is not a paid line.
    let priced = ctx.price(&cart(&[("gift", 1)]));
    assert_eq!(priced.lines.len(), 1);
    assert_eq!(
        priced.promo_code.unwrap().status,
        Err(PromoCodeRejection::NoPaidLine)
    );
    // With a paid line the bonus is given.
    let priced = ctx.price(&cart(&[("cup", 1)]));
    assert_eq!(priced.lines.len(), 2);
    assert!(priced.promo_code.unwrap().applies());
}

#[test]
fn lines_that_cannot_be_bought_meet_no_condition_and_trigger_nothing() {
    let disable_shirt = |c: &mut Catalog| {
        let mut shirt = c.item(project(), &sku("shirt")).unwrap().clone();
        shirt.enabled = false;
        c.insert(project(), shirt);
    };
    // Price conditions: the disabled shirts (7.98) do not count toward the 10.
    let mut code = PromoCode::new("BIG");
    code.discount_percent = Some(dec("10"));
    code.price_conditions = vec![PriceCondition {
        op: CompareOp::Ge,
        value: dec("10"),
    }];
    let mut ctx = code_ctx(code);
    assert_eq!(status(&ctx, &[("cup", 1), ("shirt", 2)]), Ok(()));
    disable_shirt(&mut ctx.catalog);
    let priced = ctx.price(&cart(&[("cup", 1), ("shirt", 2)]));
    assert_eq!(
        priced.promo_code.as_ref().unwrap().status,
        Err(PromoCodeRejection::PriceConditions)
    );
    // They still show in the displayed totals.
    assert_eq!(amounts(&priced), ("13.97".into(), "13.97".into()));
    // A disabled line alone is no paid line.
    assert_eq!(
        status(&ctx, &[("shirt", 5)]),
        Err(PromoCodeRejection::NoPaidLine)
    );

    // Item price conditions: only the disabled shirt is under 5.
    let mut code = PromoCode::new("CHEAP");
    code.discount_percent = Some(dec("10"));
    code.item_price_conditions = vec![PriceCondition {
        op: CompareOp::Lt,
        value: dec("5"),
    }];
    let mut ctx = code_ctx(code);
    assert_eq!(status(&ctx, &[("cup", 1), ("shirt", 1)]), Ok(()));
    disable_shirt(&mut ctx.catalog);
    assert_eq!(
        status(&ctx, &[("cup", 1), ("shirt", 1)]),
        Err(PromoCodeRejection::ItemPriceConditions)
    );

    // Bonus promotions: a disabled shirt triggers nothing.
    let mut c = catalog();
    c.insert_promotion(
        project(),
        Promotion {
            id: 9,
            name: BTreeMap::new(),
            window: DateWindow::default(),
            skus: BTreeSet::from([sku("shirt")]),
            kind: PromotionKind::Bonus {
                items: vec![(sku("gift"), 1)],
            },
            per_user_limit: None,
        },
    );
    let mut ctx = Ctx::new(c);
    assert_eq!(ctx.price(&cart(&[("shirt", 1)])).lines.len(), 2);
    disable_shirt(&mut ctx.catalog);
    let priced = ctx.price(&cart(&[("shirt", 1)]));
    assert_eq!(priced.lines.len(), 1);
    assert!(priced.promotions.is_empty());
}

#[test]
fn item_price_conditions_are_on_the_price_before_the_code_in_check_and_discount() {
    // The shirt is 3.99 before the code and 2.00 after its 50% on the SKU: the
    // condition (>= 3) is met before the code, so the cart-wide 10% applies too.
    let mut code = PromoCode::new("BOTH");
    code.discount_percent = Some(dec("10"));
    code.discounted_items = vec![(sku("shirt"), dec("50"))];
    code.item_price_conditions = vec![PriceCondition {
        op: CompareOp::Ge,
        value: dec("3"),
    }];
    let ctx = code_ctx(code);
    let priced = ctx.price(&cart(&[("shirt", 1)]));
    assert!(priced.promo_code.as_ref().unwrap().applies());
    assert_eq!(amounts(&priced), ("1.8".into(), "3.99".into()));
    assert_eq!(
        priced.promotions[0].discount,
        Some(Discount::Percent(dec("10")))
    );
}

#[test]
fn a_paid_item_without_a_price_in_the_currency_cannot_be_bought() {
    let mut c = catalog();
    // Only a EUR price, not the default one.
    c.insert(project(), item("mug", &[("EUR", "4.00", false)], false));
    let ctx = Ctx::new(c);
    let priced = ctx.price(&cart(&[("mug", 1), ("cup", 1)]));
    let mug = &priced.lines[0];
    assert_eq!(mug.unit, None);
    assert!(mug.no_price);
    assert!(!mug.can_be_bought);
    assert_eq!(mug.unavailable, None);
    assert_eq!(amounts(&priced), ("5.99".into(), "5.99".into()));
    // A priced line and a free line are not "no price".
    assert!(!priced.lines[1].no_price && priced.lines[1].can_be_bought);
    let priced = ctx.price(&cart(&[("gift", 1)]));
    assert!(!priced.lines[0].no_price && priced.lines[0].can_be_bought);
}

#[test]
fn value_discounts_and_price_conditions_are_in_the_default_currency_only() {
    let eur = || Currency::parse("EUR").unwrap();
    // The cup is 5.99 USD (default) and 5.49 EUR.
    let mut c = catalog();
    c.insert_promotion(
        project(),
        discount_promotion(7, &["cup"], Discount::Value(dec("1"))),
    );
    let mut ctx = Ctx::new(c);
    let priced = ctx.price(&cart(&[("cup", 1)]));
    assert_eq!(amounts(&priced), ("4.99".into(), "5.99".into()));
    ctx.currency = eur();
    let priced = ctx.price(&cart(&[("cup", 1)]));
    assert_eq!(amounts(&priced), ("5.49".into(), "5.49".into()));
    assert!(priced.lines[0].promotions.is_empty());

    // A price condition cannot be met by switching currency.
    let under = vec![PriceCondition {
        op: CompareOp::Le,
        value: dec("5.5"),
    }];
    let mut code = PromoCode::new("SMALL");
    code.discount_percent = Some(dec("10"));
    code.price_conditions = under.clone();
    let mut ctx = code_ctx(code);
    assert_eq!(
        status(&ctx, &[("cup", 1)]),
        Err(PromoCodeRejection::PriceConditions)
    );
    ctx.currency = eur();
    let priced = ctx.price(&cart(&[("cup", 1)]));
    assert_eq!(
        priced.promo_code.as_ref().unwrap().status,
        Err(PromoCodeRejection::ConditionCurrency { currency: eur() })
    );
    assert_eq!(amounts(&priced), ("5.49".into(), "5.49".into()));
    // The shirt has no EUR price: it is priced in its default USD, and counts.
    assert_eq!(status(&ctx, &[("shirt", 1)]), Ok(()));

    // Item price conditions likewise.
    let mut code = PromoCode::new("CHEAP");
    code.discount_percent = Some(dec("10"));
    code.item_price_conditions = under;
    let mut ctx = code_ctx(code);
    ctx.currency = eur();
    let priced = ctx.price(&cart(&[("cup", 1)]));
    assert_eq!(
        priced.promo_code.as_ref().unwrap().status,
        Err(PromoCodeRejection::ConditionCurrency { currency: eur() })
    );
    assert_eq!(amounts(&priced), ("5.49".into(), "5.49".into()));
}
