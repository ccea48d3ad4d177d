//! Orders on the wire and in the log: the stored JSON of order events, the order as
//! callers see it (Xsolla's get-order and order-search shape, plus what a fulfilment
//! worker needs), the envelope the relay publishes, and the request bodies.
//!
//! Orders speak JSON only. Money is an exact decimal string everywhere: in the log with
//! every digit it has, in views padded to the service's scale.

use cart_domain::{
    Currency, DateTime, LinePrice, Order, OrderEvent, OrderPromotion, OrderStatus, Timestamp,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::view::AmountFormat;

mod protobuf;
mod search;
mod stored;

pub use search::{
    search_entry, OrderSearchEntry, SearchCouponView, SearchItemView, SearchPriceView,
    SearchPromotionView, SearchUserView,
};

pub use stored::{
    decode, encode, stored_created, EncodedOrderEvent, OrderDecodeError, StoredBonus,
    StoredCreated, StoredLine, StoredPrice, StoredPromotion, EVENT_TYPES, SCHEMA_VERSION,
};

// ---------------------------------------------------------------------------------------
// Views.

/// `{amount, amount_without_discount, currency}` as strings at the service's scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PriceView {
    pub amount: String,
    pub amount_without_discount: String,
    pub currency: String,
}

/// One applied discount step: the amount before and after it, Xsolla's webhook
/// `promotions[]` triple with `sequence` counting from 1. On an item, the line's total
/// (unit times quantity) before and after the step, as Xsolla describes
/// `items[].promotions[]`; on the order, the total of the paid lines before and after
/// the promo code's cart-wide discount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PromotionStepView {
    pub amount_without_discount: String,
    pub amount_with_discount: String,
    pub sequence: u32,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderItemView {
    pub sku: String,
    /// The catalog item type (`virtual_good`, `virtual_currency`, `bundle`, ...).
    #[serde(rename = "type")]
    pub item_type: Option<String>,
    pub quantity: u32,
    pub is_free: bool,
    pub is_bonus: bool,
    pub is_bundle_content: bool,
    /// The unit price; zero in the order's currency for free and bonus lines (null only
    /// in orders recorded without a price, which no checkout makes).
    pub price: Option<PriceView>,
    /// The line's amount: unit price times quantity (Xsolla's webhook `items[].amount`);
    /// zero for free and bonus lines.
    pub amount: Option<String>,
    /// The discount steps applied to the line, in order: the line's total before and
    /// after each.
    pub promotions: Vec<PromotionStepView>,
}

/// An order: Xsolla's get-order shape (`order_id`, `status`, `content`) with the
/// order-search fields beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderView {
    pub order_id: u64,
    pub project_id: u64,
    pub status: String,
    pub user_id: String,
    /// The cart it was made from; null for a single-item order.
    pub cart_id: Option<String>,
    /// RFC 3339, UTC.
    pub date_created: String,
    /// `default` or `sandbox` once paid; null before.
    pub mode: Option<String>,
    /// The paying invoice; null before payment and for a free order.
    pub invoice_id: Option<String>,
    pub is_free: bool,
    /// The promo code the order redeems (on payment).
    pub promo_code: Option<String>,
    /// The order this one was expired by.
    pub expired_by: Option<u64>,
    pub cancel_reason: Option<String>,
    pub custom_parameters: Option<serde_json::Value>,
    pub content: OrderContent,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderContent {
    /// The total; zero in the order's currency for a free order (null only for an order
    /// without a total, which no checkout makes).
    pub price: Option<PriceView>,
    pub is_free: bool,
    pub items: Vec<OrderItemView>,
    /// Order-level discount steps (Xsolla's webhook `order.promotions[]`): the promo
    /// code's cart-wide discount, as the paid lines' total before and after it; `[]`
    /// when the order has none (and in envelopes written before it existed).
    #[serde(default)]
    pub promotions: Vec<PromotionStepView>,
}

/// The reply to a checkout: Xsolla's `{order_id, token}`, plus the status (`new`, or
/// `done` for a free order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CheckoutReply {
    pub order_id: u64,
    pub token: String,
    pub status: String,
}

/// The reply to an order search: Xsolla's O2 shape (admin order search v3), earliest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderSearchReply {
    pub orders: Vec<OrderSearchEntry>,
    pub total_items_count: u64,
    pub has_more: bool,
}

/// RFC 3339 in UTC, whole seconds: `2026-12-04T17:39:12Z`.
fn rfc3339(t: Timestamp) -> String {
    DateTime::from(t).to_string()
}

fn price_view(p: &LinePrice, format: AmountFormat) -> PriceView {
    PriceView {
        amount: format.format(p.amount),
        amount_without_discount: format.format(p.amount_without_discount),
        currency: p.currency.as_str().to_owned(),
    }
}

/// A zero price in the order's currency: what a free or bonus line, or a free order,
/// costs.
fn zero_price(currency: &Currency, format: AmountFormat) -> PriceView {
    PriceView {
        amount: format.format(Decimal::ZERO),
        amount_without_discount: format.format(Decimal::ZERO),
        currency: currency.as_str().to_owned(),
    }
}

