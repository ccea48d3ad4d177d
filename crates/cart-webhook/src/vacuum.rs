//! The outbox's own VACUUM, every `--vacuum-every`: a bounded pass beside the claims,
//! which keep the index they scan free of the dead entries deliveries leave (see
//! `store::vacuum`). On this machine PostgreSQL runs with autovacuum off, and nothing
//! else would ever remove them; with autovacuum on it only comes sooner.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::store;
use crate::WebhookError;

/// Vacuums every `every` until `stop`; never fails the worker (a failed pass is logged
/// and tried again at the next turn).
pub async fn run(
    pool: PgPool,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WebhookError> {
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
        let started = std::time::Instant::now();
        match store::vacuum(&pool).await {
            Ok(()) => tracing::debug!(
                ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "webhook_deliveries vacuumed"
            ),
            Err(e) => {
                tracing::warn!(error = %cart_store::error_chain(&e), "vacuum of webhook_deliveries");
            }
        }
    }
}
