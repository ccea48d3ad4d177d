//! Checkout: a priced snapshot becomes an order, with its limits checked under the SKU
//! locks, its number from the project's sequence, its command id in the ledger, and
//! the user's older unpaid orders for the same limited things expired.

use std::collections::BTreeMap;

use cart_domain::{
    check_limits, Catalog, ItemLimits, NewOrder, Order, OrderCommand, OrderError, OrderId,
    OrderStatus, ProjectId, PromoCode, PromotionId, Sku, Timestamp, UserId,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::payment::clear_bought_cart;
use super::promotions;
use super::purchases::{self, limit_locks, limited_code, limited_skus, windows};
use super::{
    end, log, oid, order_stream_id, pid, Checkout, CheckoutOutcome, Created, OrderStore,
    OrderStoreError,
};
use crate::ledger::{self, Replay};
use crate::locks;
use crate::store::{ProcessedCommand, StoreError};

/// The name of a project's order number sequence (a project id is a number, so the name
/// needs no quoting).
fn order_id_sequence(project: ProjectId) -> String {
    format!("order_ids_{}", project.get())
}

fn random_token() -> String {
    // Two v4 UUIDs: 244 random bits from the OS generator, as 64 hex digits.
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

impl OrderStore {
    /// Creates an order from a priced snapshot, with its limits checked under the SKU
    /// locks, and expires the user's older unpaid orders that share a limited item or the
    /// promo code. `reply` makes the ledger's reply for a command id from the outcome.
    ///
    /// # Errors
    /// Database failures; refusals are `CheckoutOutcome::Refused`.
    pub async fn checkout(
        &self,
        catalog: &Catalog,
        request: Checkout,
        reply: impl Fn(&Created) -> Vec<u8> + Send + Sync,
    ) -> Result<CheckoutOutcome, OrderStoreError> {
        let limited = limited_skus(catalog, request.project, &request.snapshot.lines);
        // A free order is bought, and redeems its code, at checkout: the code's limits are
        // checked then, under its lock, as a payment does.
        let code = request
            .snapshot
            .is_free()
            .then(|| {
                let name = request.snapshot.promo_code.as_deref();
                limited_code(catalog, request.project, name)
            })
            .flatten();
        let limits = Limited {
            skus: limited,
            code,
            promotions: promotions::limited(catalog, request.project, &request.snapshot),
        };
        self.ensure_sequence(request.project).await?;
        let (pool, request, limits, reply) = (&self.pool, &request, &limits, &reply);
        locks::retry_on_deadlock("checkout", || async move {
            let mut tx = pool.begin().await?;
            let (outcome, commit) = checkout_in(&mut tx, request, limits, reply).await?;
            end(tx, commit).await?;
            Ok(outcome)
        })
        .await
    }

    /// A checkout's command id answered before: its first reply (or a reuse), looked up
    /// before anything is priced, so a retry gets its first answer even when the cart or
    /// the catalog changed since.
    ///
    /// # Errors
    /// Database failures.
    pub async fn replay(
        &self,
        project: ProjectId,
        user: &UserId,
        command: &ProcessedCommand,
    ) -> Result<Option<CheckoutOutcome>, OrderStoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(replayed(&mut conn, project, user, command).await?)
    }

    /// Creates the project's order number sequence once (per process; `if not exists`
    /// for the others).
    async fn ensure_sequence(&self, project: ProjectId) -> Result<(), OrderStoreError> {
        if self
            .sequences
            .lock()
            .is_ok_and(|known| known.contains(&project.get()))
        {
            return Ok(());
        }
        let created = sqlx::query(&format!(
            "create sequence if not exists {}",
            order_id_sequence(project)
        ))
        .execute(&self.pool)
        .await;
        match created {
            Ok(_) => {}
            // Two processes creating it at once: the loser meets the winner's row in the
            // catalog (23505) or its name (42P07); either way it exists now.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("23505" | "42P07")) => {}
            Err(e) => return Err(e.into()),
        }
        if let Ok(mut known) = self.sequences.lock() {
            known.insert(project.get());
        }
        Ok(())
    }
}

/// What the ledger says of a checkout's command id: its first reply, a reuse, or nothing.
async fn replayed(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    command: &ProcessedCommand,
) -> Result<Option<CheckoutOutcome>, sqlx::Error> {
    let key = (pid(project), user.as_str(), command.command_id.as_str());
    let found = ledger::lookup(conn, key).await?;
    Ok(found.map(|row| match row.replay_for(&command.fingerprint) {
        Replay::Answered(first) => CheckoutOutcome::Replayed(first),
        Replay::IdReused => CheckoutOutcome::IdReused,
    }))
}

/// What a checkout counts and locks: its limited SKUs, its code when the order redeems
/// it now (a free order), and its per-user limited promotions.
struct Limited<'c> {
    skus: BTreeMap<Sku, &'c ItemLimits>,
    code: Option<(&'c str, &'c PromoCode)>,
    promotions: BTreeMap<PromotionId, u32>,
}

