//! The cart aggregate: commands, events, `decide` and `apply`.

use std::collections::BTreeMap;

use crate::availability::Unavailable;
use crate::ids::{Quantity, Sku, MAX_LINES};
use crate::pricing::{AppliedCode, PromoCodeRejection};

/// One line of a cart. Invariant: `quantity` is never zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: Sku,
    pub quantity: u32,
}

/// A cart as of its last event. Only ever built by folding events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    opened: bool,
    // Invariant: at most one line per SKU, none with quantity zero, in the order the lines
    // were first added (the order a shopper sees).
    lines: Vec<Line>,
    // At most one promo code per cart (Xsolla's rule); it stays attached until removed
    // or replaced, also through a clear, and pricing decides whether it gives anything.
    promo_code: Option<AppliedCode>,
}

impl Cart {
    /// Folds a history into a cart.
    pub fn replay<'a>(history: impl IntoIterator<Item = &'a CartEvent>) -> Cart {
        history.into_iter().fold(Cart::default(), apply)
    }

    /// Whether any event was ever recorded for this cart.
    pub fn is_opened(&self) -> bool {
        self.opened
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The promo code attached to the cart, if any.
    pub fn promo_code(&self) -> Option<&AppliedCode> {
        self.promo_code.as_ref()
    }

    pub fn quantity_of(&self, sku: &Sku) -> u32 {
        self.lines
            .iter()
            .find(|l| &l.sku == sku)
            .map_or(0, |l| l.quantity)
    }
}

/// A SKU requested by a fill, with what the shell learnt about it from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillItem {
    pub sku: Sku,
    pub quantity: Quantity,
    /// Whether the project's catalog lists this SKU.
    pub listed: bool,
    /// Why a listed SKU cannot be bought in this quantity now (see
    /// `availability::unavailable`); None when it can.
    pub unavailable: Option<Unavailable>,
}

impl FillItem {
    /// Why fill skips this SKU, if it does. Setting a quantity of 0 (removing the line)
    /// is never refused for a listed SKU.
    pub fn skip_reason(&self) -> Option<SkipReason> {
        if !self.listed {
            return Some(SkipReason::UnknownItem);
        }
        if self.quantity.is_zero() {
            return None;
        }
        self.unavailable.map(SkipReason::Unavailable)
    }
}

/// What a caller asks of a cart. Catalog facts arrive inside the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartCommand {
    /// Set each listed SKU's quantity (0 removes it); unlisted SKUs and SKUs that cannot
    /// be bought now are skipped (`FillItem::skip_reason`). With
    /// `replace`, the cart is emptied first in the same change: lines not named in
    /// `items` go, and the lines end up in the order `items` names them (as Xsolla's
    /// clear then fill would leave them). When a SKU appears twice, the last one wins.
    Fill { items: Vec<FillItem>, replace: bool },
    /// Set one SKU's quantity; 0 removes the line.
    PutItem {
        sku: Sku,
        quantity: Quantity,
        listed: bool,
    },
    /// Remove one SKU's line; removing an absent line is not an error.
    DeleteItem { sku: Sku, listed: bool },
    /// Remove every line. The promo code stays attached.
    Clear,
    /// Attach a promo code, replacing the current one (one code per cart). The shell
    /// runs `check_promo_code` and passes its verdict in `check`; a refused code
    /// changes nothing. A code goes on a cart that exists (see [`Existence`]).
    RedeemPromoCode {
        code: String,
        selected_unit_items: BTreeMap<Sku, Sku>,
        check: Result<(), PromoCodeRejection>,
        existence: Existence,
    },
    /// Detach the promo code; nothing happens when the cart has none. Like a redeem,
    /// only on a cart that exists.
    RemovePromoCode { existence: Existence },
    /// An order made from this cart was paid: every line goes and the promo code is
    /// detached (it was redeemed by the order), keeping the cart id.
    Purchased,
    /// The cart was left untouched too long (the shell reads the clock and picks the
    /// carts): its promo code and lines go and it is as if never opened, so the current
    /// cart reads empty and a cart named by id is not found until written again.
    Expire,
}

