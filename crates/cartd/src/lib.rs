//! The cart service: wiring of configuration, PostgreSQL, the catalog and the NATS
//! endpoints. `main.rs` only parses flags and calls [`run`]; tests call [`start`].
//!
//! Layout: `config` (flags), `edge` (the NATS micro service: typed endpoints, the one
//! respond path, headers, the command-id rules, the error mapping), `dispatch` (which
//! part answers which endpoint), `app` (cart command and query paths), `orders`,
//! `admin` (catalog changes), `feed`, `telemetry` (the subscriber) and `metrics` (the
//! instruments; the admin port is cart-metrics's).

mod admin;
mod app;
mod catalog;
mod config;
mod dispatch;
mod edge;
mod feed;
mod metrics;
mod orders;
mod retention;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cart_proto::view::AmountFormat;
use cart_store::{DbConfig, EventStore};

pub use app::current_cart_id;
pub use cart_proto::COMMAND_ID_HEADER;
pub use config::{Config, LogFormat};
pub use edge::MAX_PAYLOAD;

/// The subject of every endpoint after the prefix (`fill`, `order.checkout`,
/// `admin.catalog.import`, `feed.status`, ...), in the order they are subscribed: for
/// tests and tools that must reach every endpoint.
pub fn endpoint_subjects() -> Vec<&'static str> {
    edge::Endpoint::all()
        .into_iter()
        .map(edge::Endpoint::subject)
        .collect()
}

/// A running service instance.
pub struct Server {
    service: edge::Running,
    stop: tokio::sync::watch::Sender<bool>,
    background: tokio::task::JoinSet<()>,
    admin_addr: Option<SocketAddr>,
    health: Arc<cart_metrics::checks::Health>,
    drain_timeout: Duration,
    /// Keeps the pool and the grouped reads' probe sessions in the `cart_db_pool_*`
    /// gauges while the server lives.
    _pool_watches: Vec<cart_metrics::PoolWatch>,
}

impl Server {
    /// Where the admin port (`/metrics`, `/healthz`, `/readyz`) listens; None when off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Drains: stops taking requests, finishes those in flight, stops the relay (its
    /// lock goes with its session, so another instance takes over within its next try)
    /// and the projections, and closes connections; within `--drain-timeout-secs`.
    pub async fn shutdown(self) {
        let limit = self.drain_timeout;
        let started = std::time::Instant::now();
        if tokio::time::timeout(limit, self.drain()).await.is_err() {
            tracing::warn!(timeout = ?limit, "drain did not finish in time; abandoning what is left");
        } else {
            tracing::info!(took = ?started.elapsed(), "drained");
        }
    }

    async fn drain(mut self) {
        self.health.set_draining();
        // Requests first: the endpoints are unsubscribed (the queue group's other
        // members get the new requests), the ones taken finish, with the group-commit
        // batches they wait on, and their replies are flushed.
        self.service.stop().await;
        // Then the background: the relay may stop mid-page (its checkpoint only moves
        // after acks), and closing its session releases its lock at once. The NATS
        // connection it publishes on is closed only after it.
        let _ = self.stop.send(true);
        while self.background.join_next().await.is_some() {}
        self.service.close().await;
    }
}

