//! What is counted against limits: a user's bought units of limited SKUs (and, at
//! checkout, other users' holds), and the redemptions of limited promo codes. Which SKUs
//! and codes are limited is the catalog's to say (`Catalog::limits_of`,
//! `Catalog::limited_code`); only those are counted, locked and checked.

use std::collections::BTreeMap;

use cart_domain::{
    Catalog, ItemLimits, OrderError, OrderLine, ProjectId, PromoCode, PromoCodeUsage, PromotionId,
    Purchases, Sku, SkuPurchases, Timestamp, UserId,
};
use sqlx::{PgConnection, Row};

use super::{pid, OrderStore, OrderStoreError};
use crate::group::GroupConfig;
use crate::locks::{self, LockKey};

mod grouped;

pub use grouped::{GroupPurchases, Needs, GROUPED_PURCHASES};

/// Per SKU (`$3`, with the start of its window `$7`): the user's (`$2`) paid units in all
/// and in the window, everyone's paid units, and, when `$4` is set, other users' holds
/// (unpaid units created after it); `$5` is an order not to count, `$6` the paid statuses.
/// Each SKU is counted in a `lateral` aggregate, so its plan reads that SKU's rows by
/// `order_units_by_sku` whatever the table held when it was made; a join let the generic
/// plan read every unit of the project (ARCHITECTURE.md, "Plans that cannot go stale").
pub const PURCHASES: &str = "select w.sku, c.user_total, c.user_window, c.sold, c.held \
     from unnest($3::text[], $7::int8[]) as w(sku, since) \
     cross join lateral (select \
       coalesce(sum(u.quantity) filter (where u.user_id = $2 and u.status = any($6)), 0)::int8 as user_total, \
       coalesce(sum(u.quantity) filter (where u.user_id = $2 and u.status = any($6) \
         and u.paid_at >= to_timestamp(w.since)), 0)::int8 as user_window, \
       coalesce(sum(u.quantity) filter (where u.status = any($6)), 0)::int8 as sold, \
       coalesce(sum(u.quantity) filter (where $4::int8 is not null and u.status = 'new' \
         and u.user_id <> $2 and u.created_at > to_timestamp($4::int8)), 0)::int8 as held \
       from order_units u where u.project_id = $1 and u.sku = w.sku and u.order_id <> $5) as c";

/// The redemptions of a code's promotion (`$2`), the user's (`$3`) and of the code (`$4`).
pub const REDEMPTIONS: &str = "select count(*) filter (where code = any($2))::int8 as total, \
       count(*) filter (where code = any($2) and user_id = $3)::int8 as by_user, \
       count(*) filter (where code = $4)::int8 as by_code \
     from promo_code_redemptions where project_id = $1 and code = any($2)";

/// The order statuses whose units count as bought (refunds give nothing back).
const PAID: [&str; 3] = ["paid", "done", "canceled"];

/// The SKUs among `lines` the catalog limits, with their limits (bonus lines are free
/// and count against nothing).
pub fn limited_skus<'c>(
    catalog: &'c Catalog,
    project: ProjectId,
    lines: &[OrderLine],
) -> BTreeMap<Sku, &'c ItemLimits> {
    catalog.limits_of(
        project,
        lines.iter().filter(|l| !l.is_bonus).map(|l| &l.sku),
    )
}

/// A promo code whose redemptions the catalog limits, with its name as the order has it.
pub(super) fn limited_code<'c>(
    catalog: &'c Catalog,
    project: ProjectId,
    code: Option<&'c str>,
) -> Option<(&'c str, &'c PromoCode)> {
    let name = code?;
    Some((name, catalog.limited_code(project, name)?))
}

/// The start of each limited SKU's current per-user window.
pub(super) fn windows(
    limited: &BTreeMap<Sku, &ItemLimits>,
    now: Timestamp,
) -> BTreeMap<Sku, Timestamp> {
    limited
        .iter()
        .map(|(sku, limits)| (sku.clone(), limits.window_start(now)))
        .collect()
}

impl OrderStore {
    /// What pricing needs of the user's purchases: of the limited ones among `skus`
    /// (since each one's last reset), the redemptions of `code` when it is limited, and
    /// the user's uses of the per-user limited promotions the cart could get. No query
    /// when nothing is limited, the common case on the command path.
    ///
    /// # Errors
    /// Database failures.
    pub async fn purchases_for(
        &self,
        catalog: &Catalog,
        project: ProjectId,
        user: &UserId,
        skus: &[Sku],
        code: Option<&str>,
        now: Timestamp,
    ) -> Result<Purchases, OrderStoreError> {
        let windows = windows(&catalog.limits_of(project, skus), now);
        let codes: Vec<(String, Vec<String>)> = limited_code(catalog, project, code)
            .map(|(c, _)| (c.to_owned(), vec![c.to_owned()]))
            .into_iter()
            .collect();
        let promotions = catalog.limited_promotions(project, skus);
        if windows.is_empty() && codes.is_empty() && promotions.is_empty() {
            return Ok(Purchases::default());
        }
        // One connection for the few counts (each skipped when nothing of its kind is
        // limited).
        let mut conn = self.pool.acquire().await?;
        let mut purchases = read(&mut conn, project, user, &windows, None, 0).await?;
        read_redemptions(&mut conn, project, user, &codes, &mut purchases).await?;
        let ids = promotions.keys().copied();
        purchases.promotions = super::promotions::uses(&mut conn, project, user, ids, 0).await?;
        Ok(purchases)
    }