/// Whether a cart exists before its first event, as the shell knows it: a user's
/// current cart always does (empty until first used); a cart named by id exists once
/// opened, so an id never written to (or another user's) is not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    /// The user's current cart.
    Always,
    /// A cart named by its id.
    OnceOpened,
}

/// What happened to a cart. Past tense, facts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartEvent {
    /// The cart exists from here on; always the first event of a cart.
    CartOpened,
    /// A line was added or its quantity changed. `quantity` is never zero.
    ItemQuantitySet {
        sku: Sku,
        quantity: u32,
    },
    ItemRemoved {
        sku: Sku,
    },
    /// Every line was removed, for `reason`.
    CartCleared {
        reason: ClearReason,
    },
    /// A promo code was attached, replacing any previous one.
    PromoCodeRedeemed {
        code: String,
        selected_unit_items: BTreeMap<Sku, Sku>,
    },
    /// The promo code was detached.
    PromoCodeRemoved,
}

/// Why a cart was cleared: analysts tell an abandoned cart from a bought one by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearReason {
    /// The shopper emptied the cart (clear, or a replacing fill that kept nothing).
    Shopper,
    /// An order made from the cart was paid.
    Purchased,
    /// The cart was abandoned: untouched for the expiry setting's days. Unlike the other
    /// reasons, the cart is as never opened afterwards.
    Expired,
}

impl CartEvent {
    /// The stable name of the event's type, as stored in the log.
    pub fn event_type(&self) -> &'static str {
        match self {
            CartEvent::CartOpened => "CartOpened",
            CartEvent::ItemQuantitySet { .. } => "ItemQuantitySet",
            CartEvent::ItemRemoved { .. } => "ItemRemoved",
            CartEvent::CartCleared { .. } => "CartCleared",
            CartEvent::PromoCodeRedeemed { .. } => "PromoCodeRedeemed",
            CartEvent::PromoCodeRemoved => "PromoCodeRemoved",
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("item with sku {sku} not found")]
    UnknownItem { sku: Sku },
    #[error("a cart holds at most {max} lines")]
    TooManyLines { max: usize },
    #[error("{0}")]
    PromoCode(PromoCodeRejection),
    /// A promo code command on a cart that does not exist.
    #[error("cart not found")]
    CartNotFound,
}

/// Why fill skipped a requested SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The catalog does not list the SKU (Xsolla 4001).
    UnknownItem,
    /// Disabled, not on sale or over a purchase limit (Xsolla 1455, 1460, 1459).
    Unavailable(Unavailable),
}

/// A SKU that fill skipped, reported to the caller as a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub sku: Sku,
    pub quantity: Quantity,
    pub reason: SkipReason,
}

/// The SKUs a fill skips, in request order.
pub fn fill_warnings(items: &[FillItem]) -> Vec<Skipped> {
    items
        .iter()
        .filter_map(|item| {
            Some(Skipped {
                sku: item.sku.clone(),
                quantity: item.quantity,
                reason: item.skip_reason()?,
            })
        })
        .collect()
}

