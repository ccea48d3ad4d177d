//! The worker's spans: intake continues the trace of the order message (its
//! `traceparent`, the context of the command that wrote the event), keeps the intake
//! span's context with the delivery (under `"trace"` in the stored envelope), and each
//! POST's client span continues it and carries it to the receiver. All of it is a no-op
//! when traces are not exported.

use async_nats::jetstream;
use cart_telemetry::TraceParent;

use crate::http::HttpError;
use crate::store::Claimed;

/// Where the delivery keeps its trace context: beside the envelope's own fields, which
/// nothing reads by this name.
const STORED: &str = "trace";

/// The span of one order message's intake, continuing the message's trace. Named after
/// the stream, not the subject, which holds the order id.
pub(crate) fn intake_span(message: &jetstream::Message) -> tracing::Span {
    let (stream, consumer) = message
        .info()
        .map(|i| (i.stream, i.consumer))
        .unwrap_or_default();
    let span = tracing::info_span!(
        "intake",
        otel.name = format!("process {stream}").as_str(),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = message.subject.as_str(),
        messaging.consumer.group.name = consumer,
        messaging.operation.type = "process",
    );
    cart_telemetry::set_parent_from_nats(&span, message.headers.as_ref());
    span
}

/// `envelope` with the current span's context, to be stored with the delivery.
pub(crate) fn with_trace(mut envelope: serde_json::Value) -> serde_json::Value {
    if let (Some(trace), Some(object)) = (
        cart_telemetry::traceparent_of(&tracing::Span::current()),
        envelope.as_object_mut(),
    ) {
        let mut stored = serde_json::json!({});
        trace.add_to(&mut stored);
        object.insert(STORED.to_owned(), stored);
    }
    envelope
}

/// The client span of one POST (OpenTelemetry's HTTP client conventions), a child of
/// the delivery's stored context when it has one.
pub(crate) fn post_span(claimed: &Claimed, url: &str, attempt: i32) -> tracing::Span {
    let span = tracing::info_span!(
        "POST",
        otel.kind = "client",
        http.request.method = "POST",
        url.full = redacted(url).as_str(),
        http.request.resend_count = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        project = claimed.project_id,
        order = claimed.order_id,
        kind = claimed.kind.as_str(),
    );
    // Set on retries only, as the convention asks.
    if attempt > 1 {
        span.record("http.request.resend_count", attempt - 1);
    }
    if let Some(trace) = TraceParent::from_metadata(&claimed.envelope[STORED]) {
        let _ = cart_telemetry::OpenTelemetrySpanExt::set_parent(&span, trace.context());
    }
    span
}

/// The response status, or the error's kind, on the POST's span.
pub(crate) fn record_post(span: &tracing::Span, result: &Result<u16, HttpError>) {
    match result {
        Ok(code) => {
            span.record("http.response.status_code", code);
            if *code >= 400 {
                span.record("error.type", code.to_string().as_str());
                span.record("otel.status_code", "error");
            }
        }
        Err(e) => {
            let kind = match e {
                HttpError::Timeout(_) => "timeout",
                HttpError::Connect { .. } => "connect",
                HttpError::Tls { .. } => "tls",
                HttpError::BadUrl { .. } => "bad_url",
                HttpError::Http(_) | HttpError::Header(_) => "http",
            };
            span.record("error.type", kind);
            span.record("otel.status_code", "error");
        }
    }
}

/// The URL without credentials or query values (OpenTelemetry's rule for `url.full`): a
/// webhook URL may carry a token.
fn redacted(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?REDACTED"),
        None => (url, ""),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_owned(),
    };
    format!("{base}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_query_values_never_reach_a_span() {
        assert_eq!(redacted("https://h:8443/hook"), "https://h:8443/hook");
        assert_eq!(
            redacted("https://user:pw@h/hook?token=s3cret"),
            "https://h/hook?REDACTED"
        );
        assert_eq!(redacted("http://user@h"), "http://h");
    }
}
