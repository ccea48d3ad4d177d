//! W3C Trace Context (`traceparent`, `tracestate`) in and out of NATS headers, HTTP
//! headers and event metadata, always through the SDK's `TraceContextPropagator` (which
//! checks what it reads: a malformed header is no context, never an error).
//!
//! With export off a span has no OpenTelemetry context, so the injecting helpers write
//! nothing and the extracting ones have nothing to attach to: every helper is a no-op.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// A span context in its W3C text form, as stored with events and deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceParent {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl TraceParent {
    /// The context it names, through the propagator (an invalid text gives none).
    pub fn context(&self) -> Context {
        TraceContextPropagator::new().extract(self)
    }

    /// The trace id, 32 lowercase hex digits, when the text is valid.
    pub fn trace_id(&self) -> Option<String> {
        let cx = self.context();
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    /// Read back from event or delivery metadata (`{"traceparent": .., "tracestate": ..}`).
    pub fn from_metadata(metadata: &serde_json::Value) -> Option<Self> {
        let traceparent = metadata.get(TRACEPARENT)?.as_str()?.to_owned();
        let tracestate = metadata
            .get(TRACESTATE)
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        Some(Self {
            traceparent,
            tracestate,
        })
    }

    /// Adds the fields to a metadata object (anything else is left as it is).
    pub fn add_to(&self, metadata: &mut serde_json::Value) {
        if let Some(object) = metadata.as_object_mut() {
            object.insert(TRACEPARENT.to_owned(), self.traceparent.clone().into());
            if let Some(state) = &self.tracestate {
                object.insert(TRACESTATE.to_owned(), state.clone().into());
            }
        }
    }

    /// The same context re-encoded by the propagator; `None` when the text is not a
    /// valid context. What goes into a header is always this.
    pub fn checked(&self) -> Option<Self> {
        Self::of_context(&self.context())
    }

    /// Whether the context it names is sampled (false when it is not valid).
    pub fn sampled(&self) -> bool {
        self.context().span().span_context().is_sampled()
    }

    pub(crate) fn of_context(cx: &Context) -> Option<Self> {
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut out = Self::default();
        TraceContextPropagator::new().inject_context(cx, &mut out);
        (!out.traceparent.is_empty()).then_some(out)
    }
}

impl Injector for TraceParent {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = value,
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for TraceParent {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(&self.traceparent),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// NATS header names are case-sensitive; a caller's `Traceparent` is still found.
struct NatsExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
            .and_then(|(_, values)| values.first())
            .map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct NatsInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // async-nats panics on CR or LF in a header; the propagator never writes one,
        // and this keeps it so whatever it is given.
        if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            self.0.insert(key, value.as_str());
        }
    }
}

/// The context a message's headers carry; empty when they carry none (or a bad one).
pub fn context_from_nats(headers: Option<&async_nats::HeaderMap>) -> Context {
    match headers {
        Some(headers) => TraceContextPropagator::new().extract(&NatsExtractor(headers)),
        None => Context::new(),
    }
}

/// Makes `span` continue the trace of a message's `traceparent`, if it has a valid one;
/// true when it does. Call before the span is first entered.
pub fn set_parent_from_nats(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) -> bool {
    let cx = context_from_nats(headers);
    cx.span().span_context().is_valid() && span.set_parent(cx).is_ok()
}

/// The context of a stored `traceparent` (and `tracestate`).
pub fn context_from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Context {
    TraceParent {
        traceparent: traceparent.to_owned(),
        tracestate: tracestate.map(str::to_owned),
    }
    .context()
}

/// `span`'s context as text, for event metadata; `None` when it has none (export off).
pub fn traceparent_of(span: &tracing::Span) -> Option<TraceParent> {
    TraceParent::of_context(&span.context())
}

/// `metadata` with the current span's `traceparent` (and `tracestate`) added. An
/// unsampled request adds nothing: its context would make every event row and stream
/// message longer for a trace nobody records (`sampling`).
pub fn trace_metadata(mut metadata: serde_json::Value) -> serde_json::Value {
    if crate::sampling::in_unsampled() {
        return metadata;
    }
    if let Some(trace) = traceparent_of(&tracing::Span::current()) {
        trace.add_to(&mut metadata);
    }
    metadata
}

