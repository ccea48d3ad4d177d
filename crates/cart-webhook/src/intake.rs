//! Intake: order events from JetStream into the delivery outbox. The row is committed
//! before the message is acked, and a redelivered message inserts nothing, so every
//! paid or canceled event (and a free order's done event) gets exactly one delivery row.
//! An event of those types that does not decode is dead-lettered, not silently dropped.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, AckKind, ErrorCode};
use cart_proto::order::OrderEventEnvelope;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::deliver::DeadLetters;
use crate::payload::NotificationType;
use crate::store::{self, NewDelivery};
use crate::{Config, WebhookError};

/// The shared durable consumer on the orders stream (the stream must exist: the order
/// relay creates it). One filter subject: nats-server 2.9 drops `filter_subjects`.
pub async fn consumer(
    jetstream: &jetstream::Context,
    config: &Config,
) -> Result<PullConsumer, WebhookError> {
    let stream = jetstream
        .get_stream(&config.orders_stream)
        .await
        .map_err(|e| match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                WebhookError::OrdersStreamMissing {
                    stream: config.orders_stream.clone(),
                }
            }
            _ => WebhookError::JetStream(format!(
                "orders stream {:?} (created by the order relay): {e}",
                config.orders_stream
            )),
        })?;
    stream
        .get_or_create_consumer(
            &config.consumer,
            pull::Config {
                durable_name: Some(config.consumer.clone()),
                filter_subject: cart_proto::order::orders_wildcard(&config.prefix),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| WebhookError::JetStream(format!("consumer {:?}: {e}", config.consumer)))
}

/// How long the orders stream may be missing before the wait earns a warning. On a fresh
/// start cartd's order relay creates it within seconds of the worker's start, which is
/// no news; minutes without it mean cartd is not running or runs without `--relay`.
const MISSING_STREAM_WARN_AFTER: Duration = Duration::from_secs(30);
/// How often a missing stream is warned about again once it has lasted.
const MISSING_STREAM_WARN_EVERY: Duration = Duration::from_secs(300);

/// What the intake says while it waits for the orders stream: one info line at the
/// first miss, debug lines after, a warning once the wait has lasted
/// [`MISSING_STREAM_WARN_AFTER`] and again every [`MISSING_STREAM_WARN_EVERY`]. Any
/// other failure to reach the stream is warned about at once.
#[derive(Debug, Default)]
pub(crate) struct StreamWait {
    since: Option<Instant>,
    next_warning: Option<Instant>,
}

/// The level a miss is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitLevel {
    Info,
    Debug,
    Warn,
}

impl StreamWait {
    /// Judges one failed attempt at `now`: the level to log it at.
    pub(crate) fn missed(&mut self, error: &WebhookError, now: Instant) -> WaitLevel {
        if !matches!(error, WebhookError::OrdersStreamMissing { .. }) {
            return WaitLevel::Warn;
        }
        if self.since.is_none() {
            self.since = Some(now);
            self.next_warning = Some(now + MISSING_STREAM_WARN_AFTER);
            return WaitLevel::Info;
        }
        if self.next_warning.is_some_and(|due| now >= due) {
            self.next_warning = Some(now + MISSING_STREAM_WARN_EVERY);
            return WaitLevel::Warn;
        }
        WaitLevel::Debug
    }

    /// How long the stream has been missing, for the log line.
    fn waited(&self, now: Instant) -> Duration {
        self.since.map_or(Duration::ZERO, |since| now - since)
    }
}

