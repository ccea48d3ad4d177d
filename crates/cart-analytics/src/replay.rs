//! Reading the event feed from JetStream, the cart events and the order events (nats-server
//! 2.9 is enough: one filter subject, no 2.10 features).

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{
        pull::{OrderedConfig, OrderedError, OrderedErrorKind},
        DeliverPolicy,
    },
    context::GetStreamError,
    stream::ConsumerError,
};
use async_nats::HeaderMap;
use cart_proto::order::OrderEventEnvelope;
use cart_proto::{subject, v1::EventEnvelope};
use futures::StreamExt;

use crate::orders::OrderReport;
use crate::report::Report;

/// Longest wait for the next message while the server still reports some pending.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which events to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub stream: String,
    pub subject_prefix: String,
    /// Only this project's events.
    pub project: Option<i64>,
}

impl Source {
    /// `<prefix>.events.>`, or `<prefix>.events.<project>.>`.
    pub fn filter_subject(&self) -> String {
        match self.project {
            // The relay writes the project id as a plain number, not through `token`.
            Some(project) => format!("{}.events.{project}.>", self.subject_prefix),
            None => subject::events_wildcard(&self.subject_prefix),
        }
    }
}

/// Why a replay stopped before it caught up.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("JetStream stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: GetStreamError,
    },
    #[error("create an ordered consumer on {filter}")]
    Consumer {
        filter: String,
        #[source]
        source: ConsumerError,
    },
    #[error("receive events")]
    Messages(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the consumer's message stream ended before it caught up")]
    Ended,
    #[error("no event for {timeout:?} while {pending} were still pending (last stream sequence {last_sequence})")]
    Stalled {
        timeout: Duration,
        pending: u64,
        last_sequence: u64,
    },
}

/// Replays every event of `source` from the start of the stream through an ephemeral
/// ordered consumer, and returns once caught up with what the stream held when the
/// replay began (events published meanwhile may or may not be included).
pub async fn replay(js: &jetstream::Context, source: &Source) -> Result<Report, ReplayError> {
    let mut report = Report::default();
    replay_stream(js, &source.stream, source.filter_subject(), |message| {
        fold(&mut report, &message.payload, message.headers.as_ref());
    })
    .await?;
    Ok(report)
}

/// Replays every order event of `source`'s project (all projects without one) from
/// `orders_stream` (`CART_ORDERS`), as [`replay`] does the cart events.
pub async fn replay_orders(
    js: &jetstream::Context,
    source: &Source,
    orders_stream: &str,
) -> Result<OrderReport, ReplayError> {
    let filter = match source.project {
        Some(project) => format!("{}.orders.{project}.>", source.subject_prefix),
        None => cart_proto::order::orders_wildcard(&source.subject_prefix),
    };
    let mut report = OrderReport::default();
    replay_stream(
        js,
        orders_stream,
        filter,
        |message| match serde_json::from_slice::<OrderEventEnvelope>(&message.payload) {
            Ok(envelope) => {
                report.apply(&envelope);
            }
            Err(e) => report.apply_unreadable(message.subject.as_str(), &e.to_string()),
        },
    )
    .await?;
    Ok(report)
}

