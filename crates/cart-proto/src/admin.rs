//! The catalog admin format: items, promotions and promo codes as the admin commands
//! and `cartctl catalog import/export` carry them, and as PostgreSQL stores them (JSONB).
//!
//! This is a wire format of its own, decoupled from the domain types: the pricing engine
//! converts from it. Every document is checked by [`Item::validate`],
//! [`Promotion::validate`], [`PromoCode::validate`] or [`ProjectCatalog::validate`]
//! (cross-references and duplicates) before it is stored; the errors name the field.
//! docs/catalog.md describes the format with examples.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod check;
mod convert;
mod decode;
mod error;
pub mod reply;
pub mod request;
#[cfg(feature = "schema")]
mod schema;
mod validate;

pub use check::{check_currency, check_sku, parse_date};
pub use convert::{domain_catalog, project_into, promotion_id};
pub use decode::{decode, parse_document, DecodeError};
pub use error::ValidationError;

/// ISO 4217 alphabetic codes (the current list, with funds and precious-metal codes, and
/// the codes still in a withdrawal transition: ANG, SLL, ZWL, CUC).
pub const ISO_4217: [&str; 182] = [
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
    "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR",
    "XOF", "XPD", "XPF", "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// Longest SKU, promotion id and promo code.
pub const MAX_SKU_LEN: usize = 255;
pub const MAX_CODE_LEN: usize = 128;
/// Most decimals of an amount and of a percent.
pub const AMOUNT_DECIMALS: u32 = 4;
/// The largest money amount or discount value (10^12): pricing multiplies and sums
/// amounts, which must not overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
pub const PERCENT_DECIMALS: u32 = 2;

/// An exact decimal written as a JSON string (`"0.99"`); whole JSON numbers are accepted
/// too, fractional JSON numbers are refused (a float must never touch money).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dec(pub Decimal);

impl Dec {
    pub fn new(value: Decimal) -> Self {
        Self(value)
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Dec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Dec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"0.99\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dec, E> {
                let text = v.trim();
                let plain = !text.is_empty()
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
                if !plain {
                    return Err(E::custom(format!("{v:?} is not a decimal number")));
                }
                Decimal::from_str(text)
                    .map(Dec)
                    .map_err(|_| E::custom(format!("{v:?} is not a decimal number")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dec, E> {
                Ok(Dec(Decimal::from(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec(Decimal::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dec, E> {
                Err(E::custom(format!(
                    "{v} must be written as a decimal string, e.g. \"{v}\""
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

/// Item type, as Xsolla names it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    VirtualGood,
    VirtualCurrency,
    Bundle,
    PhysicalGood,
    GameKey,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VirtualItemType {
    Consumable,
    NonConsumable,
    NonRenewingSubscription,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub external_id: String,
    pub name: String,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    pub external_id: String,
    pub name: String,
    #[serde(default)]
    pub values: Vec<AttributeValue>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeValue {
    pub external_id: String,
    pub value: String,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumable: Option<Consumable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_period: Option<ExpirationPeriod>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumable {
    pub usages_count: u32,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpirationPeriod {
    #[serde(rename = "type")]
    pub period_type: PeriodUnit,
    pub value: u32,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodUnit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// A real-money price. `country` makes it a country-specific price of its currency.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = schema::country_alias))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub currency: String,
    pub amount: Dec,
    #[serde(
        default,
        alias = "country_iso",
        skip_serializing_if = "Option::is_none"
    )]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_default: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub is_enabled: bool,
}

/// A price in a virtual currency (the SKU of a `virtual_currency` item), whole units.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualPrice {
    pub sku: String,
    pub amount: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_default: bool,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalType {
    Daily,
    Weekly,
    Monthly,
}

/// When the per-user limit resets. `time` is `HH:00:00+hh:mm` (whole hours).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrentSchedule {
    pub interval_type: IntervalType,
    /// 1 = Monday .. 7 = Sunday; weekly only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<u8>,
    /// 1..31, clamped to the month's last day; monthly only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<u8>,
    pub time: String,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Units one user may buy (in total, or per schedule period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<i64>,
    /// Units all users together may buy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_item: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrent_schedule: Option<RecurrentSchedule>,
}

/// A sales period; `date_until` null means open-ended.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub date_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_until: Option<String>,
}

/// A value-point reward granted with the item.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpReward {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<i64>,
    pub sku: String,
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_clan: bool,
}

/// A catalog item in Xsolla's shape.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    #[serde(rename = "type")]
    pub item_type: ItemType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_item_type: Option<VirtualItemType>,
    /// Localized names by locale; `en` is the fallback.
    pub name: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub description: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_options: Option<InventoryOptions>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prices: Vec<Price>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_prices: Vec<VirtualPrice>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_free: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<Period>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vp_rewards: Vec<VpReward>,
}

/// A promotion's discount: a percent or a fixed value off the unit price (one of them).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Dec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Dec>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentDiscount {
    pub percent: Dec,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bonus {
    pub sku: String,
    pub quantity: i64,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<i64>,
}

/// An item promotion: a discount or bonus items, for the listed SKUs, within a window.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    pub id: String,
    pub name: String,
    pub date_start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_end: Option<String>,
    pub skus: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Discount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bonus: Vec<Bonus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PromotionLimits>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

/// A condition on the cart total (`price_conditions`) or on an item's unit price
/// (`item_price_conditions`), in the cart's currency.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceCondition {
    pub operator: Operator,
    pub value: Dec,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscountedItem {
    pub sku: String,
    pub discount: PercentDiscount,
}

/// A unit with several variants (e.g. a game with a key per platform), of which the user
/// picks one on redeem (`selected_unit_items: {unit_sku: item_sku}`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitItems {
    pub sku: String,
    pub items: Vec<String>,
}

/// A promo code, with Xsolla's definition knobs.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoCode {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeem_total_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeem_user_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeem_code_limit: Option<i64>,
    /// Cart-wide percent discount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<PercentDiscount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounted_items: Vec<DiscountedItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bonus: Vec<Bonus>,
    /// Units whose variant the user selects on redeem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unit_items: Vec<UnitItems>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub price_conditions: Vec<PriceCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub item_price_conditions: Vec<PriceCondition>,
    /// Ids of promotions that do not apply together with this code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_promotions: Vec<String>,
    /// ISO 3166-1 alpha-2 countries the code may be redeemed from; empty = everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

/// One project's catalog.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectCatalog {
    pub project_id: u64,
    #[serde(default)]
    pub items: Vec<Item>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<Promotion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promo_codes: Vec<PromoCode>,
}

/// A catalog document: deploy/catalog.json, `import` requests and `export` replies.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogDocument {
    pub projects: Vec<ProjectCatalog>,
}

#[cfg(test)]
mod tests;
