//! The purchase counts pricing reads, grouped: the counts that concurrent requests (of
//! any users) ask for go to PostgreSQL as one statement, as `GroupRead` does for
//! projection reads, so that a command or a get costs a share of one round trip rather
//! than a pool acquire and up to three queries of its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use cart_domain::{
    Catalog, ProjectId, PromoCodeUsage, PromotionId, Purchases, Sku, SkuPurchases, Timestamp,
    UserId,
};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::{units, PAID};
use crate::group::{start_probe_reader, GroupConfig};
use crate::store::{project_id as pid, StoreError};

/// The counts of a batch of asks, one row per counted key: `kind` 0 a SKU (`a` the
/// user's units in all, `b` in the window since `since`, `c` everyone's), 1 a promotion
/// (`a` the user's uses), 2 a promo code (`a` its redemptions, `b` the user's); `ask` is
/// the ask's index in the batch. Each key is counted in a `lateral` aggregate that reads
/// only that key's rows by its index, as `PURCHASES` and `PROMOTION_USES` do; with the
/// order not to count of those fixed to none (order ids start at 1) and no holds.
pub const GROUPED_PURCHASES: &str = "select 0::int4 as kind, w.ask, w.sku as key, \
       c.user_total as a, c.user_window as b, c.sold as c \
     from unnest($1::int4[], $2::int8[], $3::text[], $4::text[], $5::int8[]) \
       as w(ask, project, user_id, sku, since) \
     cross join lateral (select \
       coalesce(sum(u.quantity) filter (where u.user_id = w.user_id and u.status = any($14)), 0)::int8 as user_total, \
       coalesce(sum(u.quantity) filter (where u.user_id = w.user_id and u.status = any($14) \
         and u.paid_at >= to_timestamp(w.since)), 0)::int8 as user_window, \
       coalesce(sum(u.quantity) filter (where u.status = any($14)), 0)::int8 as sold \
       from order_units u where u.project_id = w.project and u.sku = w.sku) as c \
     union all \
     select 1, w.ask, w.id::text, c.used, 0::int8, 0::int8 \
     from unnest($6::int4[], $7::int8[], $8::text[], $9::int8[]) as w(ask, project, user_id, id) \
     cross join lateral (select count(*)::int8 as used from order_promotions u \
       where u.project_id = w.project and u.promotion_id = w.id and u.user_id = w.user_id \
         and u.used_at is not null) as c \
     union all \
     select 2, w.ask, w.code, c.total, c.by_user, c.total \
     from unnest($10::int4[], $11::int8[], $12::text[], $13::text[]) as w(ask, project, user_id, code) \
     cross join lateral (select count(*)::int8 as total, \
       count(*) filter (where r.user_id = w.user_id)::int8 as by_user \
       from promo_code_redemptions r where r.project_id = w.project and r.code = w.code) as c";

/// What pricing needs counted for one user: the limited SKUs (each with the start of
/// its current window), the limited promo codes and the per-user limited promotions.
/// Empty when the catalog limits none of them: then nothing is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Needs {
    pub windows: BTreeMap<Sku, Timestamp>,
    pub codes: std::collections::BTreeSet<String>,
    pub promotions: std::collections::BTreeSet<PromotionId>,
}

impl Needs {
    /// What pricing a cart of `skus` with `codes`, or deciding a request naming them,
    /// needs counted at `now` (`Catalog::limits_of`, `Catalog::limited_code`,
    /// `Catalog::limited_promotions`).
    pub fn of<'c>(
        catalog: &Catalog,
        project: ProjectId,
        skus: &[Sku],
        codes: impl IntoIterator<Item = &'c str>,
        now: Timestamp,
    ) -> Self {
        Self {
            windows: super::windows(&catalog.limits_of(project, skus), now),
            codes: codes
                .into_iter()
                .filter(|c| catalog.limited_code(project, c).is_some())
                .map(str::to_owned)
                .collect(),
            promotions: catalog
                .limited_promotions(project, skus)
                .into_keys()
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.codes.is_empty() && self.promotions.is_empty()
    }

    /// Whether counts read for `self` hold every count `other` needs (same windows).
    pub fn covers(&self, other: &Needs) -> bool {
        other
            .windows
            .iter()
            .all(|(sku, since)| self.windows.get(sku) == Some(since))
            && other.codes.is_subset(&self.codes)
            && other.promotions.is_subset(&self.promotions)
    }

    /// The part of `purchases` (read for needs that cover `self`) that `self` names:
    /// the very value a read of `self` alone gives.
    pub fn restrict(&self, purchases: &Purchases) -> Purchases {
        let pick = |sku: &Sku| purchases.by_user.get(sku).map(|p| (sku.clone(), *p));
        Purchases {
            by_user: self.windows.keys().filter_map(pick).collect(),
            sold: self
                .windows
                .keys()
                .filter_map(|sku| purchases.sold.get(sku).map(|n| (sku.clone(), *n)))
                .collect(),
            promotions: self
                .promotions
                .iter()
                .filter_map(|id| purchases.promotions.get(id).map(|n| (*id, *n)))
                .collect(),
            promo_codes: self
                .codes
                .iter()
                .filter_map(|c| purchases.promo_codes.get(c).map(|u| (c.clone(), *u)))
                .collect(),
        }
    }
}

struct Ask {
    project: ProjectId,
    user: UserId,
    needs: Needs,
    reply: oneshot::Sender<Result<Purchases, StoreError>>,
}