/// A line's discount steps as line totals: each unit step times the quantity, from the
/// exact amounts, formatted once.
fn steps(
    promotions: &[OrderPromotion],
    quantity: u32,
    format: AmountFormat,
) -> Vec<PromotionStepView> {
    let qty = Decimal::from(quantity);
    promotions
        .iter()
        .filter_map(|p| p.step)
        .zip(1..)
        .map(|((before, after), sequence)| PromotionStepView {
            amount_without_discount: format.format(before.saturating_mul(qty)),
            amount_with_discount: format.format(after.saturating_mul(qty)),
            sequence,
        })
        .collect()
}

/// Renders an order; None before it was created.
pub fn view(order: &Order, format: AmountFormat) -> Option<OrderView> {
    let details = order.details()?;
    let status = order.status().unwrap_or(OrderStatus::New);
    let snapshot = &details.snapshot;
    let is_free = snapshot.is_free();
    let currency = snapshot.currency();
    let zero = || zero_price(&currency, format);
    let items = snapshot
        .lines
        .iter()
        .map(|l| {
            let given = l.is_free || l.is_bonus;
            OrderItemView {
                sku: l.sku.as_str().to_owned(),
                item_type: l.item_type.clone(),
                quantity: l.quantity,
                is_free: given,
                is_bonus: l.is_bonus,
                is_bundle_content: false,
                price: match &l.price {
                    Some(p) => Some(price_view(p, format)),
                    None => given.then(zero),
                },
                amount: match l.line_total() {
                    Some((amount, _)) => Some(format.format(amount)),
                    None => given.then(|| format.format(Decimal::ZERO)),
                },
                promotions: steps(&l.promotions, l.quantity, format),
            }
        })
        .collect();
    Some(OrderView {
        order_id: details.order_id,
        project_id: details.project.get(),
        status: status.name().to_owned(),
        user_id: details.user.as_str().to_owned(),
        cart_id: details.cart_id.as_ref().map(|c| c.as_str().to_owned()),
        date_created: rfc3339(details.created_at),
        mode: order.payment().map(|p| p.mode.name().to_owned()),
        invoice_id: order.payment().map(|p| p.invoice_id.clone()),
        is_free,
        promo_code: snapshot.promo_code.clone(),
        expired_by: order.expired_by(),
        cancel_reason: order.cancel_reason().map(str::to_owned),
        custom_parameters: details
            .custom_parameters
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
        content: OrderContent {
            price: if is_free {
                Some(zero())
            } else {
                snapshot.total.as_ref().map(|t| PriceView {
                    amount: format.format(t.amount),
                    amount_without_discount: format.format(t.amount_without_discount),
                    currency: t.currency.as_str().to_owned(),
                })
            },
            is_free,
            items,
            promotions: snapshot
                .cart_wide_step()
                .map(|(before, after)| PromotionStepView {
                    amount_without_discount: format.format(before),
                    amount_with_discount: format.format(after),
                    sequence: 1,
                })
                .into_iter()
                .collect(),
        },
    })
}

/// What the relay publishes for each order event on
/// `<prefix>.orders.<project>.<order_id>.<status>`: the event, and the order as it was
/// right after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderEventEnvelope {
    pub event_id: String,
    /// The event's place in the order log's global order, `<tx_id>:<global_position>`.
    pub position: String,
    pub project_id: u64,
    pub order_id: u64,
    pub user_id: String,
    /// The event's version in the order's stream (1 is `OrderCreated`).
    pub version: i64,
    /// `OrderCreated`, `OrderPaid`, `OrderDone`, `OrderCanceled` or `OrderExpired`.
    pub event_type: String,
    /// The status the event moved the order to.
    pub status: String,
    /// RFC 3339, UTC.
    pub recorded_at: String,
    pub order: OrderView,
}

/// The status an event moves an order to.
pub fn status_after(event: &OrderEvent) -> OrderStatus {
    match event {
        OrderEvent::OrderCreated { .. } => OrderStatus::New,
        OrderEvent::OrderPaid { .. } => OrderStatus::Paid,
        OrderEvent::OrderDone => OrderStatus::Done,
        OrderEvent::OrderCanceled { .. } => OrderStatus::Canceled,
        OrderEvent::OrderExpired { .. } => OrderStatus::Expired,
    }
}

/// The subject of an order event.
pub fn order_subject(prefix: &str, project: u64, order_id: u64, status: OrderStatus) -> String {
    format!("{prefix}.orders.{project}.{order_id}.{}", status.name())
}

/// The wildcard over every order subject under `prefix`.
pub fn orders_wildcard(prefix: &str) -> String {
    format!("{prefix}.orders.>")
}

// ---------------------------------------------------------------------------------------
// Requests: their JSON shape and their decoding into checked values (`order/request.rs`).

pub mod request;

pub use request::{
    CancelOrderRequest, CheckoutItemRequest, CheckoutRequest, ConfirmPaymentRequest,
    GetOrderRequest, SearchOrdersRequest,
};

#[cfg(test)]
mod tests;
