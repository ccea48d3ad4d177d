//! Decoding of cart requests from JSON or protobuf into checked domain values.

use std::collections::BTreeMap;

use cart_domain::{
    CartId, Country, Currency, DateTime, InvalidInput, Locale, ProjectId, Quantity, Sku, UserId,
    MAX_LINES,
};
use serde::Deserialize;

use crate::{Encoding, ErrorReply};

pub(crate) mod body;
mod protobuf;

use body::Text;

/// The endpoints that take a cart request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Fill,
    PutItem,
    DeleteItem,
    Clear,
    Get,
    RedeemPromoCode,
    RemovePromoCode,
    PromoCodeRewards,
    VerifyPromoCode,
}

impl Endpoint {
    /// Whether the endpoint only reads (its Cart-Command-Id header is ignored).
    pub fn is_query(self) -> bool {
        matches!(
            self,
            Endpoint::Get | Endpoint::PromoCodeRewards | Endpoint::VerifyPromoCode
        )
    }

    /// The subject suffix after the service prefix, e.g. `item.put`.
    pub fn subject(self) -> &'static str {
        match self {
            Endpoint::Fill => "fill",
            Endpoint::PutItem => "item.put",
            Endpoint::DeleteItem => "item.delete",
            Endpoint::Clear => "clear",
            Endpoint::Get => "get",
            Endpoint::RedeemPromoCode => "promocode.redeem",
            Endpoint::RemovePromoCode => "promocode.remove",
            Endpoint::PromoCodeRewards => "promocode.rewards",
            Endpoint::VerifyPromoCode => "promocode.verify",
        }
    }

    /// The endpoint name reported by $SRV.INFO.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Fill => "fill",
            Endpoint::PutItem => "item-put",
            Endpoint::DeleteItem => "item-delete",
            Endpoint::Clear => "clear",
            Endpoint::Get => "get",
            Endpoint::RedeemPromoCode => "promocode-redeem",
            Endpoint::RemovePromoCode => "promocode-remove",
            Endpoint::PromoCodeRewards => "promocode-rewards",
            Endpoint::VerifyPromoCode => "promocode-verify",
        }
    }

    pub const ALL: [Endpoint; 9] = [
        Endpoint::Fill,
        Endpoint::PutItem,
        Endpoint::DeleteItem,
        Endpoint::Clear,
        Endpoint::Get,
        Endpoint::RedeemPromoCode,
        Endpoint::RemovePromoCode,
        Endpoint::PromoCodeRewards,
        Endpoint::VerifyPromoCode,
    ];
}

/// Whose cart, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub project: ProjectId,
    pub user: UserId,
    /// None addresses the user's current cart.
    pub cart: Option<CartId>,
}

/// How the reply renders the cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewOptions {
    pub currency: Currency,
    pub locale: Locale,
    /// The buyer's country, when given: country prices and region-limited promo codes.
    pub country: Option<Country>,
}

impl ViewOptions {
    /// The country code, as pricing and promo-code checks take it.
    pub fn country_code(&self) -> Option<&str> {
        self.country.as_ref().map(Country::as_str)
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Fill {
        items: Vec<(Sku, Quantity)>,
        replace: bool,
    },
    PutItem {
        sku: Sku,
        quantity: Quantity,
    },
    DeleteItem {
        sku: Sku,
    },
    Clear,
    /// Read the cart now, or as it was at a point in its past.
    Get {
        as_of: Option<AsOf>,
    },
    /// Attach a promo code (replacing the cart's current one).
    RedeemPromoCode {
        code: String,
        selected_unit_items: BTreeMap<Sku, Sku>,
    },
    RemovePromoCode,
    /// What a code gives (a query; the cart is not read).
    PromoCodeRewards {
        code: String,
    },
    /// Whether the user can apply a code now (a query; the cart is not read).
    VerifyPromoCode {
        code: String,
    },
}

/// The longest promo code accepted (Xsolla: 1 to 128 characters).
pub const MAX_CODE_LEN: usize = 128;

/// A point in a cart's past (time travel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsOf {
    /// After the event with this version (1 is the first).
    Version(i64),
    /// After the last event recorded at or before this instant (sent as RFC 3339).
    Time(DateTime),
}

/// A decoded, checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub scope: Scope,
    pub view: ViewOptions,
    pub action: Action,
}

/// Decodes the body of a request to `endpoint`.
///
/// # Errors
/// 400/1102 when the bytes are not a message at all; 422/1102 naming the property when a
/// value is missing or out of range.
pub fn decode(endpoint: Endpoint, encoding: Encoding, body: &[u8]) -> Result<Request, ErrorReply> {
    let raw = match encoding {
        Encoding::Json => RawRequest::from_json(endpoint, body)?,
        Encoding::Protobuf => RawRequest::from_protobuf(endpoint, body)?,
    };
    raw.check(endpoint).map_err(|e| ErrorReply::invalid(&e))
}

