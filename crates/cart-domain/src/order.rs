//! The order aggregate: a frozen snapshot of a priced cart, its own event stream, and
//! its status machine (Xsolla's order life cycle, see the reference, section 4.3).
//!
//! ```text
//! new -> paid -> done            (ConfirmPayment, then MarkDelivered)
//! paid | done -> canceled        (Cancel: a refund)
//! new -> expired                 (Expire: a newer unpaid order took a limited item or
//!                                 the same promo code, or the order stayed unpaid past
//!                                 its payment window; the shell decides when)
//! checkout of an all-free cart -> done at once (a free order)
//! ```
//!
//! Every other transition is [`OrderError::InvalidTransition`]. Pure like the cart: the
//! shell assigns the order id (increasing per project) and the payment token (opaque,
//! at least 128 random bits), reads the clock, prices the cart, checks the purchase
//! limits with [`check_limits`] under its lock, and passes the answers in.
//!
//! Purchase limits: refunds and cancellations do not give limits back (Xsolla's rule):
//! a canceled order's units stay counted in `Purchases`. Bonus lines are given, not
//! bought, and count toward no limit.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::availability::{Purchases, Unavailable};
use crate::catalog::{Discount, ItemLimits, PromotionId};
use crate::ids::{CartId, Currency, ProjectId, Sku, UserId};
use crate::pricing::{AppliedPromotion, PricedCart, PricedLine, PromotionSource};
use crate::time::Timestamp;

/// The order's number: increasing per project, assigned by the shell (Xsolla's
/// `order_id`).
pub type OrderId = u64;

/// Xsolla's order statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderStatus {
    New,
    Paid,
    Done,
    Canceled,
    Expired,
}

impl OrderStatus {
    /// The Xsolla name: `new`, `paid`, `done`, `canceled`, `expired`.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::Paid => "paid",
            OrderStatus::Done => "done",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Expired => "expired",
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a payment was real money or a sandbox test (Xsolla's `order.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMode {
    Default,
    Sandbox,
}

impl PaymentMode {
    pub fn name(self) -> &'static str {
        match self {
            PaymentMode::Default => "default",
            PaymentMode::Sandbox => "sandbox",
        }
    }
}

/// A unit price, frozen: after discounts and before, in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePrice {
    pub amount: Decimal,
    pub amount_without_discount: Decimal,
    pub currency: Currency,
}

/// Why a priced line cannot be bought; only ever set on a snapshot that checkout
/// refuses, so a created order's lines never carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineProblem {
    /// The catalog does not list the SKU (Xsolla 1411).
    UnknownItem,
    /// A paid item with no price in the currency and no default price (4054).
    NoPrice,
    /// Disabled, not on sale (1455) or over a purchase limit (1460, 1459).
    Unavailable(Unavailable),
}

/// Where an applied promotion came from, by id (the catalog may change afterwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionRef {
    Promotion(PromotionId),
    PromoCode(String),
}

/// A promotion as it was applied when the order was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPromotion {
    pub source: PromotionRef,
    pub discount: Option<Discount>,
    pub bonus: Vec<(Sku, u32)>,
    /// For a discount on a line: the unit amount before and after this step.
    pub step: Option<(Decimal, Decimal)>,
}

impl OrderPromotion {
    fn from_applied(p: &AppliedPromotion<'_>) -> Self {
        OrderPromotion {
            source: match p.source {
                PromotionSource::Promotion(p) => PromotionRef::Promotion(p.id),
                PromotionSource::PromoCode(c) => PromotionRef::PromoCode(c.code.clone()),
            },
            discount: p.discount,
            bonus: p.bonus.clone(),
            step: p.step,
        }
    }
}

/// One line of an order, frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: u32,
    /// The catalog item's type (`virtual_good`, ...), when the catalog listed it.
    pub item_type: Option<String>,
    /// The unit price; None for a free or bonus line.
    pub price: Option<LinePrice>,
    pub is_free: bool,
    pub is_bonus: bool,
    /// Item-level promotions in the order they were applied.
    pub promotions: Vec<OrderPromotion>,
    /// Why the line cannot be bought; checkout refuses a snapshot with one.
    pub problem: Option<LineProblem>,
}

