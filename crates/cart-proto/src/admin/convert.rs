//! From the admin format to the domain catalog: what pricing reads.
//!
//! The documents were validated before they were stored, so a conversion error means a
//! document that bypassed the checks; it names the field like a validation error does.
//! Prices with `is_enabled: false` are dropped. Virtual prices take the name, image and
//! description of their virtual currency item, which only a whole project knows: use
//! [`project_into`] or [`domain_catalog`] for that (the `TryFrom` of one item leaves
//! them empty). Promotion ids are strings here and numbers in the domain:
//! [`promotion_id`] maps them (a decimal id is itself, any other id a stable hash).

use std::collections::{BTreeMap, BTreeSet};

use cart_domain as d;

use super::{
    parse_date, CatalogDocument, IntervalType, ItemType, PeriodUnit, ProjectCatalog,
    ValidationError, VirtualItemType,
};

type Converted<T> = Result<T, ValidationError>;

fn bad(field: &str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn sku(field: &str, value: &str) -> Converted<d::Sku> {
    d::Sku::parse(value).map_err(|e| bad(field, e.to_string()))
}

fn count(field: &str, value: i64) -> Converted<u32> {
    u32::try_from(value).map_err(|_| bad(field, format!("{value} is out of range")))
}

fn timestamp(field: &str, value: &str) -> Converted<d::Timestamp> {
    parse_date(field, value).map(d::Timestamp::from_unix)
}

fn window(start: Option<&str>, end: Option<&str>) -> Converted<d::DateWindow> {
    Ok(d::DateWindow {
        start: start.map(|s| timestamp("date_start", s)).transpose()?,
        end: end.map(|e| timestamp("date_end", e)).transpose()?,
    })
}

fn english(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("en".to_owned(), name.to_owned())])
}

/// The largest decimal promotion id that is its own domain id: ids are at most 53 bits,
/// so that they survive a JSON number.
pub const MAX_DECIMAL_PROMOTION_ID: u64 = (1 << 53) - 1;

/// A promotion id of decimal digits without a leading zero, below 2^53: its own number.
pub(super) fn decimal_promotion_id(id: &str) -> Option<u64> {
    let canonical = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && (id == "0" || !id.starts_with('0'));
    id.parse::<u64>()
        .ok()
        .filter(|n| canonical && *n <= MAX_DECIMAL_PROMOTION_ID)
}

/// The domain id of a promotion: a decimal id (no leading zero, below 2^53) is its own
/// number, any other id the FNV-1a hash of its bytes, cut to 53 bits so that it
/// survives a JSON number. Validation refuses decimal-looking ids that are not
/// canonical, and two promotions of a project with one domain id.
pub fn promotion_id(id: &str) -> d::PromotionId {
    if let Some(n) = decimal_promotion_id(id) {
        return n;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash & ((1 << 53) - 1)
}

fn type_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl ItemType {
    pub fn name(self) -> String {
        type_name(&self)
    }
}

impl VirtualItemType {
    pub fn name(self) -> String {
        type_name(&self)
    }
}

impl From<PeriodUnit> for d::PeriodUnit {
    fn from(u: PeriodUnit) -> Self {
        match u {
            PeriodUnit::Minute => d::PeriodUnit::Minute,
            PeriodUnit::Hour => d::PeriodUnit::Hour,
            PeriodUnit::Day => d::PeriodUnit::Day,
            PeriodUnit::Week => d::PeriodUnit::Week,
            PeriodUnit::Month => d::PeriodUnit::Month,
            PeriodUnit::Year => d::PeriodUnit::Year,
        }
    }
}

/// `HH:00:00+hh:mm` to (hour, offset in minutes).
fn schedule_time(field: &str, t: &str) -> Converted<(u8, i32)> {
    let b = t.as_bytes();
    let two = |at: usize| -> Option<u8> {
        let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
        (x.is_ascii_digit() && y.is_ascii_digit()).then(|| (x - b'0') * 10 + (y - b'0'))
    };
    let parsed = (|| {
        if b.len() != 14 || &b[2..8] != b":00:00" || b[11] != b':' {
            return None;
        }
        let hour = two(0).filter(|h| *h <= 23)?;
        let (oh, om) = (two(9).filter(|h| *h <= 14)?, two(12).filter(|m| *m <= 59)?);
        let minutes = i32::from(oh) * 60 + i32::from(om);
        match b[8] {
            b'+' => Some((hour, minutes)),
            b'-' => Some((hour, -minutes)),
            _ => None,
        }
    })();
    parsed.ok_or_else(|| {
        bad(
            field,
            format!("{t:?} is not a whole hour as HH:00:00+hh:mm"),
        )
    })
}

impl TryFrom<&super::RecurrentSchedule> for d::RecurrentSchedule {
    type Error = ValidationError;

    fn try_from(s: &super::RecurrentSchedule) -> Converted<Self> {
        let interval = match s.interval_type {
            IntervalType::Daily => d::Interval::Daily,
            IntervalType::Weekly => d::Interval::Weekly {
                day_of_week: s
                    .day_of_week
                    .filter(|d| (1..=7).contains(d))
                    .ok_or_else(|| bad("day_of_week", "needs a day from 1 to 7"))?,
            },
            IntervalType::Monthly => d::Interval::Monthly {
                day_of_month: s
                    .day_of_month
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| bad("day_of_month", "needs a day from 1 to 31"))?,
            },
        };
        let (hour, utc_offset_minutes) = schedule_time("time", &s.time)?;
        Ok(Self {
            interval,
            hour,
            utc_offset_minutes,
        })
    }
}

