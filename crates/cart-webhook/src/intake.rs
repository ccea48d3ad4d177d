//! Intake: order events from JetStream into the delivery outbox. The row is committed
//! before the message is acked, and a redelivered message inserts nothing, so every
//! paid or canceled event gets exactly one delivery row.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use cart_proto::order::OrderEventEnvelope;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;

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
        .map_err(|e| {
            WebhookError::JetStream(format!(
                "orders stream {:?} (created by the order relay): {e}",
                config.orders_stream
            ))
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

/// Consumes until `stop`. The orders stream may not exist yet (the order relay creates
/// it on its first step, and the worker may start first): until it does, this waits,
/// warning, rather than failing the worker.
pub async fn run(
    jetstream: jetstream::Context,
    config: Config,
    pool: PgPool,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WebhookError> {
    let consumer = loop {
        match consumer(&jetstream, &config).await {
            Ok(consumer) => break consumer,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for the orders stream");
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| WebhookError::JetStream(format!("pull: {e}")))?;
    loop {
        let next = tokio::select! {
            _ = stop.changed() => return Ok(()),
            next = messages.next() => next,
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
        let ack = match take(&pool, &message.payload).await {
            Ok(()) => AckKind::Ack,
            Err(Take::Unreadable(reason)) => {
                // Never deliverable, and redelivering would not change that: terminate.
                tracing::error!(subject = %message.subject, %reason, "unreadable order event; terminated");
                AckKind::Term
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
}

enum Take {
    Unreadable(String),
    Store(store::StoreError),
}

/// Records the delivery an event causes, if it causes one.
async fn take(pool: &PgPool, payload: &[u8]) -> Result<(), Take> {
    let envelope: OrderEventEnvelope =
        serde_json::from_slice(payload).map_err(|e| Take::Unreadable(e.to_string()))?;
    let Some(kind) = NotificationType::for_event(&envelope.event_type) else {
        return Ok(());
    };
    let event_id = uuid::Uuid::parse_str(&envelope.event_id)
        .map_err(|e| Take::Unreadable(format!("event id {:?}: {e}", envelope.event_id)))?;
    let delivery = NewDelivery {
        event_id,
        project_id: envelope.project_id,
        order_id: envelope.order_id,
        version: envelope.version,
        kind,
        envelope: serde_json::to_value(&envelope).map_err(|e| Take::Unreadable(e.to_string()))?,
    };
    let inserted = store::insert_delivery(pool, &delivery)
        .await
        .map_err(Take::Store)?;
    tracing::info!(
        project = envelope.project_id,
        order = envelope.order_id,
        kind = kind.as_str(),
        inserted,
        "order event recorded for delivery"
    );
    Ok(())
}
