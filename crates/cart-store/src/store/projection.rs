//! The cart projection row (`cart_projection`): what an append writes of the cart
//! after it (`lines_json`, written by `writes.rs`), and how a row reads back as a cart.

use cart_domain::{Cart, CartEvent};
use cart_proto::event::{self, DecodeError};

/// The projected cart: its lines `{sku, quantity}`, then, when the cart has a promo code,
/// one element `{"promo_code": {code, selected_unit_items}}` (the payload of
/// `PromoCodeRedeemed`). Rows written before promo codes existed have no such element,
/// which reads as a cart without a code, as it was.
pub(crate) fn lines_json(cart: &Cart) -> serde_json::Value {
    let lines = cart
        .lines()
        .iter()
        .map(|l| serde_json::json!({"sku": l.sku.as_str(), "quantity": l.quantity}));
    let promo_code = cart.promo_code().map(|applied| {
        let redeemed = CartEvent::PromoCodeRedeemed {
            code: applied.code.clone(),
            selected_unit_items: applied.selected_unit_items.clone(),
        };
        // With its schema version, so that a row written before a later version of
        // the event is still read (upcast) as what it was.
        let encoded = event::encode(&redeemed);
        serde_json::json!({ "promo_code": encoded.payload, "schema_version": encoded.schema_version })
    });
    lines.chain(promo_code).collect()
}

pub(super) fn cart_from_lines(lines: &serde_json::Value) -> Result<Cart, DecodeError> {
    // The projection stores what ItemQuantitySet and PromoCodeRedeemed events would
    // rebuild, so it is read back by replaying exactly those.
    let mut events = vec![CartEvent::CartOpened];
    for line in lines.as_array().into_iter().flatten() {
        if let Some(payload) = line.get("promo_code") {
            let version = line
                .get("schema_version")
                .and_then(serde_json::Value::as_i64)
                .and_then(|v| i16::try_from(v).ok())
                .unwrap_or(1);
            events.push(event::decode(
                "PromoCodeRedeemed",
                version,
                payload.clone(),
            )?);
            continue;
        }
        let payload = serde_json::json!({"sku": line.get("sku"), "quantity": line.get("quantity")});
        events.push(event::decode("ItemQuantitySet", 1, payload)?);
    }
    Ok(Cart::replay(&events))
}