/// Connects to PostgreSQL (retrying until it answers), loads the catalog, connects to
/// NATS and starts serving. Returns once the endpoints are subscribed.
///
/// # Errors
/// An unreadable catalog, or a NATS URL that cannot be used.
pub async fn start(config: &Config) -> anyhow::Result<Server> {
    // The file is in the admin format (docs/catalog.md); a file that does not pass the
    // admin checks stops the start.
    let bytes = std::fs::read(&config.catalog)
        .with_context(|| format!("read catalog {}", config.catalog.display()))?;
    cart_proto::admin::parse_document(&bytes)
        .with_context(|| format!("load catalog {}", config.catalog.display()))?;

    // Before anything makes an instrument: one made earlier would record into nothing.
    let metrics = cart_metrics::init("cartd")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    // The admin port comes up first, so that a liveness probe passes while PostgreSQL
    // is still awaited; readiness follows each part as it comes.
    let health = Arc::new(cart_metrics::checks::Health::default());
    let admin_addr = serve_admin(config, metrics, &health, &stopped, &mut background).await?;

    let pool = connect_postgres(config).await?;
    health.set_pool(pool.clone());
    let pool_watch = cart_metrics::watch_pool("cartd", &pool);
    // The catalog lives in PostgreSQL: the file seeds the projects that have none yet,
    // and carts are priced from the stored catalog through the cache (catalog.rs).
    let catalog_store = cart_store::catalog::CatalogStore::new(pool.clone());
    let catalog = catalog::CatalogCache::new(catalog_store.clone());
    let admin = admin::Admin::new(catalog_store, catalog.clone());
    match admin.seed(&bytes).await {
        Ok(seeded) if !seeded.is_empty() => {
            tracing::info!(projects = ?seeded, "catalog file imported into PostgreSQL");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "catalog file not imported into PostgreSQL")
        }
    }
    catalog
        .refresh()
        .await
        .context("load the catalog from PostgreSQL")?;
    let versions = catalog.versions().await;
    tracing::info!(
        path = %config.catalog.display(),
        items = catalog.snapshot().len(),
        ?versions,
        "catalog loaded from PostgreSQL"
    );
    let store = EventStore::new(pool.clone());
    let format = AmountFormat {
        scale: config.amount_scale.min(16),
    };
    let orders = orders::Orders::new(
        store.clone(),
        cart_store::orders::OrderStore::new(pool.clone()),
        catalog.clone(),
        format,
        Duration::from_secs(config.order_hold_secs),
    );
    let app = app::App::new(
        store,
        cart_store::orders::OrderStore::new(pool.clone()),
        catalog.clone(),
        format,
        config.tuning(),
    );
    let mut pool_watches = vec![pool_watch];
    for (name, probes) in app.probe_pools() {
        pool_watches.push(cart_metrics::watch_pool(name, probes));
    }
    let client = edge::connect(config).await?;
    health.set_nats(client.clone());

    background.spawn(catalog.clone().poll(stopped.clone()));
    let relay_config = config.relay_config();
    let relay = config
        .relay
        .then(|| cart_relay::Relay::new(pool.clone(), client.clone(), relay_config.clone()));
    let orders_relay_config = config.orders_relay_config();
    let order_relay = config
        .relay
        .then(|| cart_relay::Relay::new(pool.clone(), client.clone(), orders_relay_config.clone()));
    for relay in relay.iter().chain(order_relay.iter()).cloned() {
        let mut stopped = stopped.clone();
        background.spawn(async move {
            relay
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    if config.projections {
        background.spawn(feed::run_projections(pool.clone(), stopped.clone()));
    }
    background.spawn(retention::run(pool.clone(), config.retention(), stopped));
    let status = feed::FeedStatus {
        pool,
        relay,
        checkpoint_name: relay_config.checkpoint_name(),
        stream: relay_config.stream,
        orders_checkpoint_name: orders_relay_config.checkpoint_name(),
        orders_stream: orders_relay_config.stream,
    };
    let services = dispatch::Services {
        carts: app,
        orders,
        admin,
        feed: status,
    };
    let service = edge::start(config, services, client).await?;
    health.set_serving();
    Ok(Server {
        service,
        stop,
        background,
        admin_addr,
        health,
        drain_timeout: Duration::from_secs(config.drain_timeout_secs),
        _pool_watches: pool_watches,
    })
}

/// Binds the admin port (`--admin-addr`) and serves it among `background` until `stopped`;
/// its bound address, None when it is off. A port that cannot be bound stops the start.
async fn serve_admin(
    config: &Config,
    metrics: &'static cart_metrics::Metrics,
    health: &Arc<cart_metrics::checks::Health>,
    stopped: &tokio::sync::watch::Receiver<bool>,
    background: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Option<SocketAddr>> {
    let listener = cart_metrics::AdminListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("bind the admin port {}", config.admin_addr))?;
    let Some(listener) = listener else {
        return Ok(None);
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "admin port: /metrics, /healthz, /readyz");
    background.spawn(listener.serve(metrics, health.probe(), stopped.clone()));
    Ok(Some(addr))
}

/// Runs until `shutdown` resolves, then stops gracefully.
///
/// # Errors
/// As [`start`].
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let server = tokio::select! {
        server = start(&config) => server?,
        () = &mut shutdown => {
            tracing::info!("shutdown requested before the service started");
            return Ok(());
        }
    };
    shutdown.await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Creates the database if needed, migrates and checks durability, retrying with a
/// growing pause while PostgreSQL does not answer: a service started before its
/// database waits instead of crash-looping. Errors that waiting cannot cure (a bad URL,
/// fsync off, a failed migration, refused credentials) end the start instead.
async fn connect_postgres(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    let db = DbConfig {
        url: config.database_url.clone(),
        max_connections: config.db_max_connections,
        acquire_timeout: config.db_acquire_timeout(),
    };
    let mut pause = Duration::from_millis(250);
    loop {
        let res = async {
            cart_store::ensure_database(&db.url).await?;
            cart_store::connect(&db).await
        }
        .await;
        match res {
            Ok(pool) => {
                tracing::info!(url = %redact(&db.url), "connected to PostgreSQL; migrations applied");
                return Ok(pool);
            }
            Err(e) if !e.is_unavailable() => {
                let context = format!("prepare PostgreSQL at {}", redact(&db.url));
                return Err(anyhow::Error::new(e).context(context));
            }
            Err(e) => {
                tracing::warn!(url = %redact(&db.url), error = %app::error_chain(&e), retry_in = ?pause, "PostgreSQL not ready");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