/// Hands every message of `stream` matching `filter` to `each`, from the first, and
/// returns once caught up with what the stream held when it began.
pub async fn replay_stream(
    js: &jetstream::Context,
    stream_name: &str,
    filter: String,
    mut each: impl FnMut(&jetstream::Message),
) -> Result<(), ReplayError> {
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| ReplayError::Stream {
            stream: stream_name.to_owned(),
            source: e,
        })?;
    let last_sequence = stream.cached_info().state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| ReplayError::Consumer {
            filter: filter.clone(),
            source: e,
        })?;

    let mut pending = consumer.cached_info().num_pending;
    let mut consumer_name = consumer.cached_info().name.clone();
    // Nothing matches: a pull would only wait for events that may never come.
    if pending > 0 {
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| ReplayError::Messages(e.into()))?;
        loop {
            let message = match tokio::time::timeout(STALL_TIMEOUT, messages.next()).await {
                Ok(Some(Ok(message))) => message,
                // The ordered consumer recreates itself after a missed heartbeat.
                Ok(Some(Err(e))) if e.kind() == OrderedErrorKind::MissingHeartbeat => continue,
                Ok(Some(Err(e))) => return Err(messages_error(e)),
                Ok(None) => return Err(ReplayError::Ended),
                Err(_) => {
                    return Err(ReplayError::Stalled {
                        timeout: STALL_TIMEOUT,
                        pending,
                        last_sequence,
                    })
                }
            };
            each(&message);
            let info = message
                .info()
                .map_err(|e| ReplayError::Messages(e.to_string().into()))?;
            pending = info.pending;
            info.consumer.clone_into(&mut consumer_name);
            if pending == 0 || info.stream_sequence >= last_sequence {
                break;
            }
        }
    }
    // The server would drop it after 30 s of inactivity; deleting it now leaves nothing.
    let _ = stream.delete_consumer(&consumer_name).await;
    Ok(())
}

fn messages_error(e: OrderedError) -> ReplayError {
    ReplayError::Messages(Box::new(e))
}

/// Folds one message's body, or, when the body is not an envelope, what its headers say.
pub fn fold(report: &mut Report, body: &[u8], headers: Option<&HeaderMap>) {
    match decode(body) {
        Ok(envelope) => {
            report.apply(&envelope);
        }
        Err(e) => {
            report.apply_unreadable(&from_headers(headers), &e.to_string());
        }
    }
}

/// Reads an envelope's JSON, in today's proto3 form or the nested form written before
/// (`cart_proto::event::envelope_from_json`); an event type this build does not know
/// reads as an envelope without its event, which then counts as an unknown event.
pub fn decode(body: &[u8]) -> Result<EventEnvelope, serde_json::Error> {
    cart_proto::event::envelope_from_json(body)
}

fn from_headers(headers: Option<&HeaderMap>) -> EventEnvelope {
    let get = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    EventEnvelope {
        event_id: get("Nats-Msg-Id"),
        stream_id: get("Cart-Stream-Id"),
        version: get("Cart-Version").parse().unwrap_or(0),
        event_type: get("Cart-Event-Type"),
        position: get("Cart-Position"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    #[test]
    fn filter_subjects() {
        let mut source = Source {
            stream: "CART_EVENTS".to_owned(),
            subject_prefix: "cart.v1".to_owned(),
            project: None,
        };
        assert_eq!(source.filter_subject(), "cart.v1.events.>");
        source.project = Some(44056);
        assert_eq!(source.filter_subject(), "cart.v1.events.44056.>");
    }

    #[test]
    fn an_unknown_event_name_decodes_without_its_event() {
        let body = br#"{"stream_id":"s","version":3,"event_type":"OrderPlaced","event":{"order_placed":{"order_id":"o"}}}"#;
        let envelope = decode(body).unwrap();
        assert_eq!((envelope.version, envelope.event), (3, None));

        let known = br#"{"stream_id":"s","version":1,"event":{"item_quantity_set":{"sku":"cup01","quantity":2}}}"#;
        assert!(decode(known).unwrap().event.is_some());
        assert!(decode(b"{not json").is_err());
        assert!(decode(br#"{"version":"x"}"#).is_err());
    }

    #[test]
    fn an_unreadable_body_is_reported_from_its_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("Cart-Stream-Id", "s");
        headers.insert("Cart-Version", "2");
        headers.insert("Cart-Event-Type", "ItemRemoved");
        let mut report = Report::default();
        fold(&mut report, b"garbage", Some(&headers));
        fold(&mut report, b"garbage", Some(&headers));
        let unknown = report.unknown();
        assert_eq!(unknown.len(), 1);
        assert_eq!(
            (unknown[0].stream_id.as_str(), unknown[0].version),
            ("s", 2)
        );
        assert_eq!(unknown[0].event_type, "ItemRemoved");
        assert_eq!(
            report.apply_unreadable(&from_headers(None), "x"),
            Outcome::Unknown
        );
    }
}
