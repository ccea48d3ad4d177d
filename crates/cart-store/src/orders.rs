//! The order store: one event stream per order in `order_events`, the `orders`
//! projection, the per-project order number, and the ledgers purchase limits and
//! promo-code redemptions are counted from (`order_units`, `promo_code_redemptions`),
//! all written in the order command's transaction.
//!
//! Purchase limits are enforced under advisory locks, one per limited SKU, taken in key
//! order before anything else, at checkout and at payment: two users racing for the last
//! unit queue on that SKU's lock, and the second one counts the first one's units.
//!
//! - At checkout an item's global stock (`per_item`) counts the units of paid orders
//!   (canceled ones too: refunds give nothing back) and the units other users' unpaid
//!   orders hold, for `hold` after their creation. Per-user limits count the user's paid
//!   units (since the last reset for a recurrent limit): the user's own older unpaid
//!   orders with that item are expired by the new one, so they hold nothing.
//! - At payment both count paid units only: a hold protects a checkout, not a payment
//!   that comes after the hold lapsed and someone else took the unit.
//!
//! Lock order, everywhere: SKU locks, then the user's lock, then order locks in order id
//! order, then cart streams (`append_in`). A transaction that takes no SKU lock takes
//! only the rest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use cart_domain::{
    check_limits, Cart, CartCommand, CartId, Catalog, Currency, ItemLimits, NewOrder, Order,
    OrderCommand, OrderError, OrderEvent, OrderId, OrderLine, OrderSnapshot, OrderStatus,
    PaymentMode, ProjectId, PromoCode, PromoCodeUsage, Purchases, Sku, SkuPurchases, Timestamp,
    UserId,
};
use cart_proto::order as wire;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::store::{
    append_in, command_lock, load_in, stream_lock, Append, ProcessedCommand, StoreError, StreamKey,
};

/// Why an order store operation failed (not a refusal: those are `OrderError`s).
#[derive(Debug, thiserror::Error)]
pub enum OrderStoreError {
    #[error("event store")]
    Store(#[from] StoreError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("cannot decode order event at version {version} of order {order_id}")]
    Decode {
        order_id: i64,
        version: i64,
        #[source]
        source: wire::OrderDecodeError,
    },
    /// The bought cart changed under the payment's locks; the payment rolled back.
    #[error("the cart of order {order_id} could not be cleared: {source}")]
    Cart {
        order_id: u64,
        #[source]
        source: StoreError,
    },
}

impl OrderStoreError {
    /// Whether the database could not be reached or answered in time.
    pub fn is_unavailable(&self) -> bool {
        match self {
            OrderStoreError::Store(e) => e.is_unavailable(),
            OrderStoreError::Database(e) => StoreError::Database(clone_kind(e)).is_unavailable(),
            _ => false,
        }
    }

    fn is_deadlock(&self) -> bool {
        let (OrderStoreError::Database(sqlx::Error::Database(db))
        | OrderStoreError::Store(StoreError::Database(sqlx::Error::Database(db)))) = self
        else {
            return false;
        };
        db.code().as_deref() == Some("40P01")
    }
}

// sqlx errors are not Clone; only the kinds `is_unavailable` looks at matter.
fn clone_kind(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        _ => sqlx::Error::Protocol(e.to_string()),
    }
}

/// An order folded from its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedOrder {
    pub order: Order,
    pub version: i64,
}

/// What a checkout asks for; the shell priced the cart and read the clock.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub project: ProjectId,
    pub user: UserId,
    /// None for a single-item order.
    pub cart_id: Option<CartId>,
    pub snapshot: OrderSnapshot,
    pub catalog_version: u64,
    pub now: Timestamp,
    pub custom_parameters: Option<String>,
    /// How long another user's unpaid order holds its units of a globally limited item.
    pub hold: Duration,
    /// The ledger entry when the caller sent a command id; its `reply` is filled in by
    /// the `reply` function given to [`OrderStore::checkout`].
    pub command: Option<ProcessedCommand>,
}

/// A created order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub order_id: OrderId,
    pub token: String,
    pub status: OrderStatus,
    /// Older unpaid orders of the same user this one expired.
    pub expired: Vec<OrderId>,
}

/// What a checkout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Created(Created),
    /// The command id was answered before: its first reply.
    Replayed(ProcessedCommand),
    /// The command id was used before for another request.
    IdReused,
    Refused(OrderError),
}

/// A payment confirmation from the payment side.
#[derive(Debug, Clone)]
pub struct Payment {
    pub project: ProjectId,
    pub order_id: OrderId,
    pub invoice_id: String,
    pub amount: Decimal,
    pub currency: Currency,
    pub mode: PaymentMode,
    pub now: Timestamp,
}

