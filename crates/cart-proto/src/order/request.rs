//! The order and payment request bodies: their JSON shape (what clients send and
//! `cartctl` builds) and their decoding into checked values, one `decode_*` per body.
//!
//! Every body is one JSON object with no unknown properties and no control character in
//! any string (`request::body`); ids, currencies and countries are domain values, money
//! is a decimal string (a JSON number is refused so no float ever carries money), dates
//! are read by `DateTime` before any SQL runs.

use cart_domain::{
    CartId, Country, Currency, DateTime, InvalidInput, PaymentMode, ProjectId, Sku, UserId,
    MAX_QUANTITY,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::request::body::{self, Text};
use crate::request::MAX_CODE_LEN;
use crate::ErrorReply;

/// The longest invoice id and payment token.
pub const MAX_TEXT: usize = 128;
/// The longest cancel reason, in bytes.
pub const MAX_REASON: usize = 1000;
/// The largest `custom_parameters` object, in bytes of its JSON.
pub const MAX_CUSTOM_PARAMETERS: usize = 8 * 1024;
/// The most orders one search page holds (and its default).
pub const MAX_SEARCH_LIMIT: u32 = 10;
/// The longest amount string.
const MAX_AMOUNT_LEN: usize = 40;

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

// ---------------------------------------------------------------------------------------
// Checked bodies.

/// `order.checkout` and `order.checkout_free`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutBody {
    pub project: ProjectId,
    pub user: UserId,
    /// None: the user's current cart.
    pub cart: Option<CartId>,
    /// USD when not given.
    pub currency: Currency,
    pub country: Option<Country>,
    /// The JSON text of the `custom_parameters` object, when given.
    pub custom_parameters: Option<String>,
}

/// `order.checkout_item`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutItemBody {
    pub project: ProjectId,
    pub user: UserId,
    pub sku: Sku,
    /// 1 to `MAX_QUANTITY`; 1 when not given.
    pub quantity: u32,
    /// None when not given or empty.
    pub promo_code: Option<String>,
    pub currency: Currency,
    pub country: Option<Country>,
    pub custom_parameters: Option<String>,
}

/// Which order `order.get` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    Id(u64),
    /// A payment token, 1 to `MAX_TEXT` characters.
    Token(String),
}

/// `order.get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOrderBody {
    pub project: ProjectId,
    pub user: UserId,
    pub order: OrderRef,
}

/// `order.search`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOrdersBody {
    pub project: ProjectId,
    pub user: UserId,
    /// 1 to `MAX_SEARCH_LIMIT`, which is the default.
    pub limit: u32,
    pub offset: u64,
    /// Orders created at or after this instant (a plain date is its midnight UTC).
    pub created_from: Option<DateTime>,
    /// Orders created at or before this instant.
    pub created_until: Option<DateTime>,
}

/// `payment.confirm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmPaymentBody {
    pub project: ProjectId,
    pub order_id: u64,
    /// 1 to `MAX_TEXT` characters.
    pub invoice_id: String,
    /// Non-negative, exact.
    pub amount: Decimal,
    pub currency: Currency,
    pub mode: PaymentMode,
}

/// `payment.cancel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOrderBody {
    pub project: ProjectId,
    pub order_id: u64,
    /// At most `MAX_REASON` bytes; `refund` when not given.
    pub reason: String,
}

/// Decodes an `order.checkout` or `order.checkout_free` body.
///
/// # Errors
/// 400/1102 for a body that is not one JSON object of this shape; 422/1102 naming the
/// property for a value out of range or a control character.
pub fn decode_checkout(body: &[u8]) -> Result<CheckoutBody, ErrorReply> {
    let r: CheckoutRequest = json(body)?;
    checked(|| {
        Ok(CheckoutBody {
            project: ProjectId::parse(r.project_id)?,
            user: UserId::parse(r.user_id)?,
            cart: r.cart_id.map(CartId::parse).transpose()?,
            currency: currency(r.currency.as_deref())?,
            country: country(r.country.as_deref())?,
            custom_parameters: custom_parameters(r.custom_parameters)?,
        })
    })
}

