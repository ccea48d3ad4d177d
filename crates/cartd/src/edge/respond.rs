//! The one respond path every request takes, whatever its endpoint: body limit,
//! `Content-Type`, `Cart-Command-Id`, the request span, the handler run so that a panic
//! becomes a structured 500, reply headers, the outcome's log line, error stats and the
//! request metrics (count per endpoint, status and code; latency per endpoint).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_nats::service;
use bytes::Bytes;
use cart_domain::{ProjectId, UserId};
use cart_proto::{Encoding, ErrorReply, ReplyMode};
use futures::FutureExt;
use tracing::Instrument;

use super::endpoint::{Bodies, CommandIds, Endpoint};
use super::errors;
use super::headers::{self, HeaderText, ReplyHeaders};
use super::ledger::{Command, CommandId};
use super::reply_mode;

/// The largest request body accepted on any endpoint, admin included, in bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// A request as a handler sees it: checked by the edge already.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub(crate) encoding: Encoding,
    pub(crate) body: Bytes,
    /// The command to record, on endpoints that record command ids and only when the
    /// request named one.
    pub(crate) command: Option<Command>,
    /// What to answer with (`Cart-Reply`): minimal only on a cart command that asked.
    pub(crate) reply: ReplyMode,
}

/// A handler's answer: the body and its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
    pub(crate) encoding: Encoding,
}

impl Reply {
    pub(crate) fn json(body: Vec<u8>) -> Self {
        Self {
            body,
            encoding: Encoding::Json,
        }
    }
}

/// What serves the endpoints behind the edge.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        endpoint: Endpoint,
        request: Incoming,
    ) -> impl Future<Output = Result<Reply, ErrorReply>> + Send;
}

/// Error counts per endpoint name, reported in STATS `data`: error replies carry a JSON
/// body, which async-nats's own error path cannot send, so they go out as replies with
/// the service error headers set by hand and are counted here.
pub(crate) type ErrorStats = Arc<Mutex<HashMap<String, (u64, String)>>>;

/// Answers one request, start to end. Never panics: a panicking handler is caught
/// and answered 500/1000.
pub(crate) async fn respond<H: Handler>(
    handler: &H,
    endpoint: Endpoint,
    request: service::Request,
    stats: &ErrorStats,
) {
    let started = Instant::now();
    let span = request_span(endpoint, &request.message);
    // The sampler decides here, once per request: the spans of an unsampled request are
    // then never built for export (cart_telemetry's `sampling`).
    let unsampled = cart_telemetry::unsampled(&span);
    // Boxed: the handler's future is kilobytes (every await of a command's path), and
    // each wrapper below, like the task that holds this one, would copy it whole.
    let work = AssertUnwindSafe(Box::pin(run(handler, endpoint, &request.message))).catch_unwind();
    let outcome = match cart_telemetry::scope(unsampled, work.instrument(span.clone())).await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            span.in_scope(|| tracing::error!(panic = %what, "the handler panicked"));
            Err(errors::internal())
        }
    };
    let elapsed = started.elapsed();
    let (status, code) = outcome
        .as_ref()
        .map_or_else(|e| (e.status, e.code), |_| (200, 0));
    crate::metrics::get().request(endpoint.subject(), status, code, elapsed);
    let mut reply_headers = ReplyHeaders::default();
    let body = match &outcome {
        Ok(reply) => {
            reply_headers.set(
                "Content-Type",
                HeaderText::new(reply.encoding.content_type()),
            );
            span.in_scope(|| tracing::debug!(?elapsed, "ok"));
            reply.body.clone()
        }
        Err(error) => {
            error_headers(&mut reply_headers, error);
            count(stats, endpoint, error);
            span.in_scope(|| {
                if error.status >= 500 {
                    tracing::warn!(?elapsed, status = error.status, error = %error.message(), "failed");
                } else {
                    tracing::info!(?elapsed, status = error.status, error = %error.message(), "refused");
                }
            });
            error.body()
        }
    };
    record_outcome(&span, &outcome);
    if let Err(e) = request
        .respond_with_headers(Ok(body.into()), reply_headers.into_map())
        .await
    {
        span.in_scope(|| tracing::warn!(error = %e, "could not send the reply"));
    }
}

