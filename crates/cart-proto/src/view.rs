//! The cart as a reply: a priced cart rendered in the Xsolla cart shape.

use cart_domain::{
    AppliedPromotion, Catalog, Discount, LineLimits, Locale, Money, PricedCart, PricedLine,
    ProjectId, Rewards, SkipReason, Skipped, Sku, Unavailable,
};
use rust_decimal::Decimal;

use crate::error::unknown_item_text;
use crate::v1;

mod format;

pub use format::{date, AmountFormat};

/// Renders a priced cart.
pub fn cart(
    cart_id: &str,
    priced: &PricedCart<'_>,
    locale: &Locale,
    format: AmountFormat,
) -> v1::Cart {
    v1::Cart {
        cart_id: cart_id.to_owned(),
        price: priced
            .total
            .as_ref()
            .map(|(amount, without)| price(amount, without, format)),
        is_free: priced.is_free,
        items: priced
            .lines
            .iter()
            .map(|line| item(line, priced, locale, format))
            .collect(),
        promotions: priced
            .promotions
            .iter()
            .map(|p| promotion(p, priced, locale, format))
            .collect(),
        warnings: vec![],
        promo_code: priced
            .promo_code
            .as_ref()
            .map(|outcome| v1::PromoCodeStatus {
                code: outcome.code.clone(),
                applies: outcome.applies(),
                reason: outcome
                    .status
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                error_code: outcome
                    .status
                    .as_ref()
                    .err()
                    .map_or(0, |r| i32::try_from(r.error_code()).unwrap_or(0)),
            }),
        rewards: None,
    }
}

/// Renders what a promo code gives in Xsolla's `rewards` shape, with the bonus items'
/// catalog entries. A selectable unit the redeemer did not pick is listed with the
/// items to pick from.
pub fn rewards(
    project: ProjectId,
    catalog: &Catalog,
    rewards: &Rewards,
    selected: &std::collections::BTreeMap<Sku, Sku>,
    locale: &Locale,
) -> v1::Rewards {
    let reward_item = |sku: &Sku| {
        let item = catalog.item(project, sku);
        v1::RewardItem {
            sku: sku.to_string(),
            name: item.map(|i| i.name(locale).to_owned()).unwrap_or_default(),
            r#type: item.map(|i| i.item_type.clone()).unwrap_or_default(),
            description: item
                .map(|i| i.description(locale).to_owned())
                .unwrap_or_default(),
            image_url: item.map(|i| i.image_url.clone()).unwrap_or_default(),
            unit_items: vec![],
        }
    };
    let mut bonus: Vec<v1::RewardBonus> = rewards
        .bonus
        .iter()
        .map(|(sku, quantity)| v1::RewardBonus {
            item: Some(reward_item(sku)),
            quantity: *quantity,
        })
        .collect();
    for (unit, items) in &rewards.selectable {
        if selected.contains_key(unit) {
            continue;
        }
        let mut entry = reward_item(unit);
        entry.unit_items = items
            .iter()
            .map(|sku| {
                let item = reward_item(sku);
                v1::RewardUnitItem {
                    sku: item.sku,
                    r#type: item.r#type,
                    name: item.name,
                }
            })
            .collect();
        bonus.push(v1::RewardBonus {
            item: Some(entry),
            quantity: 1,
        });
    }
    v1::Rewards {
        bonus,
        discount: rewards.discount_percent.map(|p| v1::PercentOnly {
            percent: percent(p),
        }),
        discounted_items: rewards
            .discounted_items
            .iter()
            .map(|(sku, p)| v1::DiscountedItem {
                sku: sku.to_string(),
                discount: Some(v1::PercentOnly {
                    percent: percent(*p),
                }),
            })
            .collect(),
        is_selectable: rewards.is_selectable,
    }
}

/// Percents have two decimals, as in Xsolla's examples (`"10.00"`).
fn percent(p: Decimal) -> String {
    AmountFormat { scale: 2 }.format(p)
}

