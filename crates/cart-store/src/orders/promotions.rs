//! Per-user limits of item promotions (`Promotion::per_user_limit`): a user's uses of a
//! limited promotion are the bought orders whose prices include it, one use per order
//! whatever its lines (`order_promotions`, migration 0009). Only promotions the catalog
//! limits are recorded, locked and counted; a cart or order without one costs no query.

use std::collections::BTreeMap;

use cart_domain::{
    Catalog, OrderDetails, OrderError, OrderSnapshot, ProjectId, PromotionId, Timestamp, UserId,
};
use sqlx::{PgConnection, Row};

use super::{oid, pid};
use crate::locks::{self, LockKey};

/// Per promotion (`$3`): the user's (`$2`) uses, that is their bought orders other than
/// `$4` that got it. One `lateral` count per promotion reads its rows by
/// `order_promotions_by_user`, as `PURCHASES` does for SKUs.
pub const PROMOTION_USES: &str = "select w.id, c.used \
     from unnest($3::int8[]) as w(id) \
     cross join lateral (select count(*)::int8 as used from order_promotions u \
       where u.project_id = $1 and u.promotion_id = w.id and u.user_id = $2 \
         and u.used_at is not null and u.order_id <> $4) as c";

/// A promotion id as stored: ids are below 2^53 (`admin::convert::promotion_id`), so
/// they fit.
fn promotion_key(id: PromotionId) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// The promotions an order's prices include that the catalog limits per user, with
/// their limits.
pub(super) fn limited(
    catalog: &Catalog,
    project: ProjectId,
    snapshot: &OrderSnapshot,
) -> BTreeMap<PromotionId, u32> {
    catalog.promotion_limits(project, &snapshot.promotion_ids())
}

/// The promotions' locks (in the SKUs' class, taken in key order with them).
pub(super) fn lock_keys(
    project: ProjectId,
    limited: &BTreeMap<PromotionId, u32>,
) -> impl Iterator<Item = LockKey> + '_ {
    limited.keys().map(move |id| locks::promotion(project, *id))
}

/// How many times the user got each of `ids`, not counting the order `exclude`.
pub(super) async fn uses(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    ids: impl Iterator<Item = PromotionId>,
    exclude: i64,
) -> Result<BTreeMap<PromotionId, u32>, sqlx::Error> {
    let ids: Vec<i64> = ids.map(promotion_key).collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows = sqlx::query(PROMOTION_USES)
        .bind(pid(project))
        .bind(user.as_str())
        .bind(&ids)
        .bind(exclude)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let used: i64 = row.try_get("used")?;
            Ok((
                PromotionId::try_from(id).unwrap_or(0),
                u32::try_from(used.max(0)).unwrap_or(u32::MAX),
            ))
        })
        .collect()
}

/// Whether the user may still get every promotion of `limited`, counted under their
/// locks; `exclude` is the order being paid.
pub(super) async fn check(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    limited: &BTreeMap<PromotionId, u32>,
    exclude: i64,
) -> Result<Result<(), OrderError>, sqlx::Error> {
    let used = uses(conn, project, user, limited.keys().copied(), exclude).await?;
    Ok(cart_domain::check_promotion_limits(limited, &used))
}

/// Records the order's limited promotions; `used_at` when the order is bought now (a
/// payment, or a free order's checkout). A row already there keeps its first use.
pub(super) async fn record(
    conn: &mut PgConnection,
    details: &OrderDetails,
    limited: &BTreeMap<PromotionId, u32>,
    used_at: Option<Timestamp>,
) -> Result<(), sqlx::Error> {
    if limited.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into order_promotions (project_id, order_id, user_id, promotion_id, used_at) \
         select $1, $2, $3, p, to_timestamp($5) from unnest($4::int8[]) as l(p) \
         on conflict (project_id, order_id, promotion_id) \
         do update set used_at = coalesce(order_promotions.used_at, excluded.used_at)",
    )
    .bind(pid(details.project))
    .bind(oid(details.order_id))
    .bind(details.user.as_str())
    .bind(
        limited
            .keys()
            .copied()
            .map(promotion_key)
            .collect::<Vec<_>>(),
    )
    .bind(used_at.map(Timestamp::unix))
    .execute(conn)
    .await?;
    Ok(())
}