impl OrderLine {
    /// (amount, amount_without_discount) of the whole line (unit times quantity).
    pub fn line_total(&self) -> Option<(Decimal, Decimal)> {
        let price = self.price.as_ref()?;
        let qty = Decimal::from(self.quantity);
        Some((
            price.amount.checked_mul(qty)?,
            price.amount_without_discount.checked_mul(qty)?,
        ))
    }

    fn from_priced(line: &PricedLine<'_>) -> Self {
        let price = match (&line.unit, &line.unit_without_discount) {
            (Some(unit), Some(without)) if !line.is_free && !line.is_bonus => Some(LinePrice {
                amount: unit.amount,
                amount_without_discount: without.amount,
                currency: unit.currency.clone(),
            }),
            _ => None,
        };
        let problem = if line.item.is_none() {
            Some(LineProblem::UnknownItem)
        } else if line.no_price {
            Some(LineProblem::NoPrice)
        } else {
            line.unavailable.map(LineProblem::Unavailable)
        };
        OrderLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            item_type: line.item.map(|i| i.item_type.clone()),
            price,
            is_free: line.is_free,
            is_bonus: line.is_bonus,
            promotions: line
                .promotions
                .iter()
                .map(OrderPromotion::from_applied)
                .collect(),
            problem,
        }
    }
}

/// The order's total: the sum of its paid lines (not free, not bonus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTotal {
    pub amount: Decimal,
    pub amount_without_discount: Decimal,
    pub currency: Currency,
}

/// A priced cart, frozen into an order: what the shopper saw and agreed to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSnapshot {
    /// The cart's lines in cart order, then the bonus lines.
    pub lines: Vec<OrderLine>,
    /// The promo code, only when it applied (gave a discount or bonus items); a code
    /// that did not apply is not part of the order and is not redeemed by it.
    pub promo_code: Option<String>,
    /// Cart-level promotions (the promo code's entry, bonus promotions).
    pub promotions: Vec<OrderPromotion>,
    /// None for a free order, for a cart without priced lines and for mixed currencies.
    pub total: Option<OrderTotal>,
    /// The currency the cart was priced in, which a free order (no total) is in too;
    /// None in orders recorded before it was kept (see `currency`).
    pub currency: Option<Currency>,
}

impl OrderSnapshot {
    /// Freezes the output of `price`: exact `rust_decimal` unit prices, discounts and
    /// their steps, the applied promo code and the totals (bonus lines are in neither).
    pub fn from_priced(priced: &PricedCart<'_>) -> Self {
        OrderSnapshot {
            lines: priced.lines.iter().map(OrderLine::from_priced).collect(),
            promo_code: priced
                .promo_code
                .as_ref()
                .filter(|outcome| outcome.applies())
                .map(|outcome| outcome.code.clone()),
            promotions: priced
                .promotions
                .iter()
                .map(OrderPromotion::from_applied)
                .collect(),
            total: priced.total.as_ref().map(|(amount, without)| OrderTotal {
                amount: amount.amount,
                amount_without_discount: without.amount,
                currency: amount.currency.clone(),
            }),
            currency: Some(priced.currency.clone()),
        }
    }

    /// The order's currency: its total's, else the one it was priced in, else (a free
    /// order recorded before that was kept) USD, the default currency of a checkout.
    pub fn currency(&self) -> Currency {
        self.total
            .as_ref()
            .map(|t| t.currency.clone())
            .or_else(|| self.currency.clone())
            .unwrap_or_else(Currency::usd)
    }

