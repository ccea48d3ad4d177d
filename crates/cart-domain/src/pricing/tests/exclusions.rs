//! A promo code's `excluded_promotions`, Xsolla's way: the code wins, and the listed
//! promotions are not applied with it, on the lines the code discounts (a bonus
//! promotion: on the whole cart). Golden numbers on the demo catalog's items.

use super::*;

const BOOSTER: &str = "com.xsolla.booster_mega_1";
const SWORDS: &str = "com.xsolla.swords_1";
const MERCH_SALE: u64 = 1;
const STARTER_BONUS: u64 = 2;
const BOOSTER_SALE: u64 = 3;

/// The demo catalog's items, `merch_sale` (10 % off mugs and T-shirts), `starter_bonus`
/// (a sword with every starter pack) and `BOOSTER50` (half-price boosters and a pair of
/// swords, excluding `merch_sale`).
fn demo() -> Catalog {
    let mut c = Catalog::default();
    for (s, price) in [
        (BOOSTER, "50"),
        ("cup01", "5.99"),
        ("t-shirt01", "3.99"),
        ("starter_pack", "9.99"),
        (SWORDS, "2.99"),
        ("sword_common", "1.99"),
    ] {
        c.insert(project(), item(s, &[("USD", price, true)], false));
    }
    c.insert_promotion(
        project(),
        discount_promotion(
            MERCH_SALE,
            &["cup01", "t-shirt01"],
            Discount::Percent(dec("10")),
        ),
    );
    c.insert_promotion(
        project(),
        Promotion {
            id: STARTER_BONUS,
            name: BTreeMap::new(),
            window: DateWindow::default(),
            skus: BTreeSet::from([sku("starter_pack")]),
            kind: PromotionKind::Bonus {
                items: vec![(sku("sword_common"), 1)],
            },
            per_user_limit: None,
        },
    );
    let mut code = PromoCode::new("BOOSTER50");
    code.discounted_items = vec![(sku(BOOSTER), dec("50"))];
    code.bonus = vec![(sku(SWORDS), 1)];
    code.excluded_promotions = BTreeSet::from([MERCH_SALE]);
    c.insert_promo_code(project(), code);
    c
}

fn line<'p>(priced: &'p PricedCart<'_>, s: &str) -> &'p PricedLine<'p> {
    priced.lines.iter().find(|l| l.sku.as_str() == s).unwrap()
}

fn line_total(priced: &PricedCart<'_>, s: &str) -> (String, String) {
    let (a, w) = line(priced, s).line_total().unwrap();
    (a.normalize().to_string(), w.normalize().to_string())
}

fn promotion_ids(l: &PricedLine<'_>) -> Vec<Option<u64>> {
    l.promotions
        .iter()
        .map(|p| match p.source {
            PromotionSource::Promotion(p) => Some(p.id),
            PromotionSource::PromoCode(_) => None,
        })
        .collect()
}

#[test]
fn booster50_wins_with_merch_sale_in_the_cart_and_merch_sale_stays_where_the_code_gives_nothing() {
    let ctx = Ctx::new(demo()).with_code("BOOSTER50");
    let priced = ctx.price(&cart(&[(BOOSTER, 123), ("cup01", 2)]));
    // The code applies: no refusal because merch_sale is in the cart.
    assert_eq!(priced.promo_code.as_ref().unwrap().status, Ok(()));
    // The booster at half price: 123 x 50.00 = 6150.00 -> 3075.00.
    assert_eq!(line_total(&priced, BOOSTER), ("3075".into(), "6150".into()));
    assert_eq!(
        line(&priced, BOOSTER).promotions[0].step,
        Some((dec("50"), dec("25")))
    );
    // The code does not discount mugs, so merch_sale still does: 2 x 5.99 = 11.98 ->
    // 2 x 5.39 = 10.78.
    assert_eq!(
        line_total(&priced, "cup01"),
        ("10.78".into(), "11.98".into())
    );
    assert_eq!(promotion_ids(line(&priced, "cup01")), [Some(MERCH_SALE)]);
    // The bonus swords, outside both totals.
    let swords = line(&priced, SWORDS);
    assert!(swords.is_bonus && swords.quantity == 1 && swords.unit.is_none());
    // 3075.00 + 10.78, and 6150.00 + 11.98.
    assert_eq!(amounts(&priced), ("3085.78".into(), "6161.98".into()));
}

