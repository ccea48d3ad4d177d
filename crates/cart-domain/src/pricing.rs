//! Prices a cart against a catalog snapshot: unit prices in the requested currency,
//! item promotions, the cart's promo code, bonus lines, limits and totals.
//!
//! Rules (Xsolla's, see docs/protocol.md and the reference):
//! * The unit price is the item's price in the requested currency for the buyer's
//!   country, else in that currency for everywhere, else the item's default price.
//! * Discounts apply to the unit price, in this order: the item's discount promotions
//!   by ascending promotion id, then the promo code's discount on that SKU
//!   (`discounted_items`), then the promo code's cart-wide percent. Each percent step
//!   is rounded to 2 decimals (half away from zero); a fixed value subtracts and stops
//!   at zero. Virtual-currency prices are never discounted.
//! * Currencies: a fixed value (`Discount::Value`) and the promo code's price and item
//!   price conditions are plain numbers, meant in the item's default currency (the
//!   currency of its default price). A value discount applies only to a line priced
//!   in its item's default currency, else it is skipped (not listed on the line). The
//!   price conditions are checked only when every counted line is priced in its
//!   item's default currency, and the item price conditions only on such lines; else
//!   the code does not apply and its status says so (`ConditionCurrency`). A shopper
//!   cannot meet a condition by switching currency.
//! * A line's total is unit times quantity. The cart's `amount` and
//!   `amount_without_discount` sum the priced lines (not free, not bonus, known to the
//!   catalog, with a price); they are None for a cart without such lines or with lines
//!   in more than one currency.
//! * Bonus items of item promotions and of the promo code are lines of their own,
//!   free, without a price, in neither total.
//! * Lines that cannot be bought (disabled, not on sale, over a limit) keep their price
//!   and count in the totals; `can_be_bought` says they cannot be paid for. They count
//!   toward no condition and trigger nothing: not a bonus promotion, not the promo
//!   code's price or item price conditions, not the code's need of a paid line.
//! * A paid item with no price in the requested currency and no default price cannot
//!   be bought (`no_price`) and is in neither total.
//! * The promo code gives nothing (not even its bonus items) to a cart without a paid,
//!   buyable line.
//! * A code's `excluded_promotions` (Xsolla: "promotion IDs to exclude when applying
//!   this promotion"): the code wins. Where it applies, the promotions it lists are not
//!   applied with it: a listed discount promotion is off on the lines the code
//!   discounts (its per-item discount or its cart-wide percent) and stays on the other
//!   lines; a listed bonus promotion, which acts on the whole cart as the code's own
//!   bonus does, gives nothing while the code applies. Which lines the code discounts,
//!   and its conditions, are judged on the cart as it is without the code (every
//!   promotion on).

mod promo_code;

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::{Decimal, RoundingStrategy};

pub use promo_code::{check_promo_code, redemption_limit, rewards, PromoCodeRejection, Rewards};

use crate::availability::{self, Availability, LineLimits, Purchases, Unavailable};
use crate::cart::Cart;
use crate::catalog::{
    Catalog, DateWindow, Discount, Item, PromoCode, Promotion, PromotionId, PromotionKind,
};
use crate::ids::{Currency, Locale, ProjectId, Sku};
use crate::time::Timestamp;

/// An exact amount of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

/// The promo code a cart carries, as the redeemer gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedCode {
    pub code: String,
    /// For selectable rewards: unit SKU -> the picked item SKU.
    pub selected_unit_items: BTreeMap<Sku, Sku>,
}

/// Everything pricing needs besides the cart; the shell gathers it.
#[derive(Debug, Clone, Copy)]
pub struct PricingContext<'a> {
    pub project: ProjectId,
    pub catalog: &'a Catalog,
    pub currency: &'a Currency,
    /// The buyer's ISO 3166-1 alpha-2 country, when known.
    pub country: Option<&'a str>,
    pub now: Timestamp,
    pub purchases: &'a Purchases,
    pub promo_code: Option<&'a AppliedCode>,
}

/// Where an applied promotion comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionSource<'a> {
    Promotion(&'a Promotion),
    PromoCode(&'a PromoCode),
}

impl PromotionSource<'_> {
    pub fn name(&self, locale: &Locale) -> &str {
        match self {
            PromotionSource::Promotion(p) => p.name(locale),
            PromotionSource::PromoCode(c) => c.name(locale),
        }
    }

    pub fn window(&self) -> DateWindow {
        match self {
            PromotionSource::Promotion(p) => p.window,
            PromotionSource::PromoCode(c) => c.window,
        }
    }
}

