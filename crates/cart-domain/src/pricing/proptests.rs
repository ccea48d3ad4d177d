//! Properties of pricing over random catalogs, promotions, promo codes and carts.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::tests::sku;
use super::*;
use crate::availability::PromoCodeUsage;
use crate::cart::{apply, CartEvent};
use crate::catalog::{CompareOp, ItemPrice, PriceCondition};

const SKUS: usize = 8;

fn name(i: usize) -> String {
    format!("sku{i}")
}

fn project() -> ProjectId {
    ProjectId::parse(1).unwrap()
}

/// Cents as a decimal with 2 places.
fn money() -> impl Strategy<Value = Decimal> {
    (0i64..100_000).prop_map(|cents| Decimal::new(cents, 2))
}

fn percent() -> impl Strategy<Value = Decimal> {
    (0i64..=10_000).prop_map(|bp| Decimal::new(bp, 2))
}

/// A time among a few, so that windows start before, at or after it.
fn instant() -> impl Strategy<Value = Timestamp> {
    (0i64..4).prop_map(|i| Timestamp::from_unix(i * 1000))
}

fn window() -> impl Strategy<Value = DateWindow> {
    prop_oneof![
        2 => Just(DateWindow::default()),
        1 => (proptest::option::of(instant()), proptest::option::of(instant()))
            .prop_map(|(start, end)| DateWindow { start, end }),
    ]
}

fn condition() -> impl Strategy<Value = PriceCondition> {
    let op = prop_oneof![
        Just(CompareOp::Ge),
        Just(CompareOp::Gt),
        Just(CompareOp::Le),
        Just(CompareOp::Lt),
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
    ];
    (op, money()).prop_map(|(op, value)| PriceCondition { op, value })
}

fn conditions() -> impl Strategy<Value = Vec<PriceCondition>> {
    prop_oneof![
        2 => Just(vec![]),
        1 => prop::collection::vec(condition(), 1..3),
    ]
}

fn any_sku() -> impl Strategy<Value = Sku> {
    (0..SKUS).prop_map(|i| sku(&name(i)))
}

fn countries() -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::btree_set(
        prop_oneof![Just("DE".to_owned()), Just("US".to_owned())],
        0..2,
    )
}

fn discount() -> impl Strategy<Value = Discount> {
    prop_oneof![
        percent().prop_map(Discount::Percent),
        money().prop_map(Discount::Value),
    ]
}

fn item(i: usize) -> impl Strategy<Value = Item> {
    (
        money(),
        proptest::option::of(money()),
        any::<bool>(),
        prop::bool::weighted(0.15),
        any::<bool>(),
        proptest::option::of(money()),
    )
        .prop_map(move |(usd, eur, eur_default, is_free, enabled, de)| {
            let mut item = Item::new(sku(&name(i)), "virtual_good");
            let usd_default = !(eur.is_some() && eur_default);
            item.prices.push(ItemPrice {
                currency: Currency::usd(),
                amount: usd,
                is_default: usd_default,
                country: None,
            });
            if let Some(eur) = eur {
                item.prices.push(ItemPrice {
                    currency: Currency::parse("EUR").unwrap(),
                    amount: eur,
                    is_default: !usd_default,
                    country: None,
                });
            }
            if let Some(de) = de {
                // A country price, for buyers from Germany.
                item.prices.push(ItemPrice {
                    currency: Currency::usd(),
                    amount: de,
                    is_default: false,
                    country: Some("DE".into()),
                });
            }
            item.is_free = is_free;
            item.enabled = enabled;
            item
        })
}

fn skus() -> impl Strategy<Value = BTreeSet<Sku>> {
    prop::collection::btree_set((0..SKUS).prop_map(|i| sku(&name(i))), 0..4)
}

fn promotion() -> impl Strategy<Value = Promotion> {
    let kind = prop_oneof![
        3 => discount().prop_map(PromotionKind::Discount),
        1 => prop::collection::vec(((0..SKUS).prop_map(|i| sku(&name(i))), 1u32..4), 1..3)
            .prop_map(|items| PromotionKind::Bonus { items }),
    ];
    (
        0u64..20,
        skus(),
        kind,
        window(),
        proptest::option::of(0u32..3),
    )
        .prop_map(|(id, skus, kind, window, per_user_limit)| Promotion {
            id,
            name: BTreeMap::new(),
            window,
            skus,
            kind,
            per_user_limit,
        })
}