/// Writes `span`'s context into NATS headers (nothing when it has none).
pub fn inject_nats(span: &tracing::Span, headers: &mut async_nats::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut NatsInjector(headers));
}

/// Writes a stored context into NATS headers, re-encoded by the propagator, so that
/// only a valid context is ever sent.
pub fn inject_nats_traceparent(trace: &TraceParent, headers: &mut async_nats::HeaderMap) {
    TraceContextPropagator::new().inject_context(&trace.context(), &mut NatsInjector(headers));
}

/// Adds `span`'s `traceparent` (and `tracestate`) to an HTTP request's headers.
pub fn inject_http(span: &tracing::Span, headers: &mut Vec<(&'static str, String)>) {
    if let Some(trace) = traceparent_of(span) {
        headers.push((TRACEPARENT, trace.traceparent));
        if let Some(state) = trace.tracestate {
            headers.push((TRACESTATE, state));
        }
    }
}

/// Links `span` to the span of `cx` (OpenTelemetry's way for batches, where one span
/// serves many callers); nothing when `cx` has no valid span.
pub fn link(span: &tracing::Span, cx: &Context) {
    span.add_link(cx.span().span_context().clone());
}

/// Links `span` to a stored context.
pub fn link_traceparent(span: &tracing::Span, trace: &TraceParent) {
    link(span, &trace.context());
}

/// A fresh, sampled root context in W3C text form, for a client that starts a trace
/// without exporting spans of its own (`cartctl`).
pub fn new_traceparent() -> TraceParent {
    let ids = RandomIdGenerator::default();
    let sc = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    TraceParent::of_context(&Context::new().with_remote_span_context(sc)).unwrap_or_default()
}

/// The trace id of a `traceparent` text, when valid.
pub fn trace_id(traceparent: &str) -> Option<String> {
    TraceParent {
        traceparent: traceparent.to_owned(),
        tracestate: None,
    }
    .trace_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_round_trips_through_nats_headers() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Traceparent", PARENT);
        headers.insert("tracestate", "vendor=value");
        let cx = context_from_nats(Some(&headers));
        let trace = TraceParent::of_context(&cx).expect("a valid context");
        assert_eq!(trace.traceparent, PARENT);
        assert_eq!(trace.tracestate.as_deref(), Some("vendor=value"));
        let mut out = async_nats::HeaderMap::new();
        inject_nats_traceparent(&trace, &mut out);
        assert_eq!(out.get(TRACEPARENT).map(|v| v.as_str()), Some(PARENT));
        assert_eq!(
            trace_id(PARENT).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn bad_or_missing_headers_are_no_context() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(TRACEPARENT, bad);
            assert!(TraceParent::of_context(&context_from_nats(Some(&headers))).is_none());
            assert!(trace_id(bad).is_none());
        }
        assert!(TraceParent::of_context(&context_from_nats(None)).is_none());
        // A stored context that is not valid is never written out.
        let mut out = async_nats::HeaderMap::new();
        inject_nats_traceparent(
            &TraceParent {
                traceparent: "00-zz".into(),
                tracestate: None,
            },
            &mut out,
        );
        assert!(out.get(TRACEPARENT).is_none());
    }

    #[test]
    fn without_export_spans_give_and_take_nothing() {
        // No subscriber with the OpenTelemetry layer in this test binary.
        let span = tracing::info_span!("x");
        assert!(traceparent_of(&span).is_none());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(TRACEPARENT, PARENT);
        assert!(!set_parent_from_nats(&span, Some(&headers)));
        let mut http = Vec::new();
        inject_http(&span, &mut http);
        assert!(http.is_empty());
        let metadata = trace_metadata(serde_json::json!({"order_id": 1}));
        assert_eq!(metadata, serde_json::json!({"order_id": 1}));
    }

    #[test]
    fn fresh_traceparents_are_valid_sampled_and_distinct() {
        let (a, b) = (new_traceparent(), new_traceparent());
        assert!(a.traceparent.ends_with("-01"), "{a:?}");
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(a.trace_id().is_some());
        let mut metadata = serde_json::json!({});
        a.add_to(&mut metadata);
        assert_eq!(TraceParent::from_metadata(&metadata), Some(a));
    }
}