fn promotion(
    p: &AppliedPromotion<'_>,
    priced: &PricedCart<'_>,
    locale: &Locale,
    format: AmountFormat,
) -> v1::Promotion {
    let window = p.source.window();
    v1::Promotion {
        name: p.source.name(locale).to_owned(),
        date_start: window.start.map(date),
        date_end: window.end.map(date),
        discount: p.discount.map(|d| match d {
            Discount::Percent(x) => v1::Discount {
                percent: Some(percent(x)),
                value: None,
            },
            Discount::Value(x) => v1::Discount {
                percent: None,
                value: Some(format.format(x)),
            },
        }),
        bonus: p
            .bonus
            .iter()
            .map(|(sku, quantity)| {
                // The bonus lines carry the bonus items' catalog entries.
                let item = priced
                    .lines
                    .iter()
                    .filter(|l| l.is_bonus && &l.sku == sku)
                    .find_map(|l| l.item);
                v1::Bonus {
                    sku: sku.as_str().to_owned(),
                    quantity: *quantity,
                    r#type: item.map(|i| i.item_type.clone()).unwrap_or_default(),
                    name: item.map(|i| i.name(locale).to_owned()).unwrap_or_default(),
                    image_url: item.map(|i| i.image_url.clone()).unwrap_or_default(),
                    bundle_type: None,
                }
            })
            .collect(),
        limits: p.per_user.map(|a| v1::PromotionLimits {
            per_user: Some(v1::PerUserLimit {
                total: a.total,
                available: a.available,
                recurrent_schedule: None,
            }),
        }),
    }
}

fn limits(l: &LineLimits) -> v1::Limits {
    v1::Limits {
        per_user: l.per_user.map(|u| v1::PerUserLimit {
            total: u.total,
            available: u.available,
            recurrent_schedule: u.recurrent_schedule.map(|r| v1::RecurrentSchedule {
                interval_type: r.interval.name().to_owned(),
                reset_next_date: r.reset_next_date.unix(),
            }),
        }),
        per_item: l.per_item.map(|i| v1::PerItemLimit {
            total: i.total,
            available: i.available,
        }),
    }
}

/// Renders fill's skipped SKUs as Xsolla warnings.
pub fn warnings(project: ProjectId, skipped: &[Skipped]) -> Vec<v1::Warning> {
    skipped
        .iter()
        .map(|s| {
            let sku = &s.sku;
            let (code, text) = match s.reason {
                SkipReason::UnknownItem => (4001, unknown_item_text(project, sku)),
                SkipReason::Unavailable(Unavailable::Disabled) => (
                    1455,
                    format!("Item with Project Id = {project} and Sku = {sku} is unavailable"),
                ),
                SkipReason::Unavailable(Unavailable::NotOnSale) => (
                    1455,
                    format!("Item with Project Id = {project} and Sku = {sku} is not on sale now"),
                ),
                SkipReason::Unavailable(
                    Unavailable::PerUserLimit { available: 0 }
                    | Unavailable::PerItemLimit { available: 0 },
                ) => (
                    1460,
                    format!("Purchase limit exceeded for item with Sku = {sku}"),
                ),
                SkipReason::Unavailable(
                    Unavailable::PerUserLimit { available }
                    | Unavailable::PerItemLimit { available },
                ) => (
                    1459,
                    format!(
                        "Quantity of item with Sku = {sku} exceeds the purchase limit: \
                         {available} left"
                    ),
                ),
            };
            v1::Warning {
                sku: s.sku.to_string(),
                quantity: i64::from(s.quantity.get()),
                error_code: code,
                error_message: format!("[0401-{code}]: {text}"),
            }
        })
        .collect()
}

fn price(amount: &Money, without: &Money, format: AmountFormat) -> v1::Price {
    v1::Price {
        amount: format.format(amount.amount),
        amount_without_discount: format.format(without.amount),
        currency: amount.currency.as_str().to_owned(),
    }
}