/// A promotion as applied to a line or to the cart (Xsolla's `promotions[]` element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPromotion<'a> {
    pub source: PromotionSource<'a>,
    pub discount: Option<Discount>,
    pub bonus: Vec<(Sku, u32)>,
    /// The user's limit on getting this promotion.
    pub per_user: Option<Availability>,
    /// For a discount on a line: the unit amount before and after this step.
    pub step: Option<(Decimal, Decimal)>,
}

/// A priced cart line.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedLine<'a> {
    pub sku: Sku,
    pub quantity: u32,
    /// None when the catalog does not (or no longer) list the SKU.
    pub item: Option<&'a Item>,
    /// The unit price after discounts; None for a free, bonus, unknown or unpriced line.
    pub unit: Option<Money>,
    pub unit_without_discount: Option<Money>,
    pub is_free: bool,
    /// Added by a promotion or the promo code.
    pub is_bonus: bool,
    /// False for an unknown item, for an unpriced one (`no_price`) or when
    /// `unavailable` says why.
    pub can_be_bought: bool,
    pub unavailable: Option<Unavailable>,
    /// A paid (not free) item with no price in the requested currency and no default
    /// price: it cannot be bought and is in neither total.
    pub no_price: bool,
    pub limits: Option<LineLimits>,
    /// Item-level promotions: the item's discount promotions and the promo code's
    /// discount on this SKU, in the order they were applied.
    pub promotions: Vec<AppliedPromotion<'a>>,
}

impl PricedLine<'_> {
    /// (amount, amount_without_discount) of the whole line, when it has a price.
    pub fn line_total(&self) -> Option<(Decimal, Decimal)> {
        let qty = Decimal::from(self.quantity);
        Some((
            self.unit.as_ref()?.amount.checked_mul(qty)?,
            self.unit_without_discount
                .as_ref()?
                .amount
                .checked_mul(qty)?,
        ))
    }
}

/// What became of the cart's promo code in this pricing.
#[derive(Debug, Clone, PartialEq)]
pub struct PromoCodeOutcome<'a> {
    pub code: String,
    /// None when the catalog has no such code.
    pub promo_code: Option<&'a PromoCode>,
    /// Err when the code does not apply now: it stays on the cart but gives nothing.
    pub status: Result<(), PromoCodeRejection>,
    /// What the code gives (as defined, whether or not it applies now).
    pub rewards: Option<Rewards>,
}

impl PromoCodeOutcome<'_> {
    pub fn applies(&self) -> bool {
        self.status.is_ok()
    }
}

/// A whole cart, priced.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedCart<'a> {
    /// The cart's lines in cart order, then the bonus lines.
    pub lines: Vec<PricedLine<'a>>,
    /// (amount, amount_without_discount), both in `total_currency`. None for a cart with
    /// no priced line, or when the lines' prices are in more than one currency.
    pub total: Option<(Money, Money)>,
    /// True when the cart has lines and every one is free.
    pub is_free: bool,
    /// The currency the cart was priced in (the requested one; lines without a price in
    /// it fall back to their default price's currency).
    pub currency: Currency,
    /// Cart-level promotions: the promo code when it changes the total or gives
    /// bonus items, and the bonus promotions that gave items.
    pub promotions: Vec<AppliedPromotion<'a>>,
    pub promo_code: Option<PromoCodeOutcome<'a>>,
}

/// Applies one discount step to a unit amount.
pub fn discounted(amount: Decimal, discount: Discount) -> Decimal {
    match discount {
        Discount::Percent(percent) => {
            let percent = percent.clamp(Decimal::ZERO, Decimal::ONE_HUNDRED);
            let off = amount
                .checked_mul(percent)
                .and_then(|x| x.checked_div(Decimal::ONE_HUNDRED))
                .unwrap_or(Decimal::ZERO);
            (amount - off)
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
                .max(Decimal::ZERO)
        }
        Discount::Value(value) => (amount - value.max(Decimal::ZERO)).max(Decimal::ZERO),
    }
}

fn promotion_per_user(p: &Promotion, purchases: &Purchases) -> Option<Availability> {
    p.per_user_limit.map(|total| Availability {
        total,
        available: total.saturating_sub(purchases.promotion_uses(p.id)),
    })
}

