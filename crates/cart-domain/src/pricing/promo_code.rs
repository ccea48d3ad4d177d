//! Whether a promo code applies, and what it gives.
//!
//! A code is checked in two stages. [`check_promo_code`] needs no cart (redeem, verify
//! and the rewards preview use it): the code exists, now is inside its window, its
//! redemption limits are not reached, the buyer's country is allowed and the picked
//! selectable rewards are allowed. `check_cart` then checks it against the priced cart
//! (before the code's own discounts): the cart total meets the price conditions, some
//! line meets the item price conditions. Excluded promotions never stop a code: the
//! code wins and they are not applied with it (see `price`). `price` runs both every
//! time a cart is priced, so a code that stops applying stays on the cart, gives
//! nothing, and `PricedCart::promo_code` says why.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{counts_for_conditions, in_default_currency, PricedLine};
use crate::availability::{PromoCodeUsage, Purchases};
use crate::catalog::{Catalog, PromoCode};
use crate::ids::{Currency, ProjectId, Sku};
use crate::time::Timestamp;

/// Why a promo code does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromoCodeRejection {
    /// 9807 on redeem, 9811 on verify.
    #[error("Enter a valid promo code.")]
    NotFound,
    #[error("The promo code is not active yet.")]
    NotStarted,
    #[error("The promo code has expired.")]
    Expired,
    #[error("The promo code redemption limit has been reached.")]
    TotalLimitReached,
    #[error("You have reached the redemption limit of this promo code.")]
    UserLimitReached,
    #[error("The redemption limit of this code has been reached.")]
    CodeLimitReached,
    #[error("The promo code is not available in your region.")]
    Region,
    #[error("Item {picked} cannot be selected as a reward for {unit}.")]
    InvalidSelection { unit: Sku, picked: Sku },
    #[error("The cart total does not meet the promo code's price conditions.")]
    PriceConditions,
    #[error("No item in the cart meets the promo code's item price conditions.")]
    ItemPriceConditions,
    /// The cart has no paid line that can be bought: the code gives nothing, not even
    /// its bonus items, to an empty or free-only cart.
    #[error("The promo code needs at least one paid item in the cart.")]
    NoPaidLine,
    /// The code's price conditions are in the items' default currency and a line is
    /// priced in another one.
    #[error("The promo code's price conditions only apply to prices in the items' default currency, not {currency}.")]
    ConditionCurrency { currency: Currency },
}

impl PromoCodeRejection {
    /// The Xsolla error code (`0401-CODE`). Price conditions have no documented code;
    /// they answer 9807 like an invalid code.
    pub fn error_code(&self) -> u32 {
        match self {
            PromoCodeRejection::NotFound
            | PromoCodeRejection::PriceConditions
            | PromoCodeRejection::ItemPriceConditions
            | PromoCodeRejection::NoPaidLine
            | PromoCodeRejection::ConditionCurrency { .. } => 9807,
            PromoCodeRejection::NotStarted | PromoCodeRejection::Expired => 9810,
            PromoCodeRejection::TotalLimitReached
            | PromoCodeRejection::UserLimitReached
            | PromoCodeRejection::CodeLimitReached => 9804,
            PromoCodeRejection::Region => 9808,
            PromoCodeRejection::InvalidSelection { .. } => 1102,
        }
    }
}

/// What a promo code gives (Xsolla's `rewards`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewards {
    /// Bonus items, then the picked selectable items.
    pub bonus: Vec<(Sku, u32)>,
    /// The selectable rewards: unit SKU and the items to pick from.
    pub selectable: BTreeMap<Sku, Vec<Sku>>,
    pub discount_percent: Option<Decimal>,
    pub discounted_items: Vec<(Sku, Decimal)>,
    pub is_selectable: bool,
}

/// What `code` gives, with the redeemer's picks among its selectable rewards.
pub fn rewards(code: &PromoCode, selected: &BTreeMap<Sku, Sku>) -> Rewards {
    let mut bonus = code.bonus.clone();
    bonus.extend(
        code.selectable
            .keys()
            .filter_map(|unit| selected.get(unit).map(|picked| (picked.clone(), 1))),
    );
    Rewards {
        bonus,
        selectable: code.selectable.clone(),
        discount_percent: code.discount_percent,
        discounted_items: code.discounted_items.clone(),
        is_selectable: !code.selectable.is_empty(),
    }
}