/// Decides what a command does to a cart. The only place with business rules.
///
/// Returns no events when the command changes nothing (setting a quantity a line
/// already has, deleting an absent line, clearing an empty cart), except that the first
/// accepted command of a new cart records `CartOpened`.
///
/// # Errors
/// `UnknownItem` for an item put or delete of a SKU the catalog does not list,
/// `TooManyLines` when the cart would hold more than [`MAX_LINES`] lines,
/// `CartNotFound` for a promo code command on a cart that does not exist (before the
/// code is judged), and `PromoCode` for a code that `check_promo_code` refused.
pub fn decide(cart: &Cart, command: &CartCommand) -> Result<Vec<CartEvent>, CartError> {
    match command {
        CartCommand::RedeemPromoCode {
            code,
            selected_unit_items,
            check,
            existence,
        } => {
            exists(cart, *existence)?;
            check.clone().map_err(CartError::PromoCode)?;
            let applied = AppliedCode {
                code: code.clone(),
                selected_unit_items: selected_unit_items.clone(),
            };
            let mut events = opened(cart);
            if cart.promo_code.as_ref() != Some(&applied) {
                events.push(CartEvent::PromoCodeRedeemed {
                    code: applied.code,
                    selected_unit_items: applied.selected_unit_items,
                });
            }
            return Ok(events);
        }
        CartCommand::RemovePromoCode { existence } => {
            exists(cart, *existence)?;
            let mut events = opened(cart);
            if cart.promo_code.is_some() {
                events.push(CartEvent::PromoCodeRemoved);
            }
            return Ok(events);
        }
        CartCommand::Purchased => {
            // Only a cart that exists can have been bought from: no CartOpened here.
            let mut events = Vec::new();
            if !cart.lines.is_empty() {
                events.push(CartEvent::CartCleared {
                    reason: ClearReason::Purchased,
                });
            }
            if cart.promo_code.is_some() {
                events.push(CartEvent::PromoCodeRemoved);
            }
            return Ok(events);
        }
        CartCommand::Expire => {
            // Nothing to expire on a cart never opened (or expired already). The code
            // goes first, so a reader that knows only "a clear empties the lines" still
            // sees it detached, and the clear, last, marks the expiry.
            if !cart.opened {
                return Ok(vec![]);
            }
            let mut events = Vec::new();
            if cart.promo_code.is_some() {
                events.push(CartEvent::PromoCodeRemoved);
            }
            events.push(CartEvent::CartCleared {
                reason: ClearReason::Expired,
            });
            return Ok(events);
        }
        _ => {}
    }
    let mut target = cart.lines.clone();
    match command {
        CartCommand::Fill { items, replace } => {
            if *replace {
                target.clear();
            }
            for item in items.iter().filter(|item| item.skip_reason().is_none()) {
                set_line(&mut target, &item.sku, item.quantity);
            }
        }
        CartCommand::PutItem {
            sku,
            quantity,
            listed,
        } => {
            if !listed {
                return Err(CartError::UnknownItem { sku: sku.clone() });
            }
            set_line(&mut target, sku, *quantity);
        }
        CartCommand::DeleteItem { sku, listed } => {
            if !listed {
                return Err(CartError::UnknownItem { sku: sku.clone() });
            }
            target.retain(|line| &line.sku != sku);
        }
        CartCommand::Clear => target.clear(),
        CartCommand::RedeemPromoCode { .. }
        | CartCommand::RemovePromoCode { .. }
        | CartCommand::Purchased
        | CartCommand::Expire => {}
    }
    // Lines already present may stay even if over the limit; only growth is refused.
    if target.len() > MAX_LINES && target.len() > cart.lines.len() {
        return Err(CartError::TooManyLines { max: MAX_LINES });
    }

    let mut events = opened(cart);
    events.extend(diff(&cart.lines, &target));
    Ok(events)
}

/// Refuses a command that needs the cart to exist when it does not.
fn exists(cart: &Cart, existence: Existence) -> Result<(), CartError> {
    match existence {
        Existence::OnceOpened if !cart.opened => Err(CartError::CartNotFound),
        _ => Ok(()),
    }
}

/// The cart a single-item checkout prices: one line of `sku`, and `promo_code` with
/// the verdict of `check_promo_code` on it. Never stored, but made by the same
/// decisions as a stored cart, so it is priced exactly as one would be.
///
/// # Errors
/// As [`decide`]: `UnknownItem` when `listed` is false, `PromoCode` for a refused code.
pub fn single_item_cart(
    sku: Sku,
    quantity: Quantity,
    listed: bool,
    promo_code: Option<(String, Result<(), PromoCodeRejection>)>,
) -> Result<Cart, CartError> {
    let mut commands = vec![CartCommand::PutItem {
        sku,
        quantity,
        listed,
    }];
    if let Some((code, check)) = promo_code {
        commands.push(CartCommand::RedeemPromoCode {
            code,
            selected_unit_items: BTreeMap::new(),
            check,
            existence: Existence::Always,
        });
    }
    commands.iter().try_fold(Cart::default(), |cart, command| {
        let events = decide(&cart, command)?;
        Ok(events.iter().fold(cart, apply))
    })
}

