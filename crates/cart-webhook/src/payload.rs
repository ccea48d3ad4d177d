//! Xsolla's `order_paid` / `order_canceled` body, built from the relay's envelope, and
//! its signature.

use cart_proto::order::{OrderEventEnvelope, PromotionStepView};
use serde::Serialize;
use sha1::{Digest, Sha1};

/// The two notifications that cause webhooks, by the event that causes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationType {
    OrderPaid,
    OrderCanceled,
}

impl NotificationType {
    /// The notification an order event causes, if any: `OrderPaid` and `OrderCanceled`,
    /// and the `OrderDone` of a free order (a free checkout records `OrderCreated` then
    /// `OrderDone`, never `OrderPaid`: its `OrderDone` is its order_paid).
    pub fn for_event(envelope: &OrderEventEnvelope) -> Option<Self> {
        match envelope.event_type.as_str() {
            "OrderPaid" => Some(Self::OrderPaid),
            "OrderCanceled" => Some(Self::OrderCanceled),
            "OrderDone" if is_free_done(envelope) => Some(Self::OrderPaid),
            _ => None,
        }
    }

    /// Whether events of this type may cause a notification (before decoding the rest).
    pub fn may_notify(event_type: &str) -> bool {
        matches!(event_type, "OrderPaid" | "OrderCanceled" | "OrderDone")
    }

    /// The order status the notification reports: `paid` for an order_paid (a free
    /// order's comes from its `OrderDone`, whose order is already `done`).
    pub fn order_status(self) -> &'static str {
        match self {
            Self::OrderPaid => "paid",
            Self::OrderCanceled => "canceled",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPaid => "order_paid",
            Self::OrderCanceled => "order_canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "order_paid" => Some(Self::OrderPaid),
            "order_canceled" => Some(Self::OrderCanceled),
            _ => None,
        }
    }
}

/// A free order's completion: `OrderDone` of an order marked free, without an invoice.
pub fn is_free_done(envelope: &OrderEventEnvelope) -> bool {
    envelope.event_type == "OrderDone"
        && envelope.order.is_free
        && envelope.order.invoice_id.is_none()
}

#[derive(Debug, Serialize)]
struct Payload<'a> {
    notification_type: &'static str,
    items: Vec<Item<'a>>,
    order: Order<'a>,
    user: User<'a>,
    custom_parameters: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Item<'a> {
    sku: &'a str,
    #[serde(rename = "type")]
    item_type: Option<&'a str>,
    quantity: u32,
    amount: &'a str,
    promotions: &'a [PromotionStepView],
    is_pre_order: bool,
    custom_attributes: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_free: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_bonus: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_bundle_content: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Order<'a> {
    id: u64,
    mode: &'a str,
    currency_type: &'static str,
    currency: &'a str,
    amount: &'a str,
    status: &'a str,
    platform: &'static str,
    comment: Option<&'a str>,
    invoice_id: Option<&'a str>,
    promotions: &'a [PromotionStepView],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    promocodes: Vec<PromoCode<'a>>,
}

#[derive(Debug, Serialize)]
struct PromoCode<'a> {
    code: &'a str,
    external_id: &'a str,
}

#[derive(Debug, Serialize)]
struct User<'a> {
    external_id: &'a str,
    email: Option<&'a str>,
}

/// The amount of a line or order nobody paid for (free and bonus lines, free orders):
/// a decimal string like every other amount, so a receiver can parse amounts uniformly
/// (Xsolla's docs show `"[null]"` here in one example, which no parser expects).
const NOTHING: &str = "0";

/// The currency of an order whose envelope carries no price: only free orders relayed
/// before order views gave them a zero price in their currency. USD is the default
/// currency of a checkout.
const DEFAULT_CURRENCY: &str = "USD";

/// The body bytes, serialized once: these exact bytes are signed and sent.
/// `version` 2 adds `is_free`, `is_bonus` and `is_bundle_content` to each item.
pub fn body(kind: NotificationType, envelope: &OrderEventEnvelope, version: i16) -> Vec<u8> {
    let order = &envelope.order;
    let v2 = version >= 2;
    let items = order
        .content
        .items
        .iter()
        .map(|item| Item {
            sku: &item.sku,
            item_type: item.item_type.as_deref(),
            quantity: item.quantity,
            amount: item.amount.as_deref().unwrap_or(NOTHING),
            promotions: &item.promotions,
            is_pre_order: false,
            custom_attributes: serde_json::Map::new(),
            is_free: v2.then_some(item.is_free),
            is_bonus: v2.then_some(item.is_bonus),
            is_bundle_content: v2.then_some(item.is_bundle_content),
        })
        .collect();
    let price = order.content.price.as_ref();
    let payload = Payload {
        notification_type: kind.as_str(),
        items,
        order: Order {
            id: order.order_id,
            mode: order.mode.as_deref().unwrap_or("default"),
            // A free order's currency type is Xsolla's `unknown`; its currency is still a
            // string (Xsolla types it so), the one it was priced in.
            currency_type: if order.is_free { "unknown" } else { "real" },
            currency: price.map_or(DEFAULT_CURRENCY, |p| p.currency.as_str()),
            amount: price.map_or(NOTHING, |p| p.amount.as_str()),
            status: kind.order_status(),
            platform: "xsolla",
            comment: None,
            invoice_id: order.invoice_id.as_deref(),
            // The promo code's cart-wide discount, as Xsolla's order-level step (its
            // item discounts are steps of their lines).
            promotions: &order.content.promotions,
            promocodes: order
                .promo_code
                .as_deref()
                .map(|code| PromoCode {
                    code,
                    external_id: code,
                })
                .into_iter()
                .collect(),
        },
        user: User {
            external_id: &order.user_id,
            email: None,
        },
        custom_parameters: order
            .custom_parameters
            .clone()
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({})),
    };
    // Serializing plain structs of strings, numbers and JSON values cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// Xsolla's signature: lowercase hex of SHA-1 over the body bytes followed by the
/// secret (plain SHA-1 of the concatenation, not an HMAC).
pub fn signature(body: &[u8], secret: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(body);
    hasher.update(secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// Checks an `Authorization` header value (`Signature <hex>`) in constant time.
pub fn verify(authorization: Option<&str>, body: &[u8], secret: &str) -> bool {
    let Some(given) = authorization.and_then(|a| a.strip_prefix("Signature ")) else {
        return false;
    };
    let expected = signature(body, secret);
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The idempotency key: the same on every attempt of one notification.
pub fn idempotency_key(project_id: u64, order_id: u64, kind: NotificationType) -> String {
    format!("{project_id}:{order_id}:{}", kind.as_str())
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_sha1_of_body_then_secret() {
        // The FIPS 180 test vector: sha1("abc").
        let sig = signature(b"abc", "");
        assert_eq!(sig, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(verify(Some(&format!("Signature {sig}")), b"abc", ""));
        assert!(!verify(
            Some("Signature a9993e364706816aba3e25717850c26c9cd0d89e"),
            b"abc",
            ""
        ));
        assert!(!verify(None, b"abc", ""));
        // The secret goes after the body, unkeyed: sha1("abc" + "def") = sha1("abcdef").
        assert_eq!(
            signature(b"abc", "def"),
            "1f8ac10f23c5b5bc1167bda84b833e5c057a77d2"
        );
        assert!(!verify(Some(&sig), b"abc", ""));
    }
}