    /// The grouped reader of pricing's counts (the cart endpoints' path): one statement
    /// for the reads of concurrent requests.
    pub fn group_purchases(&self, config: GroupConfig) -> GroupPurchases {
        GroupPurchases::start(&self.pool, config)
    }

    /// What the user bought so far of `skus` (paid orders, refunded ones included) and
    /// the redemptions of `codes`, for pricing: `available` in cart views and promo-code
    /// redemption limits. Holds of unpaid orders are not counted here.
    ///
    /// # Errors
    /// Database failures.
    pub async fn purchases(
        &self,
        project: ProjectId,
        user: &UserId,
        windows: &BTreeMap<Sku, Timestamp>,
        codes: &[(String, Vec<String>)],
    ) -> Result<Purchases, OrderStoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut purchases = read(&mut conn, project, user, windows, None, 0).await?;
        read_redemptions(&mut conn, project, user, codes, &mut purchases).await?;
        Ok(purchases)
    }
}

/// Counts purchases of `windows`' SKUs (the value: the start of the SKU's current
/// recurrent window, or the epoch). `hold_since`: also count other users' unpaid units
/// created after it in `sold`. `exclude`: an order not to count (the one being paid).
pub(super) async fn read(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    windows: &BTreeMap<Sku, Timestamp>,
    hold_since: Option<Timestamp>,
    exclude: i64,
) -> Result<Purchases, sqlx::Error> {
    let mut purchases = Purchases::default();
    if windows.is_empty() {
        return Ok(purchases);
    }
    let rows = sqlx::query(PURCHASES)
        .persistent(crate::statements::prepared(PURCHASES))
        .bind(pid(project))
        .bind(user.as_str())
        .bind(windows.keys().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(hold_since.map(Timestamp::unix))
        .bind(exclude)
        .bind(&PAID[..])
        .bind(windows.values().map(|t| t.unix()).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    for row in rows {
        let sku: String = row.try_get("sku")?;
        let Ok(sku) = Sku::parse(sku) else { continue };
        let sold: i64 = row.try_get("sold")?;
        let held: i64 = row.try_get("held")?;
        purchases.by_user.insert(
            sku.clone(),
            SkuPurchases {
                in_window: units(row.try_get("user_window")?),
                total: units(row.try_get("user_total")?),
            },
        );
        purchases.sold.insert(sku, units(sold.saturating_add(held)));
    }
    Ok(purchases)
}

/// A count from SQL as the domain counts: never negative, saturating.
fn units(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Adds the redemption counts of each `(code, codes of its promotion)`.
async fn read_redemptions(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    codes: &[(String, Vec<String>)],
    purchases: &mut Purchases,
) -> Result<(), sqlx::Error> {
    for (code, siblings) in codes {
        let row = sqlx::query(REDEMPTIONS)
            .bind(pid(project))
            .bind(siblings)
            .bind(user.as_str())
            .bind(code)
            .fetch_one(&mut *conn)
            .await?;
        purchases.promo_codes.insert(
            code.clone(),
            PromoCodeUsage {
                total: units(row.try_get("total")?),
                by_user: units(row.try_get("by_user")?),
                by_code: units(row.try_get("by_code")?),
            },
        );
    }
    Ok(())
}

/// Whether one more redemption of a limited code fits, counted under the code's lock.
pub(super) async fn check_code(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    (name, promo): (&str, &PromoCode),
) -> Result<Result<(), OrderError>, sqlx::Error> {
    let mut redeemed = Purchases::default();
    let codes = [(name.to_owned(), vec![name.to_owned()])];
    read_redemptions(conn, project, user, &codes, &mut redeemed).await?;
    let usage = redeemed.promo_codes.get(name).copied().unwrap_or_default();
    Ok(
        cart_domain::redemption_limit(promo, usage).map_err(|_| {
            OrderError::PromoCodeLimitReached {
                code: name.to_owned(),
            }
        }),
    )
}

/// The locks under which `limited`, `code` and the limited `promotions` are counted and
/// checked, in key order: two buyers racing for a last unit or a last redemption, or
/// two orders of a user racing for a promotion's last use, queue here.
pub(super) fn limit_locks(
    project: ProjectId,
    limited: &BTreeMap<Sku, &ItemLimits>,
    code: Option<(&str, &PromoCode)>,
    promotions: &BTreeMap<PromotionId, u32>,
) -> Vec<LockKey> {
    let skus = limited.keys().map(|sku| locks::sku(project, sku));
    let code = code.map(|(name, _)| locks::code(project, name));
    locks::in_key_order(
        skus.chain(code)
            .chain(super::promotions::lock_keys(project, promotions)),
    )
}