impl TryFrom<&super::Item> for d::Item {
    type Error = ValidationError;

    /// The item on its own: virtual prices carry no currency name or image (see
    /// [`project_into`]).
    fn try_from(item: &super::Item) -> Converted<Self> {
        let mut out = d::Item::new(sku("sku", &item.sku)?, item.item_type.name());
        out.virtual_item_type = item.virtual_item_type.map(VirtualItemType::name);
        out.name = item.name.clone();
        out.description = item.description.clone();
        out.image_url = item.image_url.clone().unwrap_or_default();
        for (i, p) in item.prices.iter().enumerate() {
            if !p.is_enabled {
                continue;
            }
            let field = format!("prices[{i}]");
            out.prices.push(d::ItemPrice {
                currency: d::Currency::parse(&p.currency)
                    .map_err(|e| bad(&format!("{field}.currency"), e.to_string()))?,
                amount: p.amount.0,
                is_default: p.is_default,
                country: p.country.as_ref().map(|c| c.to_ascii_uppercase()),
            });
        }
        for (i, vp) in item.virtual_prices.iter().enumerate() {
            out.virtual_prices.push(d::VirtualPrice {
                sku: sku(&format!("virtual_prices[{i}].sku"), &vp.sku)?,
                amount: vp.amount,
                is_default: vp.is_default,
                name: String::new(),
                image_url: None,
                description: None,
            });
        }
        out.is_free = item.is_free;
        out.groups = item
            .groups
            .iter()
            .map(|g| d::Group {
                external_id: g.external_id.clone(),
                name: g.name.clone(),
            })
            .collect();
        out.attributes = item
            .attributes
            .iter()
            .map(|a| d::Attribute {
                external_id: a.external_id.clone(),
                name: a.name.clone(),
                values: a
                    .values
                    .iter()
                    .map(|v| d::AttributeValue {
                        external_id: v.external_id.clone(),
                        value: v.value.clone(),
                    })
                    .collect(),
            })
            .collect();
        if let Some(inv) = &item.inventory_options {
            out.inventory_options = d::InventoryOptions {
                consumable: inv.consumable.as_ref().map(|c| d::Consumable {
                    usages_count: c.usages_count,
                }),
                expiration_period: inv.expiration_period.as_ref().map(|e| d::ExpirationPeriod {
                    unit: e.period_type.into(),
                    value: e.value,
                }),
            };
        }
        out.enabled = item.enabled;
        if let Some(l) = &item.limits {
            let per_user = l
                .per_user
                .map(|total| count("limits.per_user", total))
                .transpose()?;
            let schedule = l
                .recurrent_schedule
                .as_ref()
                .map(|s| {
                    d::RecurrentSchedule::try_from(s)
                        .map_err(|e| e.under("limits.recurrent_schedule"))
                })
                .transpose()?;
            out.limits = d::ItemLimits {
                per_user: per_user.map(|total| d::PerUserLimit {
                    total,
                    recurrent_schedule: schedule,
                }),
                per_item: l
                    .per_item
                    .map(|n| count("limits.per_item", n))
                    .transpose()?,
            };
        }
        for (i, p) in item.periods.iter().enumerate() {
            out.periods.push(d::SalesPeriod {
                from: timestamp(&format!("periods[{i}].date_from"), &p.date_from)?,
                until: p
                    .date_until
                    .as_deref()
                    .map(|u| timestamp(&format!("periods[{i}].date_until"), u))
                    .transpose()?,
            });
        }
        out.vp_rewards = item
            .vp_rewards
            .iter()
            .map(|r| d::VpReward {
                item_id: r.item_id.unwrap_or(0),
                sku: r.sku.clone(),
                amount: r.amount,
                name: r.name.clone().unwrap_or_default(),
                image_url: r.image_url.clone().unwrap_or_default(),
                is_clan: r.is_clan,
            })
            .collect();
        Ok(out)
    }
}

