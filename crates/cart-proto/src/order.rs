//! Orders on the wire and in the log: the stored JSON of order events, the order as
//! callers see it (Xsolla's get-order and order-search shape, plus what a fulfilment
//! worker needs), the envelope the relay publishes, and the request bodies.
//!
//! Orders speak JSON only. Money is an exact decimal string everywhere: in the log with
//! every digit it has, in views padded to the service's scale.

use cart_domain::{
    Currency, Discount, LinePrice, Order, OrderDetails, OrderEvent, OrderLine, OrderPromotion,
    OrderSnapshot, OrderStatus, OrderTotal, PaymentMode, ProjectId, PromotionRef, Sku, Timestamp,
    UserId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::view::AmountFormat;

/// The schema version of every order event type (all at their first version).
pub const SCHEMA_VERSION: i16 = 1;

/// Why a stored order event could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum OrderDecodeError {
    #[error("unknown order event type {event_type} (schema version {schema_version})")]
    UnknownType {
        event_type: String,
        schema_version: i16,
    },
    #[error("malformed {event_type} payload: {source}")]
    Payload {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("malformed {event_type} payload: {message}")]
    Value { event_type: String, message: String },
}

// ---------------------------------------------------------------------------------------
// Stored form.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPrice {
    pub amount: String,
    pub amount_without_discount: String,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredBonus {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPromotion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promo_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bonus: Vec<StoredBonus>,
    /// The unit amount before and after this discount step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLine {
    pub sku: String,
    pub quantity: u32,
    #[serde(default)]
    pub item_type: Option<String>,
    #[serde(default)]
    pub price: Option<StoredPrice>,
    pub is_free: bool,
    pub is_bonus: bool,
    #[serde(default)]
    pub promotions: Vec<StoredPromotion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCreated {
    pub order_id: u64,
    pub payment_token: String,
    pub project_id: u64,
    pub user_id: String,
    pub cart_id: Option<String>,
    pub lines: Vec<StoredLine>,
    pub promo_code: Option<String>,
    #[serde(default)]
    pub promotions: Vec<StoredPromotion>,
    pub total: Option<StoredPrice>,
    pub catalog_version: u64,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(default)]
    pub custom_parameters: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredPaid {
    invoice_id: String,
    amount: String,
    currency: String,
    mode: String,
}

/// An order event as stored: its type, schema version and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedOrderEvent {
    pub event_type: &'static str,
    pub schema_version: i16,
    pub payload: serde_json::Value,
}

fn price_out(p: &LinePrice) -> StoredPrice {
    StoredPrice {
        amount: p.amount.to_string(),
        amount_without_discount: p.amount_without_discount.to_string(),
        currency: p.currency.as_str().to_owned(),
    }
}

fn promotion_out(p: &OrderPromotion) -> StoredPromotion {
    let (promotion_id, promo_code) = match &p.source {
        PromotionRef::Promotion(id) => (Some(*id), None),
        PromotionRef::PromoCode(code) => (None, Some(code.clone())),
    };
    StoredPromotion {
        promotion_id,
        promo_code,
        percent: match p.discount {
            Some(Discount::Percent(d)) => Some(d.to_string()),
            _ => None,
        },
        value: match p.discount {
            Some(Discount::Value(d)) => Some(d.to_string()),
            _ => None,
        },
        bonus: p
            .bonus
            .iter()
            .map(|(sku, quantity)| StoredBonus {
                sku: sku.as_str().to_owned(),
                quantity: *quantity,
            })
            .collect(),
        step: p.step.map(|(a, b)| (a.to_string(), b.to_string())),
    }
}

