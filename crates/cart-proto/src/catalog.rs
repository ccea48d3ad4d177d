//! The catalog file format (deploy/catalog.json) and its conversion to the domain catalog.

use std::collections::BTreeMap;
use std::str::FromStr;

use cart_domain::{
    Attribute, AttributeValue, Catalog, Currency, Group, Item, ItemLimits, ItemPrice, PerUserLimit,
    ProjectId, Sku, VirtualPrice, VpReward,
};
use rust_decimal::Decimal;
use serde::Deserialize;

/// Why a catalog file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error("project {project}, item {sku}: {reason}")]
    Item {
        project: u64,
        sku: String,
        reason: String,
    },
}

const ITEM_TYPES: [&str; 5] = [
    "virtual_good",
    "virtual_currency",
    "bundle",
    "physical_good",
    "game_key",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    projects: Vec<Project>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Project {
    project_id: u64,
    items: Vec<FileItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileItem {
    sku: String,
    #[serde(rename = "type")]
    item_type: String,
    #[serde(default)]
    virtual_item_type: Option<String>,
    name: BTreeMap<String, String>,
    #[serde(default)]
    description: BTreeMap<String, String>,
    #[serde(default)]
    image_url: String,
    #[serde(default)]
    prices: Vec<FilePrice>,
    #[serde(default)]
    virtual_prices: Vec<FileVirtualPrice>,
    #[serde(default)]
    is_free: bool,
    #[serde(default)]
    groups: Vec<FileGroup>,
    #[serde(default)]
    attributes: Vec<FileAttribute>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    vp_rewards: Vec<FileVpReward>,
}

fn yes() -> bool {
    true
}

/// Totals only; recurrent schedules, sales periods, promotions and promo codes come
/// with the catalog admin commands.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    #[serde(default)]
    per_user: Option<u32>,
    #[serde(default)]
    per_item: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVpReward {
    item_id: i64,
    sku: String,
    amount: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    image_url: String,
    #[serde(default)]
    is_clan: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrice {
    currency: String,
    /// A decimal string, so that no float ever touches money.
    amount: String,
    #[serde(default)]
    is_default: bool,
    /// ISO 3166-1 alpha-2, for a country-specific price.
    #[serde(default)]
    country: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVirtualPrice {
    sku: String,
    amount: i64,
    #[serde(default)]
    is_default: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    external_id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAttribute {
    external_id: String,
    name: String,
    values: Vec<FileGroupValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroupValue {
    external_id: String,
    value: String,
}

/// Parses and checks a catalog file.
///
/// # Errors
/// Invalid JSON, or an item with a bad SKU, type, currency, amount or default price.
pub fn parse(bytes: &[u8]) -> Result<Catalog, CatalogError> {
    let file: File = serde_json::from_slice(bytes)?;
    let mut catalog = Catalog::default();
    for project in file.projects {
        let pid = project.project_id;
        let project_id = ProjectId::parse(pid).map_err(|e| CatalogError::Item {
            project: pid,
            sku: String::new(),
            reason: e.to_string(),
        })?;
        // Virtual prices show the virtual currency's own name and image.
        let names: BTreeMap<String, (String, String, Option<String>)> = project
            .items
            .iter()
            .map(|i| {
                let name = i
                    .name
                    .get("en")
                    .or_else(|| i.name.values().next())
                    .cloned()
                    .unwrap_or_default();
                let description = i.description.get("en").cloned();
                (i.sku.clone(), (name, i.image_url.clone(), description))
            })
            .collect();
        for item in project.items {
            let sku_text = item.sku.clone();
            let item = convert(item, &names).map_err(|reason| CatalogError::Item {
                project: pid,
                sku: sku_text,
                reason,
            })?;
            catalog.insert(project_id, item);
        }
    }
    Ok(catalog)
}

type Names = BTreeMap<String, (String, String, Option<String>)>;

fn convert(item: FileItem, names: &Names) -> Result<Item, String> {
    let sku = Sku::parse(item.sku).map_err(|e| e.to_string())?;
    if !ITEM_TYPES.contains(&item.item_type.as_str()) {
        return Err(format!(
            "unknown type {}, expected one of {}",
            item.item_type,
            ITEM_TYPES.join(", ")
        ));
    }
    let prices = item
        .prices
        .into_iter()
        .map(|p| {
            let amount =
                Decimal::from_str(&p.amount).map_err(|e| format!("price {}: {e}", p.amount))?;
            if amount.is_sign_negative() {
                return Err(format!("price {} is negative", p.amount));
            }
            let country = match p.country {
                Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
                    Some(c.to_ascii_uppercase())
                }
                Some(c) => return Err(format!("country {c} is not an ISO 3166-1 alpha-2 code")),
                None => None,
            };
            if p.is_default && country.is_some() {
                return Err("the default price cannot have a country".to_owned());
            }
            Ok(ItemPrice {
                currency: Currency::parse(&p.currency).map_err(|e| e.to_string())?,
                amount,
                is_default: p.is_default,
                country,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let n_defaults = prices.iter().filter(|p| p.is_default).count();
    if !prices.is_empty() && n_defaults != 1 {
        return Err(format!("needs exactly one default price, has {n_defaults}"));
    }
    let virtual_prices = item
        .virtual_prices
        .into_iter()
        .map(|vp| {
            let (name, image_url, description) = names
                .get(&vp.sku)
                .cloned()
                .ok_or_else(|| format!("virtual price in unknown currency item {}", vp.sku))?;
            Ok(VirtualPrice {
                sku: Sku::parse(vp.sku).map_err(|e| e.to_string())?,
                amount: vp.amount,
                is_default: vp.is_default,
                name,
                image_url: Some(image_url).filter(|u| !u.is_empty()),
                description,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut converted = Item::new(sku, item.item_type);
    converted.enabled = item.enabled;
    converted.limits = ItemLimits {
        per_user: item.limits.per_user.map(|total| PerUserLimit {
            total,
            recurrent_schedule: None,
        }),
        per_item: item.limits.per_item,
    };
    converted.vp_rewards = item
        .vp_rewards
        .into_iter()
        .map(|r| VpReward {
            item_id: r.item_id,
            sku: r.sku,
            amount: r.amount,
            name: r.name,
            image_url: r.image_url,
            is_clan: r.is_clan,
        })
        .collect();
    Ok(Item {
        virtual_item_type: item.virtual_item_type,
        name: item.name,
        description: item.description,
        image_url: item.image_url,
        prices,
        virtual_prices,
        is_free: item.is_free,
        groups: item
            .groups
            .into_iter()
            .map(|g| Group {
                external_id: g.external_id,
                name: g.name,
            })
            .collect(),
        attributes: item
            .attributes
            .into_iter()
            .map(|a| Attribute {
                external_id: a.external_id,
                name: a.name,
                values: a
                    .values
                    .into_iter()
                    .map(|v| AttributeValue {
                        external_id: v.external_id,
                        value: v.value,
                    })
                    .collect(),
            })
            .collect(),
        ..converted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_loads() {
        let bytes = include_bytes!("../../../deploy/catalog.json");
        let catalog = parse(bytes).unwrap();
        assert!(catalog.len() >= 5);
    }

    #[test]
    fn bad_items_are_refused_with_the_reason() {
        let bad = [
            (
                r#"{"sku":"a b","type":"virtual_good","name":{"en":"x"}}"#,
                "sku",
            ),
            (
                r#"{"sku":"a","type":"spaceship","name":{"en":"x"}}"#,
                "unknown type",
            ),
            (
                r#"{"sku":"a","type":"virtual_good","name":{"en":"x"},"prices":[{"currency":"USD","amount":"1"}]}"#,
                "default",
            ),
            (
                r#"{"sku":"a","type":"virtual_good","name":{"en":"x"},"prices":[{"currency":"USD","amount":"-1","is_default":true}]}"#,
                "negative",
            ),
            (
                r#"{"sku":"a","type":"virtual_good","name":{"en":"x"},"prices":[{"currency":"DOLLARS","amount":"1","is_default":true}]}"#,
                "ISO 4217",
            ),
        ];
        for (item, reason) in bad {
            let file = format!(r#"{{"projects":[{{"project_id":1,"items":[{item}]}}]}}"#);
            let e = parse(file.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(reason), "{e} should mention {reason}");
        }
    }
}
