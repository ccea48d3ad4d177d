//! The catalog admin format: items, promotions and promo codes as the admin commands
//! and `cartctl catalog import/export` carry them, and as PostgreSQL stores them (JSONB).
//!
//! This is a wire format of its own, decoupled from the domain types: the pricing engine
//! converts from it. Every document is checked by [`Item::validate`],
//! [`Promotion::validate`], [`PromoCode::validate`] or [`ProjectCatalog::validate`]
//! (cross-references and duplicates) before it is stored; the errors name the field.
//! docs/catalog.md describes the format with examples.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// Why a catalog document was refused. `field` is the path of the offending value in
/// the document, e.g. `items[2].prices[1].currency`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("`{field}` is required")]
    Required { field: String },
    #[error("`{field}`: {value:?} is not a valid {what} (Latin letters, digits, `_`, `.`, `-`; 1 to {max} characters)")]
    Key {
        field: String,
        value: String,
        what: &'static str,
        max: usize,
    },
    #[error("`{field}`: {value:?} is not an ISO 4217 currency code")]
    Currency { field: String, value: String },
    #[error("`{field}`: {value:?} is not an ISO 3166-1 alpha-2 country code")]
    Country { field: String, value: String },
    #[error("`{field}`: {value:?} {reason}")]
    Amount {
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("`{field}`: {value:?} must be more than 0 and at most 100, with at most 2 decimals")]
    Percent { field: String, value: String },
    #[error("`{field}`: {value:?} is not an RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)")]
    Date { field: String, value: String },
    #[error("`{field}`: must be later than `{start_field}`")]
    DateOrder { field: String, start_field: String },
    #[error("`{field}`: must be at least 1")]
    Limit { field: String },
    #[error("`{field}`: needs exactly one default price, has {count}")]
    DefaultPrice { field: String, count: usize },
    #[error("`{field}`: the default price must not have a country")]
    DefaultPriceCountry { field: String },
    #[error("`{field}`: duplicate {value:?}")]
    Duplicate { field: String, value: String },
    #[error("`{field}`: {value:?} is not {what} of this project's catalog")]
    Unknown {
        field: String,
        value: String,
        what: &'static str,
    },
    #[error("`{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

impl ValidationError {
    /// The path of the offending value.
    pub fn field(&self) -> &str {
        match self {
            Self::Required { field }
            | Self::Key { field, .. }
            | Self::Currency { field, .. }
            | Self::Country { field, .. }
            | Self::Amount { field, .. }
            | Self::Percent { field, .. }
            | Self::Date { field, .. }
            | Self::DateOrder { field, .. }
            | Self::Limit { field }
            | Self::DefaultPrice { field, .. }
            | Self::DefaultPriceCountry { field }
            | Self::Duplicate { field, .. }
            | Self::Unknown { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }

    fn field_mut(&mut self) -> &mut String {
        match self {
            Self::Required { field }
            | Self::Key { field, .. }
            | Self::Currency { field, .. }
            | Self::Country { field, .. }
            | Self::Amount { field, .. }
            | Self::Percent { field, .. }
            | Self::Date { field, .. }
            | Self::DateOrder { field, .. }
            | Self::Limit { field }
            | Self::DefaultPrice { field, .. }
            | Self::DefaultPriceCountry { field }
            | Self::Duplicate { field, .. }
            | Self::Unknown { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }

    /// The same error about another field.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        *self.field_mut() = field.into();
        self
    }

    /// The same error with its field path under `prefix` (e.g. `items[3]`).
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        let field = self.field_mut();
        *field = join(prefix, field);
        if let Self::DateOrder { start_field, .. } = &mut self {
            *start_field = join(prefix, start_field);
        }
        self
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else if field.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

type Check = Result<(), ValidationError>;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    VirtualGood,
    VirtualCurrency,
    Bundle,
    PhysicalGood,
    GameKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VirtualItemType {
    Consumable,
    NonConsumable,
    NonRenewingSubscription,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub external_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    pub external_id: String,
    pub name: String,
    #[serde(default)]
    pub values: Vec<AttributeValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeValue {
    pub external_id: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumable: Option<Consumable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_period: Option<ExpirationPeriod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumable {
    pub usages_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpirationPeriod {
    #[serde(rename = "type")]
    pub period_type: PeriodUnit,
    pub value: u32,
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualPrice {
    pub sku: String,
    pub amount: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_default: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalType {
    Daily,
    Weekly,
    Monthly,
}

/// When the per-user limit resets. `time` is `HH:00:00+hh:mm` (whole hours).
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub date_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_until: Option<String>,
}

/// A value-point reward granted with the item.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Dec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Dec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentDiscount {
    pub percent: Dec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bonus {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<i64>,
}

/// An item promotion: a discount or bonus items, for the listed SKUs, within a window.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceCondition {
    pub operator: Operator,
    pub value: Dec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscountedItem {
    pub sku: String,
    pub discount: PercentDiscount,
}

/// A unit with several variants (e.g. a game with a key per platform), of which the user
/// picks one on redeem (`selected_unit_items: {unit_sku: item_sku}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitItems {
    pub sku: String,
    pub items: Vec<String>,
}

/// A promo code, with Xsolla's definition knobs.
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogDocument {
    pub projects: Vec<ProjectCatalog>,
}

// ---- checks ---------------------------------------------------------------------

fn check_key(field: &str, value: &str, what: &'static str, max: usize) -> Check {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Key {
            field: field.to_owned(),
            value: value.to_owned(),
            what,
            max,
        })
    }
}

/// A SKU: `[A-Za-z0-9_.-]`, 1 to 255 characters.
pub fn check_sku(field: &str, value: &str) -> Check {
    check_key(field, value, "SKU", MAX_SKU_LEN)
}

pub fn check_currency(field: &str, value: &str) -> Check {
    if ISO_4217.contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::Currency {
            field: field.to_owned(),
            value: value.to_owned(),
        })
    }
}

fn check_country(field: &str, value: &str) -> Check {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ValidationError::Country {
            field: field.to_owned(),
            value: value.to_owned(),
        })
    }
}

