//! Item promotions and promo codes, as plain data. What they do to a cart is in
//! `pricing`.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::ids::{Locale, Sku};
use crate::time::Timestamp;

pub type PromotionId = u64;

/// When something is active: from `start` (inclusive) until `end` (exclusive); None
/// is unbounded on that side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateWindow {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl DateWindow {
    pub fn contains(&self, now: Timestamp) -> bool {
        self.start.is_none_or(|s| s <= now) && self.end.is_none_or(|e| now < e)
    }

    pub fn not_started(&self, now: Timestamp) -> bool {
        self.start.is_some_and(|s| now < s)
    }
}

/// A discount off a unit price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// Percent off (0..=100); the result is rounded to 2 decimals.
    Percent(Decimal),
    /// A fixed amount off the unit price, in the item's default currency: it applies
    /// only to a price in that currency; never below zero.
    Value(Decimal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionKind {
    Discount(Discount),
    /// Bonus items given once per cart that holds one of the promotion's SKUs.
    Bonus {
        items: Vec<(Sku, u32)>,
    },
}

/// An item promotion: a discount on, or bonus items for buying, some SKUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub id: PromotionId,
    /// Localized names by ISO 639-1 code; `en` is the fallback.
    pub name: BTreeMap<String, String>,
    pub window: DateWindow,
    /// The SKUs it applies to. A bonus promotion with no SKUs applies to any cart with
    /// a paid line; a discount promotion with no SKUs applies to nothing.
    pub skus: BTreeSet<Sku>,
    pub kind: PromotionKind,
    /// How many times one user may get it; None for no limit.
    pub per_user_limit: Option<u32>,
}

impl Promotion {
    pub fn name(&self, locale: &Locale) -> &str {
        self.name
            .get(locale.as_str())
            .or_else(|| self.name.get("en"))
            .or_else(|| self.name.values().next())
            .map_or("", String::as_str)
    }
}

/// A comparison of Xsolla's `price_conditions` (`ge`, `gt`, `le`, `lt`, `eq`, `ne`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ge" => CompareOp::Ge,
            "gt" => CompareOp::Gt,
            "le" => CompareOp::Le,
            "lt" => CompareOp::Lt,
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Ge => "ge",
            CompareOp::Gt => "gt",
            CompareOp::Le => "le",
            CompareOp::Lt => "lt",
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
        }
    }
}

/// `price <op> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceCondition {
    pub op: CompareOp,
    pub value: Decimal,
}

impl PriceCondition {
    pub fn holds(&self, price: Decimal) -> bool {
        match self.op {
            CompareOp::Ge => price >= self.value,
            CompareOp::Gt => price > self.value,
            CompareOp::Le => price <= self.value,
            CompareOp::Lt => price < self.value,
            CompareOp::Eq => price == self.value,
            CompareOp::Ne => price != self.value,
        }
    }
}

/// A promo code: what it gives a cart and when it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoCode {
    /// Case-sensitive.
    pub code: String,
    pub name: BTreeMap<String, String>,
    pub window: DateWindow,
    /// Redemptions of the promotion by everyone, by one user, and of this code.
    pub redeem_total_limit: Option<u32>,
    pub redeem_user_limit: Option<u32>,
    pub redeem_code_limit: Option<u32>,
    /// Percent off every paid line (Xsolla "Discount on purchase").
    pub discount_percent: Option<Decimal>,
    /// Percent off the named SKUs (Xsolla `discounted_items`).
    pub discounted_items: Vec<(Sku, Decimal)>,
    /// Bonus items added to the cart.
    pub bonus: Vec<(Sku, u32)>,
    /// Selectable rewards: a unit SKU and the item SKUs the redeemer may pick from;
    /// the picked item is added as a bonus line.
    pub selectable: BTreeMap<Sku, Vec<Sku>>,
    /// Conditions on the cart total before the code (all must hold).
    pub price_conditions: Vec<PriceCondition>,
    /// Conditions on an item's unit price: the cart-wide discount applies only to lines
    /// whose price meets them all.
    pub item_price_conditions: Vec<PriceCondition>,
    /// The code does not apply to a cart where one of these promotions is active.
    pub excluded_promotions: BTreeSet<PromotionId>,
    /// ISO 3166-1 alpha-2 countries where the code may be used; empty for everywhere.
    pub countries: BTreeSet<String>,
}

impl PromoCode {
    /// A code that gives nothing and may be used always and everywhere.
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            name: BTreeMap::new(),
            window: DateWindow::default(),
            redeem_total_limit: None,
            redeem_user_limit: None,
            redeem_code_limit: None,
            discount_percent: None,
            discounted_items: vec![],
            bonus: vec![],
            selectable: BTreeMap::new(),
            price_conditions: vec![],
            item_price_conditions: vec![],
            excluded_promotions: BTreeSet::new(),
            countries: BTreeSet::new(),
        }
    }

    /// Whether any of the three redemption limits is set.
    pub fn redemptions_limited(&self) -> bool {
        self.redeem_total_limit.is_some()
            || self.redeem_user_limit.is_some()
            || self.redeem_code_limit.is_some()
    }

    pub fn name(&self, locale: &Locale) -> &str {
        self.name
            .get(locale.as_str())
            .or_else(|| self.name.get("en"))
            .or_else(|| self.name.values().next())
            .map_or(self.code.as_str(), String::as_str)
    }
}
