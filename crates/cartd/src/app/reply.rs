//! The replies of the cart endpoints: the whole priced cart (`render`, every query and a
//! command by default) or, for a command sent with `Cart-Reply: minimal`, only what it did
//! (`minimal`): the cart's id, its new version and the fill's warnings, none of which
//! needs pricing, so that reply prices and renders nothing and reads no purchases.

use cart_domain::Skipped;
use cart_proto::request::{Action, Request};
use cart_proto::view;
use cart_proto::{encode, v1, Encoding, ErrorReply, ReplyMode};
use cart_store::StreamKey;

use super::{App, Moment};

/// A command's outcome, as its reply needs it.
pub(super) struct After<'a> {
    /// The cart after the command.
    pub(super) cart: &'a cart_domain::Cart,
    /// Its version after the command (the append's, known before it is written).
    pub(super) version: i64,
    /// The SKUs a fill skipped.
    pub(super) warnings: &'a [Skipped],
}

impl App {
    /// The reply to a command, in the mode it asked for, with the counts a full reply
    /// was priced with. It is made before the append, because the ledger row that
    /// commits with the events holds it.
    pub(super) async fn command_reply(
        &self,
        at: &Moment,
        request: &Request,
        key: &StreamKey,
        after: After<'_>,
        encoding: Encoding,
        mode: ReplyMode,
    ) -> Result<(Vec<u8>, Option<cart_domain::Purchases>), ErrorReply> {
        Ok(match mode {
            ReplyMode::Full => {
                let purchases = self.cart_purchases(at, &request.scope, after.cart).await?;
                let body = self.render(
                    at,
                    key,
                    after.cart,
                    &purchases,
                    request,
                    after.warnings,
                    encoding,
                );
                (body, Some(purchases))
            }
            ReplyMode::Minimal => (minimal(key, after.version, after.warnings, encoding), None),
        })
    }

    /// The priced cart in the Xsolla shape, with the command's `warnings` (a query has
    /// none), encoded.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn render(
        &self,
        at: &Moment,
        key: &StreamKey,
        cart: &cart_domain::Cart,
        purchases: &cart_domain::Purchases,
        request: &Request,
        warnings: &[cart_domain::Skipped],
        encoding: Encoding,
    ) -> Vec<u8> {
        let view_options = &request.view;
        let catalog = &at.catalog;
        let priced = cart_domain::price(
            cart,
            &cart_domain::PricingContext {
                project: key.project,
                catalog,
                currency: &view_options.currency,
                country: view_options.country_code(),
                now: at.now,
                purchases,
                promo_code: cart.promo_code(),
            },
        );
        let mut reply = view::cart(
            key.cart.as_str(),
            &priced,
            &view_options.locale,
            self.inner.format,
        );
        reply.warnings = view::warnings(key.project, warnings);
        if let (Action::RedeemPromoCode { .. }, Some(outcome)) =
            (&request.action, &priced.promo_code)
        {
            reply.rewards = outcome.rewards.as_ref().map(|rewards| {
                let selected = cart
                    .promo_code()
                    .map(|c| c.selected_unit_items.clone())
                    .unwrap_or_default();
                view::rewards(
                    key.project,
                    catalog,
                    rewards,
                    &selected,
                    &view_options.locale,
                )
            });
        }
        encode(&reply, encoding)
    }
}

/// The minimal reply. Its warnings are the decision's (the catalog facts the fill was
/// decided on), the same the full reply carries, not a product of pricing.
fn minimal(key: &StreamKey, version: i64, warnings: &[Skipped], encoding: Encoding) -> Vec<u8> {
    let reply = v1::MinimalReply {
        cart_id: key.cart.as_str().to_owned(),
        version,
        warnings: view::warnings(key.project, warnings),
    };
    encode(&reply, encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cart_domain::{CartId, ProjectId, Quantity, SkipReason, Sku, UserId};
    use prost::Message;

    fn key() -> StreamKey {
        StreamKey::new(
            ProjectId::parse(44056).unwrap(),
            UserId::parse("ann").unwrap(),
            CartId::parse("wishlist").unwrap(),
        )
    }

    #[test]
    fn the_minimal_reply_is_id_version_and_warnings_only_when_there_are_some() {
        let json: serde_json::Value =
            serde_json::from_slice(&minimal(&key(), 3, &[], Encoding::Json)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"cart_id": "wishlist", "version": 3})
        );

        let skipped = [Skipped {
            sku: Sku::parse("hut01").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
            reason: SkipReason::UnknownItem,
        }];
        let json: serde_json::Value =
            serde_json::from_slice(&minimal(&key(), 4, &skipped, Encoding::Json)).unwrap();
        assert_eq!(json["version"], 4);
        assert_eq!(json["warnings"][0]["sku"], "hut01");
        assert_eq!(json["warnings"][0]["quantity"], 2);
        assert_eq!(json["warnings"][0]["errorCode"], 4001);
        assert_eq!(
            json["warnings"][0]["errorMessage"],
            "[0401-4001]: Item with Project Id = 44056 and Sku = hut01 not found"
        );

        let bytes = minimal(&key(), 4, &skipped, Encoding::Protobuf);
        let decoded = v1::MinimalReply::decode(bytes.as_slice()).unwrap();
        assert_eq!((decoded.cart_id.as_str(), decoded.version), ("wishlist", 4));
        assert_eq!(decoded.warnings, view::warnings(key().project, &skipped));
    }
}