/// The stored form of an `OrderCreated`'s content (also the body of views).
pub fn stored_created(details: &OrderDetails) -> StoredCreated {
    let snapshot = &details.snapshot;
    StoredCreated {
        order_id: details.order_id,
        payment_token: details.payment_token.clone(),
        project_id: details.project.get(),
        user_id: details.user.as_str().to_owned(),
        cart_id: details.cart_id.as_ref().map(|c| c.as_str().to_owned()),
        lines: snapshot
            .lines
            .iter()
            .map(|l| StoredLine {
                sku: l.sku.as_str().to_owned(),
                quantity: l.quantity,
                item_type: l.item_type.clone(),
                price: l.price.as_ref().map(price_out),
                is_free: l.is_free,
                is_bonus: l.is_bonus,
                promotions: l.promotions.iter().map(promotion_out).collect(),
            })
            .collect(),
        promo_code: snapshot.promo_code.clone(),
        promotions: snapshot.promotions.iter().map(promotion_out).collect(),
        total: snapshot.total.as_ref().map(|t| StoredPrice {
            amount: t.amount.to_string(),
            amount_without_discount: t.amount_without_discount.to_string(),
            currency: t.currency.as_str().to_owned(),
        }),
        catalog_version: details.catalog_version,
        created_at: details.created_at.unix(),
        custom_parameters: details
            .custom_parameters
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
    }
}

/// Encodes an order event for the log.
pub fn encode(event: &OrderEvent) -> EncodedOrderEvent {
    let payload = match event {
        OrderEvent::OrderCreated { .. } => event
            .created()
            .map(|details| serde_json::to_value(stored_created(&details)).unwrap_or_default())
            .unwrap_or_default(),
        OrderEvent::OrderPaid {
            invoice_id,
            amount,
            currency,
            mode,
        } => serde_json::to_value(StoredPaid {
            invoice_id: invoice_id.clone(),
            amount: amount.to_string(),
            currency: currency.as_str().to_owned(),
            mode: mode.name().to_owned(),
        })
        .unwrap_or_default(),
        OrderEvent::OrderDone => serde_json::json!({}),
        OrderEvent::OrderCanceled { reason } => serde_json::json!({ "reason": reason }),
        OrderEvent::OrderExpired { by_order } => serde_json::json!({ "by_order": by_order }),
    };
    EncodedOrderEvent {
        event_type: event.event_type(),
        schema_version: SCHEMA_VERSION,
        payload,
    }
}

fn value_error(event_type: &str, message: impl Into<String>) -> OrderDecodeError {
    OrderDecodeError::Value {
        event_type: event_type.to_owned(),
        message: message.into(),
    }
}

fn decimal(event_type: &str, text: &str) -> Result<Decimal, OrderDecodeError> {
    text.parse()
        .map_err(|_| value_error(event_type, format!("bad amount {text:?}")))
}

fn currency(event_type: &str, text: &str) -> Result<Currency, OrderDecodeError> {
    Currency::parse(text).map_err(|_| value_error(event_type, format!("bad currency {text:?}")))
}

fn sku(event_type: &str, text: &str) -> Result<Sku, OrderDecodeError> {
    Sku::parse(text).map_err(|_| value_error(event_type, format!("bad sku {text:?}")))
}

fn price_in(t: &str, p: &StoredPrice) -> Result<LinePrice, OrderDecodeError> {
    Ok(LinePrice {
        amount: decimal(t, &p.amount)?,
        amount_without_discount: decimal(t, &p.amount_without_discount)?,
        currency: currency(t, &p.currency)?,
    })
}

fn promotion_in(t: &str, p: &StoredPromotion) -> Result<OrderPromotion, OrderDecodeError> {
    let source = match (&p.promotion_id, &p.promo_code) {
        (Some(id), None) => PromotionRef::Promotion(*id),
        (None, Some(code)) => PromotionRef::PromoCode(code.clone()),
        _ => return Err(value_error(t, "a promotion names an id or a code")),
    };
    let discount = match (&p.percent, &p.value) {
        (Some(pc), None) => Some(Discount::Percent(decimal(t, pc)?)),
        (None, Some(v)) => Some(Discount::Value(decimal(t, v)?)),
        (None, None) => None,
        _ => return Err(value_error(t, "a discount is a percent or a value")),
    };
    Ok(OrderPromotion {
        source,
        discount,
        bonus: p
            .bonus
            .iter()
            .map(|b| Ok((sku(t, &b.sku)?, b.quantity)))
            .collect::<Result<_, OrderDecodeError>>()?,
        step: p
            .step
            .as_ref()
            .map(|(a, b)| Ok::<_, OrderDecodeError>((decimal(t, a)?, decimal(t, b)?)))
            .transpose()?,
    })
}