async fn checkout_in(
    conn: &mut PgConnection,
    request: &Checkout,
    limits: &Limited<'_>,
    reply: &(impl Fn(&Created) -> Vec<u8> + Send + Sync),
) -> Result<(CheckoutOutcome, bool), OrderStoreError> {
    let (project, user, now) = (request.project, &request.user, request.now);
    if let Some(command) = &request.command {
        // The cart store's key for the id: a cart command and a checkout with one id
        // wait for each other, and the second finds the first's ledger row.
        let key = locks::command(pid(project), user.as_str(), &command.command_id);
        locks::take(&mut *conn, &[key]).await?;
        if let Some(outcome) = replayed(&mut *conn, project, user, command).await? {
            return Ok((outcome, false));
        }
    }
    let mut keys = limit_locks(project, &limits.skus, limits.code, &limits.promotions);
    keys.push(locks::user(project, user));
    locks::take(&mut *conn, &keys).await?;
    let verdict = check(&mut *conn, request, limits).await?;
    // Not transactional: a refused or failed checkout leaves a gap, as Xsolla's do.
    let order_id: i64 =
        sqlx::query_scalar(&format!("select nextval('{}')", order_id_sequence(project)))
            .fetch_one(&mut *conn)
            .await?;
    let order_id = u64::try_from(order_id).unwrap_or(0);
    let new = NewOrder {
        order_id,
        payment_token: random_token(),
        project,
        user: user.clone(),
        snapshot: request.snapshot.clone(),
        catalog_version: request.catalog_version,
        now,
        custom_parameters: request.custom_parameters.clone(),
        limits: verdict,
    };
    let command = match &request.cart_id {
        Some(cart_id) => OrderCommand::Checkout {
            cart_id: cart_id.clone(),
            order: new,
        },
        None => OrderCommand::CheckoutItem { order: new },
    };
    let events = match cart_domain::decide_order(&Order::default(), command) {
        Ok(events) => events,
        Err(refusal) => return Ok((CheckoutOutcome::Refused(refusal), false)),
    };
    let order = log::append(&mut *conn, &Order::default(), 0, &events, now).await?;
    let Some(details) = order.details().cloned() else {
        return Ok((CheckoutOutcome::Refused(OrderError::NotFound), false));
    };
    let done = order.status() == Some(OrderStatus::Done);
    // A free order is bought now, so its promotions are used now.
    let used_at = done.then_some(now);
    promotions::record(&mut *conn, &details, &limits.promotions, used_at).await?;
    let code_name = details.snapshot.promo_code.as_deref();
    let expired = expire_older(&mut *conn, request, order_id, limits, code_name).await?;
    if done {
        // A free order is bought at once: its cart is emptied as a paid one's is.
        if let Some(cart_id) = &details.cart_id {
            clear_bought_cart(&mut *conn, project, user, cart_id, order_id).await?;
        }
    }
    let created = Created {
        order_id,
        token: details.payment_token.clone(),
        status: order.status().unwrap_or(OrderStatus::New),
        expired,
    };
    if let Some(command) = &request.command {
        record(&mut *conn, request, command, order_id, reply(&created)).await?;
    }
    Ok((CheckoutOutcome::Created(created), true))
}