/// The queue in front of the grouped purchase reader; cheap to clone. The reader task
/// ends when every handle is dropped.
#[derive(Clone)]
pub struct GroupPurchases {
    queue: mpsc::Sender<Ask>,
    probes: PgPool,
}

impl GroupPurchases {
    /// Starts the batch reader on the current tokio runtime. Its statements run on
    /// probe sessions beside `pool` (`crate::probe`), one per batch in flight.
    pub fn start(pool: &PgPool, config: GroupConfig) -> Self {
        let (queue, probes) = start_probe_reader(pool, config, read_batch);
        Self { queue, probes }
    }

    /// The probe sessions the counts are read on (for the pool gauges).
    pub fn pool(&self) -> &PgPool {
        &self.probes
    }

    /// The user's counts of `needs` (as `OrderStore::purchases_for` reads them), in the
    /// next batch; no read when `needs` is empty.
    ///
    /// # Errors
    /// Database failures (`Batch` when the shared statement failed).
    pub async fn read(
        &self,
        project: ProjectId,
        user: &UserId,
        needs: Needs,
    ) -> Result<Purchases, StoreError> {
        if needs.is_empty() {
            return Ok(Purchases::default());
        }
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            project,
            user: user.clone(),
            needs,
            reply,
        };
        self.queue
            .send(ask)
            .await
            .map_err(|_| StoreError::Invalid("the purchase reader has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| StoreError::Invalid("the purchase reader dropped a read".to_owned()))?
    }
}

/// One part of the statement's arrays: per counted key, the ask's index in the batch,
/// its project and user, and the key (with, for SKUs, the window's start).
#[derive(Default)]
struct Part<K> {
    ask: Vec<i32>,
    project: Vec<i64>,
    user: Vec<String>,
    key: Vec<K>,
}

impl<K> Part<K> {
    fn push(&mut self, ask: i32, project: i64, user: &str, key: K) {
        self.ask.push(ask);
        self.project.push(project);
        self.user.push(user.to_owned());
        self.key.push(key);
    }
}

/// The statement's arrays for a batch.
#[derive(Default)]
struct Keys {
    skus: Part<String>,
    since: Vec<i64>,
    promotions: Part<i64>,
    codes: Part<String>,
}

impl Keys {
    fn of(batch: &[Ask]) -> Self {
        let mut keys = Keys::default();
        for (i, ask) in batch.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let (project, user) = (pid(ask.project), ask.user.as_str());
            for (sku, since) in &ask.needs.windows {
                keys.skus.push(i, project, user, sku.as_str().to_owned());
                keys.since.push(since.unix());
            }
            for id in &ask.needs.promotions {
                let id = i64::try_from(*id).unwrap_or(i64::MAX);
                keys.promotions.push(i, project, user, id);
            }
            for code in &ask.needs.codes {
                keys.codes.push(i, project, user, code.clone());
            }
        }
        keys
    }
}

async fn read_batch(pool: PgPool, batch: Vec<Ask>) {
    let mut answers = vec![Purchases::default(); batch.len()];
    match query(&pool, &batch, &mut answers).await {
        Ok(()) => {
            for (ask, answer) in batch.into_iter().zip(answers) {
                let _ = ask.reply.send(Ok(answer));
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for ask in batch {
                let _ = ask.reply.send(Err(StoreError::Batch(error.clone())));
            }
        }
    }
}

async fn query(pool: &PgPool, batch: &[Ask], answers: &mut [Purchases]) -> Result<(), StoreError> {
    let Keys {
        skus,
        since,
        promotions,
        codes,
    } = Keys::of(batch);
    let rows = sqlx::query(GROUPED_PURCHASES)
        // Prepared: it runs on probe sessions only (`GroupPurchases::start`).
        .persistent(true)
        .bind(skus.ask)
        .bind(skus.project)
        .bind(skus.user)
        .bind(skus.key)
        .bind(since)
        .bind(promotions.ask)
        .bind(promotions.project)
        .bind(promotions.user)
        .bind(promotions.key)
        .bind(codes.ask)
        .bind(codes.project)
        .bind(codes.user)
        .bind(codes.key)
        .bind(&PAID[..])
        .fetch_all(pool)
        .await?;
    for row in rows {
        let kind: i32 = row.try_get("kind")?;
        let ask: i32 = row.try_get("ask")?;
        let Some(purchases) = usize::try_from(ask).ok().and_then(|i| answers.get_mut(i)) else {
            continue;
        };
        let key: String = row.try_get("key")?;
        let (a, b, c): (i64, i64, i64) = (row.try_get("a")?, row.try_get("b")?, row.try_get("c")?);
        match kind {
            0 => {
                let Ok(sku) = Sku::parse(key) else { continue };
                let counts = SkuPurchases {
                    in_window: units(b),
                    total: units(a),
                };
                purchases.by_user.insert(sku.clone(), counts);
                purchases.sold.insert(sku, units(c));
            }
            1 => {
                let id = key
                    .parse::<i64>()
                    .ok()
                    .and_then(|id| PromotionId::try_from(id).ok());
                purchases.promotions.insert(id.unwrap_or(0), units(a));
            }
            _ => {
                let usage = PromoCodeUsage {
                    total: units(a),
                    by_user: units(b),
                    by_code: units(c),
                };
                purchases.promo_codes.insert(key, usage);
            }
        }
    }
    Ok(())
}
