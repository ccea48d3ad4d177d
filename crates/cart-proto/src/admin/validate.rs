//! The checks of whole entities (items, promotions, promo codes) and of a project's
//! catalog: every field, duplicates, and references between entities.

use std::collections::{BTreeMap, BTreeSet};

use super::check::*;
use super::error::Check;
use super::{
    convert, project_into, promotion_id, CatalogDocument, IntervalType, Item, ItemType, Price,
    ProjectCatalog, PromoCode, Promotion, ValidationError, MAX_CODE_LEN, MAX_SKU_LEN,
};

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
