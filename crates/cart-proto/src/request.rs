//! Decoding of cart requests from JSON or protobuf into checked domain values.

use std::collections::BTreeMap;

use cart_domain::{
    CartId, Currency, InvalidInput, Locale, ProjectId, Quantity, Sku, UserId, MAX_LINES,
};
use prost::Message;
use serde::Deserialize;

use crate::{v1, Encoding, ErrorReply};

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
    /// The buyer's ISO 3166-1 alpha-2 country (upper case), when given: country prices
    /// and region-limited promo codes.
    pub country: Option<String>,
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
    /// After the last event recorded at or before this time, as sent (RFC 3339).
    Time(String),
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
        let json: JsonRequest = serde_json::from_slice(body).map_err(ErrorReply::malformed)?;
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
        if by_code && json.cart_id.is_some() {
            return Err(not_here("cart_id"));
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

    fn from_protobuf(endpoint: Endpoint, body: &[u8]) -> Result<Self, ErrorReply> {
        let malformed = ErrorReply::malformed;
        let scope = |project_id: u64, user_id, cart_id, currency, locale, country| Self {
            project_id: Some(project_id),
            user_id,
            cart_id,
            currency,
            locale,
            country,
            ..Self::default()
        };
        Ok(match endpoint {
            Endpoint::Fill => {
                let m = v1::FillRequest::decode(body).map_err(malformed)?;
                Self {
                    items: m
                        .items
                        .into_iter()
                        .map(|i| (i.sku, RawQuantity::Integer(i.quantity)))
                        .collect(),
                    replace: m.replace,
                    ..scope(
                        m.project_id,
                        m.user_id,
                        m.cart_id,
                        m.currency,
                        m.locale,
                        m.country,
                    )
                }
            }
            Endpoint::PutItem => {
                let m = v1::PutItemRequest::decode(body).map_err(malformed)?;
                Self {
                    sku: m.sku,
                    quantity: Some(RawQuantity::Integer(m.quantity)),
                    ..scope(
                        m.project_id,
                        m.user_id,
                        m.cart_id,
                        m.currency,
                        m.locale,
                        m.country,
                    )
                }
            }
            Endpoint::DeleteItem => {
                let m = v1::DeleteItemRequest::decode(body).map_err(malformed)?;
                Self {
                    sku: m.sku,
                    ..scope(
                        m.project_id,
                        m.user_id,
                        m.cart_id,
                        m.currency,
                        m.locale,
                        m.country,
                    )
                }
            }
            Endpoint::Clear => {
                let m = v1::ClearRequest::decode(body).map_err(malformed)?;
                scope(
                    m.project_id,
                    m.user_id,
                    m.cart_id,
                    m.currency,
                    m.locale,
                    m.country,
                )
            }
            Endpoint::Get => {
                let m = v1::GetCartRequest::decode(body).map_err(malformed)?;
                Self {
                    at_version: m.at_version,
                    at_time: m.at_time,
                    ..scope(
                        m.project_id,
                        m.user_id,
                        m.cart_id,
                        m.currency,
                        m.locale,
                        m.country,
                    )
                }
            }
            Endpoint::RedeemPromoCode => {
                let m = v1::RedeemPromoCodeRequest::decode(body).map_err(malformed)?;
                Self {
                    code: m.coupon_code,
                    selected_unit_items: m.selected_unit_items,
                    cart_ref: m.cart.map(|c| c.id),
                    ..scope(
                        m.project_id,
                        m.user_id,
                        m.cart_id,
                        m.currency,
                        m.locale,
                        m.country,
                    )
                }
            }
            Endpoint::RemovePromoCode => {
                let m = v1::RemovePromoCodeRequest::decode(body).map_err(malformed)?;
                Self {
                    cart_ref: m.cart.map(|c| c.id),
                    ..scope(
                        m.project_id,
                        m.user_id,
                        m.cart_id,
                        m.currency,
                        m.locale,
                        m.country,
                    )
                }
            }
            Endpoint::PromoCodeRewards => {
                let m = v1::PromoCodeRewardsRequest::decode(body).map_err(malformed)?;
                Self {
                    code: m.code,
                    ..scope(
                        m.project_id,
                        m.user_id,
                        String::new(),
                        String::new(),
                        String::new(),
                        m.country,
                    )
                }
            }
            Endpoint::VerifyPromoCode => {
                let m = v1::VerifyPromoCodeRequest::decode(body).map_err(malformed)?;
                Self {
                    code: m.code,
                    ..scope(
                        m.project_id,
                        m.user_id,
                        String::new(),
                        String::new(),
                        String::new(),
                        m.country,
                    )
                }
            }
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
        let country = match self.country.as_str() {
            "" => None,
            c if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(c.to_ascii_uppercase())
            }
            _ => {
                return Err(InvalidInput::BadCharacters {
                    property: "country",
                    allowed: "a two-letter ISO 3166-1 alpha-2 code",
                })
            }
        };
        let code = |property: &'static str| {
            if self.code.is_empty() {
                Err(InvalidInput::Missing(property))
            } else if self.code.chars().count() > MAX_CODE_LEN {
                Err(InvalidInput::TooLong {
                    property,
                    max: MAX_CODE_LEN,
                })
            } else {
                Ok(self.code.clone())
            }
        };
        let currency = match self.currency.as_str() {
            "" => Currency::usd(),
            c => Currency::parse(c)?,
        };
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
                    (None, t) if t.len() <= 64 => Some(AsOf::Time(self.at_time)),
                    (None, _) => return Err(InvalidInput::BadTime),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn json(endpoint: Endpoint, body: &str) -> Result<Request, ErrorReply> {
        decode(endpoint, Encoding::Json, body.as_bytes())
    }

    fn code_and_text(res: Result<Request, ErrorReply>) -> (u16, u32, String) {
        let e = res.unwrap_err();
        (e.status, e.code, e.message())
    }

    #[test]
    fn a_full_fill_decodes_with_defaults() {
        let req = json(
            Endpoint::Fill,
            r#"{"project_id":44056,"user_id":"u1","items":[{"sku":"a","quantity":2},{"sku":"b","quantity":0}]}"#,
        )
        .unwrap();
        assert_eq!(req.scope.project.get(), 44056);
        assert_eq!(req.scope.cart, None);
        assert_eq!(req.view.currency.as_str(), "USD");
        assert_eq!(req.view.locale.as_str(), "en");
        let Action::Fill { items, replace } = req.action else {
            panic!("not a fill")
        };
        assert!(!replace);
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].1.get(), 0);
    }

    #[test]
    fn negative_and_fractional_quantities_are_1102() {
        for q in ["-1", "1.5", "2.0", "1e3"] {
            let body = format!(r#"{{"project_id":1,"user_id":"u","sku":"a","quantity":{q}}}"#);
            let (status, code, text) = code_and_text(json(Endpoint::PutItem, &body));
            assert_eq!((status, code), (422, 1102), "quantity {q}");
            assert_eq!(
                text,
                "[0401-1102]: Item quantity must be non-negative integer"
            );
        }
        let body = r#"{"project_id":1,"user_id":"u","sku":"a","quantity":10001}"#;
        assert_eq!(code_and_text(json(Endpoint::PutItem, body)).1, 1102);
    }

    #[test]
    fn missing_and_malformed_input_is_named() {
        let (status, code, text) = code_and_text(json(
            Endpoint::PutItem,
            r#"{"project_id":1,"user_id":"u","quantity":1}"#,
        ));
        assert_eq!((status, code), (422, 1102));
        assert!(text.contains("The property `sku` is required"), "{text}");
        let (_, _, text) = code_and_text(json(Endpoint::Get, r#"{"user_id":"u"}"#));
        assert!(text.contains("`project_id`"), "{text}");
        let (status, ..) = code_and_text(json(Endpoint::Get, "{not json"));
        assert_eq!(status, 400);
        let (status, _, text) = code_and_text(json(
            Endpoint::Get,
            r#"{"project_id":1,"user_id":"u","colour":"red"}"#,
        ));
        assert_eq!(status, 400);
        assert!(text.contains("colour"), "{text}");
        let (_, _, text) = code_and_text(json(
            Endpoint::Clear,
            r#"{"project_id":1,"user_id":"u","sku":"a"}"#,
        ));
        assert!(text.contains("not accepted by clear"), "{text}");
        let (_, _, text) = code_and_text(json(
            Endpoint::Fill,
            r#"{"project_id":1,"user_id":"u","items":[{"sku":"a"}]}"#,
        ));
        assert!(text.contains("`quantity` is required"), "{text}");
    }

    #[test]
    fn subject_unsafe_ids_are_refused() {
        for cart in ["a.b", "a b", "*", ">", ""] {
            let body = format!(r#"{{"project_id":1,"user_id":"u","cart_id":"{cart}"}}"#);
            let res = json(Endpoint::Get, &body);
            if cart.is_empty() {
                assert_eq!(res.unwrap().scope.cart, None);
            } else {
                assert_eq!(res.unwrap_err().code, 1102, "cart id {cart:?}");
            }
        }
    }

    #[test]
    fn too_many_fill_items_are_refused() {
        let items: Vec<String> = (0..=MAX_LINES)
            .map(|i| format!(r#"{{"sku":"s{i}","quantity":1}}"#))
            .collect();
        let body = format!(
            r#"{{"project_id":1,"user_id":"u","items":[{}]}}"#,
            items.join(",")
        );
        let e = json(Endpoint::Fill, &body).unwrap_err();
        assert_eq!((e.status, e.code), (422, 1102));
    }

    #[test]
    fn promo_code_requests_decode_with_xsollas_cart_object() {
        let req = json(
            Endpoint::RedeemPromoCode,
            r#"{"project_id":1,"user_id":"u","coupon_code":"WINTER2026","cart":{"id":"current"},"selected_unit_items":{"game_1":"game_1_steam"},"country":"de"}"#,
        )
        .unwrap();
        assert_eq!(req.scope.cart, None);
        assert_eq!(req.view.country.as_deref(), Some("DE"));
        let Action::RedeemPromoCode {
            code,
            selected_unit_items,
        } = req.action
        else {
            panic!("not a redeem")
        };
        assert_eq!(code, "WINTER2026");
        assert_eq!(selected_unit_items.len(), 1);
        let req = json(
            Endpoint::RemovePromoCode,
            r#"{"project_id":1,"user_id":"u","cart":{"id":"c-1"}}"#,
        )
        .unwrap();
        assert_eq!(req.scope.cart.unwrap().as_str(), "c-1");
        let (status, code, text) = code_and_text(json(
            Endpoint::RedeemPromoCode,
            r#"{"project_id":1,"user_id":"u"}"#,
        ));
        assert_eq!((status, code), (422, 1102));
        assert!(
            text.contains("The property `coupon_code` is required"),
            "{text}"
        );
        let (_, code, text) = code_and_text(json(
            Endpoint::RedeemPromoCode,
            r#"{"project_id":1,"user_id":"u","coupon_code":"A","cart_id":"a","cart":{"id":"b"}}"#,
        ));
        assert_eq!(code, 1102);
        assert!(text.contains("at most one"), "{text}");
        let (_, _, text) = code_and_text(json(
            Endpoint::Get,
            r#"{"project_id":1,"user_id":"u","coupon_code":"A"}"#,
        ));
        assert!(text.contains("not accepted by get"), "{text}");
        let req = json(
            Endpoint::VerifyPromoCode,
            r#"{"project_id":1,"user_id":"u","code":"X"}"#,
        )
        .unwrap();
        assert_eq!(req.action, Action::VerifyPromoCode { code: "X".into() });
        assert!(Endpoint::VerifyPromoCode.is_query());
        assert!(!Endpoint::RedeemPromoCode.is_query());
        let m = v1::RedeemPromoCodeRequest {
            project_id: 1,
            user_id: "u".into(),
            coupon_code: "C".into(),
            cart: Some(v1::CartRef { id: "c-2".into() }),
            ..Default::default()
        };
        let req = decode(
            Endpoint::RedeemPromoCode,
            Encoding::Protobuf,
            &m.encode_to_vec(),
        )
        .unwrap();
        assert_eq!(req.scope.cart.unwrap().as_str(), "c-2");
    }

    #[test]
    fn protobuf_requests_decode_to_the_same_values() {
        let m = v1::PutItemRequest {
            project_id: 7,
            user_id: "u".into(),
            cart_id: "c-1".into(),
            currency: "eur".into(),
            locale: "de".into(),
            sku: "a".into(),
            quantity: 3,
            country: "de".into(),
        };
        let req = decode(Endpoint::PutItem, Encoding::Protobuf, &m.encode_to_vec()).unwrap();
        assert_eq!(req.scope.cart.unwrap().as_str(), "c-1");
        assert_eq!(req.view.currency.as_str(), "EUR");
        assert_eq!(req.view.country.as_deref(), Some("DE"));
        assert!(matches!(req.action, Action::PutItem { quantity, .. } if quantity.get() == 3));
        let m = v1::PutItemRequest { quantity: -2, ..m };
        let e = decode(Endpoint::PutItem, Encoding::Protobuf, &m.encode_to_vec()).unwrap_err();
        assert_eq!(e.code, 1102);
        let e = decode(Endpoint::Fill, Encoding::Protobuf, &[0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(e.status, 400);
    }
}

#[cfg(test)]
mod no_panic {
    //! Whatever bytes arrive, decoding answers Ok or an error reply; it never panics.

    use proptest::prelude::*;

    use super::*;

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        prop::sample::select(Endpoint::ALL.to_vec())
    }

    /// JSON bodies built from the real property names with values of any type, which
    /// reach much deeper into the checks than random bytes do.
    fn json_body() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,300}".prop_map(serde_json::Value::from),
        ];
        let names = prop::sample::select(vec![
            "project_id",
            "user_id",
            "cart_id",
            "currency",
            "locale",
            "items",
            "replace",
            "sku",
            "quantity",
            "other",
        ]);
        prop::collection::vec((names, value, any::<bool>()), 0..10).prop_map(|fields| {
            let mut body = serde_json::Map::new();
            for (name, value, as_items) in fields {
                let value = if as_items && name == "items" {
                    serde_json::json!([{"sku": value.clone(), "quantity": value}])
                } else {
                    value
                };
                body.insert(name.to_owned(), value);
            }
            serde_json::to_vec(&body).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(endpoint in endpoint(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(endpoint, Encoding::Json, &bytes);
            let _ = decode(endpoint, Encoding::Protobuf, &bytes);
        }

        #[test]
        fn structured_json_never_panics(endpoint in endpoint(), body in json_body()) {
            if let Err(e) = decode(endpoint, Encoding::Json, &body) {
                prop_assert!(e.status == 400 || e.status == 422, "unexpected status {}", e.status);
                prop_assert_eq!(e.code, 1102);
            }
        }
    }
}