    /// The order-level discount step, Xsolla's webhook `order.promotions[]`: the total of
    /// the paid lines before and after the promo code's cart-wide percent, when the code
    /// gave one. The cart-wide percent is not a step of its own on the lines (each
    /// line's last step is its price before it), so it is recovered from them: before
    /// is each line's last step's result (or its price before discounts) times its
    /// quantity, after is the total.
    pub fn cart_wide_step(&self) -> Option<(Decimal, Decimal)> {
        let cart_wide = self
            .promotions
            .iter()
            .any(|p| matches!(p.source, PromotionRef::PromoCode(_)) && p.discount.is_some());
        let total = self.total.as_ref().filter(|_| cart_wide)?;
        let mut before = Decimal::ZERO;
        for line in self.bought() {
            let Some(price) = &line.price else { continue };
            let unit = line
                .promotions
                .iter()
                .rev()
                .find_map(|p| p.step)
                .map_or(price.amount_without_discount, |(_, after)| after);
            before = before.checked_add(unit.checked_mul(Decimal::from(line.quantity))?)?;
        }
        Some((before, total.amount))
    }

    /// The item promotions the order got: on its lines (discounts) and on the cart
    /// (bonus promotions); the promo code is not among them.
    pub fn promotion_ids(&self) -> BTreeSet<PromotionId> {
        self.lines
            .iter()
            .flat_map(|l| &l.promotions)
            .chain(&self.promotions)
            .filter_map(|p| match p.source {
                PromotionRef::Promotion(id) => Some(id),
                PromotionRef::PromoCode(_) => None,
            })
            .collect()
    }

    /// The lines the shopper chose (not bonus lines).
    pub fn bought(&self) -> impl Iterator<Item = &OrderLine> {
        self.lines.iter().filter(|l| !l.is_bonus)
    }

    /// True when the order has lines and every chosen line is free.
    pub fn is_free(&self) -> bool {
        self.bought().next().is_some() && self.bought().all(|l| l.is_free)
    }

    /// Whether the shopper chose the checkout this cart is bought through: a cart whose
    /// every item is free is taken free (nothing to pay), one with paid items is paid.
    /// An empty cart passes here; the order's own checks refuse it (`EmptyCart`).
    ///
    /// # Errors
    /// `PaidItemsInFreeCheckout` or `FreeCartInPaidCheckout` (1401).
    pub fn check_kind(&self, kind: CheckoutKind) -> Result<(), OrderError> {
        if self.bought().next().is_none() {
            return Ok(());
        }
        match (kind, self.is_free()) {
            (CheckoutKind::Free, false) => Err(OrderError::PaidItemsInFreeCheckout),
            (CheckoutKind::Paid, true) => Err(OrderError::FreeCartInPaidCheckout),
            _ => Ok(()),
        }
    }
}

/// Which checkout the shopper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutKind {
    /// A cart with prices, paid through the payment side.
    Paid,
    /// A cart of free items only, done at once.
    Free,
}

/// Everything a new order is made of besides where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub order_id: OrderId,
    /// Opaque, at least 128 random bits, made by the shell.
    pub payment_token: String,
    pub project: ProjectId,
    pub user: UserId,
    pub snapshot: OrderSnapshot,
    /// The catalog version the cart was priced against.
    pub catalog_version: u64,
    pub now: Timestamp,
    /// The caller's `custom_parameters` object as JSON text, opaque to the domain; it
    /// comes back in the webhooks.
    pub custom_parameters: Option<String>,
    /// The verdict of [`check_limits`] on the snapshot's lines, taken by the shell
    /// under the lock that serializes purchases of limited items.
    pub limits: Result<(), OrderError>,
}

/// What a caller asks of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Create an order from a cart (Xsolla P1/P2).
    Checkout { cart_id: CartId, order: NewOrder },
    /// Create an order for a single item (Xsolla P3): the snapshot holds exactly one
    /// chosen line (and maybe bonus lines).
    CheckoutItem { order: NewOrder },
    /// The payment side says the order was paid. Amount and currency must match the
    /// order's total exactly.
    ConfirmPayment {
        invoice_id: String,
        amount: Decimal,
        currency: Currency,
        mode: PaymentMode,
        /// [`check_limits`] on the order's lines, as at checkout.
        limits: Result<(), OrderError>,
    },
    /// The payment was refunded.
    Cancel { reason: String },
    /// The order_paid webhook was delivered: the items are granted.
    MarkDelivered,
    /// A newer unpaid order (`by_order`) took a limited item, the same promo code or a
    /// per-user limited promotion; or, with `by_order` None, the order stayed unpaid
    /// past its payment window (the shell reads the clock and picks the orders).
    Expire { by_order: Option<OrderId> },
}

