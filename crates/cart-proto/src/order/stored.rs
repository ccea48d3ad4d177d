//! The stored form of order events: `(event_type, schema_version, JSON payload)`, all
//! at schema version 1. Money keeps every digit it has, as a decimal string.

use cart_domain::{
    Currency, Discount, LinePrice, OrderDetails, OrderEvent, OrderLine, OrderPromotion,
    OrderSnapshot, OrderTotal, PaymentMode, ProjectId, PromotionRef, Sku, Timestamp, UserId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The schema version of every order event type (all at their first version).
pub const SCHEMA_VERSION: i16 = 1;

/// Every order event type, in the order of an order's life.
pub const EVENT_TYPES: [&str; 5] = [
    "OrderCreated",
    "OrderPaid",
    "OrderDone",
    "OrderCanceled",
    "OrderExpired",
];

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
    /// The currency the cart was priced in (absent in orders recorded before it was
    /// kept: a free order's currency then falls back to USD, `OrderSnapshot::currency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
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
        currency: snapshot.currency.as_ref().map(|c| c.as_str().to_owned()),
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
        OrderEvent::OrderExpired {
            by_order: Some(by_order),
        } => {
            serde_json::json!({ "by_order": by_order })
        }
        // Expired by time: no newer order did it, the payment window closed.
        OrderEvent::OrderExpired { by_order: None } => serde_json::json!({ "reason": "unpaid" }),
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
            currency: c
                .currency
                .as_deref()
                .map(|text| currency(t, text))
                .transpose()?,
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
        "OrderExpired" => {
            let by_order = payload.get("by_order").and_then(serde_json::Value::as_u64);
            let unpaid =
                payload.get("reason").and_then(serde_json::Value::as_str) == Some("unpaid");
            if by_order.is_none() && !unpaid {
                return Err(value_error(t, "by_order is missing"));
            }
            Ok(OrderEvent::OrderExpired { by_order })
        }
        _ => Err(OrderDecodeError::UnknownType {
            event_type: t.to_owned(),
            schema_version,
        }),
    }
}