/// Whether a promotion may be given now to this user.
fn promotion_active(p: &Promotion, ctx: &PricingContext<'_>) -> bool {
    p.window.contains(ctx.now)
        && promotion_per_user(p, ctx.purchases).is_none_or(|a| a.available > 0)
}

/// The active discount promotions of a SKU, by id.
fn discount_promotions<'a>(ctx: &PricingContext<'a>, sku: &Sku) -> Vec<(&'a Promotion, Discount)> {
    ctx.catalog
        .promotions(ctx.project)
        .filter(|p| p.skus.contains(sku) && promotion_active(p, ctx))
        .filter_map(|p| match p.kind {
            PromotionKind::Discount(d) => Some((p, d)),
            PromotionKind::Bonus { .. } => None,
        })
        .collect()
}

/// Prices `cart` in the context's currency. See the module documentation for the rules.
pub fn price<'a>(cart: &Cart, ctx: &PricingContext<'a>) -> PricedCart<'a> {
    // Lines with their item promotions.
    let mut lines: Vec<PricedLine<'a>> = cart
        .lines()
        .iter()
        .map(|line| price_line(&line.sku, line.quantity, ctx))
        .collect();

    // The promo code: first what does not depend on the cart, then what does.
    let promo = ctx.promo_code.map(|applied| {
        let found = ctx.catalog.promo_code(ctx.project, &applied.code);
        let status = check_promo_code(
            ctx.catalog,
            ctx.project,
            &applied.code,
            ctx.now,
            ctx.country,
            ctx.purchases,
            &applied.selected_unit_items,
        )
        .and_then(|code| promo_code::check_cart(code, &lines).map(|()| code));
        (applied, found, status)
    });

    let (mut cart_promotions, excluded) = match &promo {
        Some((applied, _, Ok(code))) => (
            promo_code::apply_code(code, applied, &mut lines, ctx),
            Some(&code.excluded_promotions),
        ),
        _ => (Vec::new(), None),
    };

    // Bonus promotions, by id, then the promo code's bonus items.
    let mut bonus_lines = Vec::new();
    for p in ctx.catalog.promotions(ctx.project) {
        let PromotionKind::Bonus { items } = &p.kind else {
            continue;
        };
        let is_excluded = excluded.is_some_and(|e| e.contains(&p.id));
        if is_excluded || !promotion_active(p, ctx) || !bonus_triggered(p, &lines) {
            continue;
        }
        bonus_lines.extend(items.iter().map(|(sku, qty)| bonus_line(sku, *qty, ctx)));
        cart_promotions.push(AppliedPromotion {
            source: PromotionSource::Promotion(p),
            discount: None,
            bonus: items.clone(),
            per_user: promotion_per_user(p, ctx.purchases),
            step: None,
        });
    }
    if let Some(entry) = cart_promotions
        .iter()
        .find(|e| matches!(e.source, PromotionSource::PromoCode(_)))
    {
        bonus_lines.extend(
            entry
                .bonus
                .iter()
                .map(|(sku, qty)| bonus_line(sku, *qty, ctx)),
        );
    }
    // The promo code's entry comes after the promotions' entries.
    cart_promotions.sort_by_key(|e| matches!(e.source, PromotionSource::PromoCode(_)));
    lines.extend(bonus_lines);

    let is_free = !lines.is_empty() && lines.iter().all(|l| l.is_free);
    let total = total(&lines);
    PricedCart {
        lines,
        total,
        is_free,
        currency: ctx.currency.clone(),
        promotions: cart_promotions,
        promo_code: promo.map(|(applied, found, status)| PromoCodeOutcome {
            code: applied.code.clone(),
            promo_code: found,
            rewards: found.map(|c| rewards(c, &applied.selected_unit_items)),
            status: status.map(|_| ()),
        }),
    }
}

fn price_line<'a>(sku: &Sku, quantity: u32, ctx: &PricingContext<'a>) -> PricedLine<'a> {
    price_line_excluding(sku, quantity, ctx, &BTreeSet::new())
}

