//! One order's stream: folding it, and appending to it with the rows counted from it
//! (`orders`, `order_units`, `promo_code_redemptions`) in the same transaction.

use std::collections::BTreeMap;

use cart_domain::{
    CartId, Order, OrderDetails, OrderEvent, OrderId, OrderStatus, ProjectId, Sku, Timestamp,
};
use cart_proto::order as wire;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{oid, order_stream_id, pid, sealed, LoadedOrder, OrderStoreError};

/// An order's whole stream, to fold (`$1`: the order's stream id).
pub const LOAD_ORDER: &str =
    "select version, event_type, schema_version, payload, project_id, user_id from order_events \
     where stream_id = $1 order by version";

/// Folds one order's stream; None for an order that does not exist.
pub(super) async fn load(
    conn: &mut PgConnection,
    project: ProjectId,
    order_id: OrderId,
) -> Result<Option<LoadedOrder>, OrderStoreError> {
    let rows = sqlx::query(LOAD_ORDER)
        .bind(order_stream_id(project, order_id))
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut order = Order::default();
    let mut version = 0;
    // The user's key, looked up once, and only for a stream with sealed fields.
    let mut key: Option<Option<sealed::UserKey>> = None;
    for row in rows {
        version = row.try_get("version")?;
        let event_type: &str = row.try_get("event_type")?;
        let mut payload: serde_json::Value = row.try_get("payload")?;
        if sealed::is_sealed(event_type, &payload) {
            let (project, user): (i64, &str) =
                (row.try_get("project_id")?, row.try_get("user_id")?);
            if key.is_none() {
                key = Some(sealed::key_of(&mut *conn, project, user).await?);
            }
            sealed::open(
                event_type,
                &mut payload,
                key.as_ref().and_then(Option::as_ref),
                project,
                user,
            );
        }
        let event = wire::decode(event_type, row.try_get("schema_version")?, payload).map_err(
            |source| OrderStoreError::Decode {
                order_id: oid(order_id),
                version,
                source,
            },
        )?;
        order = cart_domain::apply_order(order, &event);
    }
    Ok(Some(LoadedOrder { order, version }))
}

/// Appends `events` to an order's stream after `expected` and moves its projection
/// rows; returns the order after them.
pub(super) async fn append(
    conn: &mut PgConnection,
    order_before: &Order,
    expected: i64,
    events: &[OrderEvent],
    now: Timestamp,
) -> Result<Order, OrderStoreError> {
    let order = events
        .iter()
        .fold(order_before.clone(), cart_domain::apply_order);
    let Some(details) = order.details() else {
        return Ok(order);
    };
    if events.is_empty() {
        return Ok(order);
    }
    insert_events(&mut *conn, details, expected, events).await?;
    let status = order.status().unwrap_or(OrderStatus::New).name();
    let version = expected + i64::try_from(events.len()).unwrap_or(0);
    if expected == 0 {
        insert_order(&mut *conn, details, status, version).await?;
    } else {
        sqlx::query(
            "update orders set status = $3, version = $4, updated_at = now() \
             where project_id = $1 and order_id = $2",
        )
        .bind(pid(details.project))
        .bind(oid(details.order_id))
        .bind(status)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    }
    // A free order is done at creation, and counts as bought then.
    let bought_now = events
        .iter()
        .any(|e| matches!(e, OrderEvent::OrderPaid { .. }))
        || (expected == 0 && order.status() == Some(OrderStatus::Done));
    count_units(&mut *conn, details, status, bought_now, now).await?;
    Ok(order)
}