fn promo_code() -> impl Strategy<Value = PromoCode> {
    (
        proptest::option::of(percent()),
        prop::collection::vec(((0..SKUS).prop_map(|i| sku(&name(i))), percent()), 0..3),
        prop::collection::vec(((0..SKUS).prop_map(|i| sku(&name(i))), 1u32..3), 0..2),
        (conditions(), conditions()),
        prop::collection::btree_set(0u64..20, 0..3),
        window(),
        proptest::option::of(0u32..3),
        countries(),
        // Selectable rewards: unit SKU -> the SKUs to pick from.
        prop::collection::btree_map(any_sku(), prop::collection::vec(any_sku(), 1..3), 0..2),
    )
        .prop_map(
            |(
                discount_percent,
                discounted_items,
                bonus,
                (price_conditions, item_price_conditions),
                excluded_promotions,
                window,
                redeem_user_limit,
                countries,
                selectable,
            )| {
                let mut code = PromoCode::new("CODE");
                code.discount_percent = discount_percent;
                code.discounted_items = discounted_items;
                code.bonus = bonus;
                code.price_conditions = price_conditions;
                code.item_price_conditions = item_price_conditions;
                code.excluded_promotions = excluded_promotions;
                code.window = window;
                code.redeem_user_limit = redeem_user_limit;
                code.countries = countries;
                code.selectable = selectable;
                code
            },
        )
}

#[derive(Debug, Clone)]
struct World {
    catalog: Catalog,
    currency: Currency,
    country: Option<String>,
    now: Timestamp,
    purchases: Purchases,
    code: Option<AppliedCode>,
}

fn world() -> impl Strategy<Value = World> {
    let items: Vec<_> = (0..SKUS).map(item).collect();
    (
        items,
        // Some SKUs are not in the catalog.
        prop::collection::btree_set(0..SKUS, 0..3),
        prop::collection::vec(promotion(), 0..5),
        proptest::option::of(promo_code()),
        any::<bool>(),
        (
            proptest::option::of(countries().prop_map(|c| c.into_iter().next())),
            instant(),
            // Uses of promotions and of the code by this user.
            prop::collection::btree_map(0u64..20, 0u32..3, 0..4),
            0u32..3,
            // Picks among the selectable rewards: (unit, index), possibly not allowed.
            prop::collection::vec((any_sku(), any_sku(), any::<bool>()), 0..2),
        ),
    )
        .prop_map(
            |(items, missing, promotions, code, eur, (country, now, uses, code_uses, picks))| {
                let mut catalog = Catalog::default();
                for (i, item) in items.into_iter().enumerate() {
                    if !missing.contains(&i) {
                        catalog.insert(project(), item);
                    }
                }
                for p in promotions {
                    catalog.insert_promotion(project(), p);
                }
                let applied = code.as_ref().map(|c| AppliedCode {
                    code: c.code.clone(),
                    // Mostly allowed picks (the first item of a selectable unit), sometimes
                    // anything.
                    selected_unit_items: picks
                        .iter()
                        .filter_map(|(unit, other, allowed)| match c.selectable.get(unit) {
                            Some(items) if *allowed => Some((unit.clone(), items[0].clone())),
                            _ if !*allowed => Some((unit.clone(), other.clone())),
                            _ => None,
                        })
                        .collect(),
                });
                let purchases = Purchases {
                    promotions: uses,
                    promo_codes: BTreeMap::from([(
                        "CODE".to_owned(),
                        PromoCodeUsage {
                            total: code_uses,
                            by_user: code_uses,
                            by_code: code_uses,
                        },
                    )]),
                    ..Purchases::default()
                };
                if let Some(code) = code {
                    catalog.insert_promo_code(project(), code);
                }
                World {
                    catalog,
                    currency: if eur {
                        Currency::parse("EUR").unwrap()
                    } else {
                        Currency::usd()
                    },
                    country: country.flatten(),
                    now,
                    purchases,
                    code: applied,
                }
            },
        )
}

/// Cart lines: SKU index and quantity.
type Lines = Vec<(usize, u32)>;

/// Distinct SKUs with quantities, and the same lines in another order.
fn lines() -> impl Strategy<Value = (Lines, Lines)> {
    prop::collection::btree_map(0..SKUS, 1u32..1000, 0..SKUS)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
        .prop_flat_map(|lines| (Just(lines.clone()), Just(lines).prop_shuffle()))
}

fn cart(lines: &[(usize, u32)]) -> Cart {
    lines.iter().fold(Cart::default(), |c, (i, q)| {
        apply(
            c,
            &CartEvent::ItemQuantitySet {
                sku: sku(&name(*i)),
                quantity: *q,
            },
        )
    })
}

fn priced<'a>(w: &'a World, c: &Cart) -> PricedCart<'a> {
    price(
        c,
        &PricingContext {
            project: project(),
            catalog: &w.catalog,
            currency: &w.currency,
            country: w.country.as_deref(),
            now: w.now,
            purchases: &w.purchases,
            promo_code: w.code.as_ref(),
        },
    )
}

/// A line as an order-free comparable value.
fn summary(l: &PricedLine<'_>) -> String {
    format!(
        "{} {} {:?} {:?} {} {} {} {}",
        l.sku,
        l.quantity,
        l.unit,
        l.unit_without_discount,
        l.is_free,
        l.is_bonus,
        l.can_be_bought,
        l.promotions.len()
    )
}