fn created_in(t: &str, c: StoredCreated) -> Result<OrderEvent, OrderDecodeError> {
    let lines = c
        .lines
        .iter()
        .map(|l| {
            Ok(OrderLine {
                sku: sku(t, &l.sku)?,
                quantity: l.quantity,
                item_type: l.item_type.clone(),
                price: l.price.as_ref().map(|p| price_in(t, p)).transpose()?,
                is_free: l.is_free,
                is_bonus: l.is_bonus,
                promotions: l
                    .promotions
                    .iter()
                    .map(|p| promotion_in(t, p))
                    .collect::<Result<_, _>>()?,
                problem: None,
            })
        })
        .collect::<Result<Vec<_>, OrderDecodeError>>()?;
    let total = c
        .total
        .as_ref()
        .map(|p| {
            Ok::<_, OrderDecodeError>(OrderTotal {
                amount: decimal(t, &p.amount)?,
                amount_without_discount: decimal(t, &p.amount_without_discount)?,
                currency: currency(t, &p.currency)?,
            })
        })
        .transpose()?;
    Ok(OrderEvent::OrderCreated {
        order_id: c.order_id,
        payment_token: c.payment_token,
        project: ProjectId::parse(c.project_id).map_err(|_| value_error(t, "bad project"))?,
        user: UserId::parse(c.user_id).map_err(|_| value_error(t, "bad user"))?,
        cart_id: c
            .cart_id
            .map(cart_domain::CartId::parse)
            .transpose()
            .map_err(|_| value_error(t, "bad cart id"))?,
        snapshot: OrderSnapshot {
            lines,
            promo_code: c.promo_code,
            promotions: c
                .promotions
                .iter()
                .map(|p| promotion_in(t, p))
                .collect::<Result<_, _>>()?,
            total,
        },
        catalog_version: c.catalog_version,
        created_at: Timestamp::from_unix(c.created_at),
        custom_parameters: c.custom_parameters.map(|v| v.to_string()),
    })
}

