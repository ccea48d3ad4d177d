//! Whether a promo code applies, what it gives, and what it does to a priced cart.
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

use super::{
    counts_for_conditions, discounted, in_default_currency, price_line_excluding, AppliedCode,
    AppliedPromotion, PricedLine, PricingContext, PromotionSource,
};
use crate::availability::{PromoCodeUsage, Purchases};
use crate::catalog::{Catalog, Discount, PromoCode};
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

/// What an applying promo code does to the lines: the lines it discounts lose the
/// promotions it excludes, then get its discounts. Returns its cart-level entry (its
/// cart-wide discount and its bonus items), if any.
pub(super) fn apply_code<'a>(
    code: &'a PromoCode,
    applied: &AppliedCode,
    lines: &mut [PricedLine<'a>],
    ctx: &PricingContext<'a>,
) -> Vec<AppliedPromotion<'a>> {
    let mut cart_promotions = Vec::new();
    let on_lines = code_on_lines(code, lines);
    if !code.excluded_promotions.is_empty() {
        // The code wins on the lines it discounts: priced again without the promotions
        // it excludes, before its own steps.
        for (line, _) in lines
            .iter_mut()
            .zip(&on_lines)
            .filter(|(_, on)| on.discounts())
        {
            *line = price_line_excluding(&line.sku, line.quantity, ctx, &code.excluded_promotions);
        }
    }
    apply_code_discounts(code, lines, &on_lines, &mut cart_promotions);
    let bonus = rewards(code, &applied.selected_unit_items).bonus;
    if !bonus.is_empty() {
        match cart_promotions.first_mut() {
            Some(entry) => entry.bonus = bonus,
            None => cart_promotions.push(AppliedPromotion {
                source: PromotionSource::PromoCode(code),
                discount: None,
                bonus,
                per_user: None,
                step: None,
            }),
        }
    }
    cart_promotions
}

/// What the promo code does to one line.
#[derive(Debug, Clone, Copy, Default)]
struct CodeOnLine {
    /// Its per-item discount (`discounted_items`) names the line's SKU.
    per_item: bool,
    /// Its cart-wide percent applies to the line.
    cart_wide: bool,
}

impl CodeOnLine {
    fn discounts(self) -> bool {
        self.per_item || self.cart_wide
    }
}

/// What the promo code does to each line, judged on the lines priced without it: its
/// per-item discounts on their SKUs, and its cart-wide percent on the lines whose price
/// before the code (after the item promotions) meets its item price conditions (in the
/// item's default currency), as `check_cart` judges them.
fn code_on_lines(code: &PromoCode, lines: &[PricedLine<'_>]) -> Vec<CodeOnLine> {
    lines
        .iter()
        .map(|line| {
            let Some(unit) = line.unit.as_ref().filter(|_| !line.is_bonus) else {
                return CodeOnLine::default();
            };
            CodeOnLine {
                per_item: code.discounted_items.iter().any(|(s, _)| s == &line.sku),
                cart_wide: code.discount_percent.is_some()
                    && (code.item_price_conditions.is_empty()
                        || (in_default_currency(line) && item_conditions_hold(code, unit.amount))),
            }
        })
        .collect()
}

/// The promo code's per-item discounts, then its cart-wide percent, as `on_lines` says
/// (see `code_on_lines`).
fn apply_code_discounts<'a>(
    code: &'a PromoCode,
    lines: &mut [PricedLine<'a>],
    on_lines: &[CodeOnLine],
    cart_promotions: &mut Vec<AppliedPromotion<'a>>,
) {
    let mut cart_wide_used = false;
    for (line, on) in lines.iter_mut().zip(on_lines) {
        let Some(unit) = line.unit.as_mut() else {
            continue;
        };
        let per_item = code.discounted_items.iter().find(|(s, _)| s == &line.sku);
        if let (true, Some((_, percent))) = (on.per_item, per_item) {
            let discount = Discount::Percent(*percent);
            let after = discounted(unit.amount, discount);
            line.promotions.push(AppliedPromotion {
                source: PromotionSource::PromoCode(code),
                discount: Some(discount),
                bonus: vec![],
                per_user: None,
                step: Some((unit.amount, after)),
            });
            unit.amount = after;
        }
        if let (true, Some(percent)) = (on.cart_wide, code.discount_percent) {
            unit.amount = discounted(unit.amount, Discount::Percent(percent));
            cart_wide_used = true;
        }
    }
    if cart_wide_used {
        cart_promotions.push(AppliedPromotion {
            source: PromotionSource::PromoCode(code),
            discount: code.discount_percent.map(Discount::Percent),
            bonus: vec![],
            per_user: None,
            step: None,
        });
    }
}
