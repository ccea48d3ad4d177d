//! What happens to an order after checkout: payment (limits checked again, units
//! counted, the code redeemed, the cart cleared), refund, and delivery.

use std::collections::BTreeMap;

use cart_domain::{
    check_limits, Cart, CartCommand, CartId, Catalog, ItemLimits, OrderCommand, OrderError,
    OrderId, OrderStatus, ProjectId, PromoCode, PromotionId, Sku, Timestamp, UserId,
};
use sqlx::PgConnection;

use super::promotions;
use super::purchases::{self, limit_locks, limited_code, limited_skus, windows};
use super::{end, log, oid, Decided, LoadedOrder, OrderStore, OrderStoreError, Payment};
use crate::locks;
use crate::store::{append_in, load_in, Append, StreamKey};

impl OrderStore {
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
        Ok(self.confirm_payment_once(catalog, payment).await?.0)
    }

    /// As [`OrderStore::confirm_payment`], and whether this call paid the order (false
    /// for a refusal and for the same invoice again, which changes nothing): what the
    /// paid-orders counter counts.
    ///
    /// # Errors
    /// As [`OrderStore::confirm_payment`].
    pub async fn confirm_payment_once(
        &self,
        catalog: &Catalog,
        payment: Payment,
    ) -> Result<(Decided, bool), OrderStoreError> {
        // The lines never change after creation: read them unlocked to know which SKU
        // locks to take first.
        let Some(peek) = self.load(payment.project, payment.order_id).await? else {
            return Ok((Err(OrderError::NotFound), false));
        };
        let snapshot = peek.order.details().map(|d| &d.snapshot);
        let lines = snapshot.map(|s| s.lines.as_slice()).unwrap_or_default();
        let limited = limited_skus(catalog, payment.project, lines);
        let name = snapshot.and_then(|s| s.promo_code.as_deref());
        let code = limited_code(catalog, payment.project, name);
        let promotions = snapshot
            .map(|s| promotions::limited(catalog, payment.project, s))
            .unwrap_or_default();
        let (pool, payment, limited, promotions) = (&self.pool, &payment, &limited, &promotions);
        locks::retry_on_deadlock("payment", || async move {
            let mut tx = pool.begin().await?;
            let (decided, commit) = pay_in(&mut tx, payment, limited, code, promotions).await?;
            end(tx, commit).await?;
            Ok((decided, commit))
        })
        .await
    }

    /// A refund: paid or done -> canceled. Units stay counted.
    ///
    /// # Errors
    /// Database failures; a reason PostgreSQL cannot hold (a NUL) is `is_invalid_input`.
    pub async fn cancel(
        &self,
        project: ProjectId,
        order_id: OrderId,
        reason: String,
    ) -> Result<Decided, OrderStoreError> {
        let cancel = OrderCommand::Cancel { reason };
        self.simple(project, order_id, &cancel).await
    }

    /// The order_paid webhook was delivered: paid -> done. Idempotent; a refund that came
    /// first leaves a canceled order canceled.
    ///
    /// # Errors
    /// Database failures; `BadProject` for a project id no project has, `Refused` with
    /// the domain's reason for an order not found or not paid (`is_refusal`: retrying
    /// cannot help).
    pub async fn mark_delivered(
        &self,
        project_id: u64,
        order_id: u64,
    ) -> Result<(), OrderStoreError> {
        let project = ProjectId::parse(project_id)
            .map_err(|source| OrderStoreError::BadProject { project_id, source })?;
        match self
            .simple(project, order_id, &OrderCommand::MarkDelivered)
            .await?
        {
            Ok(_)
            | Err(OrderError::InvalidTransition {
                from: OrderStatus::Canceled,
                ..
            }) => Ok(()),
            Err(refusal) => Err(OrderStoreError::Refused { order_id, refusal }),
        }
    }

    /// An order command that needs only the order's lock.
    pub(super) async fn simple(
        &self,
        project: ProjectId,
        order_id: OrderId,
        command: &OrderCommand,
    ) -> Result<Decided, OrderStoreError> {
        let pool = &self.pool;
        locks::retry_on_deadlock("order command", || async move {
            let mut tx = pool.begin().await?;
            let (decided, commit) = simple_in(&mut tx, project, order_id, command.clone()).await?;
            end(tx, commit).await?;
            Ok(decided)
        })
        .await
    }
}

