//! A real OTLP/HTTP trace receiver (opentelemetry-proto's prost types) and the helpers
//! the trace tests read its spans with.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::World;

/// Every span the receiver was sent, with its resource's `service.name`.
#[derive(Clone, Default)]
pub struct Collector {
    pub spans: Arc<Mutex<Vec<(String, Span)>>>,
}

async fn export(State(c): State<Collector>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut spans = c.spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

impl Collector {
    pub async fn start() -> (Self, String) {
        let collector = Collector::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (collector, url)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A span's attribute as text.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (trace id, parent span id) of a `traceparent`.
pub fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// The one span that `matches`, with a readable failure.
pub fn one<'a>(spans: &'a [Span], what: &str, matches: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| matches(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: {} spans match; spans: {:#?}",
        found.len(),
        spans
            .iter()
            .map(|s| (&s.name, hex(&s.trace_id), hex(&s.parent_span_id)))
            .collect::<Vec<_>>()
    );
    found[0]
}

/// A request to cartd with a caller's `traceparent` (none when empty); its JSON reply,
/// which must not be an error.
pub async fn request(
    w: &World,
    endpoint: &str,
    traceparent: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut headers = async_nats::HeaderMap::new();
    if !traceparent.is_empty() {
        headers.insert("traceparent", traceparent);
    }
    let reply = w
        .client
        .request_with_headers(
            format!("{}.{endpoint}", w.config.prefix),
            headers,
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap();
    assert!(
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error-Code"))
            .is_none(),
        "{endpoint}: {}",
        String::from_utf8_lossy(&reply.payload)
    );
    serde_json::from_slice(&reply.payload).unwrap()
}

/// A cartd in this process on the world's database, prefix and orders stream (its events
/// stream named after the latter), so that its spans go to this process's exporter.
pub async fn start_cartd(w: &World) -> (cartd::Server, cartd::Config) {
    let mut service = w.cartd_config();
    service.service_name = "cart-trace-test".into();
    let server = cartd::start(&service).await.expect("start cartd");
    (server, service)
}