/// The limits of the order, counted under its locks: the user's paid units, everyone's
/// sold units and other users' holds younger than `hold`; then a free order's code;
/// then the user's uses of its limited promotions.
async fn check(
    conn: &mut PgConnection,
    request: &Checkout,
    limited: &Limited<'_>,
) -> Result<Result<(), OrderError>, sqlx::Error> {
    let (promotions, code) = (&limited.promotions, limited.code);
    let limited = &limited.skus;
    let now = request.now;
    let hold_secs = i64::try_from(request.hold.as_secs()).unwrap_or(i64::MAX);
    let hold_since = Timestamp::from_unix(now.unix().saturating_sub(hold_secs));
    let windows = windows(limited, now);
    let counted = purchases::read(
        &mut *conn,
        request.project,
        &request.user,
        &windows,
        Some(hold_since),
        0,
    )
    .await?;
    let limits = check_limits(
        &request.snapshot.lines,
        |sku| limited.get(sku).copied(),
        &counted,
        now,
    );
    let limits = match (limits, code) {
        (Ok(()), Some(code)) => {
            purchases::check_code(&mut *conn, request.project, &request.user, code).await?
        }
        (limits, _) => limits,
    };
    if limits.is_err() || promotions.is_empty() {
        return Ok(limits);
    }
    promotions::check(conn, request.project, &request.user, promotions, 0).await
}

/// The user's (`$2`) unpaid orders older than `$3` that hold the promo code `$4`, one of
/// the SKUs `$5` or one of the limited promotions `$6` (Xsolla: a new order for a limited
/// item, promo code or promotion expires the older unpaid ones): a new checkout expires
/// them.
pub const EXPIRING: &str =
    "select o.order_id from orders o where o.project_id = $1 and o.user_id = $2 \
       and o.status = 'new' and o.order_id < $3 \
       and (($4::text is not null and o.promo_code = $4) \
         or exists (select 1 from order_units u where u.project_id = o.project_id \
                      and u.order_id = o.order_id and u.sku = any($5)) \
         or (cardinality($6::int8[]) > 0 and exists (select 1 from order_promotions p \
                      where p.project_id = o.project_id and p.order_id = o.order_id \
                        and p.promotion_id = any($6)))) \
     order by o.order_id";

/// Expires the user's older unpaid orders that share a limited item, the promo code or
/// a limited promotion with the new one (each under its order lock, in order id order).
async fn expire_older(
    conn: &mut PgConnection,
    request: &Checkout,
    order_id: OrderId,
    limited: &Limited<'_>,
    promo_code: Option<&str>,
) -> Result<Vec<OrderId>, OrderStoreError> {
    let project = request.project;
    let promotion_ids = limited.promotions.keys();
    let expiring: Vec<i64> = sqlx::query_scalar(EXPIRING)
        .bind(pid(project))
        .bind(request.user.as_str())
        .bind(oid(order_id))
        .bind(promo_code)
        .bind(limited.skus.keys().map(Sku::as_str).collect::<Vec<_>>())
        .bind(
            promotion_ids
                .map(|id| i64::try_from(*id).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *conn)
        .await?;
    let mut expired = Vec::new();
    for old in expiring {
        let old = u64::try_from(old).unwrap_or(0);
        locks::take(&mut *conn, &[locks::order(project, old)]).await?;
        let Some(loaded) = log::load(&mut *conn, project, old).await? else {
            continue;
        };
        let expire = OrderCommand::Expire {
            by_order: Some(order_id),
        };
        if let Ok(events) = cart_domain::decide_order(&loaded.order, expire) {
            if !events.is_empty() {
                log::append(
                    &mut *conn,
                    &loaded.order,
                    loaded.version,
                    &events,
                    request.now,
                )
                .await?;
                expired.push(old);
            }
        }
    }
    Ok(expired)
}

/// The checkout's ledger row. Under the command-id lock, and after the lookup found no
/// row, it always goes in; if it does not, someone wrote the ledger without the lock,
/// and the checkout fails rather than answer twice.
async fn record(
    conn: &mut PgConnection,
    request: &Checkout,
    command: &ProcessedCommand,
    order_id: OrderId,
    reply: Vec<u8>,
) -> Result<(), OrderStoreError> {
    let answered = ProcessedCommand {
        reply,
        ..command.clone()
    };
    let key = (
        pid(request.project),
        request.user.as_str(),
        command.command_id.as_str(),
    );
    let entry = ledger::Entry {
        key,
        command: &answered,
        stream_id: order_stream_id(request.project, order_id),
    };
    let recorded = ledger::record(conn, &[entry]).await?;
    if ledger::was_recorded(&recorded, key) {
        Ok(())
    } else {
        Err(StoreError::DuplicateCommand {
            command_id: command.command_id.clone(),
        }
        .into())
    }
}