/// Decodes an `order.checkout_item` body.
///
/// # Errors
/// As [`decode_checkout`].
pub fn decode_checkout_item(body: &[u8]) -> Result<CheckoutItemBody, ErrorReply> {
    let r: CheckoutItemRequest = json(body)?;
    checked(|| {
        let quantity = match r.quantity {
            None => 1,
            Some(q) => u32::try_from(q)
                .ok()
                .filter(|q| (1..=MAX_QUANTITY).contains(q))
                .ok_or(InvalidInput::Invalid {
                    property: "quantity",
                    expected: "an integer from 1 to 10000",
                })?,
        };
        let promo_code = match r.promo_code {
            Some(code) if code.chars().count() > MAX_CODE_LEN => {
                return Err(InvalidInput::TooLong {
                    property: "promo_code",
                    max: MAX_CODE_LEN,
                })
            }
            code => code.filter(|c| !c.is_empty()),
        };
        Ok(CheckoutItemBody {
            project: ProjectId::parse(r.project_id)?,
            user: UserId::parse(r.user_id)?,
            sku: Sku::parse(r.sku)?,
            quantity,
            promo_code,
            currency: currency(r.currency.as_deref())?,
            country: country(r.country.as_deref())?,
            custom_parameters: custom_parameters(r.custom_parameters)?,
        })
    })
}

/// Decodes an `order.get` body: exactly one of `order_id` and `token`.
///
/// # Errors
/// As [`decode_checkout`].
pub fn decode_get(body: &[u8]) -> Result<GetOrderBody, ErrorReply> {
    let r: GetOrderRequest = json(body)?;
    checked(|| {
        let order = match (r.order_id, r.token) {
            (Some(id), None) => OrderRef::Id(id),
            (None, Some(token)) => OrderRef::Token(text("token", token, MAX_TEXT)?),
            (Some(_), Some(_)) => return Err(InvalidInput::OneOf("order_id", "token")),
            (None, None) => return Err(InvalidInput::Missing("order_id")),
        };
        Ok(GetOrderBody {
            project: ProjectId::parse(r.project_id)?,
            user: UserId::parse(r.user_id)?,
            order,
        })
    })
}

/// Decodes an `order.search` body; its dates are read here, before any SQL.
///
/// # Errors
/// As [`decode_checkout`]; a bad date names `created_date_from` or `created_date_until`.
pub fn decode_search(body: &[u8]) -> Result<SearchOrdersBody, ErrorReply> {
    let r: SearchOrdersRequest = json(body)?;
    checked(|| {
        let date = |property: &'static str, value: Option<&str>| {
            value
                .map(|v| {
                    DateTime::parse_date_or_time(v).map_err(|_| InvalidInput::BadDate(property))
                })
                .transpose()
        };
        Ok(SearchOrdersBody {
            project: ProjectId::parse(r.project_id)?,
            user: UserId::parse(r.user_id)?,
            limit: match r.limit {
                None => MAX_SEARCH_LIMIT,
                Some(l @ 1..=MAX_SEARCH_LIMIT) => l,
                Some(_) => {
                    return Err(InvalidInput::Invalid {
                        property: "limit",
                        expected: "an integer from 1 to 10",
                    })
                }
            },
            offset: match r.offset {
                Some(o) if i64::try_from(o).is_err() => {
                    return Err(InvalidInput::Invalid {
                        property: "offset",
                        expected: "a non-negative 64-bit integer",
                    })
                }
                o => o.unwrap_or(0),
            },
            created_from: date("created_date_from", r.created_date_from.as_deref())?,
            created_until: date("created_date_until", r.created_date_until.as_deref())?,
        })
    })
}