/// The answer to an order command other than checkout: the order after it, or the
/// domain's refusal.
pub type Decided = Result<LoadedOrder, OrderError>;

/// A page of a user's orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    pub orders: Vec<Order>,
    pub total: u64,
}

/// Which of a user's orders to list.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub limit: u32,
    pub offset: u64,
    /// Anything PostgreSQL reads as a `timestamptz`.
    pub created_from: Option<String>,
    pub created_until: Option<String>,
}

/// The order store; cheap to clone.
#[derive(Debug, Clone)]
pub struct OrderStore {
    pool: PgPool,
    /// Projects whose order number sequence this process knows exists.
    sequences: std::sync::Arc<std::sync::Mutex<BTreeSet<u64>>>,
}

/// The name of a project's order number sequence (a project id is a number, so the name
/// needs no quoting).
fn order_id_sequence(project: ProjectId) -> String {
    format!("order_ids_{}", project.get())
}

// Advisory lock classes of the order store (see store.rs for the cart classes).
const SKU_LOCK: i32 = 0x4f53_4b55;
const USER_LOCK: i32 = 0x4f55_5352;
const ORDER_LOCK: i32 = 0x4f52_4452;

const PAID: [&str; 3] = ["paid", "done", "canceled"];

// A fixed namespace for order stream ids, apart from cart streams'.
const ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x1c0e_8d43_5a7f_4b29_9e06_3f1a_b8c2_d457);

/// The stream id of an order: derived, so nothing needs looking up.
pub fn order_stream_id(project: ProjectId, order_id: OrderId) -> Uuid {
    Uuid::new_v5(&ORDER_NAMESPACE, format!("{project}:{order_id}").as_bytes())
}

fn pid(project: ProjectId) -> i64 {
    i64::try_from(project.get()).unwrap_or(i64::MAX)
}

fn oid(order_id: OrderId) -> i64 {
    i64::try_from(order_id).unwrap_or(i64::MAX)
}

fn lock_key(name: &str) -> i32 {
    let id = Uuid::new_v5(&ORDER_NAMESPACE, name.as_bytes());
    let b = id.as_bytes();
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

async fn lock(conn: &mut PgConnection, keys: &[(i32, i32)]) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "select pg_advisory_xact_lock(c, k) from unnest($1::int4[], $2::int4[]) as l(c, k)",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

fn sku_locks(project: ProjectId, skus: &BTreeSet<Sku>) -> Vec<(i32, i32)> {
    let mut keys: Vec<(i32, i32)> = skus
        .iter()
        .map(|sku| (SKU_LOCK, lock_key(&format!("{project}:{sku}"))))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn order_lock(project: ProjectId, order_id: OrderId) -> (i32, i32) {
    (ORDER_LOCK, lock_key(&format!("order:{project}:{order_id}")))
}

/// The snapshot's promo code when the catalog limits its redemptions.
fn limited_code<'c>(
    catalog: &'c Catalog,
    project: ProjectId,
    snapshot: &'c OrderSnapshot,
) -> Option<(&'c str, &'c PromoCode)> {
    let name = snapshot.promo_code.as_deref()?;
    let promo = catalog.promo_code(project, name)?;
    redemptions_limited(promo).then_some((name, promo))
}

/// Whether one more redemption of a limited code fits, counted under the code's lock.
async fn check_code(
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

fn code_lock(project: ProjectId, code: &str) -> (i32, i32) {
    (SKU_LOCK, lock_key(&format!("code:{project}:{code}")))
}

/// What the ledger says of a checkout's command id: its first reply, a reuse, or nothing.
async fn ledger_outcome(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    command: &ProcessedCommand,
) -> Result<Option<CheckoutOutcome>, sqlx::Error> {
    let row = sqlx::query(
        "select fingerprint, content_type, reply from processed_commands \
         where project_id = $1 and user_id = $2 and command_id = $3",
    )
    .bind(pid(project))
    .bind(user.as_str())
    .bind(&command.command_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let fingerprint: Vec<u8> = row.try_get("fingerprint")?;
    if fingerprint != command.fingerprint {
        return Ok(Some(CheckoutOutcome::IdReused));
    }
    Ok(Some(CheckoutOutcome::Replayed(ProcessedCommand {
        command_id: command.command_id.clone(),
        fingerprint,
        content_type: row.try_get("content_type")?,
        reply: row.try_get("reply")?,
    })))
}

/// The SKUs among `lines` the catalog limits, with their limits.
pub fn limited_skus<'c>(
    catalog: &'c Catalog,
    project: ProjectId,
    lines: &[OrderLine],
) -> BTreeMap<Sku, &'c ItemLimits> {
    limits_of(
        catalog,
        project,
        lines.iter().filter(|l| !l.is_bonus).map(|l| &l.sku),
    )
}

/// The limited ones among `skus`, with their limits.
fn limits_of<'c, 's>(
    catalog: &'c Catalog,
    project: ProjectId,
    skus: impl Iterator<Item = &'s Sku>,
) -> BTreeMap<Sku, &'c ItemLimits> {
    skus.filter_map(|sku| {
        let item = catalog.item(project, sku)?;
        let limited = item.limits.per_user.is_some() || item.limits.per_item.is_some();
        limited.then(|| (sku.clone(), &item.limits))
    })
    .collect()
}