/// A line with its item promotions, except those in `excluded` (the ones a promo code
/// that discounts the line excludes).
fn price_line_excluding<'a>(
    sku: &Sku,
    quantity: u32,
    ctx: &PricingContext<'a>,
    excluded: &BTreeSet<PromotionId>,
) -> PricedLine<'a> {
    let item = ctx.catalog.item(ctx.project, sku);
    let Some(item) = item else {
        return PricedLine {
            sku: sku.clone(),
            quantity,
            item: None,
            unit: None,
            unit_without_discount: None,
            is_free: false,
            is_bonus: false,
            can_be_bought: false,
            unavailable: None,
            no_price: false,
            limits: None,
            promotions: vec![],
        };
    };
    let base = (!item.is_free)
        .then(|| item.price_for(ctx.currency, ctx.country))
        .flatten();
    let mut promotions = Vec::new();
    let unit = base.map(|p| {
        let mut amount = p.amount;
        for (promotion, discount) in discount_promotions(ctx, sku) {
            if excluded.contains(&promotion.id) {
                continue;
            }
            if matches!(discount, Discount::Value(_))
                && item.default_currency() != Some(&p.currency)
            {
                continue;
            }
            let after = discounted(amount, discount);
            promotions.push(AppliedPromotion {
                source: PromotionSource::Promotion(promotion),
                discount: Some(discount),
                bonus: vec![],
                per_user: promotion_per_user(promotion, ctx.purchases),
                step: Some((amount, after)),
            });
            amount = after;
        }
        Money {
            amount,
            currency: p.currency.clone(),
        }
    });
    let unavailable = availability::unavailable(item, quantity, ctx.now, ctx.purchases);
    let no_price = !item.is_free && base.is_none();
    PricedLine {
        sku: sku.clone(),
        quantity,
        item: Some(item),
        unit_without_discount: base.map(|p| Money {
            amount: p.amount,
            currency: p.currency.clone(),
        }),
        unit,
        is_free: item.is_free,
        is_bonus: false,
        can_be_bought: unavailable.is_none() && !no_price,
        unavailable,
        no_price,
        limits: availability::limits(item, ctx.now, ctx.purchases),
        promotions,
    }
}

fn bonus_line<'a>(sku: &Sku, quantity: u32, ctx: &PricingContext<'a>) -> PricedLine<'a> {
    let item = ctx.catalog.item(ctx.project, sku);
    PricedLine {
        sku: sku.clone(),
        quantity,
        item,
        unit: None,
        unit_without_discount: None,
        is_free: true,
        is_bonus: true,
        can_be_bought: item.is_some(),
        unavailable: None,
        no_price: false,
        limits: None,
        promotions: vec![],
    }
}

/// Whether a line counts toward conditions and triggers (bonus promotions, the promo
/// code's price and item price conditions, and the code's need of a paid line): a
/// paid line (not bonus, not free, with a price) that can be bought. A line that
/// cannot be bought still shows and counts in the displayed totals, but it cannot
/// earn anything: the shopper would be rewarded for a line they cannot pay for.
fn counts_for_conditions(l: &PricedLine<'_>) -> bool {
    !l.is_bonus && !l.is_free && l.can_be_bought && l.unit.is_some()
}

/// Whether the line is priced in its item's default currency, the currency of fixed
/// values and price conditions.
fn in_default_currency(l: &PricedLine<'_>) -> bool {
    match (l.item, &l.unit) {
        (Some(item), Some(unit)) => item.default_currency() == Some(&unit.currency),
        _ => false,
    }
}

/// A bonus promotion gives its items when the cart has a paid, buyable line of one of
/// its SKUs (or any such line, when it names no SKUs).
fn bonus_triggered(p: &Promotion, lines: &[PricedLine<'_>]) -> bool {
    lines
        .iter()
        .filter(|l| counts_for_conditions(l))
        .any(|l| p.skus.is_empty() || p.skus.contains(&l.sku))
}

/// (amount, amount_without_discount) over the priced lines; None without any or when
/// their currencies differ.
fn total(lines: &[PricedLine<'_>]) -> Option<(Money, Money)> {
    let mut priced = lines
        .iter()
        .filter(|l| !l.is_bonus && !l.is_free)
        .filter_map(|l| Some((l.unit.as_ref()?, l.unit_without_discount.as_ref()?, l)))
        .peekable();
    let currency = priced.peek()?.0.currency.clone();
    let mut amount = Decimal::ZERO;
    let mut without = Decimal::ZERO;
    for (unit, unit_without, line) in priced {
        if unit.currency != currency || unit_without.currency != currency {
            return None;
        }
        let (a, w) = line.line_total()?;
        amount = amount.checked_add(a)?;
        without = without.checked_add(w)?;
    }
    Some((
        Money {
            amount,
            currency: currency.clone(),
        },
        Money {
            amount: without,
            currency,
        },
    ))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
