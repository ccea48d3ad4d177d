//! The messages a relay publishes: one per event, with its subject, `Nats-Msg-Id` and
//! headers, and the stream (cart or order) whose order it must keep.

use async_nats::jetstream::message::PublishMessage;
use cart_proto::order as order_wire;
use cart_proto::subject;
use cart_store::feed::RecordedEvent;
use cart_store::orders::RecordedOrderEvent;
use cart_telemetry::TraceParent;

/// One message ready to publish, and the stream (cart or order) it keeps in order.
pub(crate) struct Outgoing {
    pub(crate) stream_id: sqlx::types::Uuid,
    pub(crate) subject: String,
    pub(crate) message: PublishMessage,
    /// Its `Nats-Msg-Id` (the event id).
    pub(crate) msg_id: String,
    /// The trace context of the command that wrote the event, when it was recorded.
    pub(crate) trace: Option<TraceParent>,
}

/// Most links on one publish span: the SDK keeps 128 by default, and parsing more
/// would be wasted.
const MAX_LINKS: usize = 128;

/// The span of one page's publish: a producer span of its own (the relay may run long
/// after the commands, on another instance), linked to each sampled command whose
/// events it carries. A page that carries no sampled command comes with `true`, to be
/// published unseen by the exporter (`cart_telemetry::batch_root`).
pub(crate) fn publish_span(stream: &str, outgoing: &[Outgoing]) -> (tracing::Span, bool) {
    // A command's events are consecutive in the log: one trace per command.
    let mut traces: Vec<&TraceParent> = Vec::new();
    for trace in outgoing.iter().filter_map(|o| o.trace.as_ref()) {
        if traces.last() != Some(&trace) {
            traces.push(trace);
        }
    }
    cart_telemetry::batch_root(&traces, MAX_LINKS, || {
        tracing::info_span!(
            parent: None,
            "publish",
            otel.name = format!("publish {stream}").as_str(),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.destination.name = stream,
            messaging.operation.type = "send",
            messaging.batch.message_count = outgoing.len(),
        )
    })
}

/// The event's original `traceparent` (and `tracestate`) on its message, so that a
/// consumer continues the command's trace.
fn with_trace(message: PublishMessage, trace: Option<&TraceParent>) -> PublishMessage {
    let Some(trace) = trace.and_then(TraceParent::checked) else {
        return message;
    };
    let message = message.header("traceparent", trace.traceparent.as_str());
    match &trace.tracestate {
        Some(state) => message.header("tracestate", state.as_str()),
        None => message,
    }
}

pub(crate) fn cart_outgoing(prefix: &str, event: &RecordedEvent) -> Outgoing {
    let envelope = event.envelope();
    let subject = subject::event_subject(
        prefix,
        event.project_id,
        &event.user_id,
        &event.cart_id,
        &envelope.event_type,
        cart_proto::event::sku_of(&event.event).map(|s| s.as_str()),
    );
    // Serializing a generated message cannot fail.
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    let message = PublishMessage::build()
        .payload(body.into())
        .message_id(&envelope.event_id)
        .header("Content-Type", "application/json")
        .header("Cart-Event-Type", envelope.event_type.as_str())
        .header("Cart-Position", envelope.position.as_str())
        .header("Cart-Stream-Id", envelope.stream_id.as_str())
        .header("Cart-Version", event.version.to_string().as_str());
    Outgoing {
        stream_id: event.stream_id,
        subject,
        message: with_trace(message, event.trace.as_ref()),
        msg_id: envelope.event_id.clone(),
        trace: event.trace.clone(),
    }
}

pub(crate) fn order_outgoing(
    prefix: &str,
    amount_scale: u32,
    event: &RecordedOrderEvent,
) -> Outgoing {
    let status = order_wire::status_after(&event.event);
    let format = cart_proto::view::AmountFormat {
        scale: amount_scale,
    };
    let envelope = event.envelope(format);
    let subject = order_wire::order_subject(prefix, event.project_id, event.order_id, status);
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    let message = PublishMessage::build()
        .payload(body.into())
        .message_id(&envelope.event_id)
        .header("Content-Type", "application/json")
        .header("Order-Event-Type", envelope.event_type.as_str())
        .header("Order-Position", envelope.position.as_str())
        .header("Order-Version", event.version.to_string().as_str());
    Outgoing {
        stream_id: event.stream_id,
        subject,
        message: with_trace(message, event.trace.as_ref()),
        msg_id: envelope.event_id.clone(),
        trace: event.trace.clone(),
    }
}