proptest! {
    #[test]
    fn totals_are_sums_of_lines_within_bounds(w in world(), (lines, _) in lines()) {
        let p = priced(&w, &cart(&lines));
        for l in &p.lines {
            if l.is_bonus || l.is_free {
                prop_assert!(l.unit.is_none() && l.unit_without_discount.is_none());
                prop_assert!(l.line_total().is_none());
            }
            if let (Some(u), Some(w)) = (&l.unit, &l.unit_without_discount) {
                prop_assert!(u.amount >= Decimal::ZERO && u.amount <= w.amount);
                prop_assert_eq!(&u.currency, &w.currency);
            }
        }
        let counted: Vec<_> = p.lines.iter().filter_map(PricedLine::line_total).collect();
        if let Some((amount, without)) = &p.total {
            let sum = counted.iter().map(|(a, _)| *a).sum::<Decimal>();
            let sum_without = counted.iter().map(|(_, w)| *w).sum::<Decimal>();
            prop_assert_eq!(amount.amount, sum);
            prop_assert_eq!(without.amount, sum_without);
            prop_assert!(Decimal::ZERO <= amount.amount);
            prop_assert!(amount.amount <= without.amount);
            prop_assert_eq!(&amount.currency, &without.currency);
        } else {
            // No priced line, or lines in more than one currency.
            let currencies: BTreeSet<_> = p
                .lines
                .iter()
                .filter_map(|l| l.unit.as_ref().map(|u| u.currency.clone()))
                .collect();
            prop_assert!(currencies.len() != 1, "{:?}", currencies);
        }
        let paid = p.lines.iter().filter(|l| !l.is_free).count();
        prop_assert_eq!(p.is_free, !p.lines.is_empty() && paid == 0);
    }

    #[test]
    fn the_order_of_lines_does_not_matter(w in world(), (lines, shuffled) in lines()) {
        let a = priced(&w, &cart(&lines));
        let b = priced(&w, &cart(&shuffled));
        prop_assert_eq!(&a.total, &b.total);
        prop_assert_eq!(a.is_free, b.is_free);
        prop_assert_eq!(&a.promotions, &b.promotions);
        prop_assert_eq!(&a.promo_code, &b.promo_code);
        let mut sa: Vec<_> = a.lines.iter().map(summary).collect();
        let mut sb: Vec<_> = b.lines.iter().map(summary).collect();
        sa.sort();
        sb.sort();
        prop_assert_eq!(sa, sb);
    }

    #[test]
    fn a_promo_code_never_raises_the_amount(w in world(), (lines, _) in lines()) {
        let with = priced(&w, &cart(&lines));
        let without_code = World { code: None, ..w.clone() };
        let without = priced(&without_code, &cart(&lines));
        // The code wins over the promotions it excludes, which may have given more:
        // only a line that lost none of them is never dearer.
        let excluded = with
            .promo_code
            .as_ref()
            .filter(|o| o.applies())
            .and_then(|o| o.promo_code)
            .map(|c| c.excluded_promotions.clone())
            .unwrap_or_default();
        let lost_one = |m: &PricedLine<'_>| {
            m.promotions.iter().any(|p| match p.source {
                PromotionSource::Promotion(p) => excluded.contains(&p.id),
                PromotionSource::PromoCode(_) => false,
            })
        };
        // The code changes no line's price currency, so both totals exist or neither.
        prop_assert_eq!(with.total.is_some(), without.total.is_some());
        if let (Some((a, _)), Some((b, _))) = (&with.total, &without.total) {
            if !without.lines.iter().any(lost_one) {
                prop_assert!(a.amount <= b.amount);
            }
        }
        // Line by line, too (the cart's lines come first, in the same order).
        for (l, m) in with.lines.iter().zip(&without.lines).filter(|(l, _)| !l.is_bonus) {
            prop_assert_eq!(&l.sku, &m.sku);
            if let (Some(a), Some(b)) = (&l.unit, &m.unit) {
                if !lost_one(m) {
                    prop_assert!(a.amount <= b.amount);
                }
            }
            prop_assert_eq!(l.unit.is_some(), m.unit.is_some());
            // A promotion the code excludes is never applied together with the code.
            prop_assert!(!lost_one(l) || !l.promotions.iter().any(|p| matches!(p.source, PromotionSource::PromoCode(_))));
        }
        prop_assert_eq!(
            with.total.as_ref().map(|t| &t.1),
            without.total.as_ref().map(|t| &t.1)
        );
    }

    #[test]
    fn a_code_that_does_not_apply_gives_nothing(w in world(), (lines, _) in lines()) {
        let with = priced(&w, &cart(&lines));
        let without_code = World { code: None, ..w.clone() };
        let without = priced(&without_code, &cart(&lines));
        let outcome = with.promo_code.clone();
        prop_assert_eq!(outcome.is_some(), w.code.is_some());
        if outcome.is_some_and(|o| !o.applies()) {
            prop_assert_eq!(
                PricedCart { promo_code: None, ..with },
                without
            );
        }
    }
}