/// Whether the catalog limits a code's redemptions.
fn redemptions_limited(promo: &PromoCode) -> bool {
    promo.redeem_total_limit.is_some()
        || promo.redeem_user_limit.is_some()
        || promo.redeem_code_limit.is_some()
}

fn random_token() -> String {
    // Two v4 UUIDs: 244 random bits from the OS generator, as 64 hex digits.
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Runs `$body` (an expression over `$conn`, giving `(value, commit)`) in a transaction,
/// again when PostgreSQL broke a deadlock by aborting it (nothing of it was written).
macro_rules! in_tx {
    ($pool:expr, |$conn:ident| $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = $pool.begin().await?;
            let result = {
                let $conn: &mut PgConnection = &mut tx;
                $body.await
            };
            match result {
                Ok((value, commit)) => {
                    if commit {
                        tx.commit().await?;
                    } else {
                        tx.rollback().await?;
                    }
                    break Ok(value);
                }
                Err(e) if attempt < 3 && OrderStoreError::is_deadlock(&e) => {
                    tracing::debug!(attempt, "order transaction deadlocked; running it again");
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

impl OrderStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sequences: std::sync::Arc::default(),
        }
    }

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
            .then(|| limited_code(catalog, request.project, &request.snapshot))
            .flatten();
        self.ensure_sequence(request.project).await?;
        in_tx!(self.pool, |conn| checkout_in(
            conn, &request, &limited, code, &reply
        ))
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
        Ok(ledger_outcome(&mut conn, project, user, command).await?)
    }

    /// Confirms a payment: amount and currency must match; limits are checked again
    /// under the SKU locks. On the first confirmation the order's units count as bought,
    /// its promo code as redeemed, and its cart is cleared and loses the code, in the same
    /// transaction. The same invoice again changes nothing.
    ///
    /// # Errors
    /// Database failures, or a cart that cannot be cleared.
    pub async fn confirm_payment(
        &self,
        catalog: &Catalog,
        payment: Payment,
    ) -> Result<Decided, OrderStoreError> {
        // The lines never change after creation: read them unlocked to know which SKU
        // locks to take first.
        let Some(peek) = self.load(payment.project, payment.order_id).await? else {
            return Ok(Err(OrderError::NotFound));
        };
        let lines = peek
            .order
            .details()
            .map(|d| d.snapshot.lines.clone())
            .unwrap_or_default();
        let limited = limited_skus(catalog, payment.project, &lines);
        let code = peek
            .order
            .details()
            .and_then(|d| limited_code(catalog, payment.project, &d.snapshot));
        in_tx!(self.pool, |conn| pay_in(conn, &payment, &limited, code))
    }

    /// A refund: paid or done -> canceled. Units stay counted.
    ///
    /// # Errors
    /// Database failures.
    pub async fn cancel(
        &self,
        project: ProjectId,
        order_id: OrderId,
        reason: String,
    ) -> Result<Decided, OrderStoreError> {
        in_tx!(self.pool, |conn| simple_in(
            conn,
            project,
            order_id,
            OrderCommand::Cancel {
                reason: reason.clone(),
            },
        ))
    }

    /// The order_paid webhook was delivered: paid -> done. Idempotent.
    ///
    /// # Errors
    /// Database failures, and a refusal (an order not found or not paid) as
    /// `OrderStoreError::Store(StoreError::Invalid)`.
    pub async fn mark_delivered(
        &self,
        project_id: u64,
        order_id: u64,
    ) -> Result<(), OrderStoreError> {
        let project = ProjectId::parse(project_id)
            .map_err(|e| StoreError::Invalid(format!("project {project_id}: {e}")))?;
        let outcome: Decided = in_tx!(self.pool, |conn| simple_in(
            conn,
            project,
            order_id,
            OrderCommand::MarkDelivered
        ))?;
        match outcome {
            Ok(_) => Ok(()),
            // A refund that came first leaves a canceled order canceled.
            Err(OrderError::InvalidTransition {
                from: OrderStatus::Canceled,
                ..
            }) => Ok(()),
            Err(refusal) => Err(StoreError::Invalid(format!("order {order_id}: {refusal}")).into()),
        }
    }

    /// An order by number, whoever it belongs to (callers check the owner).
    ///
    /// # Errors
    /// Database failures and undecodable events.
    pub async fn load(
        &self,
        project: ProjectId,
        order_id: OrderId,
    ) -> Result<Option<LoadedOrder>, OrderStoreError> {
        let mut conn = self.pool.acquire().await?;
        load_order(&mut conn, project, order_id).await
    }

    /// The order a payment token belongs to.
    ///
    /// # Errors
    /// Database failures and undecodable events.
    pub async fn load_by_token(
        &self,
        project: ProjectId,
        token: &str,
    ) -> Result<Option<LoadedOrder>, OrderStoreError> {
        let mut conn = self.pool.acquire().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "select order_id from orders where project_id = $1 and payment_token = $2",
        )
        .bind(pid(project))
        .bind(token)
        .fetch_optional(&mut *conn)
        .await?;
        match found {
            Some(order_id) => {
                load_order(&mut conn, project, u64::try_from(order_id).unwrap_or(0)).await
            }
            None => Ok(None),
        }
    }

    /// A user's orders, earliest first.
    ///
    /// # Errors
    /// Database failures, and `Invalid` for a date PostgreSQL cannot read.
    pub async fn search(
        &self,
        project: ProjectId,
        user: &UserId,
        search: &Search,
    ) -> Result<SearchPage, OrderStoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "select order_id, count(*) over () as total from orders \
             where project_id = $1 and user_id = $2 \
               and ($3::timestamptz is null or created_at >= $3::timestamptz) \
               and ($4::timestamptz is null or created_at <= $4::timestamptz) \
             order by order_id limit $5 offset $6",
        )
        .bind(pid(project))
        .bind(user.as_str())
        .bind(search.created_from.as_deref())
        .bind(search.created_until.as_deref())
        .bind(i64::from(search.limit))
        .bind(i64::try_from(search.offset).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from_query)?;
        let mut page = SearchPage::default();
        for row in rows {
            let order_id: i64 = row.try_get("order_id")?;
            let total: i64 = row.try_get("total")?;
            page.total = u64::try_from(total).unwrap_or(0);
            if let Some(loaded) =
                load_order(&mut conn, project, u64::try_from(order_id).unwrap_or(0)).await?
            {
                page.orders.push(loaded.order);
            }
        }
        if page.orders.is_empty() && search.offset > 0 {
            // Past the end: the count comes from a query without the offset.
            let total: i64 = sqlx::query_scalar(
                "select count(*) from orders where project_id = $1 and user_id = $2 \
                   and ($3::timestamptz is null or created_at >= $3::timestamptz) \
                   and ($4::timestamptz is null or created_at <= $4::timestamptz)",
            )
            .bind(pid(project))
            .bind(user.as_str())
            .bind(search.created_from.as_deref())
            .bind(search.created_until.as_deref())
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from_query)?;
            page.total = u64::try_from(total).unwrap_or(0);
        }
        Ok(page)
    }

    /// What pricing needs of the user's purchases: of the limited ones among `skus`
    /// (since each one's last reset) and the redemptions of `code` when it is limited.
    /// No query when nothing is limited, the common case on the command path.
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
        let windows = windows(&limits_of(catalog, project, skus.iter()), now);
        let codes: Vec<(String, Vec<String>)> = code
            .filter(|c| {
                catalog
                    .promo_code(project, c)
                    .is_some_and(redemptions_limited)
            })
            .map(|c| (c.to_owned(), vec![c.to_owned()]))
            .into_iter()
            .collect();
        if windows.is_empty() && codes.is_empty() {
            return Ok(Purchases::default());
        }
        self.purchases(project, user, &windows, &codes).await
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
        let mut purchases = read_purchases(&mut conn, project, user, windows, None, 0).await?;
        read_redemptions(&mut conn, project, user, codes, &mut purchases).await?;
        Ok(purchases)
    }
}