/// What happened to an order. Past tense, facts only.
// `OrderCreated` carries the whole snapshot while the other events are small; an order
// has a handful of events, each folded once per command, so boxing the snapshot would
// only add an allocation and a level of indirection to every use.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// Always the first event of an order; the status is `new`.
    OrderCreated {
        order_id: OrderId,
        payment_token: String,
        project: ProjectId,
        user: UserId,
        /// None for a single-item order.
        cart_id: Option<CartId>,
        snapshot: OrderSnapshot,
        catalog_version: u64,
        created_at: Timestamp,
        custom_parameters: Option<String>,
    },
    OrderPaid {
        invoice_id: String,
        amount: Decimal,
        currency: Currency,
        mode: PaymentMode,
    },
    /// The items were granted (or, for a free order, right after creation).
    OrderDone,
    OrderCanceled {
        reason: String,
    },
    /// `by_order`: the newer order that expired this one; None when it expired unpaid
    /// by time.
    OrderExpired {
        by_order: Option<OrderId>,
    },
}

impl OrderEvent {
    /// What an `OrderCreated` records, as the order keeps it; None for other events.
    pub fn created(&self) -> Option<OrderDetails> {
        let OrderEvent::OrderCreated {
            order_id,
            payment_token,
            project,
            user,
            cart_id,
            snapshot,
            catalog_version,
            created_at,
            custom_parameters,
        } = self
        else {
            return None;
        };
        Some(OrderDetails {
            order_id: *order_id,
            payment_token: payment_token.clone(),
            project: *project,
            user: user.clone(),
            cart_id: cart_id.clone(),
            snapshot: snapshot.clone(),
            catalog_version: *catalog_version,
            created_at: *created_at,
            custom_parameters: custom_parameters.clone(),
        })
    }

    /// The stable name of the event's type, as stored in the log.
    pub fn event_type(&self) -> &'static str {
        match self {
            OrderEvent::OrderCreated { .. } => "OrderCreated",
            OrderEvent::OrderPaid { .. } => "OrderPaid",
            OrderEvent::OrderDone => "OrderDone",
            OrderEvent::OrderCanceled { .. } => "OrderCanceled",
            OrderEvent::OrderExpired { .. } => "OrderExpired",
        }
    }
}

/// Why an order command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order not found")]
    NotFound,
    #[error("order {order_id} already exists")]
    AlreadyCreated { order_id: OrderId },
    #[error("invalid cart: the cart is empty")]
    EmptyCart,
    #[error("invalid cart: item {sku} is free")]
    FreeItem { sku: Sku },
    #[error("item {sku} cannot be bought")]
    CannotBeBought { sku: Sku, problem: LineProblem },
    #[error("invalid cart: the cart holds paid items, so it cannot be checked out free")]
    PaidItemsInFreeCheckout,
    #[error("invalid cart: every item in the cart is free, so it is checked out free")]
    FreeCartInPaidCheckout,
    #[error("invalid cart: the items are priced in more than one currency")]
    MixedCurrencies,
    #[error("invalid cart: the cart has no total")]
    NoTotal,
    #[error("a single-item order holds exactly one item")]
    NotSingleItem,
    #[error("purchase limit exceeded for {sku}: {available} available")]
    LimitExceeded {
        sku: Sku,
        available: u32,
        /// When a recurrent per-user limit resets next.
        reset_next_date: Option<Timestamp>,
    },
    #[error("an order cannot go from {from} to {to}")]
    InvalidTransition { from: OrderStatus, to: OrderStatus },
    #[error("the payment amount {paid} does not match the order's {expected}")]
    AmountMismatch { expected: Decimal, paid: Decimal },
    #[error("the payment currency {paid} does not match the order's {expected}")]
    CurrencyMismatch { expected: Currency, paid: Currency },
    #[error("the order was already paid by invoice {invoice_id}")]
    AlreadyPaid { invoice_id: String },
    /// The order's promo code reached a redemption limit since the checkout.
    #[error("the promo code {code} has reached its redemption limit")]
    PromoCodeLimitReached { code: String },
    /// A promotion the order's prices include reached the user's limit (another order
    /// got it since the cart was priced): the cart, priced again, no longer has it.
    #[error("a promotion in the order's prices has reached its per-user limit; get the cart again for its current prices")]
    PromotionLimitReached { promotion_id: PromotionId },
}

