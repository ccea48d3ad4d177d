//! The webhook fulfilment worker: order_paid and order_canceled notifications, in
//! Xsolla's shape, to each project's webhook URL (docs/webhooks.md).
//!
//! `intake` turns order events from JetStream into rows of the `webhook_deliveries`
//! outbox; `deliver` claims due rows and POSTs them, retrying on Xsolla's schedule;
//! `admin` serves the settings over NATS; `metrics` holds the instruments and samples the
//! backlog, served with `/healthz` and `/readyz` on the HTTP admin port (cart-metrics).
//! Any number of instances may run at once.

pub mod admin;
mod config;
pub mod deliver;
pub mod http;
pub mod intake;
mod metrics;
pub mod payload;
pub mod reconcile;
pub mod schedule;
pub mod store;
mod trace;
mod vacuum;
pub mod wake;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use cart_store::orders::OrderStoreError;
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrate: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("prepare the database: {0}")]
    Prepare(#[from] cart_store::StoreError),
    #[error("--nats-url (NATS_URL)")]
    Seeds(#[from] cart_nats::SeedError),
    #[error("connect to NATS at {url}: {source}")]
    Nats {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error("order log: {0}")]
    OrderLog(String),
    /// The orders stream does not exist (yet): cartd's order relay creates it.
    #[error(
        "JetStream: orders stream {stream:?} does not exist yet (cartd's order relay creates it)"
    )]
    OrdersStreamMissing { stream: String },
    #[error("admin endpoints: {0}")]
    Admin(String),
    #[error(transparent)]
    CaFile(#[from] http::CaFileError),
    #[error("admin port {addr}: {source}")]
    AdminPort {
        addr: cart_metrics::AdminAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] cart_metrics::MetricsError),
}

/// Marks an order done after its order_paid was delivered: `(project_id, order_id)`.
/// Idempotent. The worker uses the order store; tests may pass their own.
pub type MarkDelivered =
    Arc<dyn Fn(u64, u64) -> BoxFuture<'static, Result<(), MarkError>> + Send + Sync>;

/// Why an order could not be marked done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MarkError {
    /// The order store refused (no such order, or not paid): retrying cannot help.
    #[error("refused: {0}")]
    Refused(String),
    /// Anything else (the database): retried.
    #[error("{0}")]
    Failed(String),
}

/// The order store's `mark_delivered`, which appends OrderDone.
pub fn order_store_marker(pool: PgPool) -> MarkDelivered {
    Arc::new(move |project_id, order_id| {
        let orders = cart_store::orders::OrderStore::new(pool.clone());
        Box::pin(async move {
            orders
                .mark_delivered(project_id, order_id)
                .await
                .map_err(|e| match e {
                    OrderStoreError::Refused { .. } | OrderStoreError::BadProject { .. } => {
                        MarkError::Refused(cart_store::error_chain(&e))
                    }
                    other => MarkError::Failed(cart_store::error_chain(&other)),
                })
        })
    })
}

/// Opens the worker's pool: the database is created and migrated as cartd does.
/// Deliveries hold no transaction during the HTTP call (they are leased); a follow-up
/// keeps its row locked while it marks the order done or publishes the dead letter, so
/// the idle-in-transaction limit stays generous (the request timeout plus 30 s).
pub async fn connect(config: &Config) -> Result<PgPool, WebhookError> {
    cart_store::ensure_database(&config.database_url).await?;
    let idle = config.timeout + std::time::Duration::from_secs(30);
    let options = PgConnectOptions::from_str(&config.database_url)?.options([
        ("synchronous_commit", "on".to_owned()),
        (
            "idle_in_transaction_session_timeout",
            format!("{}ms", idle.as_millis()),
        ),
        ("statement_timeout", "10s".to_owned()),
    ]);
    let pool = cart_store::primary_only(PgPoolOptions::new())
        // One connection per delivery loop and per event intake records at once, one
        // for admin and follow-ups, the one `wake::listen` holds and one for the VACUUM.
        .max_connections(
            u32::try_from(config.concurrency.saturating_add(config.intake_concurrency))
                .unwrap_or(32)
                .saturating_add(4),
        )
        .connect_with(options.clone())
        .await?;
    cart_store::migrate(&options).await?;
    Ok(pool)
}

/// Runs the worker until `shutdown` completes: intake, `concurrency` delivery loops and
/// the admin endpoints. Marks orders done through the order store.
///
/// # Errors
/// PostgreSQL or NATS cannot be reached or prepared at start, or a part fails for good.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    let pool = connect(&config).await?;
    let mark = order_store_marker(pool.clone());
    run_with(config, pool, mark, shutdown).await
}

/// `run`, with the pool and the order marker given.
///
/// # Errors
/// As `run`.
pub async fn run_with(
    config: Config,
    pool: PgPool,
    mark: MarkDelivered,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    let admin = bind_admin(&config).await?;
    run_bound(config, pool, mark, admin, shutdown).await
}