/// `CartOpened` for the first accepted command of a new cart.
fn opened(cart: &Cart) -> Vec<CartEvent> {
    if cart.opened {
        vec![]
    } else {
        vec![CartEvent::CartOpened]
    }
}

fn set_line(lines: &mut Vec<Line>, sku: &Sku, quantity: Quantity) {
    match lines.iter().position(|line| &line.sku == sku) {
        Some(i) if quantity.is_zero() => {
            lines.remove(i);
        }
        Some(i) => lines[i].quantity = quantity.get(),
        None if quantity.is_zero() => {}
        None => lines.push(Line {
            sku: sku.clone(),
            quantity: quantity.get(),
        }),
    }
}

/// The fewest events that turn `from` into `to`, lines in `to`'s order: a clear when
/// nothing survives, otherwise removals followed by quantity changes in `to`'s order.
///
/// A line that survives keeps its place (`apply` changes a quantity in place) and a new
/// one goes to the end, so a surviving line stays only while the lines kept before it
/// are in `to`'s order: the kept lines are the longest start of `to` found in `from` in
/// the same order. Any other surviving line is removed and set again at its new place,
/// which a replacing fill needs to leave the lines in the order the request names them
/// (the cart is emptied first, then filled).
fn diff(from: &[Line], to: &[Line]) -> Vec<CartEvent> {
    let mut events = Vec::new();
    if to.is_empty() {
        if !from.is_empty() {
            events.push(CartEvent::CartCleared {
                reason: ClearReason::Shopper,
            });
        }
        return events;
    }
    let mut kept = 0;
    let mut last = None;
    for line in to {
        match from.iter().position(|f| f.sku == line.sku) {
            Some(at) if last < Some(at) => {
                last = Some(at);
                kept += 1;
            }
            _ => break,
        }
    }
    let kept = &to[..kept];
    for line in from {
        if !kept.iter().any(|k| k.sku == line.sku) {
            events.push(CartEvent::ItemRemoved {
                sku: line.sku.clone(),
            });
        }
    }
    for (i, line) in to.iter().enumerate() {
        let before = from.iter().find(|f| f.sku == line.sku).map(|f| f.quantity);
        if i >= kept.len() || before != Some(line.quantity) {
            events.push(CartEvent::ItemQuantitySet {
                sku: line.sku.clone(),
                quantity: line.quantity,
            });
        }
    }
    events
}

/// Records what happened. No checks: `decide` already made them.
pub fn apply(mut cart: Cart, event: &CartEvent) -> Cart {
    match event {
        CartEvent::CartOpened => cart.opened = true,
        CartEvent::ItemQuantitySet { sku, quantity } => {
            cart.opened = true;
            match cart.lines.iter_mut().find(|line| &line.sku == sku) {
                Some(line) => line.quantity = *quantity,
                None => cart.lines.push(Line {
                    sku: sku.clone(),
                    quantity: *quantity,
                }),
            }
        }
        CartEvent::ItemRemoved { sku } => cart.lines.retain(|line| &line.sku != sku),
        // An expired cart starts over: not opened, no lines, no code.
        CartEvent::CartCleared {
            reason: ClearReason::Expired,
        } => return Cart::default(),
        // A clear keeps the promo code: the shopper removes it with RemovePromoCode.
        CartEvent::CartCleared { .. } => cart.lines.clear(),
        CartEvent::PromoCodeRedeemed {
            code,
            selected_unit_items,
        } => {
            cart.opened = true;
            cart.promo_code = Some(AppliedCode {
                code: code.clone(),
                selected_unit_items: selected_unit_items.clone(),
            });
        }
        CartEvent::PromoCodeRemoved => cart.promo_code = None,
    }
    cart
}

#[cfg(test)]
mod tests;