/// The checks that need no cart; the code when they pass.
///
/// # Errors
/// The first check that fails, in this order: not found, not started, expired, total,
/// per-user and per-code limit, region (a code limited to some countries does not apply
/// when the country is unknown), a picked reward that is not allowed.
pub fn check_promo_code<'a>(
    catalog: &'a Catalog,
    project: ProjectId,
    code: &str,
    now: Timestamp,
    country: Option<&str>,
    purchases: &Purchases,
    selected: &BTreeMap<Sku, Sku>,
) -> Result<&'a PromoCode, PromoCodeRejection> {
    let promo = catalog
        .promo_code(project, code)
        .ok_or(PromoCodeRejection::NotFound)?;
    if promo.window.not_started(now) {
        return Err(PromoCodeRejection::NotStarted);
    }
    if !promo.window.contains(now) {
        return Err(PromoCodeRejection::Expired);
    }
    redemption_limit(promo, purchases.promo_code_usage(promo))?;
    if !promo.countries.is_empty()
        && !country.is_some_and(|c| promo.countries.iter().any(|a| a.eq_ignore_ascii_case(c)))
    {
        return Err(PromoCodeRejection::Region);
    }
    for (unit, picked) in selected {
        let allowed = promo
            .selectable
            .get(unit)
            .is_some_and(|items| items.contains(picked));
        if !allowed {
            return Err(PromoCodeRejection::InvalidSelection {
                unit: unit.clone(),
                picked: picked.clone(),
            });
        }
    }
    Ok(promo)
}

pub(super) fn item_conditions_hold(code: &PromoCode, unit: Decimal) -> bool {
    code.item_price_conditions.iter().all(|c| c.holds(unit))
}

/// The checks against the cart, priced with its item promotions but not the code.
/// Only paid, buyable lines count (see `counts_for_conditions`): the code needs one
/// (else it gives nothing, bonus items included), and the price conditions are
/// checked on the total of those lines.
pub(super) fn check_cart(
    code: &PromoCode,
    lines: &[PricedLine<'_>],
) -> Result<(), PromoCodeRejection> {
    if !lines.iter().any(counts_for_conditions) {
        return Err(PromoCodeRejection::NoPaidLine);
    }
    // A counted line priced in another currency than its item's default one.
    let foreign = |l: &PricedLine<'_>| {
        (!in_default_currency(l))
            .then(|| l.unit.as_ref().map(|u| u.currency.clone()))
            .flatten()
    };
    if !code.price_conditions.is_empty() {
        let counted: Vec<_> = lines
            .iter()
            .filter(|l| counts_for_conditions(l))
            .cloned()
            .collect();
        if let Some(currency) = counted.iter().find_map(foreign) {
            return Err(PromoCodeRejection::ConditionCurrency { currency });
        }
        let total = super::total(&counted).map(|(amount, _)| amount.amount);
        let met = total.is_some_and(|t| code.price_conditions.iter().all(|c| c.holds(t)));
        if !met {
            return Err(PromoCodeRejection::PriceConditions);
        }
    }
    if !code.item_price_conditions.is_empty() && code.discount_percent.is_some() {
        let counted = || lines.iter().filter(|l| counts_for_conditions(l));
        let any = counted()
            .filter(|l| in_default_currency(l))
            .filter_map(|l| l.unit.as_ref())
            .any(|u| item_conditions_hold(code, u.amount));
        if !any {
            if let Some(currency) = counted().find_map(foreign) {
                return Err(PromoCodeRejection::ConditionCurrency { currency });
            }
            return Err(PromoCodeRejection::ItemPriceConditions);
        }
    }
    Ok(())
}

/// Whether one more redemption of `promo` stays within its limits, given the redemptions
/// so far (by everyone, by this user, of this code); the first limit reached otherwise.
/// Also checked, under a lock, when an order that redeems the code is paid.
///
/// # Errors
/// The rejection of the first limit reached: total, then per user, then per code.
pub fn redemption_limit(
    promo: &PromoCode,
    usage: PromoCodeUsage,
) -> Result<(), PromoCodeRejection> {
    let reached = |limit: Option<u32>, used: u32| limit.is_some_and(|l| used >= l);
    if reached(promo.redeem_total_limit, usage.total) {
        return Err(PromoCodeRejection::TotalLimitReached);
    }
    if reached(promo.redeem_user_limit, usage.by_user) {
        return Err(PromoCodeRejection::UserLimitReached);
    }
    if reached(promo.redeem_code_limit, usage.by_code) {
        return Err(PromoCodeRejection::CodeLimitReached);
    }
    Ok(())
}