async fn pay_in(
    conn: &mut PgConnection,
    payment: &Payment,
    limited: &BTreeMap<Sku, &ItemLimits>,
    code: Option<(&str, &PromoCode)>,
    promotions: &BTreeMap<PromotionId, u32>,
) -> Result<(Decided, bool), OrderStoreError> {
    let project = payment.project;
    let mut keys = limit_locks(project, limited, code, promotions);
    keys.push(locks::order(project, payment.order_id));
    locks::take(&mut *conn, &keys).await?;
    let Some(loaded) = log::load(&mut *conn, project, payment.order_id).await? else {
        return Ok((Err(OrderError::NotFound), false));
    };
    let Some(details) = loaded.order.details().cloned() else {
        return Ok((Err(OrderError::NotFound), false));
    };
    let windows = windows(limited, payment.now);
    let exclude = oid(payment.order_id);
    let counted =
        purchases::read(&mut *conn, project, &details.user, &windows, None, exclude).await?;
    let mut limits = check_limits(
        &details.snapshot.lines,
        |sku| limited.get(sku).copied(),
        &counted,
        payment.now,
    );
    if let (Ok(()), Some(code)) = (&limits, code) {
        // Redemptions count at payment, so the code's limits are checked here, under its
        // lock: two buyers racing for its last redemption cannot both pay with it.
        limits = purchases::check_code(&mut *conn, project, &details.user, code).await?;
    }
    if limits.is_ok() && !promotions.is_empty() {
        // Promotions count as used at payment: under their locks, two orders of a user
        // racing for a promotion's last use cannot both be paid with it.
        limits = promotions::check(&mut *conn, project, &details.user, promotions, exclude).await?;
    }
    let confirm = OrderCommand::ConfirmPayment {
        invoice_id: payment.invoice_id.clone(),
        amount: payment.amount,
        currency: payment.currency.clone(),
        mode: payment.mode,
        limits,
    };
    let events = match cart_domain::decide_order(&loaded.order, confirm) {
        Ok(events) => events,
        Err(refusal) => return Ok((Err(refusal), false)),
    };
    if events.is_empty() {
        return Ok((Ok(loaded), false));
    }
    let order = log::append(
        &mut *conn,
        &loaded.order,
        loaded.version,
        &events,
        payment.now,
    )
    .await?;
    promotions::record(&mut *conn, &details, promotions, Some(payment.now)).await?;
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
pub(super) async fn clear_bought_cart(
    conn: &mut PgConnection,
    project: ProjectId,
    user: &UserId,
    cart_id: &CartId,
    order_id: OrderId,
) -> Result<(), OrderStoreError> {
    let key = StreamKey::new(project, user.clone(), cart_id.clone());
    // Locked before it is read, so no cart command can slip in between (the append
    // below takes the same lock again, which an advisory lock allows).
    locks::take(&mut *conn, &[locks::stream(&key)]).await?;
    let loaded = load_in(&mut *conn, &key).await?;
    let events = cart_domain::decide(&loaded.cart, &CartCommand::Purchased)
        .map_err(|source| OrderStoreError::CartRefused { order_id, source })?;
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
        metadata: cart_telemetry::trace_metadata(serde_json::json!({ "order_id": order_id })),
    };
    let mut outcomes = append_in(&mut *conn, std::slice::from_ref(&append)).await?;
    match outcomes.pop() {
        Some(Ok(_)) | None => Ok(()),
        Some(Err(source)) => Err(OrderStoreError::Cart { order_id, source }),
    }
}

async fn simple_in(
    conn: &mut PgConnection,
    project: ProjectId,
    order_id: OrderId,
    command: OrderCommand,
) -> Result<(Decided, bool), OrderStoreError> {
    locks::take(&mut *conn, &[locks::order(project, order_id)]).await?;
    let Some(loaded) = log::load(&mut *conn, project, order_id).await? else {
        return Ok((Err(OrderError::NotFound), false));
    };
    let events = match cart_domain::decide_order(&loaded.order, command) {
        Ok(events) => events,
        Err(refusal) => return Ok((Err(refusal), false)),
    };
    if events.is_empty() {
        return Ok((Ok(loaded), false));
    }
    // Refunds and deliveries carry no clock of the caller's: the store reads its own.
    let now = Timestamp::from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
    );
    let order = log::append(&mut *conn, &loaded.order, loaded.version, &events, now).await?;
    let version = loaded.version + i64::try_from(events.len()).unwrap_or(0);
    Ok((Ok(LoadedOrder { order, version }), true))
}