impl OrderError {
    /// The Xsolla error code (reference, section 8). Refusals Xsolla has no code for
    /// (transitions, payment mismatches) are 1102, incorrect request data.
    pub fn code(&self) -> u32 {
        match self {
            OrderError::NotFound => 9001,
            // Xsolla's cart checkout answers 1401 "Invalid cart" for an empty cart or
            // one with free items; its item-list checkout (P4) answers 1417 instead.
            OrderError::EmptyCart
            | OrderError::FreeItem { .. }
            | OrderError::PaidItemsInFreeCheckout
            | OrderError::FreeCartInPaidCheckout
            | OrderError::MixedCurrencies
            | OrderError::NoTotal => 1401,
            OrderError::CannotBeBought { problem, .. } => match problem {
                LineProblem::UnknownItem => 1411,
                LineProblem::NoPrice => 4054,
                LineProblem::Unavailable(
                    Unavailable::PerUserLimit { available }
                    | Unavailable::PerItemLimit { available },
                ) => limit_code(*available),
                LineProblem::Unavailable(_) => 1455,
            },
            OrderError::LimitExceeded { available, .. } => limit_code(*available),
            // Xsolla has no code of its own for a promotion's limit: its purchase limit's.
            OrderError::PromotionLimitReached { .. } => 1460,
            OrderError::PromoCodeLimitReached { .. } => 9804,
            OrderError::AlreadyCreated { .. }
            | OrderError::NotSingleItem
            | OrderError::InvalidTransition { .. }
            | OrderError::AmountMismatch { .. }
            | OrderError::CurrencyMismatch { .. }
            | OrderError::AlreadyPaid { .. } => 1102,
        }
    }
}

/// 1460 when nothing is left, 1459 when fewer units are left than asked for.
fn limit_code(available: u32) -> u32 {
    if available == 0 {
        1460
    } else {
        1459
    }
}

/// Who ordered what, as recorded by `OrderCreated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDetails {
    pub order_id: OrderId,
    pub payment_token: String,
    pub project: ProjectId,
    pub user: UserId,
    pub cart_id: Option<CartId>,
    pub snapshot: OrderSnapshot,
    pub catalog_version: u64,
    pub created_at: Timestamp,
    pub custom_parameters: Option<String>,
}

/// The payment that paid an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub invoice_id: String,
    pub amount: Decimal,
    pub currency: Currency,
    pub mode: PaymentMode,
}

/// An order as of its last event. Only ever built by folding events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Order {
    details: Option<OrderDetails>,
    status: Option<OrderStatus>,
    payment: Option<Payment>,
    cancel_reason: Option<String>,
    expired_by: Option<OrderId>,
}

impl Order {
    /// Folds a history into an order.
    pub fn replay<'a>(history: impl IntoIterator<Item = &'a OrderEvent>) -> Order {
        history.into_iter().fold(Order::default(), apply)
    }

    /// None before `OrderCreated`.
    pub fn status(&self) -> Option<OrderStatus> {
        self.status
    }

    pub fn details(&self) -> Option<&OrderDetails> {
        self.details.as_ref()
    }

    pub fn payment(&self) -> Option<&Payment> {
        self.payment.as_ref()
    }

    pub fn cancel_reason(&self) -> Option<&str> {
        self.cancel_reason.as_deref()
    }

    /// The newer order that expired this one.
    pub fn expired_by(&self) -> Option<OrderId> {
        self.expired_by
    }
}

