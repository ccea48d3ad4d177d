//! Reconciliation against the order log: every `OrderPaid` and `OrderCanceled` (and a
//! free order's `OrderDone`) gets its delivery row even if its `CART_ORDERS` message never
//! reached intake (JetStream lost it, a purge, a consumer deleted and made anew).
//!
//! The order log in PostgreSQL is the source of truth; the stream is only the fast path.
//! The reconciler reads the log in its gap-safe global order (`cart_store::orders::
//! read_page`, the relay's own reader, whose plan `cart-store`'s `feed_plans.rs` checks)
//! after a watermark of its own (`feed_checkpoints`, `webhook-reconcile:<stream>`), so
//! each round reads only what is new since the last one, never the whole log. It records
//! deliveries with the intake's insert (`store::insert_delivery`: the same keys, event id
//! and `(project, order, notification)`), so whichever comes first records the row and
//! the other records nothing.
//!
//! A round reconciles only events the log already held one round earlier (up to the
//! head seen then): intake normally records them within milliseconds, so the reconciler
//! rarely races it, and a row it does record means the stream's message never came.

use std::sync::Arc;
use std::time::Duration;

use cart_proto::view::AmountFormat;
use cart_store::feed::{self, Position};
use cart_store::{orders, subscription};
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use crate::payload::NotificationType;
use crate::store::{self, NewDelivery};
use crate::{Config, WebhookError};

/// Order events read per page.
const PAGE: i64 = 500;

/// The reconciler's watermark in `feed_checkpoints`.
pub fn checkpoint_name(config: &Config) -> String {
    format!("webhook-reconcile:{}", config.orders_stream)
}

/// Reconciles every `config.reconcile_every` until `stop`: at start it only notes where
/// the log ends, then each round reconciles up to where it ended the round before.
pub async fn run(
    config: Config,
    pool: PgPool,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WebhookError> {
    let mut settled: Option<Position> = None;
    loop {
        match round(&pool, &config, settled).await {
            Ok((recorded, head)) => {
                if recorded > 0 {
                    wake.notify_waiters();
                }
                settled = Some(head);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reconciling deliveries against the order log; will retry")
            }
        }
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            () = tokio::time::sleep(config.reconcile_every.max(Duration::from_millis(10))) => {}
        }
    }
}

/// One round: reconciles up to `upto` (nothing when `None`), and returns the deliveries
/// it recorded and where the log ends now (the next round's `upto`).
///
/// # Errors
/// PostgreSQL failing; the watermark stays after the last page reconciled.
pub async fn round(
    pool: &PgPool,
    config: &Config,
    upto: Option<Position>,
) -> Result<(u64, Position), WebhookError> {
    let log = |e: &dyn std::error::Error| WebhookError::OrderLog(cart_store::error_chain(e));
    let mut conn = pool.acquire().await?;
    let head = feed::head(&mut conn, feed::Log::Orders)
        .await
        .map_err(|e| log(&e))?;
    let Some(upto) = upto else {
        return Ok((0, head));
    };
    let name = checkpoint_name(config);
    let mut after = subscription::checkpoint(&mut conn, &name)
        .await
        .map_err(|e| log(&e))?;
    let format = AmountFormat {
        scale: config.amount_scale.min(16),
    };
    let mut recorded = 0;
    while after < upto {
        let events = orders::read_page(&mut conn, after, PAGE)
            .await
            .map_err(|e| log(&e))?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        for event in events.iter().filter(|e| e.position <= upto) {
            let envelope = event.envelope(format);
            let Some(kind) = NotificationType::for_event(&envelope) else {
                continue;
            };
            let delivery = NewDelivery {
                event_id: event.event_id,
                project_id: envelope.project_id,
                order_id: envelope.order_id,
                version: envelope.version,
                kind,
                envelope: serde_json::to_value(&envelope).unwrap_or_default(),
            };
            if store::insert_delivery(pool, &delivery, config.cancel_grace).await? {
                recorded += 1;
                crate::metrics::reconciled(kind);
                tracing::warn!(
                    project = envelope.project_id,
                    order = envelope.order_id,
                    kind = kind.as_str(),
                    event_id = %event.event_id,
                    "reconciliation recorded a delivery whose CART_ORDERS message never reached intake"
                );
            }
        }
        // A page ends at a transaction boundary; `upto` (a head) is one too.
        after = last.min(upto);
        subscription::save_checkpoint(&mut conn, &name, after)
            .await
            .map_err(|e| log(&e))?;
    }
    Ok((recorded, head))
}