/// The request's `cart` span: OpenTelemetry's messaging attributes, the cart's own
/// (filled in as the handler learns them), and the caller's trace continued when the
/// request carries a `traceparent` (a new trace starts otherwise).
fn request_span(endpoint: Endpoint, message: &async_nats::Message) -> tracing::Span {
    let span = tracing::info_span!(
        "cart",
        otel.kind = "server",
        messaging.system = "nats",
        messaging.destination.name = message.subject.as_str(),
        messaging.operation.type = "process",
        endpoint = endpoint.subject(),
        project = tracing::field::Empty,
        user = tracing::field::Empty,
        cart_id = tracing::field::Empty,
        command_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        status = tracing::field::Empty,
        error_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    cart_telemetry::set_parent_from_nats(&span, message.headers.as_ref());
    span
}

/// The outcome on the request span: ok, refused (4xx) or failed (5xx, an error status).
fn record_outcome(span: &tracing::Span, outcome: &Result<Reply, ErrorReply>) {
    match outcome {
        Ok(_) => {
            span.record("outcome", "ok");
            span.record("status", 200);
        }
        Err(error) => {
            let failed = error.status >= 500;
            span.record("outcome", if failed { "failed" } else { "refused" });
            span.record("status", error.status);
            span.record("error_code", error.code);
            if failed {
                span.record("otel.status_code", "error");
            }
        }
    }
}

/// Names whose request this is in the request's `cart` span, once the handler has
/// decoded it (`cart` None for requests that name no cart).
pub(crate) fn record_scope(project: ProjectId, user: &UserId, cart: Option<&str>) {
    let span = tracing::Span::current();
    span.record("project", project.get());
    span.record("user", user.as_str());
    if let Some(cart) = cart {
        span.record("cart_id", cart);
    }
}

/// The edge's checks, then the handler.
async fn run<H: Handler>(
    handler: &H,
    endpoint: Endpoint,
    message: &async_nats::Message,
) -> Result<Reply, ErrorReply> {
    if message.payload.len() > MAX_PAYLOAD {
        return Err(errors::too_large(MAX_PAYLOAD));
    }
    let request_headers = message.headers.as_ref();
    let encoding = match endpoint.bodies() {
        Bodies::Negotiated => Encoding::from_content_type(
            headers::single(request_headers, "Content-Type")
                .ok()
                .flatten(),
        ),
        Bodies::Json => Encoding::Json,
    };
    // Checked on every endpoint, queries included: an invalid id is refused, a valid
    // one is recorded where commands are recorded and otherwise has no effect.
    let id = CommandId::from_headers(request_headers)?;
    if let Some(id) = &id {
        tracing::Span::current().record("command_id", id.as_str());
    }
    // The same rule for `Cart-Reply`: checked everywhere, honoured on cart commands.
    let reply = reply_mode::for_endpoint(endpoint, reply_mode::from_headers(request_headers)?);
    let command = match endpoint.command_ids() {
        CommandIds::Recorded => {
            id.map(|id| Command::new(id, endpoint, encoding, reply, &message.payload))
        }
        CommandIds::Ignored => None,
    };
    let incoming = Incoming {
        encoding,
        body: message.payload.clone(),
        command,
        reply,
    };
    handler.handle(endpoint, incoming).await
}

/// The headers of an error reply: the micro-service error pair (async-nats's own error
/// path cannot carry a JSON body), the Xsolla code and the body's content type.
fn error_headers(headers: &mut ReplyHeaders, error: &ErrorReply) {
    headers.set("Content-Type", HeaderText::new(Encoding::JSON_CONTENT_TYPE));
    headers.set(
        service::NATS_SERVICE_ERROR,
        HeaderText::new(&error.message()),
    );
    headers.set(
        service::NATS_SERVICE_ERROR_CODE,
        HeaderText::new(&error.status.to_string()),
    );
    headers.set("Cart-Error-Code", HeaderText::new(&error.code.to_string()));
}

fn count(stats: &ErrorStats, endpoint: Endpoint, error: &ErrorReply) {
    if let Ok(mut stats) = stats.lock() {
        let entry = stats.entry(endpoint.name()).or_default();
        entry.0 += 1;
        entry.1 = HeaderText::new(&format!("{}:{}", error.status, error.message()))
            .as_str()
            .to_owned();
    }
}
