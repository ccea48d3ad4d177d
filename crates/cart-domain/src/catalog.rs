//! A snapshot of the project catalogs, as the shell loaded it. Plain data.
//!
//! Items are here; item promotions and promo codes are in [`promotion`].

mod promotion;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;

use crate::ids::{Currency, Locale, ProjectId, Sku};
use crate::time::{RecurrentSchedule, Timestamp};

pub use promotion::{
    CompareOp, DateWindow, Discount, PriceCondition, PromoCode, Promotion, PromotionId,
    PromotionKind,
};

/// A real-money price of an item in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPrice {
    pub currency: Currency,
    pub amount: Decimal,
    /// Exactly one price of an item is the default; it is used when the requested
    /// currency has no price of its own. The default price has no country.
    pub is_default: bool,
    /// An ISO 3166-1 alpha-2 country (upper case) for a price that applies only to
    /// buyers from that country; None for a price that applies everywhere.
    pub country: Option<String>,
}

/// A price in a virtual currency (an integer amount of another SKU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualPrice {
    pub sku: Sku,
    pub amount: i64,
    pub is_default: bool,
    pub name: String,
    pub image_url: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub external_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeValue {
    pub external_id: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub external_id: String,
    pub name: String,
    pub values: Vec<AttributeValue>,
}

/// What an item in the user's inventory does (Xsolla `inventory_options`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryOptions {
    /// For a consumable, how many times one unit can be used.
    pub consumable: Option<Consumable>,
    /// For a time-limited item, how long it lasts once bought.
    pub expiration_period: Option<ExpirationPeriod>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumable {
    pub usages_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpirationPeriod {
    pub unit: PeriodUnit,
    pub value: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl PeriodUnit {
    /// Xsolla's name (`expiration_period.type`).
    pub fn name(self) -> &'static str {
        match self {
            PeriodUnit::Minute => "minute",
            PeriodUnit::Hour => "hour",
            PeriodUnit::Day => "day",
            PeriodUnit::Week => "week",
            PeriodUnit::Month => "month",
            PeriodUnit::Year => "year",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "minute" => PeriodUnit::Minute,
            "hour" => PeriodUnit::Hour,
            "day" => PeriodUnit::Day,
            "week" => PeriodUnit::Week,
            "month" => PeriodUnit::Month,
            "year" => PeriodUnit::Year,
            _ => return None,
        })
    }
}

/// How many units of an item may be bought.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemLimits {
    pub per_user: Option<PerUserLimit>,
    /// Units all users together may buy (Xsolla `per_item`, a global stock).
    pub per_item: Option<u32>,
}

impl ItemLimits {
    /// Whether purchases of the item are limited at all: only then does anyone need to
    /// count them (or lock them, at checkout and payment).
    pub fn is_limited(&self) -> bool {
        self.per_user.is_some() || self.per_item.is_some()
    }

    /// The start of the user's current window: the last reset of a recurrent per-user
    /// limit, else the epoch (every purchase ever counts).
    pub fn window_start(&self, now: Timestamp) -> Timestamp {
        self.per_user
            .as_ref()
            .and_then(|p| p.recurrent_schedule)
            .map_or(Timestamp::from_unix(0), |s| s.last_reset(now))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerUserLimit {
    /// Units one user may buy, in total or, with a schedule, between two resets.
    pub total: u32,
    pub recurrent_schedule: Option<RecurrentSchedule>,
}

/// A time when an item is on sale: from `from` (inclusive) until `until` (exclusive;
/// None for open-ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalesPeriod {
    pub from: Timestamp,
    pub until: Option<Timestamp>,
}

impl SalesPeriod {
    pub fn contains(&self, now: Timestamp) -> bool {
        self.from <= now && self.until.is_none_or(|until| now < until)
    }
}

/// Value points a purchase of the item earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpReward {
    pub item_id: i64,
    pub sku: String,
    pub amount: i64,
    pub name: String,
    pub image_url: String,
    pub is_clan: bool,
}