fn item(
    line: &PricedLine<'_>,
    priced: &PricedCart<'_>,
    locale: &Locale,
    format: AmountFormat,
) -> v1::CartItem {
    let price = match (&line.unit, &line.unit_without_discount) {
        (Some(unit), Some(without)) => Some(price(unit, without, format)),
        _ => None,
    };
    let Some(item) = line.item else {
        // The catalog dropped this SKU after it was put in the cart: show the line so the
        // shopper can remove it, but it cannot be bought.
        return v1::CartItem {
            sku: line.sku.as_str().to_owned(),
            name: line.sku.as_str().to_owned(),
            quantity: line.quantity,
            is_free: line.is_free,
            is_bonus: line.is_bonus,
            can_be_bought: false,
            ..Default::default()
        };
    };
    v1::CartItem {
        sku: line.sku.as_str().to_owned(),
        name: item.name(locale).to_owned(),
        r#type: item.item_type.clone(),
        virtual_item_type: item.virtual_item_type.clone(),
        description: item.description(locale).to_owned(),
        image_url: item.image_url.clone(),
        quantity: line.quantity,
        price,
        is_free: line.is_free,
        is_bonus: line.is_bonus,
        promotions: line
            .promotions
            .iter()
            .map(|p| promotion(p, priced, locale, format))
            .collect(),
        can_be_bought: line.can_be_bought,
        limits: line.limits.as_ref().map(limits),
        periods: item
            .periods
            .iter()
            .map(|p| v1::Period {
                date_from: date(p.from),
                date_until: p.until.map(date),
            })
            .collect(),
        groups: item
            .groups
            .iter()
            .map(|g| v1::Group {
                external_id: g.external_id.clone(),
                name: g.name.clone(),
            })
            .collect(),
        attributes: item
            .attributes
            .iter()
            .map(|a| v1::Attribute {
                external_id: a.external_id.clone(),
                name: a.name.clone(),
                values: a
                    .values
                    .iter()
                    .map(|v| v1::AttributeValue {
                        external_id: v.external_id.clone(),
                        value: v.value.clone(),
                    })
                    .collect(),
            })
            .collect(),
        virtual_prices: item
            .virtual_prices
            .iter()
            .map(|vp| v1::VirtualPrice {
                sku: vp.sku.as_str().to_owned(),
                amount: vp.amount,
                amount_without_discount: vp.amount,
                is_default: vp.is_default,
                image_url: vp.image_url.clone(),
                name: vp.name.clone(),
                r#type: "virtual_currency".to_owned(),
                description: vp.description.clone(),
            })
            .collect(),
        vp_rewards: item
            .vp_rewards
            .iter()
            .map(|r| v1::VpReward {
                item_id: r.item_id,
                sku: r.sku.clone(),
                amount: r.amount,
                name: r.name.clone(),
                image_url: r.image_url.clone(),
                is_clan: r.is_clan,
            })
            .collect(),
        inventory_options: Some(inventory_options(&item.inventory_options)),
    }
}