/// A request as received, before checks. Both encodings land here.
#[derive(Debug, Default)]
struct RawRequest {
    project_id: Option<u64>,
    user_id: String,
    cart_id: String,
    currency: String,
    locale: String,
    items: Vec<(String, RawQuantity)>,
    replace: bool,
    sku: String,
    quantity: Option<RawQuantity>,
    at_version: Option<i64>,
    at_time: String,
    country: String,
    /// coupon_code of redeem, code of rewards and verify.
    code: String,
    selected_unit_items: BTreeMap<String, String>,
    /// Xsolla's `cart: {id}`; "current" or empty is the current cart.
    cart_ref: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum RawQuantity {
    Integer(i64),
    NotAnInteger,
}

impl RawQuantity {
    fn check(self) -> Result<Quantity, InvalidInput> {
        match self {
            RawQuantity::Integer(n) => Quantity::parse(n),
            RawQuantity::NotAnInteger => Err(InvalidInput::BadQuantity),
        }
    }
}

/// The JSON body. Unknown properties are refused so that a typo is not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    project_id: Option<u64>,
    user_id: Option<String>,
    cart_id: Option<String>,
    currency: Option<String>,
    locale: Option<String>,
    items: Option<Vec<JsonItem>>,
    replace: Option<bool>,
    sku: Option<String>,
    quantity: Option<serde_json::Number>,
    at_version: Option<i64>,
    at_time: Option<String>,
    country: Option<String>,
    coupon_code: Option<String>,
    code: Option<String>,
    selected_unit_items: Option<BTreeMap<String, String>>,
    cart: Option<JsonCartRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCartRef {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonItem {
    sku: Option<String>,
    quantity: Option<serde_json::Number>,
}

fn json_quantity(n: &serde_json::Number) -> RawQuantity {
    match n.as_i64() {
        Some(i) => RawQuantity::Integer(i),
        // Beyond i64 is far above the maximum anyway.
        None if n.as_u64().is_some() => RawQuantity::Integer(i64::MAX),
        None => RawQuantity::NotAnInteger,
    }
}

impl RawRequest {
    fn from_json(endpoint: Endpoint, body: &[u8]) -> Result<Self, ErrorReply> {
        let json: JsonRequest = body::object(body, Text::Plain).map_err(body::reply)?;
        let not_here = |property: &'static str| {
            ErrorReply::new(
                422,
                1102,
                format!(
                    "Unprocessable Entity. The property `{property}` is not accepted by {}",
                    endpoint.subject()
                ),
            )
        };
        let takes_sku = matches!(endpoint, Endpoint::PutItem | Endpoint::DeleteItem);
        if json.items.is_some() && endpoint != Endpoint::Fill {
            return Err(not_here("items"));
        }
        if json.replace.is_some() && endpoint != Endpoint::Fill {
            return Err(not_here("replace"));
        }
        if json.sku.is_some() && !takes_sku {
            return Err(not_here("sku"));
        }
        if json.quantity.is_some() && endpoint != Endpoint::PutItem {
            return Err(not_here("quantity"));
        }
        if json.at_version.is_some() && endpoint != Endpoint::Get {
            return Err(not_here("at_version"));
        }
        if json.at_time.is_some() && endpoint != Endpoint::Get {
            return Err(not_here("at_time"));
        }
        let redeem = endpoint == Endpoint::RedeemPromoCode;
        let by_code = matches!(
            endpoint,
            Endpoint::PromoCodeRewards | Endpoint::VerifyPromoCode
        );
        let on_cart = matches!(
            endpoint,
            Endpoint::RedeemPromoCode | Endpoint::RemovePromoCode
        );
        if json.coupon_code.is_some() && !redeem {
            return Err(not_here("coupon_code"));
        }
        if json.selected_unit_items.is_some() && !redeem {
            return Err(not_here("selected_unit_items"));
        }
        if json.code.is_some() && !by_code {
            return Err(not_here("code"));
        }
        if json.cart.is_some() && !on_cart {
            return Err(not_here("cart"));
        }
        // As in protobuf, the code queries read no cart and render no prices.
        if by_code && json.cart_id.is_some() {
            return Err(not_here("cart_id"));
        }
        if by_code && json.currency.is_some() {
            return Err(not_here("currency"));
        }
        if by_code && json.locale.is_some() {
            return Err(not_here("locale"));
        }
        if json.cart.is_some() && json.cart_id.is_some() {
            return Err(ErrorReply::invalid(&InvalidInput::OneOf("cart_id", "cart")));
        }
        let cart_ref = match json.cart {
            None => None,
            Some(JsonCartRef { id: Some(id) }) => Some(id),
            Some(JsonCartRef { id: None }) => {
                return Err(ErrorReply::invalid(&InvalidInput::Missing("id")))
            }
        };
        let items = json
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                // A missing quantity is reported by the check below as a missing property.
                let quantity = item
                    .quantity
                    .as_ref()
                    .map_or(RawQuantity::Integer(-1), json_quantity);
                match item.quantity {
                    Some(_) => Ok((item.sku.unwrap_or_default(), quantity)),
                    None => Err(ErrorReply::invalid(&InvalidInput::Missing("quantity"))),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            project_id: json.project_id,
            user_id: json.user_id.unwrap_or_default(),
            cart_id: json.cart_id.unwrap_or_default(),
            currency: json.currency.unwrap_or_default(),
            locale: json.locale.unwrap_or_default(),
            items,
            replace: json.replace.unwrap_or(false),
            sku: json.sku.unwrap_or_default(),
            quantity: json.quantity.as_ref().map(json_quantity),
            at_version: json.at_version,
            at_time: json.at_time.unwrap_or_default(),
            country: json.country.unwrap_or_default(),
            code: json.coupon_code.or(json.code).unwrap_or_default(),
            selected_unit_items: json.selected_unit_items.unwrap_or_default(),
            cart_ref,
        })
    }