/// A catalog item with what the cart shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: Sku,
    /// virtual_good, virtual_currency, bundle, physical_good or game_key.
    pub item_type: String,
    pub virtual_item_type: Option<String>,
    /// Localized names by ISO 639-1 code; `en` is the fallback.
    pub name: BTreeMap<String, String>,
    pub description: BTreeMap<String, String>,
    pub image_url: String,
    pub prices: Vec<ItemPrice>,
    pub virtual_prices: Vec<VirtualPrice>,
    pub is_free: bool,
    pub groups: Vec<Group>,
    pub attributes: Vec<Attribute>,
    pub inventory_options: InventoryOptions,
    /// A disabled item stays in the catalog but cannot be bought.
    pub enabled: bool,
    pub limits: ItemLimits,
    /// When the item is on sale; empty means always.
    pub periods: Vec<SalesPeriod>,
    pub vp_rewards: Vec<VpReward>,
}

impl Item {
    /// An enabled item with no prices, names or limits: fill in what it has.
    pub fn new(sku: Sku, item_type: impl Into<String>) -> Self {
        Self {
            sku,
            item_type: item_type.into(),
            virtual_item_type: None,
            name: BTreeMap::new(),
            description: BTreeMap::new(),
            image_url: String::new(),
            prices: vec![],
            virtual_prices: vec![],
            is_free: false,
            groups: vec![],
            attributes: vec![],
            inventory_options: InventoryOptions::default(),
            enabled: true,
            limits: ItemLimits::default(),
            periods: vec![],
            vp_rewards: vec![],
        }
    }

    /// Whether the item is on sale at `now` (always, when it has no periods).
    pub fn on_sale(&self, now: Timestamp) -> bool {
        self.periods.is_empty() || self.periods.iter().any(|p| p.contains(now))
    }

    /// The name in `locale`, else in English, else any name, else the SKU.
    pub fn name(&self, locale: &Locale) -> &str {
        localized(&self.name, locale).unwrap_or(self.sku.as_str())
    }

    pub fn description(&self, locale: &Locale) -> &str {
        localized(&self.description, locale).unwrap_or("")
    }

    /// The currency of the item's default price; fixed-value discounts and price
    /// conditions are in it (see `pricing`).
    pub fn default_currency(&self) -> Option<&Currency> {
        self.prices
            .iter()
            .find(|p| p.is_default)
            .map(|p| &p.currency)
    }

    /// The price in `currency` for buyers anywhere, else the default price.
    pub fn price_in(&self, currency: &Currency) -> Option<&ItemPrice> {
        self.price_for(currency, None)
    }

    /// The price for a buyer from `country` (ISO 3166-1 alpha-2, any case) in
    /// `currency`: that country's price in that currency, else the price in that
    /// currency for everywhere, else the default price.
    pub fn price_for(&self, currency: &Currency, country: Option<&str>) -> Option<&ItemPrice> {
        let in_country = country.and_then(|country| {
            self.prices.iter().find(|p| {
                &p.currency == currency
                    && p.country
                        .as_deref()
                        .is_some_and(|c| c.eq_ignore_ascii_case(country))
            })
        });
        in_country
            .or_else(|| {
                self.prices
                    .iter()
                    .find(|p| &p.currency == currency && p.country.is_none())
            })
            .or_else(|| self.prices.iter().find(|p| p.is_default))
    }
}

fn localized<'a>(texts: &'a BTreeMap<String, String>, locale: &Locale) -> Option<&'a str> {
    texts
        .get(locale.as_str())
        .or_else(|| texts.get("en"))
        .or_else(|| texts.values().next())
        .map(String::as_str)
}

/// Every project's items, item promotions and promo codes.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    items: HashMap<(ProjectId, Sku), Item>,
    /// By id, so that promotions apply in id order.
    promotions: HashMap<ProjectId, BTreeMap<PromotionId, Promotion>>,
    promo_codes: HashMap<(ProjectId, String), PromoCode>,
}

