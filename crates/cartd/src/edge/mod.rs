//! The NATS edge: one micro service (answers `$SRV.PING`, `INFO`, `STATS`) with one
//! queue-group endpoint per [`Endpoint`], every request through the one respond path
//! (`respond.rs`) in a task of its own, at most `CART_MAX_IN_FLIGHT` at once.
//!
//! `endpoint.rs` names the endpoints, `headers.rs` reads request headers and builds
//! safe reply headers, `ledger.rs` holds the command-id rules and fingerprint,
//! `reply_mode.rs` the `Cart-Reply` header, `errors.rs` maps every layer's error to the
//! wire.

mod endpoint;
pub(crate) mod errors;
mod headers;
pub(crate) mod ledger;
mod reply_mode;
mod respond;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::service::{self, ServiceExt};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub(crate) use endpoint::{AdminEndpoint, Endpoint, Entity, OrderEndpoint, PaymentEndpoint, Verb};
pub use respond::MAX_PAYLOAD;
pub(crate) use respond::{record_scope, ErrorStats, Handler, Incoming, Reply};

use crate::Config;

pub(crate) struct Running {
    /// Taken by [`Running::stop`].
    service: Option<service::Service>,
    tasks: JoinSet<()>,
    client: async_nats::Client,
}

impl Running {
    /// Unsubscribes the endpoints and waits for the requests taken to be answered, then
    /// flushes the replies; the connection stays open (see [`Running::close`]).
    pub(crate) async fn stop(&mut self) {
        if let Some(service) = self.service.take() {
            if let Err(e) = service.stop().await {
                tracing::warn!(error = %e, "stopping the NATS service");
            }
        }
        // The endpoint loops end when their subscriptions close; in-flight requests finish.
        while self.tasks.join_next().await.is_some() {}
        if let Err(e) = self.client.flush().await {
            tracing::warn!(error = %e, "flushing the last replies");
        }
    }

    /// Closes the connection once everything published on it is sent.
    pub(crate) async fn close(self) {
        let _ = self.client.drain().await;
    }

    /// [`Running::stop`], then [`Running::close`].
    #[cfg(test)]
    pub(crate) async fn finish(mut self) {
        self.stop().await;
        self.close().await;
    }
}

/// Connects to NATS (any server of the seed list, `cart_nats`); starting before NATS is
/// up is fine, the client keeps trying, and after a server goes away it reconnects to
/// another one.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<async_nats::Client> {
    let servers = cart_nats::servers(&config.nats_url).context("--nats-url (NATS_URL)")?;
    let shown = cart_nats::display(&servers);
    let client = async_nats::ConnectOptions::new()
        .name(format!("cartd {}", env!("CARGO_PKG_VERSION")))
        .retry_on_initial_connect()
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("disconnected from NATS; reconnecting")
                }
                other => tracing::info!(event = %other, "NATS event"),
            }
        })
        .connect(servers.as_slice())
        .await
        .with_context(|| format!("connect to NATS at {shown}"))?;
    tracing::info!(servers = %shown, "NATS client started");
    Ok(client)
}

/// Starts the service and serves every endpoint with `handler`. Returns once the server
/// has answered the instance's own `$SRV.PING` (or after 5 s without NATS).
pub(crate) async fn start<H: Handler>(
    config: &Config,
    handler: H,
    client: async_nats::Client,
) -> anyhow::Result<Running> {
    let error_stats: ErrorStats = Arc::default();
    let stats_for_handler = error_stats.clone();
    let service = client
        .service_builder()
        .description("Event-sourced cart: commands and queries in the Xsolla cart format")
        .stats_handler(move |endpoint, _| {
            let stats = stats_for_handler
                .lock()
                .map(|s| s.get(&endpoint).cloned())
                .unwrap_or_default();
            let (n, last) = stats.unwrap_or_default();
            serde_json::json!({ "num_error_replies": n, "last_error_reply": last })
        })
        .start(config.service_name.as_str(), env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("start NATS service: {e}"))?;
    let group = service.group(config.subject_prefix.as_str());

    let handler = Arc::new(handler);
    let limit = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    for endpoint in Endpoint::all() {
        let requests = group
            .endpoint_builder()
            .name(endpoint.name())
            .add(endpoint.subject())
            .await
            .map_err(|e| anyhow::anyhow!("add endpoint {}: {e}", endpoint.subject()))?;
        let (handler, limit, stats) = (handler.clone(), limit.clone(), error_stats.clone());
        tasks.spawn(serve(endpoint, requests, handler, limit, stats));
    }
    // The server handles one connection's messages in order, so once it answers our own
    // ping it has processed our subscriptions: a caller that saw `start` return can send
    // requests without meeting "no responders".
    let ping = format!(
        "$SRV.PING.{}.{}",
        config.service_name,
        service.info().await.id
    );
    if let Err(e) =
        tokio::time::timeout(Duration::from_secs(5), client.request(ping, "".into())).await
    {
        tracing::warn!(error = %e, "NATS not reachable yet; endpoints serve once it is");
    }
    tracing::info!(
        prefix = %config.subject_prefix,
        service = %config.service_name,
        "serving cart endpoints: fill, item.put, item.delete, clear, get, promocode.*; feed.status; admin.catalog.*; order.*, payment.*"
    );
    Ok(Running {
        service: Some(service),
        tasks,
        client,
    })
}

/// One endpoint's loop: it only waits for a permit and spawns; the request runs in a
/// task of its own, so nothing a request does can stop the loop.
async fn serve<H: Handler>(
    endpoint: Endpoint,
    mut requests: service::endpoint::Endpoint,
    handler: Arc<H>,
    limit: Arc<Semaphore>,
    stats: ErrorStats,
) {
    let mut in_flight = JoinSet::new();
    while let Some(request) = requests.next().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let (handler, stats) = (handler.clone(), stats.clone());
        in_flight.spawn(async move {
            respond::respond(&*handler, endpoint, request, &stats).await;
            drop(permit);
        });
        // Reap finished requests so the set does not grow without bound.
        while let Some(done) = in_flight.try_join_next() {
            if let Err(e) = done {
                tracing::error!(endpoint = endpoint.subject(), error = %e, "a request task failed");
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
