//! One line of a JSON Lines export (`cartctl events export`, any `--log`) read back into
//! the stored form of its event, or refused with the reason. Every event is decoded as
//! the service would fold it, so an event it cannot read is refused at import, not at the
//! first read of its cart or order.

use cart_domain::{CartId, OrderEvent, ProjectId, UserId};
use cart_proto::order as wire;
use cart_proto::v1::event_envelope::Event;
use serde_json::Value;
use uuid::Uuid;

use super::ImportedEvent;
use crate::orders::{order_stream_id, sealed};
use crate::{StoreError, StreamKey};

/// An export line: an event of the cart log or of the order log.
#[derive(Debug, Clone)]
pub enum ImportedLine {
    Cart(ImportedEvent),
    Order(ImportedOrderEvent),
}

/// One event of the order log as an export line carries it (`stored`), to write back.
#[derive(Debug, Clone)]
pub struct ImportedOrderEvent {
    pub event_id: Uuid,
    pub project_id: i64,
    pub order_id: i64,
    pub user_id: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i16,
    /// As stored in the source: a sealed field stays sealed.
    pub payload: Value,
    pub metadata: Value,
    /// RFC 3339, as exported (checked here; PostgreSQL parses it).
    pub recorded_at: String,
    /// The personal field in clear, as the export showed it opened, when the source
    /// stored it sealed and its key still lived: it is sealed again under the user's
    /// key in the restored database (keys never leave their database). None for a field
    /// in clear, absent, or erased (no key: its sealed value is written back as it was,
    /// and stays unreadable).
    pub reseal: Option<Value>,
    /// The webhook notification the event caused in the source (`order_paid` for an
    /// `OrderPaid` or a free order's `OrderDone`, `order_canceled` for an
    /// `OrderCanceled`), with the envelope the relay published for it.
    pub notification: Option<(&'static str, Value)>,
}

impl ImportedOrderEvent {
    pub fn stream_id(&self) -> Uuid {
        // Both parsed as a project and an order id number when the line was read.
        let project = ProjectId::parse(u64::try_from(self.project_id).unwrap_or(0));
        project.map_or(Uuid::nil(), |p| {
            order_stream_id(p, u64::try_from(self.order_id).unwrap_or(0))
        })
    }
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Invalid(message.into())
}

/// Reads one export line.
///
/// # Errors
/// `Invalid` with the reason the line cannot be imported.
pub fn parse_line(line: &str) -> Result<ImportedLine, StoreError> {
    let raw: Value = serde_json::from_str(line).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if raw.get("order_id").is_some() {
        return order_line(raw).map(ImportedLine::Order);
    }
    cart_line(line).map(ImportedLine::Cart)
}

/// Reads `recorded_at` here, not in PostgreSQL, which would also take its own words
/// (`yesterday`, `epoch`, `infinity`) for a time.
fn check_time(recorded_at: &str) -> Result<(), StoreError> {
    cart_domain::DateTime::parse(recorded_at)
        .map(|_| ())
        .map_err(|e| invalid(format!("recorded_at {recorded_at:?}: {e}")))
}

fn cart_line(line: &str) -> Result<ImportedEvent, StoreError> {
    let envelope = cart_proto::event::envelope_from_json(line.as_bytes())
        .map_err(|e| invalid(format!("not an event envelope: {e}")))?;
    let Some(schema_version) = cart_proto::event::current_schema_version(&envelope.event_type)
    else {
        return Err(invalid(format!(
            "unknown cart event type {:?}",
            envelope.event_type
        )));
    };
    let payload = match &envelope.event {
        Some(Event::CartOpened(m)) => serde_json::to_value(m),
        Some(Event::ItemQuantitySet(m)) => serde_json::to_value(m),
        Some(Event::ItemRemoved(m)) => serde_json::to_value(m),
        Some(Event::CartCleared(m)) => serde_json::to_value(m),
        Some(Event::PromoCodeRedeemed(m)) => serde_json::to_value(m),
        Some(Event::PromoCodeRemoved(m)) => serde_json::to_value(m),
        None => {
            return Err(invalid(format!(
                "no event member for {:?}",
                envelope.event_type
            )))
        }
    }
    .map_err(|e| invalid(format!("an event the service cannot fold: {e}")))?;
    cart_proto::event::decode(&envelope.event_type, schema_version, payload.clone())
        .map_err(|e| invalid(format!("an event the service cannot fold: {e}")))?;
    let project = u64::try_from(envelope.project_id)
        .ok()
        .and_then(|p| ProjectId::parse(p).ok())
        .ok_or_else(|| invalid("bad project_id"))?;
    let key = StreamKey::new(
        project,
        UserId::parse(envelope.user_id.clone())
            .map_err(|e| invalid(format!("bad user_id: {e}")))?,
        CartId::parse(envelope.cart_id.clone())
            .map_err(|e| invalid(format!("bad cart_id: {e}")))?,
    );
    check_time(&envelope.recorded_at)?;
    let stream_id: Uuid = envelope
        .stream_id
        .parse()
        .map_err(|e| invalid(format!("bad stream_id: {e}")))?;
    if stream_id != key.stream_id() {
        return Err(invalid(format!(
            "stream_id {stream_id} is not the stream of project {}, user {:?}, cart {:?}",
            envelope.project_id, envelope.user_id, envelope.cart_id
        )));
    }
    Ok(ImportedEvent {
        event_id: envelope
            .event_id
            .parse()
            .map_err(|e| invalid(format!("bad event_id: {e}")))?,
        key,
        version: envelope.version,
        event_type: envelope.event_type.clone(),
        schema_version,
        payload,
        metadata: serde_json::json!({
            "user_id": envelope.user_id,
            "cart_id": envelope.cart_id,
            "imported_from": envelope.position,
        }),
        recorded_at: envelope.recorded_at,
    })
}

fn order_line(mut raw: Value) -> Result<ImportedOrderEvent, StoreError> {
    let stored = raw
        .as_object_mut()
        .and_then(|o| o.remove("stored"))
        .ok_or_else(|| {
            invalid(
                "an order-log line without `stored` (the event as the log holds it): made \
                 without `--restorable`, or by an export older than order import; export \
                 again with `cartctl events export --restorable`",
            )
        })?;
    let envelope: wire::OrderEventEnvelope = serde_json::from_value(raw)
        .map_err(|e| invalid(format!("not an order event envelope: {e}")))?;
    let schema_version = stored
        .get("schema_version")
        .and_then(Value::as_i64)
        .and_then(|v| i16::try_from(v).ok())
        .ok_or_else(|| invalid("stored.schema_version is not a schema version"))?;
    let (Some(payload), Some(metadata)) = (
        stored.get("payload").filter(|p| p.is_object()),
        stored.get("metadata").filter(|m| m.is_object()),
    ) else {
        return Err(invalid(
            "stored.payload and stored.metadata must be objects",
        ));
    };
    let project = ProjectId::parse(envelope.project_id)
        .map_err(|e| invalid(format!("bad project_id: {e}")))?;
    let user = UserId::parse(envelope.user_id.clone())
        .map_err(|e| invalid(format!("bad user_id: {e}")))?;
    let (project_id, order_id) = (
        i64::try_from(project.get()).map_err(|_| invalid("bad project_id"))?,
        i64::try_from(envelope.order_id).map_err(|_| invalid("bad order_id"))?,
    );
    check_time(&envelope.recorded_at)?;
    let event_type = envelope.event_type.as_str();
    let reseal = reseal(event_type, payload, &envelope.order);
    // What the service would fold: the field opened as the export showed it, or erased.
    let mut opened = payload.clone();
    match (&reseal, sealed::personal_field(event_type)) {
        (Some(clear), Some(field)) => opened[field] = clear.clone(),
        _ => sealed::open(event_type, &mut opened, None, project_id, user.as_str()),
    }
    let event = wire::decode(event_type, schema_version, opened)
        .map_err(|e| invalid(format!("an order event the service cannot fold: {e}")))?;
    if let OrderEvent::OrderCreated {
        order_id: created,
        project: p,
        user: u,
        ..
    } = &event
    {
        if (*created, *p, u) != (envelope.order_id, project, &user) {
            return Err(invalid(format!(
                "the OrderCreated of order {created} (project {p}, user {u:?}) on the line of \
                 order {} (project {project}, user {user:?})",
                envelope.order_id
            )));
        }
    }
    let status = wire::status_after(&event).name();
    if envelope.status != status {
        return Err(invalid(format!(
            "status {:?} after {event_type}, which moves an order to {status:?}",
            envelope.status
        )));
    }
    let notification = notification(&envelope)
        .map(|kind| (kind, serde_json::to_value(&envelope).unwrap_or_default()));
    Ok(ImportedOrderEvent {
        event_id: envelope
            .event_id
            .parse()
            .map_err(|e| invalid(format!("bad event_id: {e}")))?,
        project_id,
        order_id,
        user_id: envelope.user_id.clone(),
        version: envelope.version,
        event_type: envelope.event_type.clone(),
        schema_version,
        payload: payload.clone(),
        metadata: metadata.clone(),
        recorded_at: envelope.recorded_at.clone(),
        reseal,
        notification,
    })
}

/// The clear value to seal again of a sealed personal field, read from the order view
/// of the line (the export opened it); None when there is no sealed field or it was
/// erased (`custom_parameters` null, a reason `"erased"`: such a value, were it the
/// user's own word, reads the same either way).
fn reseal(event_type: &str, payload: &Value, order: &wire::OrderView) -> Option<Value> {
    if !sealed::is_sealed(event_type, payload) {
        return None;
    }
    match event_type {
        "OrderCreated" => order.custom_parameters.clone(),
        "OrderCanceled" => order
            .cancel_reason
            .as_deref()
            .filter(|r| *r != sealed::ERASED_REASON)
            .map(|r| Value::String(r.to_owned())),
        _ => None,
    }
}

/// The webhook notification an order event causes (as `cart_webhook::payload::
/// NotificationType::for_event` decides, which this crate cannot depend on).
fn notification(envelope: &wire::OrderEventEnvelope) -> Option<&'static str> {
    match envelope.event_type.as_str() {
        "OrderPaid" => Some("order_paid"),
        "OrderCanceled" => Some("order_canceled"),
        "OrderDone" if envelope.order.is_free && envelope.order.invoice_id.is_none() => {
            Some("order_paid")
        }
        _ => None,
    }
}
