//! Wake on arrival: intake rings a `Notify` when it records a delivery, so that idle
//! delivery loops claim at once instead of at their next poll. Within a process the
//! intake rings it directly; across processes (an intake in one worker, idle loops in
//! another) the NOTIFY that `store::insert_delivery` sends on `order_queue::CHANNEL` at
//! its commit reaches every process's `listen` task, which rings its own. The poll stays
//! as the safety net for whatever a wake misses (a listener reconnecting, a retry that
//! falls due), and retries keep their schedule: a wake only makes a loop look sooner.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use crate::store::order_queue::CHANNEL;
use crate::WebhookError;

/// Listens on `CHANNEL` on a connection of `pool` (held for the worker's life) and
/// rings `wake` for each notification, until `stop`. Never fails the worker: while the
/// listener cannot connect, the loops poll, and it tries again (1 s doubling to 30 s).
pub async fn listen(
    pool: PgPool,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WebhookError> {
    let mut pause = Duration::from_secs(1);
    loop {
        let listening = ring_on_notifications(&pool, &wake);
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            ended = listening => match ended {
                Ok(never) => match never {},
                Err(e) => tracing::warn!(error = %cart_store::error_chain(&e), "listening for new deliveries; the loops poll meanwhile"),
            },
        }
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// Rings `wake` on every notification of `CHANNEL`, and when the listener's connection
/// came back after a loss (notifications sent meanwhile are lost); returns only errors.
async fn ring_on_notifications(
    pool: &PgPool,
    wake: &Notify,
) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    // Deliveries recorded while nobody listened: look now.
    wake.notify_waiters();
    loop {
        // Some: a delivery was recorded; None: the connection was lost and is back.
        let _ = listener.try_recv().await?;
        wake.notify_waiters();
    }
}
