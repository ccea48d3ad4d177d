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
//! Lock order, everywhere (`crate::locks`): SKU locks, then the user's lock, then order
//! locks in order id order, then cart streams (`append_in`). A transaction that takes no
//! SKU lock takes only the rest.
//!
//! The seams: `checkout` (new orders and the command ledger), `payment` (payment,
//! refund, delivery), `purchases` (what is counted against limits), `log` (one order's
//! stream and its projection rows), `feed` (the gap-safe reader for the relay).

mod checkout;
mod expiry;
mod feed;
mod log;
mod payment;
mod promotions;
mod purchases;
pub mod sealed;

/// The SQL of the order store's hot statements (see [`crate::statements`]).
pub(crate) mod statements {
    pub use super::checkout::EXPIRING;
    pub use super::expiry::DUE_ORDERS;
    pub use super::log::LOAD_ORDER;
    pub use super::promotions::PROMOTION_USES;
    pub use super::purchases::{GROUPED_PURCHASES, PURCHASES, REDEMPTIONS};
    pub use super::sealed::{KEYS_OF, KEY_OF};
}

use std::collections::BTreeSet;
use std::time::Duration;

use cart_domain::{
    CartError, CartId, Currency, InvalidInput, Order, OrderError, OrderId, OrderSnapshot,
    OrderStatus, PaymentMode, ProjectId, Timestamp, UserId,
};
use cart_proto::order as wire;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::locks::Deadlock;
use crate::store::{project_id as pid, ProcessedCommand, StoreError};

pub use feed::{
    count_after, lag, position_at, read_filtered_page, read_page, RecordedOrderEvent,
    StoredOrderEvent, ORDER_HISTORIES_SQL, ORDER_LAG_SQL, ORDER_PAGE_SQL,
};
pub use purchases::{limited_skus, GroupPurchases, Needs};

/// Why an order store operation failed. Refusals a caller can act on come back as
/// `OrderError`s in the outcome (`CheckoutOutcome::Refused`, `Decided`) where the
/// caller renders them, or as `Refused` where it cannot (`mark_delivered`).
#[derive(Debug, thiserror::Error)]
pub enum OrderStoreError {
    /// The cart store's error, and the caller's text PostgreSQL refused
    /// (`StoreError::InvalidText`).
    #[error("event store")]
    Store(#[from] StoreError),
    #[error("database error")]
    Database(sqlx::Error),
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
    /// The domain refused to empty the bought cart; the payment rolled back.
    #[error("the cart of order {order_id} refused to be cleared")]
    CartRefused {
        order_id: u64,
        #[source]
        source: CartError,
    },
    /// The domain refused the order command: retrying cannot help.
    #[error("order {order_id} refused")]
    Refused {
        order_id: OrderId,
        #[source]
        refusal: OrderError,
    },
    /// A project id that no project can have.
    #[error("project {project_id} is not a project id")]
    BadProject {
        project_id: u64,
        #[source]
        source: InvalidInput,
    },
}

/// Database errors: the caller's invalid text apart from the store's failures.
impl From<sqlx::Error> for OrderStoreError {
    fn from(error: sqlx::Error) -> Self {
        match StoreError::from(error) {
            StoreError::Database(error) => OrderStoreError::Database(error),
            other => OrderStoreError::Store(other),
        }
    }
}

impl OrderStoreError {
    /// Whether the database could not be reached or answered in time.
    pub fn is_unavailable(&self) -> bool {
        match self {
            OrderStoreError::Store(e) => e.is_unavailable(),
            OrderStoreError::Database(e) => crate::error::unavailable(e),
            _ => false,
        }
    }

    /// As [`StoreError::is_pool_timeout`].
    pub fn is_pool_timeout(&self) -> bool {
        match self {
            OrderStoreError::Store(e) => e.is_pool_timeout(),
            OrderStoreError::Database(e) => matches!(e, sqlx::Error::PoolTimedOut),
            _ => false,
        }
    }

    /// Whether the caller's input was refused (text PostgreSQL cannot hold, a time it
    /// cannot read): a 4xx, and nothing was written.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, OrderStoreError::Store(e) if e.is_invalid_input())
    }

    /// Whether retrying cannot help: the domain or the ids refused.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            OrderStoreError::Refused { .. } | OrderStoreError::BadProject { .. }
        )
    }
}

impl Deadlock for OrderStoreError {
    fn is_deadlock(&self) -> bool {
        match self {
            OrderStoreError::Database(e) => crate::error::deadlock(e),
            OrderStoreError::Store(e) => e.is_deadlock(),
            _ => false,
        }
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

// A fixed namespace for order stream ids, apart from cart streams' (and for the order
// store's lock keys).
pub(crate) const ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x1c0e_8d43_5a7f_4b29_9e06_3f1a_b8c2_d457);

/// The stream id of an order: derived, so nothing needs looking up.
pub fn order_stream_id(project: ProjectId, order_id: OrderId) -> Uuid {
    Uuid::new_v5(&ORDER_NAMESPACE, format!("{project}:{order_id}").as_bytes())
}

fn oid(order_id: OrderId) -> i64 {
    i64::try_from(order_id).unwrap_or(i64::MAX)
}

/// Ends a transaction of the order store: commits what the command decided to keep,
/// rolls back a refusal (nothing of it stays, not even the expiries it tried).
async fn end(tx: Transaction<'_, Postgres>, commit: bool) -> Result<(), sqlx::Error> {
    if commit {
        tx.commit().await
    } else {
        tx.rollback().await
    }
}

impl OrderStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sequences: std::sync::Arc::default(),
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
        log::load(&mut conn, project, order_id).await
    }

    /// The order a payment token belongs to.
    ///
    /// # Errors
    /// Database failures and undecodable events; a token PostgreSQL cannot compare
    /// (a NUL in it) is `is_invalid_input`.
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
                log::load(&mut conn, project, u64::try_from(order_id).unwrap_or(0)).await
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
            let order_id = u64::try_from(order_id).unwrap_or(0);
            if let Some(loaded) = log::load(&mut conn, project, order_id).await? {
                page.orders.push(loaded.order);
            }
        }
        if page.orders.is_empty() && search.offset > 0 {
            page.total = count(&mut conn, project, user, search).await?;
        }
        Ok(page)
    }
}

/// How many orders a search finds, whatever its page: past the end, the page query
/// returns no row to carry the count.
async fn count(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    search: &Search,
) -> Result<u64, OrderStoreError> {
    let total: i64 = sqlx::query_scalar(
        "select count(*) from orders where project_id = $1 and user_id = $2 \
           and ($3::timestamptz is null or created_at >= $3::timestamptz) \
           and ($4::timestamptz is null or created_at <= $4::timestamptz)",
    )
    .bind(pid(project))
    .bind(user.as_str())
    .bind(search.created_from.as_deref())
    .bind(search.created_until.as_deref())
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_query)?;
    Ok(u64::try_from(total).unwrap_or(0))
}

#[cfg(test)]
mod tests;