/// Reads a stored order event back.
///
/// # Errors
/// An unknown type or version, or a payload that is not what its type stores.
pub fn decode(
    event_type: &str,
    schema_version: i16,
    payload: serde_json::Value,
) -> Result<OrderEvent, OrderDecodeError> {
    let t = event_type;
    let parse_err = |source| OrderDecodeError::Payload {
        event_type: t.to_owned(),
        source,
    };
    if schema_version != SCHEMA_VERSION {
        return Err(OrderDecodeError::UnknownType {
            event_type: t.to_owned(),
            schema_version,
        });
    }
    match t {
        "OrderCreated" => created_in(t, serde_json::from_value(payload).map_err(parse_err)?),
        "OrderPaid" => {
            let p: StoredPaid = serde_json::from_value(payload).map_err(parse_err)?;
            Ok(OrderEvent::OrderPaid {
                invoice_id: p.invoice_id,
                amount: decimal(t, &p.amount)?,
                currency: currency(t, &p.currency)?,
                mode: match p.mode.as_str() {
                    "sandbox" => PaymentMode::Sandbox,
                    "default" => PaymentMode::Default,
                    other => return Err(value_error(t, format!("bad mode {other:?}"))),
                },
            })
        }
        "OrderDone" => Ok(OrderEvent::OrderDone),
        "OrderCanceled" => Ok(OrderEvent::OrderCanceled {
            reason: payload
                .get("reason")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
        "OrderExpired" => Ok(OrderEvent::OrderExpired {
            by_order: payload
                .get("by_order")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| value_error(t, "by_order is missing"))?,
        }),
        _ => Err(OrderDecodeError::UnknownType {
            event_type: t.to_owned(),
            schema_version,
        }),
    }
}

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

/// One applied discount step: the unit amount before and after it (Xsolla's webhook
/// `promotions[]` triple, `sequence` counting from 1).
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
    /// The unit price; null for free and bonus lines.
    pub price: Option<PriceView>,
    /// The line's amount: unit price times quantity (Xsolla's webhook `items[].amount`);
    /// null for free and bonus lines.
    pub amount: Option<String>,
    /// The discount steps applied to the unit price, in order.
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderContent {
    /// The total; null for a free order.
    pub price: Option<PriceView>,
    pub is_free: bool,
    pub items: Vec<OrderItemView>,
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

/// The reply to an order search: Xsolla's O2 shape, earliest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderSearchReply {
    pub orders: Vec<OrderView>,
    pub total_items_count: u64,
    pub has_more: bool,
}

fn rfc3339(t: Timestamp) -> String {
    let c = t.civil();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

fn price_view(p: &LinePrice, format: AmountFormat) -> PriceView {
    PriceView {
        amount: format.format(p.amount),
        amount_without_discount: format.format(p.amount_without_discount),
        currency: p.currency.as_str().to_owned(),
    }
}

fn steps(promotions: &[OrderPromotion], format: AmountFormat) -> Vec<PromotionStepView> {
    promotions
        .iter()
        .filter_map(|p| p.step)
        .zip(1..)
        .map(|((before, after), sequence)| PromotionStepView {
            amount_without_discount: format.format(before),
            amount_with_discount: format.format(after),
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
    let items = snapshot
        .lines
        .iter()
        .map(|l| OrderItemView {
            sku: l.sku.as_str().to_owned(),
            item_type: l.item_type.clone(),
            quantity: l.quantity,
            is_free: l.is_free || l.is_bonus,
            is_bonus: l.is_bonus,
            is_bundle_content: false,
            price: l.price.as_ref().map(|p| price_view(p, format)),
            amount: l.line_total().map(|(amount, _)| format.format(amount)),
            promotions: steps(&l.promotions, format),
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
                None
            } else {
                snapshot.total.as_ref().map(|t| PriceView {
                    amount: format.format(t.amount),
                    amount_without_discount: format.format(t.amount_without_discount),
                    currency: t.currency.as_str().to_owned(),
                })
            },
            is_free,
            items,
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
// Requests (JSON). Amounts are strings; a number is refused so no float ever carries
// money.

/// `<prefix>.order.checkout` and `<prefix>.order.checkout_free`: the current cart, or
/// the cart named by `cart_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub project_id: u64,
    pub user_id: String,
    #[serde(default)]
    pub cart_id: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    /// Comes back in the webhooks; an object.
    #[serde(default)]
    pub custom_parameters: Option<serde_json::Value>,
}

/// `<prefix>.order.checkout_item`: one item (Xsolla P3), with an optional promo code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckoutItemRequest {
    pub project_id: u64,
    pub user_id: String,
    pub sku: String,
    #[serde(default)]
    pub quantity: Option<u64>,
    #[serde(default)]
    pub promo_code: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub custom_parameters: Option<serde_json::Value>,
}

/// `<prefix>.order.get`: by number or by payment token, for its user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GetOrderRequest {
    pub project_id: u64,
    pub user_id: String,
    #[serde(default)]
    pub order_id: Option<u64>,
    #[serde(default)]
    pub token: Option<String>,
}

/// `<prefix>.order.search`: a user's orders, earliest first (Xsolla O2's body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SearchOrdersRequest {
    pub project_id: u64,
    pub user_id: String,
    /// 1 to 10, default 10.
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u64>,
    /// ISO 8601 date or date-time.
    #[serde(default)]
    pub created_date_from: Option<String>,
    #[serde(default)]
    pub created_date_until: Option<String>,
}

/// `<prefix>.payment.confirm`: from the payment side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfirmPaymentRequest {
    pub project_id: u64,
    pub order_id: u64,
    pub invoice_id: String,
    /// A decimal string, e.g. `"6.84"`.
    pub amount: String,
    pub currency: String,
    /// `default` (the default) or `sandbox`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// `<prefix>.payment.cancel`: a refund.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CancelOrderRequest {
    pub project_id: u64,
    pub order_id: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests;