#[test]
fn an_excluded_discount_is_off_on_the_lines_the_code_discounts() {
    let mut c = demo();
    // A 20 % booster sale, also excluded by the code.
    c.insert_promotion(
        project(),
        discount_promotion(BOOSTER_SALE, &[BOOSTER], Discount::Percent(dec("20"))),
    );
    let mut code = c.promo_code(project(), "BOOSTER50").unwrap().clone();
    code.excluded_promotions.insert(BOOSTER_SALE);
    c.insert_promo_code(project(), code);
    let plain = Ctx::new(c.clone());
    // Without the code: 50.00 -> 40.00.
    let priced = plain.price(&cart(&[(BOOSTER, 2)]));
    assert_eq!(line_total(&priced, BOOSTER), ("80".into(), "100".into()));
    // With it: only the code's half price, 50.00 -> 25.00 (not 40.00 -> 20.00).
    let ctx = Ctx::new(c).with_code("BOOSTER50");
    let priced = ctx.price(&cart(&[(BOOSTER, 2)]));
    assert_eq!(line_total(&priced, BOOSTER), ("50".into(), "100".into()));
    assert_eq!(promotion_ids(line(&priced, BOOSTER)), [None]);
    assert_eq!(amounts(&priced), ("50".into(), "100".into()));
}

#[test]
fn a_cart_wide_code_excluding_merch_sale_replaces_it_on_every_line_it_discounts() {
    let mut c = demo();
    let mut code = PromoCode::new("WINTER2026");
    code.discount_percent = Some(dec("10"));
    code.excluded_promotions = BTreeSet::from([MERCH_SALE]);
    c.insert_promo_code(project(), code);
    let ctx = Ctx::new(c).with_code("WINTER2026");
    let priced = ctx.price(&cart(&[("cup01", 2), (BOOSTER, 1)]));
    // The code's 10 % alone on the mugs: 5.99 -> 5.39 (not 5.39 -> 4.85).
    assert_eq!(
        line_total(&priced, "cup01"),
        ("10.78".into(), "11.98".into())
    );
    assert!(line(&priced, "cup01").promotions.is_empty());
    // 50.00 -> 45.00 on the booster; 10.78 + 45.00.
    assert_eq!(line_total(&priced, BOOSTER), ("45".into(), "50".into()));
    assert_eq!(amounts(&priced), ("55.78".into(), "61.98".into()));
}

#[test]
fn an_excluded_bonus_promotion_gives_nothing_while_the_code_applies() {
    let mut c = demo();
    let mut code = c.promo_code(project(), "BOOSTER50").unwrap().clone();
    code.excluded_promotions.insert(STARTER_BONUS);
    c.insert_promo_code(project(), code);
    let with = Ctx::new(c.clone()).with_code("BOOSTER50");
    let priced = with.price(&cart(&[(BOOSTER, 1), ("starter_pack", 1)]));
    let skus: Vec<_> = priced.lines.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, [BOOSTER, "starter_pack", SWORDS]);
    assert!(priced
        .promotions
        .iter()
        .all(|p| matches!(p.source, PromotionSource::PromoCode(_))));
    // 25.00 + 9.99.
    assert_eq!(amounts(&priced), ("34.99".into(), "59.99".into()));
    // Without the code, the starter pack's sword.
    let plain = Ctx::new(c);
    let priced = plain.price(&cart(&[(BOOSTER, 1), ("starter_pack", 1)]));
    let skus: Vec<_> = priced.lines.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, [BOOSTER, "starter_pack", "sword_common"]);
}

#[test]
fn a_code_that_does_not_apply_excludes_nothing() {
    let mut c = demo();
    let mut code = PromoCode::new("LATE");
    code.discount_percent = Some(dec("10"));
    code.window.start = Some(Timestamp::from_unix(1_800_000_000));
    code.excluded_promotions = BTreeSet::from([MERCH_SALE]);
    c.insert_promo_code(project(), code);
    let ctx = Ctx::new(c).with_code("LATE");
    let priced = ctx.price(&cart(&[("cup01", 2)]));
    assert_eq!(
        priced.promo_code.as_ref().unwrap().status,
        Err(PromoCodeRejection::NotStarted)
    );
    assert_eq!(
        line_total(&priced, "cup01"),
        ("10.78".into(), "11.98".into())
    );
    assert_eq!(promotion_ids(line(&priced, "cup01")), [Some(MERCH_SALE)]);
}
