//! Prices a cart against a catalog snapshot, in a requested currency.

use rust_decimal::Decimal;

use crate::cart::Cart;
use crate::catalog::{Catalog, Item};
use crate::ids::{Currency, ProjectId, Sku};

/// An exact amount of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

/// A cart line with its item and unit price.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedLine<'a> {
    pub sku: Sku,
    pub quantity: u32,
    /// None when the catalog no longer lists the SKU.
    pub item: Option<&'a Item>,
    /// The unit price after discounts; None for a free item or one with no price.
    pub unit: Option<Money>,
    pub unit_without_discount: Option<Money>,
    pub is_free: bool,
}

/// A whole cart, priced.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedCart<'a> {
    pub lines: Vec<PricedLine<'a>>,
    /// (amount, amount_without_discount), both in `total_currency`. None for an empty or
    /// all-free cart, or when the lines' prices are in more than one currency.
    pub total: Option<(Money, Money)>,
    /// True when the cart has lines and every one is free.
    pub is_free: bool,
}

/// Prices `cart` for `project` in `currency`. Lines are priced in the requested currency
/// when the item has such a price, else in the item's default currency.
pub fn price<'a>(
    cart: &Cart,
    project: ProjectId,
    catalog: &'a Catalog,
    currency: &Currency,
) -> PricedCart<'a> {
    let lines: Vec<PricedLine<'a>> = cart
        .lines()
        .iter()
        .map(|line| {
            let item = catalog.item(project, &line.sku);
            let is_free = item.is_some_and(|i| i.is_free);
            let unit = item
                .filter(|i| !i.is_free)
                .and_then(|i| i.price_in(currency))
                .map(|p| Money {
                    amount: p.amount,
                    currency: p.currency.clone(),
                });
            PricedLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                item,
                unit_without_discount: unit.clone(),
                unit,
                is_free,
            }
        })
        .collect();

    let is_free = !lines.is_empty() && lines.iter().all(|l| l.is_free);
    let total = total(&lines);
    PricedCart {
        lines,
        total,
        is_free,
    }
}

fn total(lines: &[PricedLine<'_>]) -> Option<(Money, Money)> {
    let mut priced = lines
        .iter()
        .filter_map(|l| Some((l, l.unit.as_ref()?, l.unit_without_discount.as_ref()?)));
    let (first, ..) = priced.clone().next()?;
    let currency = first.unit.as_ref()?.currency.clone();
    let mut amount = Decimal::ZERO;
    let mut without = Decimal::ZERO;
    for (line, unit, unit_without) in &mut priced {
        if unit.currency != currency || unit_without.currency != currency {
            return None;
        }
        let qty = Decimal::from(line.quantity);
        amount = amount.checked_add(unit.amount.checked_mul(qty)?)?;
        without = without.checked_add(unit_without.amount.checked_mul(qty)?)?;
    }
    Some((
        Money {
            amount,
            currency: currency.clone(),
        },
        Money {
            amount: without,
            currency,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::str::FromStr;

    use super::*;
    use crate::cart::{apply, CartEvent};
    use crate::catalog::ItemPrice;

    fn item(sku: &str, prices: &[(&str, &str, bool)], is_free: bool) -> Item {
        Item {
            sku: Sku::parse(sku).unwrap(),
            item_type: "virtual_good".into(),
            virtual_item_type: None,
            name: BTreeMap::from([("en".into(), format!("{sku} name"))]),
            description: BTreeMap::new(),
            image_url: String::new(),
            prices: prices
                .iter()
                .map(|(c, a, d)| ItemPrice {
                    currency: Currency::parse(c).unwrap(),
                    amount: Decimal::from_str(a).unwrap(),
                    is_default: *d,
                })
                .collect(),
            virtual_prices: vec![],
            is_free,
            groups: vec![],
            attributes: vec![],
        }
    }

    fn cart(lines: &[(&str, u32)]) -> Cart {
        lines.iter().fold(Cart::default(), |c, (s, q)| {
            apply(
                c,
                &CartEvent::ItemQuantitySet {
                    sku: Sku::parse(*s).unwrap(),
                    quantity: *q,
                },
            )
        })
    }

    fn catalog() -> (ProjectId, Catalog) {
        let p = ProjectId::parse(1).unwrap();
        let mut c = Catalog::default();
        c.insert(
            p,
            item(
                "cup",
                &[("USD", "5.99", true), ("EUR", "5.49", false)],
                false,
            ),
        );
        c.insert(p, item("shirt", &[("USD", "3.99", true)], false));
        c.insert(p, item("gift", &[], true));
        (p, c)
    }

    fn usd() -> Currency {
        Currency::usd()
    }

    #[test]
    fn totals_are_exact_sums_of_unit_times_quantity() {
        let (p, c) = catalog();
        let priced = price(&cart(&[("cup", 2), ("shirt", 1)]), p, &c, &usd());
        let (amount, without) = priced.total.unwrap();
        assert_eq!(amount.amount.to_string(), "15.97");
        assert_eq!(without.amount.to_string(), "15.97");
        assert_eq!(amount.currency.as_str(), "USD");
        assert!(!priced.is_free);
    }

    #[test]
    fn requested_currency_is_used_when_the_item_has_it() {
        let (p, c) = catalog();
        let eur = Currency::parse("EUR").unwrap();
        let priced = price(&cart(&[("cup", 3)]), p, &c, &eur);
        assert_eq!(priced.total.unwrap().0.amount.to_string(), "16.47");
    }

    #[test]
    fn mixed_currencies_leave_the_total_null() {
        let (p, c) = catalog();
        let eur = Currency::parse("EUR").unwrap();
        // cup has EUR, shirt falls back to its USD default.
        let priced = price(&cart(&[("cup", 1), ("shirt", 1)]), p, &c, &eur);
        assert_eq!(
            priced.lines[1].unit.as_ref().unwrap().currency.as_str(),
            "USD"
        );
        assert!(priced.total.is_none());
    }

    #[test]
    fn free_and_empty_carts() {
        let (p, c) = catalog();
        let empty = price(&Cart::default(), p, &c, &usd());
        assert!(empty.total.is_none() && !empty.is_free);
        let free = price(&cart(&[("gift", 1)]), p, &c, &usd());
        assert!(free.is_free && free.total.is_none() && free.lines[0].unit.is_none());
        let mixed = price(&cart(&[("gift", 1), ("cup", 1)]), p, &c, &usd());
        assert!(!mixed.is_free);
        assert_eq!(mixed.total.unwrap().0.amount.to_string(), "5.99");
    }

    #[test]
    fn a_line_the_catalog_dropped_has_no_item_and_no_price() {
        let (p, c) = catalog();
        let priced = price(&cart(&[("gone", 1), ("cup", 1)]), p, &c, &usd());
        assert!(priced.lines[0].item.is_none() && priced.lines[0].unit.is_none());
        assert_eq!(priced.total.unwrap().0.amount.to_string(), "5.99");
    }
}