async fn insert_events(
    conn: &mut PgConnection,
    details: &OrderDetails,
    expected: i64,
    events: &[OrderEvent],
) -> Result<(), OrderStoreError> {
    let n = events.len();
    let encoded: Vec<_> = events.iter().map(wire::encode).collect();
    for e in &encoded {
        sealed::check_text(e.event_type, &e.payload).map_err(crate::StoreError::from)?;
    }
    let (project, user) = (pid(details.project), details.user.as_str());
    // One key lookup per command, and none for a command without personal data.
    let key = if encoded
        .iter()
        .any(|e| sealed::has_personal(e.event_type, &e.payload))
    {
        Some(sealed::key_for_writing(&mut *conn, project, user).await?)
    } else {
        None
    };
    let mut versions = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for (i, mut encoded) in encoded.into_iter().enumerate() {
        if let Some(key) = &key {
            sealed::seal(encoded.event_type, &mut encoded.payload, key, project, user);
        }
        versions.push(expected + 1 + i64::try_from(i).unwrap_or(0));
        ids.push(Uuid::now_v7());
        types.push(encoded.event_type);
        payloads.push(encoded.payload.to_string());
    }
    // The version guard: the primary key refuses a version taken behind the lock.
    sqlx::query(
        "insert into order_events (stream_id, version, event_id, project_id, order_id, user_id, \
           event_type, schema_version, payload, metadata) \
         select $1, v, id, $2, $3, $4, t, $5, p::jsonb, $10::text::jsonb \
         from unnest($6::int8[], $7::uuid[], $8::text[], $9::text[]) as e(v, id, t, p)",
    )
    .bind(order_stream_id(details.project, details.order_id))
    .bind(pid(details.project))
    .bind(oid(details.order_id))
    .bind(details.user.as_str())
    .bind(wire::SCHEMA_VERSION)
    .bind(&versions)
    .bind(&ids)
    .bind(&types)
    .bind(&payloads)
    // The trace context of the command (the current span), for the relay's link and the
    // JetStream message's `traceparent`; `{}` when traces are not exported.
    .bind(cart_telemetry::trace_metadata(serde_json::json!({})).to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// The projection row of a new order, and its units.
async fn insert_order(
    conn: &mut PgConnection,
    details: &OrderDetails,
    status: &str,
    version: i64,
) -> Result<(), sqlx::Error> {
    let (project, order_id) = (pid(details.project), oid(details.order_id));
    sqlx::query(
        "insert into orders (project_id, order_id, stream_id, user_id, cart_id, payment_token, \
           status, promo_code, version, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10))",
    )
    .bind(project)
    .bind(order_id)
    .bind(order_stream_id(details.project, details.order_id))
    .bind(details.user.as_str())
    .bind(details.cart_id.as_ref().map(CartId::as_str))
    .bind(&details.payment_token)
    .bind(status)
    .bind(details.snapshot.promo_code.as_deref())
    .bind(version)
    .bind(details.created_at.unix())
    .execute(&mut *conn)
    .await?;
    let mut units: BTreeMap<&Sku, i64> = BTreeMap::new();
    for line in details.snapshot.bought() {
        *units.entry(&line.sku).or_default() += i64::from(line.quantity);
    }
    sqlx::query(
        "insert into order_units (project_id, order_id, user_id, sku, quantity, status, created_at) \
         select $1, $2, $3, s, q, $4, to_timestamp($5) from unnest($6::text[], $7::int8[]) as u(s, q)",
    )
    .bind(project)
    .bind(order_id)
    .bind(details.user.as_str())
    .bind(status)
    .bind(details.created_at.unix())
    .bind(units.keys().map(|s| s.as_str()).collect::<Vec<_>>())
    .bind(units.values().copied().collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the order's units to its status; when it was bought just now, they count from
/// `now` and its promo code counts as redeemed.
async fn count_units(
    conn: &mut PgConnection,
    details: &OrderDetails,
    status: &str,
    bought_now: bool,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let (project, order_id) = (pid(details.project), oid(details.order_id));
    sqlx::query(
        "update order_units set status = $3, \
           paid_at = case when $4 then to_timestamp($5) else paid_at end \
         where project_id = $1 and order_id = $2",
    )
    .bind(project)
    .bind(order_id)
    .bind(status)
    .bind(bought_now)
    .bind(now.unix())
    .execute(&mut *conn)
    .await?;
    let Some(code) = details.snapshot.promo_code.as_ref().filter(|_| bought_now) else {
        return Ok(());
    };
    sqlx::query(
        "insert into promo_code_redemptions (project_id, order_id, user_id, code) \
         values ($1, $2, $3, $4) on conflict do nothing",
    )
    .bind(project)
    .bind(order_id)
    .bind(details.user.as_str())
    .bind(code)
    .execute(conn)
    .await?;
    Ok(())
}
