//! Whether an item can be bought now, by this user, in this quantity: enabled, on sale,
//! within its limits. Pure: the shell passes the time and the user's purchases so far.

use std::collections::BTreeMap;

use crate::catalog::{Item, PromoCode, PromotionId};
use crate::ids::Sku;
use crate::order::OrderError;
use crate::time::{Interval, Timestamp};

/// Units of one SKU this user bought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkuPurchases {
    /// Since the last reset of the item's recurrent schedule (see
    /// `RecurrentSchedule::last_reset`); only read for an item with a schedule.
    pub in_window: u32,
    /// Ever.
    pub total: u32,
}

/// Redemptions of a promo code so far (paid orders only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromoCodeUsage {
    /// By everyone, of the promotion the code belongs to.
    pub total: u32,
    /// By this user.
    pub by_user: u32,
    /// Of this very code.
    pub by_code: u32,
}

/// What the shell knows of purchases, for one user of one project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purchases {
    /// This user's units bought per SKU.
    pub by_user: BTreeMap<Sku, SkuPurchases>,
    /// Units sold per SKU to all users (for the global `per_item` limit).
    pub sold: BTreeMap<Sku, u32>,
    /// How many times this user got each promotion.
    pub promotions: BTreeMap<PromotionId, u32>,
    /// Redemptions per promo code.
    pub promo_codes: BTreeMap<String, PromoCodeUsage>,
}

impl Purchases {
    pub fn of(&self, sku: &Sku) -> SkuPurchases {
        self.by_user.get(sku).copied().unwrap_or_default()
    }

    pub fn sold(&self, sku: &Sku) -> u32 {
        self.sold.get(sku).copied().unwrap_or(0)
    }

    pub fn promotion_uses(&self, id: PromotionId) -> u32 {
        self.promotions.get(&id).copied().unwrap_or(0)
    }

    pub fn promo_code_usage(&self, code: &PromoCode) -> PromoCodeUsage {
        self.promo_codes
            .get(&code.code)
            .copied()
            .unwrap_or_default()
    }
}

/// Why a listed item cannot be bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The item is disabled (Xsolla 1455).
    Disabled,
    /// Now is outside every sales period of the item (Xsolla 1455).
    NotOnSale,
    /// More units than this user may still buy (1460 when none are left, else 1459).
    PerUserLimit { available: u32 },
    /// More units than are left for all users (1460 when none are left, else 1459).
    PerItemLimit { available: u32 },
}

/// A limit with what is left of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Availability {
    pub total: u32,
    /// `total` minus what was bought, never below zero.
    pub available: u32,
}

/// The next reset of a per-user limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentReset {
    pub interval: Interval,
    pub reset_next_date: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerUserAvailability {
    pub total: u32,
    pub available: u32,
    pub recurrent_schedule: Option<RecurrentReset>,
}

/// Xsolla's `limits` of a cart item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLimits {
    pub per_user: Option<PerUserAvailability>,
    pub per_item: Option<Availability>,
}

/// The item's limits as they stand for this user now; None when it has none.
pub fn limits(item: &Item, now: Timestamp, purchases: &Purchases) -> Option<LineLimits> {
    let per_user = item.limits.per_user.as_ref().map(|limit| {
        let bought = purchases.of(&item.sku);
        let bought = if limit.recurrent_schedule.is_some() {
            bought.in_window
        } else {
            bought.total
        };
        PerUserAvailability {
            total: limit.total,
            available: limit.total.saturating_sub(bought),
            recurrent_schedule: limit.recurrent_schedule.map(|s| RecurrentReset {
                interval: s.interval,
                reset_next_date: s.next_reset(now),
            }),
        }
    });
    let per_item = item.limits.per_item.map(|total| Availability {
        total,
        available: total.saturating_sub(purchases.sold(&item.sku)),
    });
    (per_user.is_some() || per_item.is_some()).then_some(LineLimits { per_user, per_item })
}

/// Why `quantity` units of `item` cannot be bought now, if so. Checked in this order:
/// disabled, not on sale, per-user limit, per-item limit.
pub fn unavailable(
    item: &Item,
    quantity: u32,
    now: Timestamp,
    purchases: &Purchases,
) -> Option<Unavailable> {
    if !item.enabled {
        return Some(Unavailable::Disabled);
    }
    if !item.on_sale(now) {
        return Some(Unavailable::NotOnSale);
    }
    let limits = limits(item, now, purchases)?;
    if let Some(u) = limits.per_user.filter(|u| quantity > u.available) {
        return Some(Unavailable::PerUserLimit {
            available: u.available,
        });
    }
    if let Some(i) = limits.per_item.filter(|i| quantity > i.available) {
        return Some(Unavailable::PerItemLimit {
            available: i.available,
        });
    }
    None
}