fn bonus(field: &str, bonus: &[super::Bonus]) -> Converted<Vec<(d::Sku, u32)>> {
    bonus
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Ok((
                sku(&format!("{field}[{i}].sku"), &b.sku)?,
                count(&format!("{field}[{i}].quantity"), b.quantity)?,
            ))
        })
        .collect()
}

impl TryFrom<&super::Promotion> for d::Promotion {
    type Error = ValidationError;

    fn try_from(p: &super::Promotion) -> Converted<Self> {
        let kind = match &p.discount {
            Some(discount) => {
                d::PromotionKind::Discount(match (discount.percent, discount.value) {
                    (Some(percent), None) => d::Discount::Percent(percent.0),
                    (None, Some(value)) => d::Discount::Value(value.0),
                    _ => {
                        return Err(bad(
                            "discount",
                            "needs exactly one of `percent` and `value`",
                        ))
                    }
                })
            }
            None => d::PromotionKind::Bonus {
                items: bonus("bonus", &p.bonus)?,
            },
        };
        Ok(Self {
            id: promotion_id(&p.id),
            name: english(&p.name),
            window: window(Some(&p.date_start), p.date_end.as_deref())?,
            skus: p
                .skus
                .iter()
                .enumerate()
                .map(|(i, s)| sku(&format!("skus[{i}]"), s))
                .collect::<Converted<BTreeSet<_>>>()?,
            kind,
            per_user_limit: p
                .limits
                .as_ref()
                .and_then(|l| l.per_user)
                .map(|n| count("limits.per_user", n))
                .transpose()?,
        })
    }
}

fn conditions(list: &[super::PriceCondition]) -> Vec<d::PriceCondition> {
    list.iter()
        .map(|c| d::PriceCondition {
            op: match c.operator {
                super::Operator::Ge => d::CompareOp::Ge,
                super::Operator::Gt => d::CompareOp::Gt,
                super::Operator::Le => d::CompareOp::Le,
                super::Operator::Lt => d::CompareOp::Lt,
                super::Operator::Eq => d::CompareOp::Eq,
                super::Operator::Ne => d::CompareOp::Ne,
            },
            value: c.value.0,
        })
        .collect()
}

impl TryFrom<&super::PromoCode> for d::PromoCode {
    type Error = ValidationError;

