//! Protobuf cart requests into the `RawRequest` both encodings land in. A message has
//! only the fields its endpoint takes, so there is nothing to refuse here but bytes that
//! are not the message; strings are checked with the JSON ones, in `RawRequest::check`.

use prost::Message;

use super::{Endpoint, RawQuantity, RawRequest};
use crate::{v1, ErrorReply};

impl RawRequest {
    pub(super) fn from_protobuf(endpoint: Endpoint, body: &[u8]) -> Result<Self, ErrorReply> {
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
}