impl Catalog {
    /// Adds or replaces an item of a project.
    pub fn insert(&mut self, project: ProjectId, item: Item) {
        self.items.insert((project, item.sku.clone()), item);
    }

    pub fn remove(&mut self, project: ProjectId, sku: &Sku) -> Option<Item> {
        self.items.remove(&(project, sku.clone()))
    }

    /// Adds or replaces a promotion of a project.
    pub fn insert_promotion(&mut self, project: ProjectId, promotion: Promotion) {
        self.promotions
            .entry(project)
            .or_default()
            .insert(promotion.id, promotion);
    }

    pub fn remove_promotion(&mut self, project: ProjectId, id: PromotionId) -> Option<Promotion> {
        self.promotions.get_mut(&project)?.remove(&id)
    }

    /// The project's promotions in id order.
    pub fn promotions(&self, project: ProjectId) -> impl Iterator<Item = &Promotion> {
        self.promotions
            .get(&project)
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    pub fn promotion(&self, project: ProjectId, id: PromotionId) -> Option<&Promotion> {
        self.promotions.get(&project)?.get(&id)
    }

    /// Adds or replaces a promo code of a project (codes are case-sensitive).
    pub fn insert_promo_code(&mut self, project: ProjectId, code: PromoCode) {
        self.promo_codes.insert((project, code.code.clone()), code);
    }

    pub fn remove_promo_code(&mut self, project: ProjectId, code: &str) -> Option<PromoCode> {
        self.promo_codes.remove(&(project, code.to_owned()))
    }

    pub fn promo_code(&self, project: ProjectId, code: &str) -> Option<&PromoCode> {
        self.promo_codes.get(&(project, code.to_owned()))
    }

    /// Every item of a project, in no particular order.
    pub fn items(&self, project: ProjectId) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(move |((p, _), _)| *p == project)
            .map(|(_, item)| item)
    }

    pub fn item(&self, project: ProjectId, sku: &Sku) -> Option<&Item> {
        self.items.get(&(project, sku.clone()))
    }

    /// The limited ones among `skus`, with their limits (an unlisted SKU is not limited).
    pub fn limits_of<'s>(
        &self,
        project: ProjectId,
        skus: impl IntoIterator<Item = &'s Sku>,
    ) -> BTreeMap<Sku, &ItemLimits> {
        skus.into_iter()
            .filter_map(|sku| {
                let limits = &self.item(project, sku)?.limits;
                limits.is_limited().then(|| (sku.clone(), limits))
            })
            .collect()
    }

    /// The promotions with a per-user limit that a cart of `skus` could get (a promotion
    /// of one of them, or a bonus promotion for any cart), with their limits: only their
    /// uses are counted for pricing. Empty, so nothing is counted, when the project
    /// limits no promotion.
    pub fn limited_promotions<'s>(
        &self,
        project: ProjectId,
        skus: impl IntoIterator<Item = &'s Sku> + Clone,
    ) -> BTreeMap<PromotionId, u32> {
        self.promotions(project)
            .filter_map(|p| Some((p, p.per_user_limit?)))
            .filter(|(p, _)| {
                p.skus.is_empty() || skus.clone().into_iter().any(|s| p.skus.contains(s))
            })
            .map(|(p, limit)| (p.id, limit))
            .collect()
    }

    /// The per-user limits of `ids` the catalog sets (the promotions an order got).
    pub fn promotion_limits(
        &self,
        project: ProjectId,
        ids: &BTreeSet<PromotionId>,
    ) -> BTreeMap<PromotionId, u32> {
        ids.iter()
            .filter_map(|id| Some((*id, self.promotion(project, *id)?.per_user_limit?)))
            .collect()
    }

    /// The promo code `code` when the catalog limits its redemptions: only then are they
    /// counted (and locked).
    pub fn limited_code(&self, project: ProjectId, code: &str) -> Option<&PromoCode> {
        self.promo_code(project, code)
            .filter(|promo| promo.redemptions_limited())
    }

    pub fn is_listed(&self, project: ProjectId, sku: &Sku) -> bool {
        self.item(project, sku).is_some()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests;