    fn try_from(c: &super::PromoCode) -> Converted<Self> {
        let limit = |field: &str, v: Option<i64>| v.map(|n| count(field, n)).transpose();
        let mut selectable = BTreeMap::new();
        for (i, u) in c.unit_items.iter().enumerate() {
            let items = u
                .items
                .iter()
                .enumerate()
                .map(|(j, s)| sku(&format!("unit_items[{i}].items[{j}]"), s))
                .collect::<Converted<Vec<_>>>()?;
            selectable.insert(sku(&format!("unit_items[{i}].sku"), &u.sku)?, items);
        }
        Ok(Self {
            code: c.code.clone(),
            name: c.name.as_deref().map(english).unwrap_or_default(),
            window: window(c.date_start.as_deref(), c.date_end.as_deref())?,
            redeem_total_limit: limit("redeem_total_limit", c.redeem_total_limit)?,
            redeem_user_limit: limit("redeem_user_limit", c.redeem_user_limit)?,
            redeem_code_limit: limit("redeem_code_limit", c.redeem_code_limit)?,
            discount_percent: c.discount.as_ref().map(|d| d.percent.0),
            discounted_items: c
                .discounted_items
                .iter()
                .enumerate()
                .map(|(i, di)| {
                    Ok((
                        sku(&format!("discounted_items[{i}].sku"), &di.sku)?,
                        di.discount.percent.0,
                    ))
                })
                .collect::<Converted<Vec<_>>>()?,
            bonus: bonus("bonus", &c.bonus)?,
            selectable,
            price_conditions: conditions(&c.price_conditions),
            item_price_conditions: conditions(&c.item_price_conditions),
            excluded_promotions: c
                .excluded_promotions
                .iter()
                .map(|id| promotion_id(id))
                .collect(),
            countries: c.regions.iter().map(|r| r.to_ascii_uppercase()).collect(),
        })
    }
}

/// Adds one project's items, promotions and promo codes to `catalog`, with the virtual
/// prices named after their currency items. Errors name the field from the project
/// (`items[3].limits.per_user`).
///
/// # Errors
/// A document that does not convert (it bypassed validation).
pub fn project_into(catalog: &mut d::Catalog, project: &ProjectCatalog) -> Converted<()> {
    let project_id =
        d::ProjectId::parse(project.project_id).map_err(|e| bad("project_id", e.to_string()))?;
    let currencies: BTreeMap<&str, &super::Item> =
        project.items.iter().map(|i| (i.sku.as_str(), i)).collect();
    for (i, doc) in project.items.iter().enumerate() {
        let mut item = d::Item::try_from(doc).map_err(|e| e.under(&format!("items[{i}]")))?;
        for vp in &mut item.virtual_prices {
            if let Some(currency) = currencies.get(vp.sku.as_str()) {
                vp.name = currency
                    .name
                    .get("en")
                    .or_else(|| currency.name.values().next())
                    .cloned()
                    .unwrap_or_default();
                vp.image_url = currency.image_url.clone().filter(|u| !u.is_empty());
                vp.description = currency.description.get("en").cloned();
            }
        }
        catalog.insert(project_id, item);
    }
    for (i, doc) in project.promotions.iter().enumerate() {
        let promotion =
            d::Promotion::try_from(doc).map_err(|e| e.under(&format!("promotions[{i}]")))?;
        catalog.insert_promotion(project_id, promotion);
    }
    for (i, doc) in project.promo_codes.iter().enumerate() {
        let code =
            d::PromoCode::try_from(doc).map_err(|e| e.under(&format!("promo_codes[{i}]")))?;
        catalog.insert_promo_code(project_id, code);
    }
    Ok(())
}

/// The domain catalog of some projects' stored documents.
///
/// # Errors
/// The first document that does not convert, e.g. `projects[0].items[3].sku`.
pub fn domain_catalog<'a>(
    projects: impl IntoIterator<Item = &'a ProjectCatalog>,
) -> Converted<d::Catalog> {
    let mut catalog = d::Catalog::default();
    for (i, project) in projects.into_iter().enumerate() {
        project_into(&mut catalog, project).map_err(|e| e.under(&format!("projects[{i}]")))?;
    }
    Ok(catalog)
}

impl TryFrom<&CatalogDocument> for d::Catalog {
    type Error = ValidationError;

    fn try_from(doc: &CatalogDocument) -> Converted<Self> {
        domain_catalog(&doc.projects)
    }
}

#[cfg(test)]
mod tests;