/// Whether the user may still get each promotion of `limits` (the per-user limits of
/// the promotions an order got), given how many times they got each (`used`, from
/// bought orders): the shell counts under the promotions' locks, at checkout and again
/// at payment.
///
/// # Errors
/// [`OrderError::PromotionLimitReached`] for the first promotion used up.
pub fn check_promotion_limits(
    limits: &BTreeMap<PromotionId, u32>,
    used: &BTreeMap<PromotionId, u32>,
) -> Result<(), OrderError> {
    match limits
        .iter()
        .find(|(id, limit)| used.get(id).copied().unwrap_or(0) >= **limit)
    {
        Some((id, _)) => Err(OrderError::PromotionLimitReached { promotion_id: *id }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{PerUserLimit, SalesPeriod};
    use crate::time::RecurrentSchedule;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_unix(secs)
    }

    #[test]
    fn available_is_total_minus_bought_floored_at_zero() {
        let mut item = Item::new(sku("a"), "virtual_good");
        item.limits.per_user = Some(PerUserLimit {
            total: 5,
            recurrent_schedule: None,
        });
        item.limits.per_item = Some(100);
        let mut p = Purchases::default();
        p.by_user.insert(
            sku("a"),
            SkuPurchases {
                in_window: 0,
                total: 3,
            },
        );
        p.sold.insert(sku("a"), 120);
        let l = limits(&item, t(0), &p).unwrap();
        assert_eq!(
            (l.per_user.unwrap().total, l.per_user.unwrap().available),
            (5, 2)
        );
        assert_eq!(l.per_user.unwrap().recurrent_schedule, None);
        assert_eq!(
            l.per_item,
            Some(Availability {
                total: 100,
                available: 0
            })
        );
        // Per-user is checked first.
        assert_eq!(
            unavailable(&item, 3, t(0), &p),
            Some(Unavailable::PerUserLimit { available: 2 })
        );
        assert_eq!(
            unavailable(&item, 2, t(0), &p),
            Some(Unavailable::PerItemLimit { available: 0 })
        );
        p.sold.clear();
        assert_eq!(unavailable(&item, 2, t(0), &p), None);
        // Without limits there is nothing to show.
        assert_eq!(limits(&Item::new(sku("b"), "virtual_good"), t(0), &p), None);
    }

    #[test]
    fn a_recurrent_limit_counts_the_current_window_and_shows_the_next_reset() {
        let mut item = Item::new(sku("a"), "virtual_good");
        item.limits.per_user = Some(PerUserLimit {
            total: 2,
            recurrent_schedule: Some(RecurrentSchedule {
                interval: Interval::Daily,
                hour: 0,
                utc_offset_minutes: 0,
            }),
        });
        let mut p = Purchases::default();
        p.by_user.insert(
            sku("a"),
            SkuPurchases {
                in_window: 1,
                total: 40,
            },
        );
        let now = Timestamp::from_civil(2023, 2, 27, 10, 0, 0);
        let u = limits(&item, now, &p).unwrap().per_user.unwrap();
        assert_eq!(u.available, 1);
        let reset = u.recurrent_schedule.unwrap();
        assert_eq!(reset.interval.name(), "daily");
        assert_eq!(
            reset.reset_next_date,
            Timestamp::from_civil(2023, 2, 28, 0, 0, 0)
        );
    }

    #[test]
    fn disabled_and_out_of_period_items_cannot_be_bought() {
        let mut item = Item::new(sku("a"), "virtual_good");
        let p = Purchases::default();
        assert_eq!(unavailable(&item, 1, t(50), &p), None);
        item.periods = vec![
            SalesPeriod {
                from: t(100),
                until: Some(t(200)),
            },
            SalesPeriod {
                from: t(300),
                until: None,
            },
        ];
        assert_eq!(
            unavailable(&item, 1, t(50), &p),
            Some(Unavailable::NotOnSale)
        );
        assert_eq!(unavailable(&item, 1, t(100), &p), None);
        assert_eq!(
            unavailable(&item, 1, t(200), &p),
            Some(Unavailable::NotOnSale)
        );
        assert_eq!(unavailable(&item, 1, t(10_000), &p), None);
        item.enabled = false;
        assert_eq!(
            unavailable(&item, 1, t(150), &p),
            Some(Unavailable::Disabled)
        );
    }
}