/// Decides what a command does to an order. The only place with the order's rules.
///
/// Repeats change nothing and return no events: the same invoice confirmed again (even
/// after a refund), a cancel of a canceled order, a delivery of a done order, an
/// expiry of an expired order.
///
/// # Errors
/// See [`OrderError`]; checkout refusals are checked in this order: already created,
/// empty, single item, lines that cannot be bought, free items, limits, totals.
pub fn decide(order: &Order, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
    match command {
        OrderCommand::Checkout {
            cart_id,
            order: new,
        } => checkout(order, Some(cart_id), new),
        OrderCommand::CheckoutItem { order: new } => checkout(order, None, new),
        OrderCommand::ConfirmPayment {
            invoice_id,
            amount,
            currency,
            mode,
            limits,
        } => {
            let (details, status) = created(order)?;
            if let Some(paid) = &order.payment {
                if paid.invoice_id == invoice_id {
                    return Ok(vec![]);
                }
                return Err(OrderError::AlreadyPaid {
                    invoice_id: paid.invoice_id.clone(),
                });
            }
            if status != OrderStatus::New {
                return Err(OrderError::InvalidTransition {
                    from: status,
                    to: OrderStatus::Paid,
                });
            }
            // A new order always has a total: checkout refuses one without.
            let total = details.snapshot.total.as_ref().ok_or(OrderError::NoTotal)?;
            if currency != total.currency {
                return Err(OrderError::CurrencyMismatch {
                    expected: total.currency.clone(),
                    paid: currency,
                });
            }
            if amount != total.amount {
                return Err(OrderError::AmountMismatch {
                    expected: total.amount,
                    paid: amount,
                });
            }
            limits?;
            Ok(vec![OrderEvent::OrderPaid {
                invoice_id,
                amount,
                currency,
                mode,
            }])
        }
        OrderCommand::Cancel { reason } => {
            let (_, status) = created(order)?;
            match status {
                OrderStatus::Canceled => Ok(vec![]),
                OrderStatus::Paid | OrderStatus::Done => {
                    Ok(vec![OrderEvent::OrderCanceled { reason }])
                }
                from => Err(OrderError::InvalidTransition {
                    from,
                    to: OrderStatus::Canceled,
                }),
            }
        }
        OrderCommand::MarkDelivered => {
            let (_, status) = created(order)?;
            match status {
                OrderStatus::Done => Ok(vec![]),
                OrderStatus::Paid => Ok(vec![OrderEvent::OrderDone]),
                from => Err(OrderError::InvalidTransition {
                    from,
                    to: OrderStatus::Done,
                }),
            }
        }
        OrderCommand::Expire { by_order } => {
            let (_, status) = created(order)?;
            match status {
                OrderStatus::Expired => Ok(vec![]),
                OrderStatus::New => Ok(vec![OrderEvent::OrderExpired { by_order }]),
                from => Err(OrderError::InvalidTransition {
                    from,
                    to: OrderStatus::Expired,
                }),
            }
        }
    }
}

fn created(order: &Order) -> Result<(&OrderDetails, OrderStatus), OrderError> {
    match (&order.details, order.status) {
        (Some(details), Some(status)) => Ok((details, status)),
        _ => Err(OrderError::NotFound),
    }
}

fn checkout(
    order: &Order,
    cart_id: Option<CartId>,
    new: NewOrder,
) -> Result<Vec<OrderEvent>, OrderError> {
    if let Some(details) = &order.details {
        return Err(OrderError::AlreadyCreated {
            order_id: details.order_id,
        });
    }
    let snapshot = &new.snapshot;
    let chosen = snapshot.bought().count();
    if chosen == 0 {
        return Err(OrderError::EmptyCart);
    }
    if cart_id.is_none() && chosen != 1 {
        return Err(OrderError::NotSingleItem);
    }
    if let Some(line) = snapshot.lines.iter().find(|l| l.problem.is_some()) {
        let problem = line.problem.unwrap_or(LineProblem::UnknownItem);
        return Err(match problem {
            LineProblem::Unavailable(
                Unavailable::PerUserLimit { available } | Unavailable::PerItemLimit { available },
            ) => OrderError::LimitExceeded {
                sku: line.sku.clone(),
                available,
                reset_next_date: None,
            },
            problem => OrderError::CannotBeBought {
                sku: line.sku.clone(),
                problem,
            },
        });
    }
    let free = snapshot.is_free();
    if !free {
        if let Some(line) = snapshot.bought().find(|l| l.is_free) {
            return Err(OrderError::FreeItem {
                sku: line.sku.clone(),
            });
        }
    }
    new.limits?;
    if !free && snapshot.total.is_none() {
        let mut currencies = snapshot
            .bought()
            .filter_map(|l| l.price.as_ref().map(|p| &p.currency));
        let first = currencies.next();
        return Err(if currencies.any(|c| Some(c) != first) {
            OrderError::MixedCurrencies
        } else {
            OrderError::NoTotal
        });
    }
    let mut events = vec![OrderEvent::OrderCreated {
        order_id: new.order_id,
        payment_token: new.payment_token,
        project: new.project,
        user: new.user,
        cart_id,
        snapshot: new.snapshot,
        catalog_version: new.catalog_version,
        created_at: new.now,
        custom_parameters: new.custom_parameters,
    }];
    if free {
        events.push(OrderEvent::OrderDone);
    }
    Ok(events)
}