    fn check(self, endpoint: Endpoint) -> Result<Request, InvalidInput> {
        let project = match self.project_id {
            None | Some(0) => return Err(InvalidInput::Missing("project_id")),
            Some(id) => ProjectId::parse(id)?,
        };
        let user = UserId::parse(self.user_id)?;
        if !self.cart_id.is_empty() && self.cart_ref.is_some() {
            return Err(InvalidInput::OneOf("cart_id", "cart"));
        }
        let cart_id = match self.cart_ref {
            Some(id) if id == "current" => String::new(),
            Some(id) if id.is_empty() => return Err(InvalidInput::Missing("id")),
            Some(id) => id,
            None => self.cart_id,
        };
        let cart = match cart_id.as_str() {
            "" => None,
            _ => Some(CartId::parse(cart_id)?),
        };
        let country = country_if_given(&self.country)?;
        let code = |property: &'static str| {
            if self.code.is_empty() {
                Err(InvalidInput::Missing(property))
            } else if self.code.chars().any(char::is_control) {
                // JSON bodies are checked whole; a protobuf string can still hold them.
                Err(InvalidInput::ControlCharacters(property.to_owned()))
            } else if self.code.chars().count() > MAX_CODE_LEN {
                Err(InvalidInput::TooLong {
                    property,
                    max: MAX_CODE_LEN,
                })
            } else {
                Ok(self.code.clone())
            }
        };
        let currency = currency_or_usd(&self.currency)?;
        let locale = match self.locale.as_str() {
            "" => Locale::en(),
            l => Locale::parse(l)?,
        };
        let action = match endpoint {
            Endpoint::Fill => {
                if self.items.len() > MAX_LINES {
                    return Err(InvalidInput::TooManyItems);
                }
                let items = self
                    .items
                    .into_iter()
                    .map(|(sku, quantity)| Ok((Sku::parse(sku)?, quantity.check()?)))
                    .collect::<Result<_, InvalidInput>>()?;
                Action::Fill {
                    items,
                    replace: self.replace,
                }
            }
            Endpoint::PutItem => {
                let sku = Sku::parse(self.sku)?;
                let quantity = self
                    .quantity
                    .ok_or(InvalidInput::Missing("quantity"))?
                    .check()?;
                Action::PutItem { sku, quantity }
            }
            Endpoint::DeleteItem => Action::DeleteItem {
                sku: Sku::parse(self.sku)?,
            },
            Endpoint::Clear => Action::Clear,
            Endpoint::Get => Action::Get {
                as_of: match (self.at_version, self.at_time.as_str()) {
                    (None, "") => None,
                    (Some(v), "") if v >= 1 => Some(AsOf::Version(v)),
                    (Some(_), "") => return Err(InvalidInput::BadVersion),
                    (None, t) => Some(AsOf::Time(
                        DateTime::parse(t).map_err(|_| InvalidInput::BadTime("at_time"))?,
                    )),
                    (Some(_), _) => return Err(InvalidInput::OneOf("at_version", "at_time")),
                },
            },
            Endpoint::RedeemPromoCode => Action::RedeemPromoCode {
                code: code("coupon_code")?,
                selected_unit_items: self
                    .selected_unit_items
                    .iter()
                    .map(|(unit, picked)| Ok((Sku::parse(unit)?, Sku::parse(picked)?)))
                    .collect::<Result<_, InvalidInput>>()?,
            },
            Endpoint::RemovePromoCode => Action::RemovePromoCode,
            Endpoint::PromoCodeRewards => Action::PromoCodeRewards {
                code: code("code")?,
            },
            Endpoint::VerifyPromoCode => Action::VerifyPromoCode {
                code: code("code")?,
            },
        };
        Ok(Request {
            scope: Scope {
                project,
                user,
                cart,
            },
            view: ViewOptions {
                currency,
                locale,
                country,
            },
            action,
        })
    }
}

/// A currency, USD when not given (empty): carts and orders alike.
pub(crate) fn currency_or_usd(value: &str) -> Result<Currency, InvalidInput> {
    match value {
        "" => Ok(Currency::usd()),
        c => Currency::parse(c),
    }
}

/// A country, none when not given (empty): carts and orders alike.
pub(crate) fn country_if_given(value: &str) -> Result<Option<Country>, InvalidInput> {
    match value {
        "" => Ok(None),
        c => Country::parse(c).map(Some),
    }
}

#[cfg(test)]
mod tests;