fn check_amount(field: &str, value: Dec) -> Check {
    let reason = if value.0.is_sign_negative() && !value.0.is_zero() {
        "is negative"
    } else if value.0 > Decimal::from(MAX_AMOUNT) {
        "is more than 1000000000000"
    } else if value.0.normalize().scale() > AMOUNT_DECIMALS {
        "has more than 4 decimals"
    } else {
        return Ok(());
    };
    Err(ValidationError::Amount {
        field: field.to_owned(),
        value: value.to_string(),
        reason,
    })
}

fn check_percent(field: &str, value: Dec) -> Check {
    let ok = value.0 > Decimal::ZERO
        && value.0 <= Decimal::ONE_HUNDRED
        && value.0.normalize().scale() <= PERCENT_DECIMALS;
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Percent {
            field: field.to_owned(),
            value: value.to_string(),
        })
    }
}

fn check_limit(field: &str, value: Option<i64>) -> Check {
    match value {
        Some(n) if n < 1 => Err(ValidationError::Limit {
            field: field.to_owned(),
        }),
        // Stored as `u32` in the domain catalog: a larger limit would not convert.
        Some(n) if n > i64::from(u32::MAX) => Err(invalid(
            field,
            format!("{n} is more than the maximum {}", u32::MAX),
        )),
        _ => Ok(()),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 date-time, or a field-named error.
pub fn parse_date(field: &str, value: &str) -> Result<i64, ValidationError> {
    rfc3339_seconds(value).ok_or_else(|| ValidationError::Date {
        field: field.to_owned(),
        value: value.to_owned(),
    })
}

fn check_window(
    start_field: &str,
    start: Option<&str>,
    end_field: &str,
    end: Option<&str>,
) -> Check {
    let start = start.map(|s| parse_date(start_field, s)).transpose()?;
    let end = end.map(|e| parse_date(end_field, e)).transpose()?;
    if let (Some(s), Some(e)) = (start, end) {
        if s >= e {
            return Err(ValidationError::DateOrder {
                field: end_field.to_owned(),
                start_field: start_field.to_owned(),
            });
        }
    }
    Ok(())
}

fn check_name(field: &str, name: &BTreeMap<String, String>) -> Check {
    if name.is_empty() || name.values().all(|n| n.trim().is_empty()) {
        return Err(ValidationError::Required {
            field: field.to_owned(),
        });
    }
    Ok(())
}

fn invalid(field: &str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn check_bonus(field: &str, bonus: &[Bonus]) -> Check {
    for (i, b) in bonus.iter().enumerate() {
        check_sku(&format!("{field}[{i}].sku"), &b.sku)?;
        check_limit(&format!("{field}[{i}].quantity"), Some(b.quantity))?;
    }
    Ok(())
}

/// `HH:00:00+hh:mm` or `HH:00:00-hh:mm`.
fn valid_schedule_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 14
        && two_digits(b, 0).is_some_and(|h| h <= 23)
        && &b[2..8] == b":00:00"
        && matches!(b[8], b'+' | b'-')
        && two_digits(b, 9).is_some_and(|h| h <= 14)
        && b[11] == b':'
        && two_digits(b, 12).is_some_and(|m| m <= 59)
}

fn two_digits(b: &[u8], at: usize) -> Option<u8> {
    let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit()).then(|| (x - b'0') * 10 + (y - b'0'))
}

impl Item {
    /// Checks the item on its own (cross-references are checked by
    /// [`ProjectCatalog::validate`]).
    ///
    /// # Errors
    /// The first offending field.
    pub fn validate(&self) -> Check {
        check_sku("sku", &self.sku)?;
        check_name("name", &self.name)?;
        for (i, p) in self.prices.iter().enumerate() {
            let at = format!("prices[{i}]");
            check_currency(&format!("{at}.currency"), &p.currency)?;
            check_amount(&format!("{at}.amount"), p.amount)?;
            if let Some(c) = &p.country {
                check_country(&format!("{at}.country"), c)?;
            }
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.prices.iter().enumerate() {
            if !seen.insert((p.currency.as_str(), p.country.as_deref())) {
                return Err(ValidationError::Duplicate {
                    field: format!("prices[{i}]"),
                    value: match &p.country {
                        Some(c) => format!("{} in {c}", p.currency),
                        None => p.currency.clone(),
                    },
                });
            }
        }
        if !self.prices.is_empty() {
            let defaults: Vec<&Price> = self.prices.iter().filter(|p| p.is_default).collect();
            if defaults.len() != 1 {
                return Err(ValidationError::DefaultPrice {
                    field: "prices".to_owned(),
                    count: defaults.len(),
                });
            }
            if defaults[0].country.is_some() {
                return Err(ValidationError::DefaultPriceCountry {
                    field: "prices".to_owned(),
                });
            }
            if !defaults[0].is_enabled {
                // Disabled prices are dropped for pricing: the item would have no default.
                return Err(invalid("prices", "the default price must be enabled"));
            }
        }
        if !self.is_free && self.prices.is_empty() && self.virtual_prices.is_empty() {
            return Err(invalid(
                "prices",
                "an item that is not free needs at least one price or virtual price",
            ));
        }
        for (i, vp) in self.virtual_prices.iter().enumerate() {
            check_sku(&format!("virtual_prices[{i}].sku"), &vp.sku)?;
            if vp.amount < 0 {
                return Err(ValidationError::Amount {
                    field: format!("virtual_prices[{i}].amount"),
                    value: vp.amount.to_string(),
                    reason: "is negative",
                });
            }
        }
        let vp_defaults = self.virtual_prices.iter().filter(|p| p.is_default).count();
        if !self.virtual_prices.is_empty() && vp_defaults != 1 {
            return Err(ValidationError::DefaultPrice {
                field: "virtual_prices".to_owned(),
                count: vp_defaults,
            });
        }
        if let Some(limits) = &self.limits {
            check_limit("limits.per_user", limits.per_user)?;
            check_limit("limits.per_item", limits.per_item)?;
            if let Some(s) = &limits.recurrent_schedule {
                let field = "limits.recurrent_schedule";
                if limits.per_user.is_none() {
                    return Err(invalid(
                        field,
                        "resets the per-user limit, so `limits.per_user` is required",
                    ));
                }
                if !valid_schedule_time(&s.time) {
                    return Err(invalid(
                        &format!("{field}.time"),
                        format!("{:?} is not a whole hour as HH:00:00+hh:mm", s.time),
                    ));
                }
                match s.interval_type {
                    IntervalType::Daily => {}
                    IntervalType::Weekly => {
                        if !s.day_of_week.is_some_and(|d| (1..=7).contains(&d)) {
                            return Err(invalid(
                                &format!("{field}.day_of_week"),
                                "a weekly schedule needs a day from 1 (Monday) to 7 (Sunday)",
                            ));
                        }
                    }
                    IntervalType::Monthly => {
                        if !s.day_of_month.is_some_and(|d| (1..=31).contains(&d)) {
                            return Err(invalid(
                                &format!("{field}.day_of_month"),
                                "a monthly schedule needs a day from 1 to 31",
                            ));
                        }
                    }
                }
            }
        }
        for (i, p) in self.periods.iter().enumerate() {
            check_window(
                &format!("periods[{i}].date_from"),
                Some(&p.date_from),
                &format!("periods[{i}].date_until"),
                p.date_until.as_deref(),
            )?;
        }
        if let Some(inv) = &self.inventory_options {
            if inv.consumable.as_ref().is_some_and(|c| c.usages_count < 1) {
                return Err(ValidationError::Limit {
                    field: "inventory_options.consumable.usages_count".to_owned(),
                });
            }
            if inv.expiration_period.as_ref().is_some_and(|e| e.value < 1) {
                return Err(ValidationError::Limit {
                    field: "inventory_options.expiration_period.value".to_owned(),
                });
            }
        }
        for (i, r) in self.vp_rewards.iter().enumerate() {
            check_sku(&format!("vp_rewards[{i}].sku"), &r.sku)?;
            check_limit(&format!("vp_rewards[{i}].amount"), Some(r.amount))?;
        }
        // A document that validates must convert (what pricing reads).
        cart_domain::Item::try_from(self).map(drop)
    }
}

impl Promotion {
    /// # Errors
    /// The first offending field.
    pub fn validate(&self) -> Check {
        check_key("id", &self.id, "promotion id", MAX_SKU_LEN)?;
        if self.id.bytes().all(|b| b.is_ascii_digit())
            && convert::decimal_promotion_id(&self.id).is_none()
        {
            return Err(invalid(
                "id",
                format!(
                    "{:?}: a numeric promotion id has no leading zero and is at most {}",
                    self.id,
                    convert::MAX_DECIMAL_PROMOTION_ID
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(ValidationError::Required {
                field: "name".to_owned(),
            });
        }
        check_window(
            "date_start",
            Some(&self.date_start),
            "date_end",
            self.date_end.as_deref(),
        )?;
        if self.skus.is_empty() {
            return Err(ValidationError::Required {
                field: "skus".to_owned(),
            });
        }
        for (i, sku) in self.skus.iter().enumerate() {
            check_sku(&format!("skus[{i}]"), sku)?;
        }
        match (&self.discount, self.bonus.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    "discount",
                    "a promotion gives a discount or bonus items, not both",
                ))
            }
            (None, true) => {
                return Err(invalid(
                    "discount",
                    "a promotion needs a `discount` or a `bonus`",
                ))
            }
            (Some(d), true) => match (d.percent, d.value) {
                (Some(p), None) => check_percent("discount.percent", p)?,
                (None, Some(v)) => {
                    check_amount("discount.value", v)?;
                    if v.0.is_zero() {
                        return Err(ValidationError::Amount {
                            field: "discount.value".to_owned(),
                            value: v.to_string(),
                            reason: "must be more than 0",
                        });
                    }
                }
                _ => {
                    return Err(invalid(
                        "discount",
                        "needs exactly one of `percent` and `value`",
                    ))
                }
            },
            (None, false) => check_bonus("bonus", &self.bonus)?,
        }
        if let Some(l) = &self.limits {
            check_limit("limits.per_user", l.per_user)?;
        }
        cart_domain::Promotion::try_from(self).map(drop)
    }
}

impl PromoCode {
    /// # Errors
    /// The first offending field.
    pub fn validate(&self) -> Check {
        check_key("code", &self.code, "promo code", MAX_CODE_LEN)?;
        check_window(
            "date_start",
            self.date_start.as_deref(),
            "date_end",
            self.date_end.as_deref(),
        )?;
        check_limit("redeem_total_limit", self.redeem_total_limit)?;
        check_limit("redeem_user_limit", self.redeem_user_limit)?;
        check_limit("redeem_code_limit", self.redeem_code_limit)?;
        if let Some(d) = &self.discount {
            check_percent("discount.percent", d.percent)?;
        }
        let mut seen = BTreeSet::new();
        for (i, d) in self.discounted_items.iter().enumerate() {
            check_sku(&format!("discounted_items[{i}].sku"), &d.sku)?;
            check_percent(
                &format!("discounted_items[{i}].discount.percent"),
                d.discount.percent,
            )?;
            if !seen.insert(d.sku.as_str()) {
                return Err(ValidationError::Duplicate {
                    field: format!("discounted_items[{i}].sku"),
                    value: d.sku.clone(),
                });
            }
        }
        check_bonus("bonus", &self.bonus)?;
        for (i, u) in self.unit_items.iter().enumerate() {
            check_sku(&format!("unit_items[{i}].sku"), &u.sku)?;
            if u.items.is_empty() {
                return Err(ValidationError::Required {
                    field: format!("unit_items[{i}].items"),
                });
            }
            for (j, sku) in u.items.iter().enumerate() {
                check_sku(&format!("unit_items[{i}].items[{j}]"), sku)?;
            }
        }
        if self.discount.is_none() && self.discounted_items.is_empty() && self.bonus.is_empty() {
            return Err(invalid(
                "discount",
                "a promo code needs a `discount`, `discounted_items` or a `bonus`",
            ));
        }
        for (name, conditions) in [
            ("price_conditions", &self.price_conditions),
            ("item_price_conditions", &self.item_price_conditions),
        ] {
            for (i, c) in conditions.iter().enumerate() {
                check_amount(&format!("{name}[{i}].value"), c.value)?;
            }
        }
        if !self.price_conditions.is_empty() && !self.discounted_items.is_empty() {
            return Err(invalid(
                "discounted_items",
                "must be empty when `price_conditions` are set (the condition is on the cart total)",
            ));
        }
        for (i, id) in self.excluded_promotions.iter().enumerate() {
            check_key(
                &format!("excluded_promotions[{i}]"),
                id,
                "promotion id",
                MAX_SKU_LEN,
            )?;
        }
        for (i, r) in self.regions.iter().enumerate() {
            check_country(&format!("regions[{i}]"), r)?;
        }
        cart_domain::PromoCode::try_from(self).map(drop)
    }
}

impl ProjectCatalog {
    /// Checks every entity, duplicates, and references between them: virtual prices name
    /// `virtual_currency` items; promotions and promo codes name items of the catalog;
    /// excluded promotions exist. Fields are given from the project, e.g.
    /// `items[3].prices[0].currency`.
    ///
    /// # Errors
    /// The first offending field.
    pub fn validate(&self) -> Check {
        self.validate_entities()?;
        self.validate_references()?;
        // A document that validates must convert (what the catalog cache reads).
        project_into(&mut cart_domain::Catalog::default(), self)
    }

    /// Every entity on its own, and duplicate keys; not the references between them
    /// (a merge import checks those on the merged catalog).
    ///
    /// # Errors
    /// The first offending field.
    pub fn validate_entities(&self) -> Check {
        if self.project_id == 0 || self.project_id > i64::MAX as u64 {
            return Err(invalid("project_id", "must be a positive 64-bit integer"));
        }
        let mut skus = BTreeSet::new();
        for (i, item) in self.items.iter().enumerate() {
            let at = format!("items[{i}]");
            item.validate().map_err(|e| e.under(&at))?;
            if !skus.insert(item.sku.as_str()) {
                return Err(ValidationError::Duplicate {
                    field: format!("{at}.sku"),
                    value: item.sku.clone(),
                });
            }
        }
        let mut ids = BTreeSet::new();
        for (i, p) in self.promotions.iter().enumerate() {
            let at = format!("promotions[{i}]");
            p.validate().map_err(|e| e.under(&at))?;
            if !ids.insert(p.id.as_str()) {
                return Err(ValidationError::Duplicate {
                    field: format!("{at}.id"),
                    value: p.id.clone(),
                });
            }
        }
        let mut codes = BTreeSet::new();
        for (i, c) in self.promo_codes.iter().enumerate() {
            let at = format!("promo_codes[{i}]");
            c.validate().map_err(|e| e.under(&at))?;
            if !codes.insert(c.code.as_str()) {
                return Err(ValidationError::Duplicate {
                    field: format!("{at}.code"),
                    value: c.code.clone(),
                });
            }
        }
        Ok(())
    }

    /// References: virtual prices name `virtual_currency` items; promotions and promo
    /// codes name items of the catalog; excluded promotions exist.
    ///
    /// # Errors
    /// The first dangling reference.
    pub fn validate_references(&self) -> Check {
        let items: BTreeMap<&str, &Item> = self.items.iter().map(|i| (i.sku.as_str(), i)).collect();
        let item_ref = |field: String, sku: &str| -> Check {
            if items.contains_key(sku) {
                Ok(())
            } else {
                Err(ValidationError::Unknown {
                    field,
                    value: sku.to_owned(),
                    what: "an item",
                })
            }
        };
        for (i, item) in self.items.iter().enumerate() {
            for (j, vp) in item.virtual_prices.iter().enumerate() {
                let field = format!("items[{i}].virtual_prices[{j}].sku");
                match items.get(vp.sku.as_str()) {
                    Some(c) if c.item_type == ItemType::VirtualCurrency => {}
                    _ => {
                        return Err(ValidationError::Unknown {
                            field,
                            value: vp.sku.clone(),
                            what: "a virtual currency item",
                        })
                    }
                }
            }
        }
        let promotions: BTreeSet<&str> = self.promotions.iter().map(|p| p.id.as_str()).collect();
        // Pricing knows promotions by their domain id: two ids must not share one.
        let mut domain_ids = BTreeMap::new();
        for (i, p) in self.promotions.iter().enumerate() {
            if let Some(other) = domain_ids.insert(promotion_id(&p.id), p.id.as_str()) {
                return Err(ValidationError::Duplicate {
                    field: format!("promotions[{i}].id"),
                    value: format!("{} (the same internal id as {other:?})", p.id),
                });
            }
        }
        for (i, p) in self.promotions.iter().enumerate() {
            let at = format!("promotions[{i}]");
            for (j, sku) in p.skus.iter().enumerate() {
                item_ref(format!("{at}.skus[{j}]"), sku)?;
            }
            for (j, b) in p.bonus.iter().enumerate() {
                item_ref(format!("{at}.bonus[{j}].sku"), &b.sku)?;
            }
        }
        for (i, c) in self.promo_codes.iter().enumerate() {
            let at = format!("promo_codes[{i}]");
            for (j, d) in c.discounted_items.iter().enumerate() {
                item_ref(format!("{at}.discounted_items[{j}].sku"), &d.sku)?;
            }
            for (j, b) in c.bonus.iter().enumerate() {
                item_ref(format!("{at}.bonus[{j}].sku"), &b.sku)?;
            }
            for (j, u) in c.unit_items.iter().enumerate() {
                for (k, sku) in u.items.iter().enumerate() {
                    item_ref(format!("{at}.unit_items[{j}].items[{k}]"), sku)?;
                }
            }
            for (j, id) in c.excluded_promotions.iter().enumerate() {
                if !promotions.contains(id.as_str()) {
                    return Err(ValidationError::Unknown {
                        field: format!("{at}.excluded_promotions[{j}]"),
                        value: id.clone(),
                        what: "a promotion",
                    });
                }
            }
        }
        Ok(())
    }
}

impl CatalogDocument {
    /// # Errors
    /// The first offending field, e.g. `projects[0].items[3].sku`.
    pub fn validate(&self) -> Check {
        self.check(ProjectCatalog::validate)
    }

    /// As [`ProjectCatalog::validate_entities`], per project.
    ///
    /// # Errors
    /// The first offending field.
    pub fn validate_entities(&self) -> Check {
        self.check(ProjectCatalog::validate_entities)
    }

    fn check(&self, project_check: fn(&ProjectCatalog) -> Check) -> Check {
        let mut seen = BTreeSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            let at = format!("projects[{i}]");
            project_check(p).map_err(|e| e.under(&at))?;
            if !seen.insert(p.project_id) {
                return Err(ValidationError::Duplicate {
                    field: format!("{at}.project_id"),
                    value: p.project_id.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Why a document's bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all (syntax, or the body ends early).
    #[error("not valid JSON: {0}")]
    Syntax(serde_json::Error),
    /// JSON of the wrong shape: a missing or unknown field, a wrong type or enum value.
    #[error("{0}")]
    Shape(serde_json::Error),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// Decodes JSON into `T`, telling malformed JSON from JSON of the wrong shape.
///
/// # Errors
/// [`DecodeError::Syntax`] or [`DecodeError::Shape`].
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            DecodeError::Shape(e)
        } else {
            DecodeError::Syntax(e)
        }
    })
}

/// Decodes and validates a catalog document (deploy/catalog.json).
///
/// # Errors
/// Bad JSON, or the first offending field.
pub fn parse_document(bytes: &[u8]) -> Result<CatalogDocument, DecodeError> {
    let doc: CatalogDocument = decode(bytes)?;
    doc.validate()?;
    Ok(doc)
}

// ---- RFC 3339 -------------------------------------------------------------------

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to seconds since the Unix epoch.
fn rfc3339_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0_i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

mod convert;

pub use convert::{domain_catalog, project_into, promotion_id};

#[cfg(test)]
mod tests;