/// Folds one order's stream.
async fn load_order(
    conn: &mut PgConnection,
    project: ProjectId,
    order_id: OrderId,
) -> Result<Option<LoadedOrder>, OrderStoreError> {
    let rows = sqlx::query(
        "select version, event_type, schema_version, payload from order_events \
         where stream_id = $1 order by version",
    )
    .bind(order_stream_id(project, order_id))
    .fetch_all(conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut order = Order::default();
    let mut version = 0;
    for row in rows {
        version = row.try_get("version")?;
        let event = wire::decode(
            row.try_get("event_type")?,
            row.try_get("schema_version")?,
            row.try_get("payload")?,
        )
        .map_err(|source| OrderStoreError::Decode {
            order_id: oid(order_id),
            version,
            source,
        })?;
        order = cart_domain::apply_order(order, &event);
    }
    Ok(Some(LoadedOrder { order, version }))
}

/// Counts purchases of `windows`' SKUs (the value: the start of the SKU's current
/// recurrent window, or the epoch). `hold_since`: also count other users' unpaid units
/// created after it in `sold`. `exclude`: an order not to count (the one being paid).
async fn read_purchases(
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
    let rows = sqlx::query(
        "select w.sku, \
           coalesce(sum(u.quantity) filter (where u.user_id = $2 and u.status = any($6)), 0)::int8 as user_total, \
           coalesce(sum(u.quantity) filter (where u.user_id = $2 and u.status = any($6) \
             and u.paid_at >= to_timestamp(w.since)), 0)::int8 as user_window, \
           coalesce(sum(u.quantity) filter (where u.status = any($6)), 0)::int8 as sold, \
           coalesce(sum(u.quantity) filter (where $4::int8 is not null and u.status = 'new' \
             and u.user_id <> $2 and u.created_at > to_timestamp($4::int8)), 0)::int8 as held \
         from unnest($3::text[], $7::int8[]) as w(sku, since) \
         left join order_units u on u.project_id = $1 and u.sku = w.sku and u.order_id <> $5 \
         group by w.sku",
    )
    .bind(pid(project))
    .bind(user.as_str())
    .bind(windows.keys().map(|s| s.as_str()).collect::<Vec<_>>())
    .bind(hold_since.map(Timestamp::unix))
    .bind(exclude)
    .bind(&PAID[..])
    .bind(windows.values().map(|t| t.unix()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    let units = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
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

/// Adds the redemption counts of each `(code, codes of its promotion)`.
async fn read_redemptions(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    codes: &[(String, Vec<String>)],
    purchases: &mut Purchases,
) -> Result<(), sqlx::Error> {
    for (code, siblings) in codes {
        let row = sqlx::query(
            "select count(*) filter (where code = any($2))::int8 as total, \
                    count(*) filter (where code = any($2) and user_id = $3)::int8 as by_user, \
                    count(*) filter (where code = $4)::int8 as by_code \
             from promo_code_redemptions where project_id = $1 and code = any($2)",
        )
        .bind(pid(project))
        .bind(siblings)
        .bind(user.as_str())
        .bind(code)
        .fetch_one(&mut *conn)
        .await?;
        let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        purchases.promo_codes.insert(
            code.clone(),
            PromoCodeUsage {
                total: n(row.try_get("total")?),
                by_user: n(row.try_get("by_user")?),
                by_code: n(row.try_get("by_code")?),
            },
        );
    }
    Ok(())
}

/// The start of each limited SKU's current per-user window (the epoch without one).
fn windows(limited: &BTreeMap<Sku, &ItemLimits>, now: Timestamp) -> BTreeMap<Sku, Timestamp> {
    limited
        .iter()
        .map(|(sku, limits)| {
            let since = limits
                .per_user
                .as_ref()
                .and_then(|p| p.recurrent_schedule)
                .map_or(Timestamp::from_unix(0), |s| s.last_reset(now));
            (sku.clone(), since)
        })
        .collect()
}

/// Appends events to an order's stream after `expected` and moves its projection rows.
async fn append_order(
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
    let project = details.project;
    let stream_id = order_stream_id(project, details.order_id);
    let n = events.len();
    let mut versions = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for (i, event) in events.iter().enumerate() {
        let encoded = wire::encode(event);
        versions.push(expected + 1 + i64::try_from(i).unwrap_or(0));
        ids.push(Uuid::now_v7());
        types.push(encoded.event_type);
        payloads.push(encoded.payload.to_string());
    }
    // The version guard: the primary key refuses a version taken behind the lock.
    sqlx::query(
        "insert into order_events (stream_id, version, event_id, project_id, order_id, user_id, \
           event_type, schema_version, payload, metadata) \
         select $1, v, id, $2, $3, $4, t, $5, p::jsonb, '{}'::jsonb \
         from unnest($6::int8[], $7::uuid[], $8::text[], $9::text[]) as e(v, id, t, p)",
    )
    .bind(stream_id)
    .bind(pid(project))
    .bind(oid(details.order_id))
    .bind(details.user.as_str())
    .bind(wire::SCHEMA_VERSION)
    .bind(&versions)
    .bind(&ids)
    .bind(&types)
    .bind(&payloads)
    .execute(&mut *conn)
    .await?;
    let status = order.status().unwrap_or(OrderStatus::New).name();
    let version = expected + i64::try_from(n).unwrap_or(0);
    if expected == 0 {
        sqlx::query(
            "insert into orders (project_id, order_id, stream_id, user_id, cart_id, payment_token, \
               status, promo_code, version, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10))",
        )
        .bind(pid(project))
        .bind(oid(details.order_id))
        .bind(stream_id)
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
        .bind(pid(project))
        .bind(oid(details.order_id))
        .bind(details.user.as_str())
        .bind(status)
        .bind(details.created_at.unix())
        .bind(units.keys().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(units.values().copied().collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query(
            "update orders set status = $3, version = $4, updated_at = now() \
             where project_id = $1 and order_id = $2",
        )
        .bind(pid(project))
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
    sqlx::query(
        "update order_units set status = $3, \
           paid_at = case when $4 then to_timestamp($5) else paid_at end \
         where project_id = $1 and order_id = $2",
    )
    .bind(pid(project))
    .bind(oid(details.order_id))
    .bind(status)
    .bind(bought_now)
    .bind(now.unix())
    .execute(&mut *conn)
    .await?;
    if bought_now {
        if let Some(code) = &details.snapshot.promo_code {
            sqlx::query(
                "insert into promo_code_redemptions (project_id, order_id, user_id, code) \
                 values ($1, $2, $3, $4) on conflict do nothing",
            )
            .bind(pid(project))
            .bind(oid(details.order_id))
            .bind(details.user.as_str())
            .bind(code)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(order)
}

async fn checkout_in(
    conn: &mut PgConnection,
    request: &Checkout,
    limited: &BTreeMap<Sku, &ItemLimits>,
    code: Option<(&str, &PromoCode)>,
    reply: &(impl Fn(&Created) -> Vec<u8> + Send + Sync),
) -> Result<(CheckoutOutcome, bool), OrderStoreError> {
    let project = request.project;
    if let Some(command) = &request.command {
        // The cart store's key for the id: a cart command and a checkout with one id
        // wait for each other, and the second finds the first's ledger row.
        lock(
            &mut *conn,
            &[command_lock(
                pid(project),
                request.user.as_str(),
                &command.command_id,
            )],
        )
        .await?;
        if let Some(outcome) = ledger_outcome(&mut *conn, project, &request.user, command).await? {
            return Ok((outcome, false));
        }
    }
    let skus: BTreeSet<Sku> = limited.keys().cloned().collect();
    let mut keys = sku_locks(project, &skus);
    if let Some((name, _)) = code {
        keys.push(code_lock(project, name));
        keys.sort_unstable();
    }
    keys.push((
        USER_LOCK,
        lock_key(&format!("user:{project}:{}", request.user)),
    ));
    lock(&mut *conn, &keys).await?;
    let now = request.now;
    let hold_secs = i64::try_from(request.hold.as_secs()).unwrap_or(i64::MAX);
    let purchases = read_purchases(
        &mut *conn,
        project,
        &request.user,
        &windows(limited, now),
        Some(Timestamp::from_unix(now.unix().saturating_sub(hold_secs))),
        0,
    )
    .await?;
    let mut limits = check_limits(
        &request.snapshot.lines,
        |sku| limited.get(sku).copied(),
        &purchases,
        now,
    );
    if let (Ok(()), Some(code)) = (&limits, code) {
        limits = check_code(&mut *conn, project, &request.user, code).await?;
    }
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
        user: request.user.clone(),
        snapshot: request.snapshot.clone(),
        catalog_version: request.catalog_version,
        now,
        custom_parameters: request.custom_parameters.clone(),
        limits,
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
    let order = append_order(&mut *conn, &Order::default(), 0, &events, now).await?;
    let details = order.details().cloned();
    let Some(details) = details else {
        return Ok((CheckoutOutcome::Refused(OrderError::NotFound), false));
    };
    // Older unpaid orders of this user that share a limited item or the promo code.
    let expiring: Vec<i64> = sqlx::query_scalar(
        "select o.order_id from orders o where o.project_id = $1 and o.user_id = $2 \
           and o.status = 'new' and o.order_id < $3 \
           and (($4::text is not null and o.promo_code = $4) \
             or exists (select 1 from order_units u where u.project_id = o.project_id \
                          and u.order_id = o.order_id and u.sku = any($5))) \
         order by o.order_id",
    )
    .bind(pid(project))
    .bind(request.user.as_str())
    .bind(oid(order_id))
    .bind(details.snapshot.promo_code.as_deref())
    .bind(skus.iter().map(Sku::as_str).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut expired = Vec::new();
    for old in expiring {
        let old = u64::try_from(old).unwrap_or(0);
        lock(&mut *conn, &[order_lock(project, old)]).await?;
        let Some(loaded) = load_order(&mut *conn, project, old).await? else {
            continue;
        };
        if let Ok(events) =
            cart_domain::decide_order(&loaded.order, OrderCommand::Expire { by_order: order_id })
        {
            if !events.is_empty() {
                append_order(&mut *conn, &loaded.order, loaded.version, &events, now).await?;
                expired.push(old);
            }
        }
    }
    if order.status() == Some(OrderStatus::Done) {
        // A free order is bought at once: its cart is emptied as a paid one's is.
        if let Some(cart_id) = &details.cart_id {
            clear_bought_cart(&mut *conn, project, &details.user, cart_id, order_id).await?;
        }
    }
    let created = Created {
        order_id,
        token: details.payment_token.clone(),
        status: order.status().unwrap_or(OrderStatus::New),
        expired,
    };
    if let Some(command) = &request.command {
        sqlx::query(
            "insert into processed_commands (project_id, user_id, command_id, fingerprint, stream_id, content_type, reply) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(pid(project))
        .bind(request.user.as_str())
        .bind(&command.command_id)
        .bind(&command.fingerprint)
        .bind(order_stream_id(project, order_id))
        .bind(&command.content_type)
        .bind(reply(&created))
        .execute(&mut *conn)
        .await?;
    }
    Ok((CheckoutOutcome::Created(created), true))
}

async fn pay_in(
    conn: &mut PgConnection,
    payment: &Payment,
    limited: &BTreeMap<Sku, &ItemLimits>,
    code: Option<(&str, &PromoCode)>,
) -> Result<(Decided, bool), OrderStoreError> {
    let project = payment.project;
    let skus: BTreeSet<Sku> = limited.keys().cloned().collect();
    let mut keys = sku_locks(project, &skus);
    if let Some((code, _)) = code {
        keys.push(code_lock(project, code));
        keys.sort_unstable();
    }
    keys.push(order_lock(project, payment.order_id));
    lock(&mut *conn, &keys).await?;
    let Some(loaded) = load_order(&mut *conn, project, payment.order_id).await? else {
        return Ok((Err(OrderError::NotFound), false));
    };
    let Some(details) = loaded.order.details().cloned() else {
        return Ok((Err(OrderError::NotFound), false));
    };
    let purchases = read_purchases(
        &mut *conn,
        project,
        &details.user,
        &windows(limited, payment.now),
        None,
        oid(payment.order_id),
    )
    .await?;
    let mut limits = check_limits(
        &details.snapshot.lines,
        |sku| limited.get(sku).copied(),
        &purchases,
        payment.now,
    );
    if let (Ok(()), Some(code)) = (&limits, code) {
        // Redemptions count at payment, so the code's limits are checked here, under its
        // lock: two buyers racing for its last redemption cannot both pay with it.
        limits = check_code(&mut *conn, project, &details.user, code).await?;
    }
    let events = match cart_domain::decide_order(
        &loaded.order,
        OrderCommand::ConfirmPayment {
            invoice_id: payment.invoice_id.clone(),
            amount: payment.amount,
            currency: payment.currency.clone(),
            mode: payment.mode,
            limits,
        },
    ) {
        Ok(events) => events,
        Err(refusal) => return Ok((Err(refusal), false)),
    };
    if events.is_empty() {
        return Ok((Ok(loaded), false));
    }
    let order = append_order(
        &mut *conn,
        &loaded.order,
        loaded.version,
        &events,
        payment.now,
    )
    .await?;
    if let Some(cart_id) = &details.cart_id {
        clear_bought_cart(
            &mut *conn,
            project,
            &details.user,
            cart_id,
            payment.order_id,
        )
        .await?;
    }
    let version = loaded.version + i64::try_from(events.len()).unwrap_or(0);
    Ok((Ok(LoadedOrder { order, version }), true))
}

/// The paid order's cart loses its lines and its promo code, as cart events.
async fn clear_bought_cart(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    cart_id: &CartId,
    order_id: OrderId,
) -> Result<(), OrderStoreError> {
    let key = StreamKey::new(project, user.clone(), cart_id.clone());
    // Locked before it is read, so no cart command can slip in between (the append
    // below takes the same lock again, which an advisory lock allows).
    lock(&mut *conn, &[stream_lock(&key)]).await?;
    let loaded = load_in(&mut *conn, &key).await?;
    let events = cart_domain::decide(&loaded.cart, &CartCommand::Purchased)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    if events.is_empty() {
        return Ok(());
    }
    let cart: Cart = events.iter().fold(loaded.cart, cart_domain::apply);
    let append = Append {
        key: &key,
        expected: loaded.version,
        events: &events,
        cart: &cart,
        command: None,
        metadata: serde_json::json!({ "order_id": order_id }),
    };
    let mut outcomes = append_in(&mut *conn, std::slice::from_ref(&append)).await?;
    match outcomes.pop() {
        Some(Ok(_)) => Ok(()),
        Some(Err(source)) => Err(OrderStoreError::Cart { order_id, source }),
        None => Ok(()),
    }
}

async fn simple_in(
    conn: &mut PgConnection,
    project: ProjectId,
    order_id: OrderId,
    command: OrderCommand,
) -> Result<(Decided, bool), OrderStoreError> {
    lock(&mut *conn, &[order_lock(project, order_id)]).await?;
    let Some(loaded) = load_order(&mut *conn, project, order_id).await? else {
        return Ok((Err(OrderError::NotFound), false));
    };
    let events = match cart_domain::decide_order(&loaded.order, command) {
        Ok(events) => events,
        Err(refusal) => return Ok((Err(refusal), false)),
    };
    if events.is_empty() {
        return Ok((Ok(loaded), false));
    }
    let now = Timestamp::from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
    );
    let order = append_order(&mut *conn, &loaded.order, loaded.version, &events, now).await?;
    let version = loaded.version + i64::try_from(events.len()).unwrap_or(0);
    Ok((Ok(LoadedOrder { order, version }), true))
}

/// Order events after a position in the gap-safe global order, each with the order as
/// it was right after it (for the relay).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedOrderEvent {
    pub position: crate::Position,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub version: i64,
    pub project_id: u64,
    pub order_id: u64,
    pub user_id: String,
    pub recorded_at: String,
    pub event: OrderEvent,
    pub order: Order,
}

/// Reads about `limit` order events after `after`, ending at a transaction boundary.
///
/// # Errors
/// Database failures and undecodable events.
pub async fn read_page(
    conn: &mut PgConnection,
    after: crate::Position,
    limit: i64,
) -> Result<Vec<RecordedOrderEvent>, OrderStoreError> {
    let rows = sqlx::query(
        "with page as ( \
           select e.* from order_events e \
           where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             and (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
           order by e.tx_id, e.global_position limit $3), \
         last_tx as (select max(tx_id) as tx from page) \
         select e.tx_id::text as tx_id, e.global_position, e.event_id, e.stream_id, e.version, \
           e.project_id, e.order_id, e.user_id, e.event_type, e.schema_version, e.payload, \
           to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as recorded_at \
         from order_events e, last_tx \
         where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
           and (e.tx_id, e.global_position) > ($1::text::xid8, $2) and e.tx_id <= last_tx.tx \
         order by e.tx_id, e.global_position",
    )
    .bind(after.tx_id.to_string())
    .bind(after.global_position)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Fold each order of the page from its start, to give each event the order after it.
    let mut streams: HashMap<Uuid, Vec<(i64, OrderEvent)>> = HashMap::new();
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get("stream_id"))
        .collect::<Result<_, _>>()?;
    let history = sqlx::query(
        "select stream_id, order_id, version, event_type, schema_version, payload from order_events \
         where stream_id = any($1) order by stream_id, version",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for row in history {
        let version: i64 = row.try_get("version")?;
        let order_id: i64 = row.try_get("order_id")?;
        let event = wire::decode(
            row.try_get("event_type")?,
            row.try_get("schema_version")?,
            row.try_get("payload")?,
        )
        .map_err(|source| OrderStoreError::Decode {
            order_id,
            version,
            source,
        })?;
        streams
            .entry(row.try_get("stream_id")?)
            .or_default()
            .push((version, event));
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let stream_id: Uuid = row.try_get("stream_id")?;
        let version: i64 = row.try_get("version")?;
        let tx: String = row.try_get("tx_id")?;
        let history = streams.get(&stream_id).map(Vec::as_slice).unwrap_or(&[]);
        let order = Order::replay(
            history
                .iter()
                .filter(|(v, _)| *v <= version)
                .map(|(_, e)| e),
        );
        let Some((_, event)) = history.iter().find(|(v, _)| *v == version) else {
            continue;
        };
        out.push(RecordedOrderEvent {
            position: crate::Position {
                tx_id: tx.parse().unwrap_or(0),
                global_position: row.try_get("global_position")?,
            },
            event_id: row.try_get("event_id")?,
            stream_id,
            version,
            project_id: u64::try_from(row.try_get::<i64, _>("project_id")?).unwrap_or(0),
            order_id: u64::try_from(row.try_get::<i64, _>("order_id")?).unwrap_or(0),
            user_id: row.try_get("user_id")?,
            recorded_at: row.try_get("recorded_at")?,
            event: event.clone(),
            order,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
