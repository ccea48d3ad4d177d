//! Unpaid orders past their payment window: `new` orders created before a cut-off get
//! `OrderExpired` without `by_order` (docs/orders.md, "Expiry"). Each one is decided
//! under its order lock, the lock a payment takes too, on the stream as it is then: a
//! payment that got there first leaves the order paid (the expiry is refused and rolled
//! back), and a payment that comes after finds it expired (422, `expired` to `paid`).
//! Exactly one of them wins.

use cart_domain::{OrderCommand, OrderId, ProjectId, Timestamp};

use super::{OrderStore, OrderStoreError};

/// The oldest orders still `new` that were created before `$1` (unix seconds), at most
/// `$2`: the partial index `orders_unpaid_by_age` holds exactly these.
pub const DUE_ORDERS: &str = "select project_id, order_id from orders \
     where status = 'new' and created_at < to_timestamp($1) order by created_at limit $2";

impl OrderStore {
    /// Expires up to `limit` orders still unpaid that were created before `before`, each
    /// in a transaction of its own; returns the orders it expired. Several instances may
    /// run it at once: the order lock makes the second one find the order expired and
    /// change nothing.
    ///
    /// # Errors
    /// Database failures and undecodable events.
    pub async fn expire_unpaid(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<Vec<(ProjectId, OrderId)>, OrderStoreError> {
        let due: Vec<(i64, i64)> = sqlx::query_as(DUE_ORDERS)
            .persistent(crate::statements::prepared(DUE_ORDERS))
            .bind(before.unix())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut expired = Vec::new();
        for (project, order_id) in due {
            let (Some(Ok(project)), Ok(order_id)) = (
                u64::try_from(project).ok().map(ProjectId::parse),
                u64::try_from(order_id),
            ) else {
                continue;
            };
            let expire = OrderCommand::Expire { by_order: None };
            // Refused (paid meanwhile) or no events (expired by another instance or
            // by a newer order meanwhile): not this sweep's.
            if let Ok(after) = self.simple(project, order_id, &expire).await? {
                if after.order.expired_by().is_none()
                    && after.order.status() == Some(cart_domain::OrderStatus::Expired)
                {
                    expired.push((project, order_id));
                }
            }
        }
        Ok(expired)
    }
}