/// Records what happened. No checks: `decide` already made them.
pub fn apply(mut order: Order, event: &OrderEvent) -> Order {
    match event {
        OrderEvent::OrderCreated { .. } => {
            order.details = event.created();
            order.status = Some(OrderStatus::New);
        }
        OrderEvent::OrderPaid {
            invoice_id,
            amount,
            currency,
            mode,
        } => {
            order.payment = Some(Payment {
                invoice_id: invoice_id.clone(),
                amount: *amount,
                currency: currency.clone(),
                mode: *mode,
            });
            order.status = Some(OrderStatus::Paid);
        }
        OrderEvent::OrderDone => order.status = Some(OrderStatus::Done),
        OrderEvent::OrderCanceled { reason } => {
            order.cancel_reason = Some(reason.clone());
            order.status = Some(OrderStatus::Canceled);
        }
        OrderEvent::OrderExpired { by_order } => {
            order.expired_by = *by_order;
            order.status = Some(OrderStatus::Expired);
        }
    }
    order
}

/// Whether an order's chosen lines fit the purchase limits: per-user totals (or, for an
/// item with a recurrent schedule, the units bought since its last reset, as the shell
/// counted them in `Purchases::by_user[..].in_window`) and per-item global totals.
/// Quantities of one SKU on several lines add up; bonus lines count toward nothing.
/// Checked per SKU in SKU order, per-user before per-item.
///
/// `purchases` counts paid orders, refunded ones included: a refund does not give a
/// limit back (Xsolla's rule). `limits` gives an item's limits from the catalog.
///
/// # Errors
/// [`OrderError::LimitExceeded`] with what is left (1460 when nothing, else 1459) and,
/// for a recurrent per-user limit, its next reset after `now`.
pub fn check_limits<'a>(
    lines: &[OrderLine],
    limits: impl Fn(&Sku) -> Option<&'a ItemLimits>,
    purchases: &Purchases,
    now: Timestamp,
) -> Result<(), OrderError> {
    let mut wanted: BTreeMap<&Sku, u32> = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.is_bonus) {
        let entry = wanted.entry(&line.sku).or_default();
        *entry = entry.saturating_add(line.quantity);
    }
    for (sku, quantity) in wanted {
        let Some(item_limits) = limits(sku) else {
            continue;
        };
        if let Some(per_user) = &item_limits.per_user {
            let bought = purchases.of(sku);
            let bought = if per_user.recurrent_schedule.is_some() {
                bought.in_window
            } else {
                bought.total
            };
            let available = per_user.total.saturating_sub(bought);
            if quantity > available {
                return Err(OrderError::LimitExceeded {
                    sku: sku.clone(),
                    available,
                    reset_next_date: per_user.recurrent_schedule.map(|s| s.next_reset(now)),
                });
            }
        }
        if let Some(total) = item_limits.per_item {
            let available = total.saturating_sub(purchases.sold(sku));
            if quantity > available {
                return Err(OrderError::LimitExceeded {
                    sku: sku.clone(),
                    available,
                    reset_next_date: None,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
