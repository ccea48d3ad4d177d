//! The cart as a reply: a priced cart rendered in the Xsolla cart shape.

use cart_domain::{
    Locale, Money, PricedCart, PricedLine, ProjectId, SkipReason, Skipped, Unavailable,
};
use rust_decimal::Decimal;

use crate::error::unknown_item_text;
use crate::v1;

/// How many decimals money strings carry. Xsolla's examples vary (see docs/protocol.md);
/// two is the form of its cart fill examples (`"5.99"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountFormat {
    pub scale: u32,
}

impl Default for AmountFormat {
    fn default() -> Self {
        Self { scale: 2 }
    }
}

impl AmountFormat {
    pub fn format(self, amount: Decimal) -> String {
        let mut rounded = amount.round_dp(self.scale);
        rounded.rescale(self.scale);
        rounded.to_string()
    }
}

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
            .map(|line| item(line, locale, format))
            .collect(),
        promotions: vec![],
        warnings: vec![],
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
        currency: amount.currency.to_string(),
    }
}

fn item(line: &PricedLine<'_>, locale: &Locale, format: AmountFormat) -> v1::CartItem {
    let price = match (&line.unit, &line.unit_without_discount) {
        (Some(unit), Some(without)) => Some(price(unit, without, format)),
        _ => None,
    };
    let Some(item) = line.item else {
        // The catalog dropped this SKU after it was put in the cart: show the line so the
        // shopper can remove it, but it cannot be bought.
        return v1::CartItem {
            sku: line.sku.to_string(),
            name: line.sku.to_string(),
            quantity: line.quantity,
            can_be_bought: false,
            ..Default::default()
        };
    };
    v1::CartItem {
        sku: line.sku.to_string(),
        name: item.name(locale).to_owned(),
        r#type: item.item_type.clone(),
        virtual_item_type: item.virtual_item_type.clone(),
        description: item.description(locale).to_owned(),
        image_url: item.image_url.clone(),
        quantity: line.quantity,
        price,
        is_free: line.is_free,
        is_bonus: false,
        promotions: vec![],
        can_be_bought: true,
        limits: None,
        periods: vec![],
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
                sku: vp.sku.to_string(),
                amount: vp.amount,
                amount_without_discount: vp.amount,
                is_default: vp.is_default,
                image_url: vp.image_url.clone(),
                name: vp.name.clone(),
                r#type: "virtual_currency".to_owned(),
                description: vp.description.clone(),
            })
            .collect(),
        vp_rewards: vec![],
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn amounts_are_rounded_and_padded_to_the_scale() {
        let f = AmountFormat::default();
        assert_eq!(f.format(Decimal::from_str("5.99").unwrap()), "5.99");
        assert_eq!(f.format(Decimal::from(6150)), "6150.00");
        assert_eq!(f.format(Decimal::from_str("0.125").unwrap()), "0.12");
        let sixteen = AmountFormat { scale: 16 };
        assert_eq!(sixteen.format(Decimal::from(50)), "50.0000000000000000");
    }

    #[test]
    fn an_empty_cart_has_a_null_price_in_json() {
        let priced = PricedCart {
            lines: vec![],
            total: None,
            is_free: false,
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