fn inventory_options(options: &cart_domain::InventoryOptions) -> v1::InventoryOptions {
    v1::InventoryOptions {
        consumable: options.consumable.map(|c| v1::Consumable {
            usages_count: c.usages_count,
        }),
        expiration_period: options.expiration_period.map(|e| v1::ExpirationPeriod {
            r#type: e.unit.name().to_owned(),
            value: e.value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cart_domain::Timestamp;

    #[test]
    fn the_redeem_example_renders_discounts_bonus_lines_and_limits() {
        use cart_domain::{
            apply, AppliedCode, Cart, CartEvent, Catalog, Currency, Item, ItemPrice, PerUserLimit,
            PricingContext, PromoCode, Purchases, Sku,
        };
        let sku = |s: &str| Sku::parse(s).unwrap();
        let project = ProjectId::parse(44056).unwrap();
        let mut catalog = Catalog::default();
        for (s, amount) in [
            ("com.xsolla.booster_mega_1", 100),
            ("com.xsolla.swords_1", 3),
        ] {
            let mut item = Item::new(sku(s), "virtual_good");
            item.prices.push(ItemPrice {
                currency: Currency::usd(),
                amount: Decimal::from(amount),
                is_default: true,
                country: None,
            });
            item.limits.per_user = Some(PerUserLimit {
                total: 200,
                recurrent_schedule: None,
            });
            if s == "com.xsolla.booster_mega_1" {
                item.inventory_options = cart_domain::InventoryOptions {
                    consumable: Some(cart_domain::Consumable { usages_count: 1 }),
                    expiration_period: Some(cart_domain::ExpirationPeriod {
                        unit: cart_domain::PeriodUnit::Hour,
                        value: 1,
                    }),
                };
            }
            catalog.insert(project, item);
        }
        let mut code = PromoCode::new("WINTER2021");
        code.discounted_items = vec![(sku("com.xsolla.booster_mega_1"), Decimal::from(50))];
        code.bonus = vec![(sku("com.xsolla.swords_1"), 1)];
        catalog.insert_promo_code(project, code);
        let cart = apply(
            Cart::default(),
            &CartEvent::ItemQuantitySet {
                sku: sku("com.xsolla.booster_mega_1"),
                quantity: 123,
            },
        );
        let applied = AppliedCode {
            code: "WINTER2021".into(),
            ..Default::default()
        };
        let purchases = Purchases::default();
        let usd = Currency::usd();
        let priced = cart_domain::price(
            &cart,
            &PricingContext {
                project,
                catalog: &catalog,
                currency: &usd,
                country: None,
                now: Timestamp::from_unix(1_700_000_000),
                purchases: &purchases,
                promo_code: Some(&applied),
            },
        );
        let json = serde_json::to_value(super::cart(
            "c1",
            &priced,
            &Locale::en(),
            AmountFormat { scale: 16 },
        ))
        .unwrap();
        assert_eq!(
            json["price"],
            serde_json::json!({
                "amount": "6150.0000000000000000",
                "amount_without_discount": "12300.0000000000000000",
                "currency": "USD"
            })
        );
        let booster = &json["items"][0];
        assert_eq!(booster["price"]["amount"], "50.0000000000000000");
        assert_eq!(booster["promotions"][0]["discount"]["percent"], "50.00");
        assert_eq!(booster["limits"]["per_user"]["available"], 200);
        assert_eq!(
            booster["inventory_options"],
            serde_json::json!({"consumable": {"usages_count": 1}, "expiration_period": {"type": "hour", "value": 1}})
        );
        let bonus = &json["items"][1];
        assert_eq!(bonus["sku"], "com.xsolla.swords_1");
        assert_eq!(bonus["is_bonus"], true);
        assert_eq!(bonus["is_free"], true);
        assert!(bonus.get("price").is_none_or(serde_json::Value::is_null));
        assert_eq!(
            json["promotions"][0]["bonus"][0]["sku"],
            "com.xsolla.swords_1"
        );
        assert_eq!(json["promotions"][0]["bonus"][0]["type"], "virtual_good");
    }

    #[test]
    fn fill_warnings_have_xsolla_codes_and_messages() {
        use cart_domain::{Quantity, Sku};
        let project = ProjectId::parse(44056).unwrap();
        let skipped = |s: &str, reason| Skipped {
            sku: Sku::parse(s).unwrap(),
            quantity: Quantity::parse(2).unwrap(),
            reason,
        };
        let rendered = warnings(
            project,
            &[
                skipped("hat01", SkipReason::UnknownItem),
                skipped("off", SkipReason::Unavailable(Unavailable::Disabled)),
                skipped("later", SkipReason::Unavailable(Unavailable::NotOnSale)),
                skipped(
                    "none",
                    SkipReason::Unavailable(Unavailable::PerItemLimit { available: 0 }),
                ),
                skipped(
                    "one",
                    SkipReason::Unavailable(Unavailable::PerUserLimit { available: 1 }),
                ),
            ],
        );
        let got: Vec<_> = rendered
            .iter()
            .map(|w| (w.error_code, w.error_message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    4001,
                    "[0401-4001]: Item with Project Id = 44056 and Sku = hat01 not found"
                ),
                (
                    1455,
                    "[0401-1455]: Item with Project Id = 44056 and Sku = off is unavailable"
                ),
                (
                    1455,
                    "[0401-1455]: Item with Project Id = 44056 and Sku = later is not on sale now"
                ),
                (
                    1460,
                    "[0401-1460]: Purchase limit exceeded for item with Sku = none"
                ),
                (
                    1459,
                    "[0401-1459]: Quantity of item with Sku = one exceeds the purchase limit: 1 left"
                ),
            ]
        );
        assert_eq!(rendered[0].quantity, 2);
    }

    #[test]
    fn an_empty_cart_has_a_null_price_in_json() {
        let priced = PricedCart {
            lines: vec![],
            total: None,
            is_free: false,
            currency: cart_domain::Currency::usd(),
            promotions: vec![],
            promo_code: None,
        };
        let json =
            serde_json::to_value(cart("c1", &priced, &Locale::en(), AmountFormat::default()))
                .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"cart_id": "c1", "price": null, "is_free": false, "items": [], "promotions": []})
        );
    }
}