/// Binds the admin port of `config` (None when it is off), so that a caller can learn
/// the bound address (`local_addr`) before [`run_bound`] serves it.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind_admin(
    config: &Config,
) -> Result<Option<cart_metrics::AdminListener>, WebhookError> {
    cart_metrics::AdminListener::bind(config.admin_addr)
        .await
        .map_err(|source| WebhookError::AdminPort {
            addr: config.admin_addr,
            source,
        })
}

/// Serves the admin port from the start (liveness while NATS is awaited) until `stop`:
/// a task of its own, so that its end never ends the worker.
fn serve_admin(
    listener: cart_metrics::AdminListener,
    metrics: &'static cart_metrics::Metrics,
    health: &Arc<cart_metrics::checks::Health>,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin port: /metrics, /healthz, /readyz");
    }
    tokio::spawn(listener.serve(metrics, health.probe(), stop.clone()))
}

/// `run_with`, serving `admin` (bound by [`bind_admin`]) as the admin port.
///
/// # Errors
/// As `run`.
pub async fn run_bound(
    config: Config,
    pool: PgPool,
    mark: MarkDelivered,
    admin: Option<cart_metrics::AdminListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    // Before anything makes an instrument: one made earlier would record into nothing.
    let metrics = cart_metrics::init("cart-webhook")?;
    let (stop_tx, stop) = watch::channel(false);
    let health = Arc::new(cart_metrics::checks::Health::default());
    health.set_pool(pool.clone());
    // In the `cart_db_pool_*` gauges while the worker runs.
    let _pool_watch = cart_metrics::watch_pool("cart-webhook", &pool);
    let admin = admin.map(|listener| serve_admin(listener, metrics, &health, &stop));
    // A bad --ca-file stops the worker at start, not each https attempt later.
    let tls = http::tls_connector(config.ca_file.as_deref())?;
    let client = async_nats::ConnectOptions::new()
        .name("cart-webhook")
        .connect(cart_nats::servers(&config.nats_url)?.as_slice())
        .await
        .map_err(|source| WebhookError::Nats {
            url: config.nats_url.clone(),
            source,
        })?;
    let jetstream = async_nats::jetstream::new(client.clone());
    let dead = deliver::DeadLetters::prepare(&jetstream, &config).await?;
    health.set_nats(client.clone());
    let service = admin::start(&client, &config, pool.clone()).await?;
    health.set_serving();

    // Rung by this process's intake and by NOTIFYs of every process's intake.
    let wake = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    tasks.spawn(wake::listen(pool.clone(), wake.clone(), stop.clone()));
    tasks.spawn(intake::run(
        jetstream.clone(),
        config.clone(),
        pool.clone(),
        dead.clone(),
        wake.clone(),
        stop.clone(),
    ));
    let worker = Arc::new(deliver::Worker::new(
        config.clone(),
        pool.clone(),
        dead,
        mark,
        tls,
        wake.clone(),
    ));
    for _ in 0..config.concurrency.max(1) {
        tasks.spawn(worker.clone().run(stop.clone()));
    }
    tasks.spawn(worker.clone().follow_ups(stop.clone()));
    tasks.spawn({
        let (pool, stop) = (pool.clone(), stop.clone());
        async move {
            metrics::sample_backlog(pool, stop).await;
            Ok(())
        }
    });
    if !config.reconcile_every.is_zero() {
        tasks.spawn(reconcile::run(
            config.clone(),
            pool.clone(),
            wake,
            stop.clone(),
        ));
    }
    if !config.vacuum_every.is_zero() {
        tasks.spawn(vacuum::run(pool.clone(), config.vacuum_every, stop.clone()));
    }
    tracing::info!(prefix = %config.prefix, stream = %config.orders_stream, consumer = %config.consumer, "cart-webhook running");
    if config.drain_timeout <= config.timeout {
        tracing::warn!(drain_timeout = ?config.drain_timeout, timeout = ?config.timeout, "--drain-timeout is not above --timeout: a shutdown may abandon a delivery in flight, whose lease then runs out by itself");
    }

    let result = tokio::select! {
        () = shutdown => Ok(()),
        Some(ended) = tasks.join_next() => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(WebhookError::JetStream(format!("a worker task ended: {e}"))),
        },
    };
    // The drain: not ready from now on, no new admin requests, and the loops finish
    // their current step (a delivery in flight is completed or times out, and its
    // outcome is recorded, which ends its lease) before the worker returns, within
    // --drain-timeout.
    health.set_draining();
    let _ = service.stop().await;
    let _ = stop_tx.send(true);
    let limit = config.drain_timeout;
    let drained =
        tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(timeout = ?limit, "drain did not finish in time: deliveries still in flight are abandoned, their leases run out by themselves");
        tasks.shutdown().await;
    }
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    let _ = client.flush().await;
    result
}
