//! The event feed inside the service: the JetStream relay, the asynchronous projections,
//! and the `feed.status` report for operators.

use std::time::{Duration, Instant};

use cart_proto::ErrorReply;
use cart_relay::Relay;
use cart_store::subscription::{self, SkuActivity};
use cart_store::{feed, orders, StoreError};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::edge::errors::reply;
use crate::edge::Reply;

/// What `<prefix>.feed.status` answers: the relays' checkpoints and lags and where each
/// log ends, as PostgreSQL has them (the same whichever instance answers), and this
/// instance's own relay.
#[derive(Clone)]
pub(crate) struct FeedStatus {
    pub(crate) pool: PgPool,
    pub(crate) relay: Option<Relay>,
    pub(crate) checkpoint_name: String,
    pub(crate) stream: String,
    /// The order relay's checkpoint row and stream.
    pub(crate) orders_checkpoint_name: String,
    pub(crate) orders_stream: String,
}

impl FeedStatus {
    /// The reply to `feed.status` (JSON; a structured 503 while PostgreSQL is away).
    pub(crate) async fn answer(&self) -> Result<Reply, ErrorReply> {
        let report = self.report().await.map_err(reply)?;
        Ok(Reply::json(serde_json::to_vec(&report).unwrap_or_default()))
    }

    pub(crate) async fn report(&self) -> Result<serde_json::Value, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let checkpoint = subscription::checkpoint(&mut conn, &self.checkpoint_name).await?;
        let (lag_events, lag_seconds) = feed::lag(&mut conn, checkpoint).await?;
        let projection = subscription::checkpoint(&mut conn, SkuActivity::NAME).await?;
        let (projection_lag, _) = feed::lag(&mut conn, projection).await?;
        let orders = subscription::checkpoint(&mut conn, &self.orders_checkpoint_name).await?;
        let (orders_lag_events, orders_lag_seconds) = orders::lag(&mut conn, orders).await?;
        let carts_head = feed::head(&mut conn, feed::Log::Carts).await?;
        let orders_head = feed::head(&mut conn, feed::Log::Orders).await?;
        let instance = self.relay.as_ref().map(|relay| {
            let s = relay.status();
            serde_json::json!({
                "relay_active": s.leader,
                "published": s.published,
                "duplicates_dropped": s.duplicates,
                "last_error": s.last_error,
                "rewinds": s.rewinds,
                "last_rewind": s.last_rewind,
            })
        });
        Ok(serde_json::json!({
            "stream": self.stream,
            "relay": {
                "checkpoint": checkpoint.to_string(),
                "lag_events": lag_events,
                "lag_seconds": lag_seconds,
            },
            "orders_relay": {
                "stream": self.orders_stream,
                "checkpoint": orders.to_string(),
                "lag_events": orders_lag_events,
                "lag_seconds": orders_lag_seconds,
            },
            "heads": {
                "carts": carts_head.to_string(),
                "orders": orders_head.to_string(),
            },
            "projections": {
                SkuActivity::NAME: { "checkpoint": projection.to_string(), "lag_events": projection_lag },
            },
            "this_instance": instance,
        }))
    }
}

/// Keeps the asynchronous projections caught up until `stop` turns true.
pub(crate) async fn run_projections(pool: PgPool, mut stop: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(100);
    let mut measured: Option<Instant> = None;
    loop {
        if measured.is_none_or(|at| at.elapsed() >= LAG_EVERY) {
            measured = Some(Instant::now());
            record_projection_lag(&pool).await;
        }
        let wait = match subscription::run_batch(&pool, &SkuActivity, PAGE).await {
            Ok(n) => {
                crate::metrics::get().projection_applied(SkuActivity::NAME, n as u64);
                pause = Duration::from_millis(100);
                if i64::try_from(n).unwrap_or(i64::MAX) >= PAGE {
                    // A backlog: the next page at once.
                    None
                } else if n > 0 {
                    Some(GATHER)
                } else {
                    Some(pause)
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::app::error_chain(&e), retry_in = ?pause, "projection sku_activity failed; will retry");
                pause = (pause * 2).min(Duration::from_secs(5));
                Some(pause)
            }
        };
        let Some(wait) = wait else {
            if *stop.borrow() {
                break;
            }
            continue;
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Most events of one projection batch (a page of the log).
const PAGE: i64 = 1000;

/// After a page that was not full, the wait before the next: under load the events of
/// this long go together, so that a batch's fixed statements and the lines of a cart
/// changed several times are paid once per page rather than per handful of events
/// (issue 17). The projection lags the log by about this much more.
const GATHER: Duration = Duration::from_millis(250);

/// How often the projection's lag is measured for the metrics.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// `cart_projection_lag_events`: a bounded count (`feed::lag`), skipped when PostgreSQL
/// is away (the projection's own retry logs that).
async fn record_projection_lag(pool: &PgPool) {
    let measured = async {
        let mut conn = pool.acquire().await?;
        let checkpoint = subscription::checkpoint(&mut conn, SkuActivity::NAME).await?;
        feed::lag(&mut conn, checkpoint).await
    };
    if let Ok(Ok((events, _))) = tokio::time::timeout(Duration::from_secs(1), measured).await {
        crate::metrics::get().projection_lag(SkuActivity::NAME, events);
    }
}