/// Decodes a `payment.confirm` body.
///
/// # Errors
/// As [`decode_checkout`].
pub fn decode_confirm(body: &[u8]) -> Result<ConfirmPaymentBody, ErrorReply> {
    let r: ConfirmPaymentRequest = json(body)?;
    checked(|| {
        Ok(ConfirmPaymentBody {
            project: ProjectId::parse(r.project_id)?,
            order_id: r.order_id,
            invoice_id: text("invoice_id", r.invoice_id, MAX_TEXT)?,
            amount: amount("amount", &r.amount)?,
            currency: Currency::parse(&r.currency)?,
            mode: match r.mode.as_deref() {
                None | Some("default") => PaymentMode::Default,
                Some("sandbox") => PaymentMode::Sandbox,
                Some(_) => {
                    return Err(InvalidInput::Invalid {
                        property: "mode",
                        expected: "`default` or `sandbox`",
                    })
                }
            },
        })
    })
}

/// Decodes a `payment.cancel` body.
///
/// # Errors
/// As [`decode_checkout`].
pub fn decode_cancel(body: &[u8]) -> Result<CancelOrderBody, ErrorReply> {
    let r: CancelOrderRequest = json(body)?;
    checked(|| {
        let reason = r.reason.unwrap_or_else(|| "refund".to_owned());
        if reason.len() > MAX_REASON {
            return Err(InvalidInput::TooLong {
                property: "reason",
                max: MAX_REASON,
            });
        }
        Ok(CancelOrderBody {
            project: ProjectId::parse(r.project_id)?,
            order_id: r.order_id,
            reason,
        })
    })
}

/// One JSON object of plain text (no control characters anywhere).
fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorReply> {
    body::object(bytes, Text::Plain).map_err(body::reply)
}

fn checked<T>(check: impl FnOnce() -> Result<T, InvalidInput>) -> Result<T, ErrorReply> {
    check().map_err(|e| ErrorReply::invalid(&e))
}

/// A currency, USD when absent or empty.
fn currency(value: Option<&str>) -> Result<Currency, InvalidInput> {
    crate::request::currency_or_usd(value.unwrap_or_default())
}

/// A country, None when absent or empty.
fn country(value: Option<&str>) -> Result<Option<Country>, InvalidInput> {
    crate::request::country_if_given(value.unwrap_or_default())
}

/// `custom_parameters`: an object of at most `MAX_CUSTOM_PARAMETERS` bytes, as JSON text.
fn custom_parameters(value: Option<serde_json::Value>) -> Result<Option<String>, InvalidInput> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => {
            let text = v.to_string();
            if text.len() <= MAX_CUSTOM_PARAMETERS {
                Ok(Some(text))
            } else {
                Err(bad_custom_parameters())
            }
        }
        Some(_) => Err(bad_custom_parameters()),
    }
}

fn bad_custom_parameters() -> InvalidInput {
    InvalidInput::Invalid {
        property: "custom_parameters",
        expected: "an object of at most 8 KiB",
    }
}

/// Text of 1 to `max` characters (control characters never reach here).
fn text(property: &'static str, value: String, max: usize) -> Result<String, InvalidInput> {
    if value.is_empty() {
        return Err(InvalidInput::Missing(property));
    }
    if value.chars().count() > max {
        return Err(InvalidInput::TooLong { property, max });
    }
    Ok(value)
}

/// A money amount from the wire: a decimal string such as `"6.84"`, never negative.
///
/// # Errors
/// `BadAmount(property)`.
fn amount(property: &'static str, text: &str) -> Result<Decimal, InvalidInput> {
    let plain = !text.is_empty()
        && text.len() <= MAX_AMOUNT_LEN
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    plain
        .then(|| text.parse::<Decimal>().ok())
        .flatten()
        .ok_or(InvalidInput::BadAmount(property))
}

#[cfg(test)]
mod tests;
