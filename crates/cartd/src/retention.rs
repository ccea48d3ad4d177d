//! The retention sweeps (`cart_store::retention`), run in the background by every
//! instance: each sweep's batches take its advisory lock, so with several instances one
//! sweeps at a time and the others skip (docs/operations.md, "Data that does not grow
//! for ever").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cart_domain::Timestamp;
use cart_store::orders::OrderStore;
use cart_store::retention::{self, cutoff, Batch};
use sqlx::PgPool;

/// What is kept how long; `None` keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The command ledger: the idempotency window.
    pub ledger: Option<Duration>,
    /// Carts untouched this long expire.
    pub carts: Option<Duration>,
    /// Orders still unpaid this long after checkout expire.
    pub unpaid_orders: Option<Duration>,
    /// Pause between rounds.
    pub interval: Duration,
    /// Rows, carts or orders per transaction.
    pub batch: i64,
}

impl Retention {
    fn any(&self) -> bool {
        self.ledger.is_some() || self.carts.is_some() || self.unpaid_orders.is_some()
    }
}

/// Runs a round every `interval` until `stopped`.
pub async fn run(
    pool: PgPool,
    settings: Retention,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    if !settings.any() {
        return;
    }
    let orders = OrderStore::new(pool.clone());
    loop {
        round(&pool, &orders, &settings, &stopped).await;
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
}

fn now() -> Timestamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Timestamp::from_unix(secs)
}

/// One round: each sweep until it has nothing due, another instance holds it, or the
/// service stops. A failure is logged and the round goes on with the next sweep; the
/// next round tries again.
async fn round(
    pool: &PgPool,
    orders: &OrderStore,
    settings: &Retention,
    stopped: &tokio::sync::watch::Receiver<bool>,
) {
    let now = now();
    let limit = settings.batch.max(1);
    if let Some(window) = settings.ledger {
        let before = cutoff(now, window);
        sweep("ledger", limit, stopped, || {
            retention::prune_ledger(pool, before, limit)
        })
        .await;
    }
    if let Some(age) = settings.carts {
        let before = cutoff(now, age);
        sweep("carts", limit, stopped, || {
            retention::expire_carts(pool, before, limit)
        })
        .await;
    }
    if let Some(window) = settings.unpaid_orders {
        let before = cutoff(now, window);
        sweep("unpaid_orders", limit, stopped, || async {
            let expired = orders.expire_unpaid(before, limit).await?;
            Ok::<_, cart_store::orders::OrderStoreError>(Batch {
                done: expired.len() as u64,
                busy: false,
            })
        })
        .await;
    }
}

/// Runs `batch` until a batch comes back short or busy.
async fn sweep<F, Fut, E>(
    what: &'static str,
    limit: i64,
    stopped: &tokio::sync::watch::Receiver<bool>,
    mut batch: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Batch, E>>,
    E: std::error::Error,
{
    let mut total = 0;
    while !*stopped.borrow() {
        match batch().await {
            Ok(done) => {
                total += done.done;
                if done.busy || i64::try_from(done.done).unwrap_or(i64::MAX) < limit {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(sweep = what, error = %crate::app::error_chain(&e), "retention sweep failed");
                break;
            }
        }
    }
    crate::metrics::get().retention_swept(what, total);
    if total > 0 {
        tracing::info!(sweep = what, removed = total, "retention sweep");
    }
}