/// Waits for the orders stream and returns the worker's consumer on it, logging as
/// [`StreamWait`] says; `None` when `stop` came first.
async fn wait_for_consumer(
    jetstream: &jetstream::Context,
    config: &Config,
    stop: &mut watch::Receiver<bool>,
) -> Option<PullConsumer> {
    let mut wait = StreamWait::default();
    loop {
        let e = match consumer(jetstream, config).await {
            Ok(consumer) => return Some(consumer),
            Err(e) => e,
        };
        let now = Instant::now();
        let waited = format!("{:.0?}", wait.waited(now));
        match wait.missed(&e, now) {
            WaitLevel::Info => tracing::info!(
                stream = %config.orders_stream,
                "waiting for cartd's order relay to create the orders stream"
            ),
            WaitLevel::Debug => {
                tracing::debug!(error = %e, %waited, "still waiting for the orders stream")
            }
            WaitLevel::Warn => tracing::warn!(error = %e, %waited, "waiting for the orders stream"),
        }
        tokio::select! {
            _ = stop.changed() => return None,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Consumes until `stop`. The orders stream may not exist yet (the order relay creates
/// it on its first step, and the worker may start first): until it does, this waits
/// (see [`StreamWait`]) rather than failing the worker.
pub async fn run(
    jetstream: jetstream::Context,
    config: Config,
    pool: PgPool,
    dead: DeadLetters,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WebhookError> {
    let Some(consumer) = wait_for_consumer(&jetstream, &config, &mut stop).await else {
        return Ok(());
    };
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| WebhookError::JetStream(format!("pull: {e}")))?;
    // Up to `intake_concurrency` events recorded at once: one at a time, each insert's
    // commit (a disk flush) capped intake near 100 events/s, below a sale's purchase
    // rate. Concurrent inserts are as safe as several instances' (an order's rows are
    // written under its advisory lock, `store::order_queue`), and their commits share
    // flushes. Each message is acked when its own insert commits.
    let limit = config.intake_concurrency.max(1);
    let mut in_flight = FuturesUnordered::new();
    loop {
        let next = tokio::select! {
            _ = stop.changed() => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
            next = messages.next(), if in_flight.len() < limit => next,
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pulling order events");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            None => {
                return Err(WebhookError::JetStream(
                    "the consumer's stream ended".into(),
                ))
            }
        };
        in_flight.push(handle(message, &pool, &config, &dead, &wake));
    }
    // Stopping: the events already taken are recorded and acked, not left to redelivery.
    while in_flight.next().await.is_some() {}
    Ok(())
}

/// Records one event's delivery (if it causes one) and acks, naks or terminates it.
async fn handle(
    message: jetstream::Message,
    pool: &PgPool,
    config: &Config,
    dead: &DeadLetters,
    wake: &Notify,
) {
    let span = crate::trace::intake_span(&message);
    let ack = match take(pool, &message.payload, config.cancel_grace)
        .instrument(span)
        .await
    {
        Ok(inserted) => {
            if inserted {
                // This process's idle loops claim it now; other processes' are woken
                // by the NOTIFY of the insert (`crate::wake`).
                wake.notify_waiters();
            }
            AckKind::Ack
        }
        Err(Take::Unreadable(reason)) => {
            // Not an order event at all: never deliverable, and redelivering would
            // not change that: terminate.
            tracing::error!(subject = %message.subject, %reason, "unreadable order event; terminated");
            AckKind::Term
        }
        Err(Take::Undecodable { event_type, reason }) => {
            // An event that may cause a webhook but does not decode (a newer
            // producer's shape, a bug): kept in the dead-letter stream before it is
            // terminated, so that it can be looked at and replayed; if the dead
            // letter cannot be published, the event is redelivered later instead.
            let sequence = message
                .info()
                .map(|i| format!("{}-{}", i.stream, i.stream_sequence))
                .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
            let body = serde_json::json!({
                "reason": "undecodable",
                "event_type": event_type,
                "error": reason,
                "subject": message.subject.as_str(),
                "payload": String::from_utf8_lossy(&message.payload),
            });
            let body = serde_json::to_vec(&body).unwrap_or_default();
            match dead.publish_undecodable(&sequence, body).await {
                Ok(()) => {
                    tracing::error!(subject = %message.subject, %event_type, %reason, "undecodable order event; dead-lettered and terminated");
                    AckKind::Term
                }
                Err(e) => {
                    tracing::warn!(subject = %message.subject, error = %e, "dead-lettering an undecodable order event; will be redelivered");
                    AckKind::Nak(Some(UNDECODABLE_RETRY))
                }
            }
        }
        Err(Take::Store(e)) => {
            tracing::warn!(error = %cart_store::error_chain(&e), "recording a delivery; will be redelivered");
            AckKind::Nak(Some(Duration::from_secs(1)))
        }
    };
    if let Err(e) = message.ack_with(ack).await {
        tracing::warn!(error = %e, "ack of an order event");
    }
}

/// How long an undecodable event waits before it is redelivered when its dead letter
/// could not be published.
const UNDECODABLE_RETRY: Duration = Duration::from_secs(30);

enum Take {
    /// Not JSON, or no `event_type`: not an order event.
    Unreadable(String),
    /// An event type that may cause a webhook, whose envelope does not decode.
    Undecodable {
        event_type: String,
        reason: String,
    },
    Store(store::StoreError),
}

/// Records the delivery an event causes, if it causes one; true when a row was inserted.
/// Events of other types are acked without being decoded further.
async fn take(pool: &PgPool, payload: &[u8], cancel_grace: Duration) -> Result<bool, Take> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| Take::Unreadable(e.to_string()))?;
    let Some(event_type) = value.get("event_type").and_then(|t| t.as_str()) else {
        return Err(Take::Unreadable("no event_type".into()));
    };
    if !NotificationType::may_notify(event_type) {
        return Ok(false);
    }
    let undecodable = |reason: String| Take::Undecodable {
        event_type: event_type.to_owned(),
        reason,
    };
    let envelope: OrderEventEnvelope =
        serde_json::from_value(value.clone()).map_err(|e| undecodable(e.to_string()))?;
    let Some(kind) = NotificationType::for_event(&envelope) else {
        return Ok(false);
    };
    let event_id = uuid::Uuid::parse_str(&envelope.event_id)
        .map_err(|e| undecodable(format!("event id {:?}: {e}", envelope.event_id)))?;
    let delivery = NewDelivery {
        event_id,
        project_id: envelope.project_id,
        order_id: envelope.order_id,
        version: envelope.version,
        kind,
        // With the intake span's trace context, which the delivery's POST continues.
        envelope: crate::trace::with_trace(
            serde_json::to_value(&envelope).map_err(|e| undecodable(e.to_string()))?,
        ),
    };
    let inserted = store::insert_delivery(pool, &delivery, cancel_grace)
        .await
        .map_err(Take::Store)?;
    tracing::info!(
        project = envelope.project_id,
        order = envelope.order_id,
        kind = kind.as_str(),
        inserted,
        "order event recorded for delivery"
    );
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> WebhookError {
        WebhookError::OrdersStreamMissing {
            stream: "CART_ORDERS".into(),
        }
    }

    #[test]
    fn a_missing_stream_is_news_only_once_it_lasts() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut wait = StreamWait::default();
        assert_eq!(wait.missed(&missing(), at(0)), WaitLevel::Info);
        assert_eq!(wait.missed(&missing(), at(2)), WaitLevel::Debug);
        assert_eq!(wait.missed(&missing(), at(29)), WaitLevel::Debug);
        assert_eq!(wait.missed(&missing(), at(30)), WaitLevel::Warn);
        assert_eq!(wait.waited(at(30)), Duration::from_secs(30));
        assert_eq!(wait.missed(&missing(), at(32)), WaitLevel::Debug);
        assert_eq!(wait.missed(&missing(), at(330)), WaitLevel::Warn);
        assert_eq!(wait.missed(&missing(), at(332)), WaitLevel::Debug);
    }

    #[test]
    fn any_other_failure_to_reach_the_stream_is_warned_at_once() {
        let mut wait = StreamWait::default();
        let other = WebhookError::JetStream("timed out".into());
        assert_eq!(wait.missed(&other, Instant::now()), WaitLevel::Warn);
        // ... and does not start the quiet wait of a missing stream.
        assert_eq!(wait.missed(&missing(), Instant::now()), WaitLevel::Info);
    }
}
