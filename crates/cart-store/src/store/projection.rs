//! The cart projection row (`cart_projection`): what an append writes of the cart
//! after it, and how a row reads back as a cart.

use std::collections::HashMap;

use cart_domain::{Cart, CartEvent};
use cart_proto::event::{self, DecodeError};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{project_id, Append};

/// The projection rows of an append batch, one per stream, never moving a row back.
///
/// `updated_at` (the cart expiry's clock, indexed by `cart_projection_by_age`) moves only
/// when it is over an hour old: an update that leaves every indexed column as it
/// was is a HOT update (no new index entries, the new row on the same page, kept free
/// by the table's fillfactor, migration `0015`), and carts expire after days, so an
/// hour of precision costs nothing (docs/operations.md, "Abandoned carts").
pub const UPSERT_PROJECTIONS: &str =
    "insert into cart_projection (stream_id, project_id, user_id, cart_id, version, lines) \
     select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::jsonb[]) \
     on conflict (stream_id) do update set version = excluded.version, lines = excluded.lines, \
       updated_at = case when cart_projection.updated_at < now() - interval '1 hour' \
         then now() else cart_projection.updated_at end \
     where cart_projection.version < excluded.version";

pub(super) async fn upsert_projections(
    conn: &mut PgConnection,
    winners: &[(&Append<'_>, i64)],
) -> Result<(), sqlx::Error> {
    // One row per stream, the latest: an upsert may not touch a row twice.
    let mut latest: HashMap<Uuid, (&Append<'_>, i64)> = Default::default();
    for &(a, version) in winners {
        let entry = latest.entry(a.key.stream_id()).or_insert((a, version));
        if version > entry.1 {
            *entry = (a, version);
        }
    }
    if latest.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<_> = latest.into_iter().collect();
    rows.sort_by_key(|(id, _)| *id);
    sqlx::query(UPSERT_PROJECTIONS)
        .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, (a, _))| project_id(a.key.project))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(_, (a, _))| a.key.user.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(_, (a, _))| a.key.cart.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, (_, v))| *v).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, (a, _))| lines_json(a.cart))
                .collect::<Vec<_>>(),
        )
        .execute(conn)
        .await?;
    Ok(())
}

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
