//! A snapshot of the project catalogs, as the shell loaded it. Plain data.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use crate::ids::{Currency, Locale, ProjectId, Sku};

/// A real-money price of an item in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPrice {
    pub currency: Currency,
    pub amount: Decimal,
    /// Exactly one price of an item is the default; it is used when the requested
    /// currency has no price of its own.
    pub is_default: bool,
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
}

impl Item {
    /// The name in `locale`, else in English, else any name, else the SKU.
    pub fn name(&self, locale: &Locale) -> &str {
        localized(&self.name, locale).unwrap_or(self.sku.as_str())
    }

    pub fn description(&self, locale: &Locale) -> &str {
        localized(&self.description, locale).unwrap_or("")
    }

    /// The price in `currency`, else the default price.
    pub fn price_in(&self, currency: &Currency) -> Option<&ItemPrice> {
        self.prices
            .iter()
            .find(|p| &p.currency == currency)
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

/// Every project's items, keyed by project and SKU.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    items: HashMap<(ProjectId, Sku), Item>,
}

impl Catalog {
    /// Adds or replaces an item of a project.
    pub fn insert(&mut self, project: ProjectId, item: Item) {
        self.items.insert((project, item.sku.clone()), item);
    }

    pub fn item(&self, project: ProjectId, sku: &Sku) -> Option<&Item> {
        self.items.get(&(project, sku.clone()))
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
