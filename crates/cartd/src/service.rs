//! The NATS side: a micro service (answers $SRV.PING, INFO, STATS) with one queue-group
//! endpoint per cart operation, request headers in, reply headers out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::service::{self, ServiceExt};
use async_nats::HeaderMap;
use cart_proto::request::{self, Endpoint};
use cart_proto::{Encoding, ErrorReply};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::app::{self, App};
use crate::feed::FeedStatus;
use crate::Config;

pub use cart_proto::COMMAND_ID_HEADER;
/// The largest request body accepted, in bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;
const MAX_COMMAND_ID_LEN: usize = 128;

/// Error counts per endpoint, reported in STATS `data`: error replies carry a JSON body,
/// which async-nats's own error path cannot send, so they go out as replies with the
/// service error headers set by hand and are counted here.
type ErrorStats = Arc<Mutex<HashMap<String, (u64, String)>>>;

pub(crate) struct Running {
    service: service::Service,
    tasks: JoinSet<()>,
    client: async_nats::Client,
}

impl Running {
    pub(crate) async fn stop(mut self) {
        if let Err(e) = self.service.stop().await {
            tracing::warn!(error = %e, "stopping the NATS service");
        }
        // The endpoint loops end when their subscriptions close; in-flight requests finish.
        while self.tasks.join_next().await.is_some() {}
        let _ = self.client.drain().await;
    }
}

/// Connects to NATS; starting before NATS is up is fine, the client keeps trying.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<async_nats::Client> {
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
        .connect(config.nats_url.as_str())
        .await
        .with_context(|| format!("connect to NATS at {}", config.nats_url))?;
    tracing::info!(url = %config.nats_url, "NATS client started");
    Ok(client)
}

pub(crate) async fn start(
    config: &Config,
    app: App,
    client: async_nats::Client,
    feed: FeedStatus,
    admin: crate::admin::Admin,
    orders: crate::orders::Orders,
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

    let limit = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    for endpoint in Endpoint::ALL {
        let mut requests = group
            .endpoint_builder()
            .name(endpoint.name())
            .add(endpoint.subject())
            .await
            .map_err(|e| anyhow::anyhow!("add endpoint {}: {e}", endpoint.subject()))?;
        let (app, limit, error_stats) = (app.clone(), limit.clone(), error_stats.clone());
        tasks.spawn(async move {
            let mut in_flight = JoinSet::new();
            while let Some(request) = requests.next().await {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let (app, error_stats) = (app.clone(), error_stats.clone());
                in_flight.spawn(async move {
                    handle(&app, endpoint, request, &error_stats).await;
                    drop(permit);
                });
                // Reap finished requests so the set does not grow without bound.
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
        });
    }
    let mut status_requests = group
        .endpoint_builder()
        .name("feed-status")
        .add("feed.status")
        .await
        .map_err(|e| anyhow::anyhow!("add endpoint feed.status: {e}"))?;
    tasks.spawn(async move {
        while let Some(request) = status_requests.next().await {
            let reply = match feed.report().await {
                Ok(report) => Ok(serde_json::to_vec(&report).unwrap_or_default().into()),
                Err(e) => {
                    tracing::warn!(error = %app::error_chain(&e), "feed status unavailable");
                    Err(service::error::Error {
                        status: "feed status unavailable: the cart store cannot be reached"
                            .to_owned(),
                        code: 503,
                    })
                }
            };
            let _ = request.respond(reply).await;
        }
    });
    admin.serve(&group, &mut tasks).await?;
    orders.serve(&group, &mut tasks).await?;
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
        "serving cart endpoints: fill, item.put, item.delete, clear, get; feed.status; admin.catalog.*; order.*, payment.*"
    );
    Ok(Running {
        service,
        tasks,
        client,
    })
}

/// The headers of an error reply: the micro-service error pair (async-nats's own error
/// path cannot carry a JSON body) and the Xsolla code.
pub(crate) fn error_headers(headers: &mut HeaderMap, error: &ErrorReply) {
    headers.insert(service::NATS_SERVICE_ERROR, error.message().as_str());
    headers.insert(
        service::NATS_SERVICE_ERROR_CODE,
        error.status.to_string().as_str(),
    );
    headers.insert("Cart-Error-Code", error.code.to_string().as_str());
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}

fn command_id(headers: Option<&HeaderMap>) -> Result<Option<String>, ErrorReply> {
    let Some(id) = header(headers, COMMAND_ID_HEADER) else {
        return Ok(None);
    };
    let valid = !id.is_empty()
        && id.len() <= MAX_COMMAND_ID_LEN
        && id.chars().all(|c| c.is_ascii_graphic());
    if !valid {
        return Err(ErrorReply::new(
            422,
            1102,
            format!("Unprocessable Entity. The header {COMMAND_ID_HEADER} must be 1 to {MAX_COMMAND_ID_LEN} printable ASCII characters"),
        ));
    }
    Ok(Some(id.to_owned()))
}

async fn handle(
    app: &App,
    endpoint: Endpoint,
    request: service::Request,
    error_stats: &ErrorStats,
) {
    let started = Instant::now();
    let message = &request.message;
    let headers = message.headers.as_ref();
    let encoding = Encoding::from_content_type(header(headers, "Content-Type"));
    let span = tracing::info_span!(
        "cart",
        endpoint = endpoint.subject(),
        project = tracing::field::Empty,
        user = tracing::field::Empty,
        cart_id = tracing::field::Empty,
        command_id = tracing::field::Empty,
    );
    let res = async {
        if message.payload.len() > MAX_PAYLOAD {
            return Err(ErrorReply::new(
                413,
                1102,
                format!("Payload Too Large. A request body may hold at most {MAX_PAYLOAD} bytes"),
            ));
        }
        // Queries change nothing, so their idempotency key is ignored rather than checked.
        let command_id = if endpoint.is_query() {
            None
        } else {
            command_id(headers)?
        };
        let decoded = request::decode(endpoint, encoding, &message.payload)?;
        let span = tracing::Span::current();
        span.record("project", decoded.scope.project.get());
        span.record("user", decoded.scope.user.as_str());
        let cart_label = decoded
            .scope
            .cart
            .as_ref()
            .map_or("current", |c| c.as_str())
            .to_owned();
        span.record("cart_id", cart_label.as_str());
        if let Some(id) = &command_id {
            span.record("command_id", id.as_str());
        }
        let fingerprint = app::fingerprint(endpoint, encoding, &message.payload);
        app.handle(decoded, encoding, command_id, fingerprint).await
    }
    .instrument(span.clone())
    .await;

    let elapsed = started.elapsed();
    let mut reply_headers = HeaderMap::new();
    let (body, outcome) = match res {
        Ok(body) => {
            reply_headers.insert("Content-Type", encoding.content_type());
            (body, None)
        }
        Err(error) => {
            reply_headers.insert("Content-Type", Encoding::JSON_CONTENT_TYPE);
            error_headers(&mut reply_headers, &error);
            if let Ok(mut stats) = error_stats.lock() {
                let entry = stats.entry(endpoint.name().to_owned()).or_default();
                entry.0 += 1;
                entry.1 = format!("{}:{}", error.status, error.message());
            }
            (error.body(), Some(error))
        }
    };
    span.in_scope(|| match &outcome {
        None => tracing::debug!(?elapsed, "ok"),
        Some(e) if e.status >= 500 => {
            tracing::warn!(?elapsed, status = e.status, error = %e.message(), "failed")
        }
        Some(e) => tracing::info!(?elapsed, status = e.status, error = %e.message(), "refused"),
    });
    if let Err(e) = request
        .respond_with_headers(Ok(body.into()), reply_headers)
        .await
    {
        span.in_scope(|| tracing::warn!(error = %e, "could not send the reply"));
    }
}
