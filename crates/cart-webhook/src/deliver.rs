//! Delivery: claim a due delivery and lease it in one committed statement, POST it with
//! no transaction open, then record the attempt and the outcome (one statement for a
//! retry; a short transaction under the order's lock when the delivery ends), only
//! while the lease is still this worker's.
//!
//! No transaction is held during the HTTP call: one holding row locks has an xid, and
//! the event relays only read below the cluster's oldest running xid, so a held claim
//! would stop every relay for as long as a receiver takes to answer.
//!
//! A worker that dies mid-call leaves its lease to expire (`--timeout` plus
//! `--lease-margin`): the delivery is then claimed again and sent once more, with the
//! same idempotency key. That is at most one repeat per crash, and the reason receivers
//! must be idempotent (Xsolla asks it).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, stream};
use cart_proto::order::OrderEventEnvelope;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tracing::Instrument; // traces

use crate::http::{self, HttpError};
use crate::payload::{self, NotificationType};
use crate::store::{self, Attempt, Claimed, FollowUp, Next};
use crate::{Config, MarkDelivered, MarkError, WebhookError};

/// Xsolla's codes that mean "do not retry".
const PERMANENT: [u16; 8] = [400, 401, 402, 403, 404, 409, 415, 422];
const SUCCESS: [u16; 3] = [200, 201, 204];

/// The dead-letter stream: failed deliveries, one message each, on
/// `<prefix>.webhooks.dead.<project>.<order_id>` (message id `<event_id>`, so a
/// re-publish after a crash is dropped as a duplicate).
#[derive(Clone)]
pub struct DeadLetters {
    jetstream: jetstream::Context,
    prefix: String,
}

impl DeadLetters {
    /// Creates the stream when missing.
    ///
    /// # Errors
    /// JetStream refuses (e.g. another stream already holds the subjects).
    pub async fn prepare(
        jetstream: &jetstream::Context,
        config: &Config,
    ) -> Result<Self, WebhookError> {
        let placement =
            cart_nats::StreamPlacement::new(config.stream_replicas, &config.stream_placement_tags);
        let dead = stream::Config {
            name: config.dead_stream.clone(),
            subjects: vec![format!("{}.webhooks.dead.>", config.prefix)],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        cart_nats::ensure_stream(jetstream, dead, &placement)
            .await
            .map_err(|e| {
                WebhookError::JetStream(format!("dead-letter stream {:?}: {e}", config.dead_stream))
            })?;
        Ok(Self {
            jetstream: jetstream.clone(),
            prefix: config.prefix.clone(),
        })
    }

    pub fn subject(prefix: &str, project_id: u64, order_id: u64) -> String {
        format!("{prefix}.webhooks.dead.{project_id}.{order_id}")
    }

    async fn publish(
        &self,
        event_id: uuid::Uuid,
        project_id: u64,
        order_id: u64,
        body: Vec<u8>,
    ) -> Result<(), String> {
        self.publish_on(
            Self::subject(&self.prefix, project_id, order_id),
            &event_id.to_string(),
            body,
        )
        .await
    }

    /// An order event intake could not decode: on `<prefix>.webhooks.dead.intake`, with
    /// message id `intake-<id>` (the stream's sequence of the event).
    pub(crate) async fn publish_undecodable(&self, id: &str, body: Vec<u8>) -> Result<(), String> {
        self.publish_on(
            format!("{}.webhooks.dead.intake", self.prefix),
            &format!("intake-{id}"),
            body,
        )
        .await
    }

    async fn publish_on(&self, subject: String, msg_id: &str, body: Vec<u8>) -> Result<(), String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        headers.insert("Content-Type", "application/json");
        self.jetstream
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// What one step of a loop did.
enum Step {
    Idle,
    Worked,
}

pub struct Worker {
    /// This instance's id, in `leased_by` of the deliveries it holds.
    id: uuid::Uuid,
    config: Config,
    pool: PgPool,
    dead: DeadLetters,
    mark: MarkDelivered,
    /// The TLS client of https receivers (built once: the roots and `--ca-file`).
    tls: tokio_rustls::TlsConnector,
    /// Rung when a delivery is recorded (by this process's intake, or another's through
    /// LISTEN: `crate::wake`); idle loops then claim at once instead of at the next poll.
    wake: Arc<Notify>,
}

/// What a follow-up did.
enum Performed {
    Done,
    /// The order store refused: retrying cannot help.
    Refused(String),
    /// Anything else: retried.
    Failed(String),
}

impl Worker {
    pub fn new(
        config: Config,
        pool: PgPool,
        dead: DeadLetters,
        mark: MarkDelivered,
        tls: tokio_rustls::TlsConnector,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            config,
            pool,
            dead,
            mark,
            tls,
            wake,
        }
    }

    /// A delivery loop: steps until idle, then waits for a wake, `poll` or `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<(), WebhookError> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            // Registered before the step, so that a wake rung while the step finds
            // nothing is not lost.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let idle = match self.deliver_one().await {
                Ok(Step::Worked) => false,
                Ok(Step::Idle) => true,
                Err(e) => {
                    tracing::warn!(error = %cart_store::error_chain(&e), "delivery step failed");
                    true
                }
            };
            if idle {
                // The poll stays as the safety net (a lost NOTIFY, a retry's due time).
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    () = &mut woken => {}
                    () = tokio::time::sleep(self.config.poll) => {}
                }
            }
        }
    }

    /// The follow-up loop: orders to mark done, dead letters to publish.
    pub async fn follow_ups(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), WebhookError> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            // Registered before the step, so that a wake rung while the step finds
            // nothing is not lost.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let idle = match self.follow_up_one().await {
                Ok(Step::Worked) => false,
                Ok(Step::Idle) => true,
                Err(e) => {
                    tracing::warn!(error = %cart_store::error_chain(&e), "follow-up step failed");
                    true
                }
            };
            if idle {
                // The poll stays as the safety net (a lost NOTIFY, a retry's due time).
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    () = &mut woken => {}
                    () = tokio::time::sleep(self.config.poll) => {}
                }
            }
        }
    }

    async fn deliver_one(&self) -> Result<Step, store::StoreError> {
        // The lease's end as this worker sees it, on its own clock, taken before the
        // claim writes the lease so that it is never later than the database's
        // `leased_until`.
        let leased = Instant::now();
        // The claim and the lease: one statement, committed before the call.
        let claim = store::claim(
            &self.pool,
            self.id,
            self.config.lease(),
            self.config.unconfigured_delay,
        )
        .await?;
        let (claimed, settings, number) = match claim {
            None => return Ok(Step::Idle),
            Some(store::Claim::Postponed(claimed)) => {
                crate::metrics::postponed_unconfigured();
                tracing::debug!(
                    project = claimed.project_id,
                    order = claimed.order_id,
                    "no enabled webhook; delivery postponed"
                );
                return Ok(Step::Worked);
            }
            Some(store::Claim::Leased {
                delivery,
                settings,
                number,
            }) => (delivery, settings, number),
        };

        // The call, with no transaction open.
        let (attempt, next) = self.attempt(&claimed, number, &settings).await;
        crate::metrics::attempt(&claimed, attempt.outcome);

        // The outcome, under the lease: retried while the lease lasts, since an outcome
        // that is not recorded makes the delivery go out again once the lease expires.
        let kept = self
            .record_outcome(claimed.event_id, &attempt, next, leased)
            .await?;
        if !kept {
            tracing::warn!(
                project = claimed.project_id,
                order = claimed.order_id,
                kind = claimed.kind.as_str(),
                attempt = attempt.attempt,
                outcome = attempt.outcome,
                "the lease ended before the outcome was recorded; attempt kept, state left to the newer lease"
            );
            return Ok(Step::Worked);
        }
        tracing::info!(
            project = claimed.project_id,
            order = claimed.order_id,
            kind = claimed.kind.as_str(),
            attempt = attempt.attempt,
            status = attempt.status_code,
            outcome = attempt.outcome,
            latency_ms = u64::try_from(attempt.latency.as_millis()).unwrap_or(u64::MAX),
            ?next,
            "webhook attempt"
        );
        if let Some(work) = follow_up_of(&claimed, &attempt, next) {
            self.follow_up_now(work).await;
        }
        Ok(Step::Worked)
    }

    /// The follow-up of a delivery this loop just finished, right after the outcome's
    /// commit: the order marked done (OrderDone) within the same step as its 2xx, rather
    /// than at the follow-up loop's next turn. The row's follow-up stays to do until this
    /// succeeds, so a crash or failure here is retried by the follow-up loop (after
    /// `store::FOLLOW_UP_AFTER`); both ends are idempotent.
    async fn follow_up_now(&self, work: FollowUp) {
        let event_id = work.event_id();
        let error = match self.perform(&work).await {
            Performed::Done => None,
            Performed::Refused(text) => Some(text),
            Performed::Failed(text) => {
                tracing::warn!(%event_id, error = %text, "follow-up failed; the follow-up loop will retry");
                return;
            }
        };
        if let Err(e) = store::followed_up(&self.pool, event_id, error.as_deref()).await {
            tracing::warn!(%event_id, error = %cart_store::error_chain(&e), "recording a follow-up; the follow-up loop will redo it");
        }
    }

    /// `finish_attempt`, retried on database errors with backoff (100 ms doubling up to
    /// 2 s) until shortly before the lease ends: `--lease-margin` / 2 before it, by this
    /// worker's clock from just before the lease was written. Past that, another worker
    /// may claim the delivery, and the error is returned (the attempt is then recorded
    /// as of unknown outcome by the next claim, and the notification sent again).
    async fn record_outcome(
        &self,
        event_id: uuid::Uuid,
        attempt: &Attempt,
        next: Next,
        leased: Instant,
    ) -> Result<bool, store::StoreError> {
        let deadline = leased
            + self
                .config
                .lease()
                .saturating_sub(self.config.lease_margin / 2);
        let mut backoff = Duration::from_millis(100);
        let mut tries = 0u32;
        loop {
            tries += 1;
            match store::finish_attempt(&self.pool, event_id, self.id, attempt, next).await {
                Ok(kept) => {
                    if tries > 1 {
                        tracing::info!(%event_id, tries, kept, "outcome recorded after retrying");
                    }
                    return Ok(kept);
                }
                Err(e) => {
                    let now = Instant::now();
                    if now + backoff >= deadline {
                        tracing::error!(%event_id, tries, error = %cart_store::error_chain(&e), "could not record an outcome before the lease ends; the delivery will be sent again");
                        return Err(e);
                    }
                    tracing::warn!(%event_id, tries, error = %cart_store::error_chain(&e), "recording an outcome; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// One HTTP attempt and what it leaves the delivery as.
    async fn attempt(
        &self,
        claimed: &Claimed,
        number: i32,
        settings: &store::Settings,
    ) -> (Attempt, Next) {
        let started_at = SystemTime::now();
        let start = Instant::now();
        // Traces: the POST's client span continues the order's trace (crate::trace).
        let span = crate::trace::post_span(claimed, &settings.url, number);
        let result = match serde_json::from_value::<OrderEventEnvelope>(claimed.envelope.clone()) {
            Ok(envelope) => {
                let body = payload::body(claimed.kind, &envelope, settings.version);
                let mut headers = vec![
                    (
                        "authorization",
                        format!("Signature {}", payload::signature(&body, &settings.secret)),
                    ),
                    (
                        "idempotency-key",
                        payload::idempotency_key(
                            claimed.project_id,
                            claimed.order_id,
                            claimed.kind,
                        ),
                    ),
                    ("x-webhook-attempt", number.to_string()),
                ];
                cart_telemetry::inject_http(&span, &mut headers); // traces: `traceparent`
                http::post(
                    &self.tls,
                    &settings.url,
                    &headers,
                    body,
                    self.config.timeout,
                )
                .instrument(span.clone()) // traces
                .await
            }
            Err(e) => Err(HttpError::BadUrl {
                url: String::new(),
                reason: format!("stored envelope unreadable: {e}"),
            }),
        };
        let latency = start.elapsed();
        crate::trace::record_post(&span, &result); // traces
        let (status_code, outcome, error) = match result {
            Ok(code) if SUCCESS.contains(&code) => (Some(code), "success", None),
            Ok(code) if PERMANENT.contains(&code) => (Some(code), "permanent", None),
            Ok(code) => (Some(code), "retry", None),
            Err(e @ HttpError::Timeout(_)) => (None, "timeout", Some(e.to_string())),
            Err(e) => (None, "error", Some(cart_store::error_chain(&e))),
        };
        let next = match outcome {
            "success" => Next::Delivered,
            "permanent" => Next::Failed,
            // Attempt n failed: the next one is retry n, if the schedule has it.
            _ => match usize::try_from(number)
                .ok()
                .and_then(|n| self.config.retry_schedule.delay_before_retry(n))
            {
                Some(delay) => Next::RetryAfter(delay),
                None => Next::Failed,
            },
        };
        let attempt = Attempt {
            attempt: number,
            started_at,
            status_code,
            latency,
            outcome,
            error,
        };
        (attempt, next)
    }

    /// Marks a delivered order_paid's order done, or publishes a failed delivery's dead
    /// letter, under the row's lock; a failure is retried after `poll` (at least 1 s).
    /// This is the crash-safe retry of `follow_up_now`, and the path of the order_paid
    /// deliveries failed as superseded (never attempted, so no loop finished them).
    async fn follow_up_one(&self) -> Result<Step, store::StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(work) = store::claim_follow_up(&mut tx).await? else {
            tx.commit().await?;
            return Ok(Step::Idle);
        };
        let event_id = work.event_id();
        let retry_after = self.config.poll.max(Duration::from_secs(1));
        match self.perform(&work).await {
            Performed::Done => {
                store::follow_up_done(&mut tx, event_id, None, retry_after).await?;
            }
            Performed::Refused(text) => {
                store::follow_up_done(&mut tx, event_id, None, Duration::ZERO).await?;
                store::note_follow_up_error(&mut tx, event_id, &text).await?;
            }
            Performed::Failed(text) => {
                tracing::warn!(%event_id, error = %text, "follow-up failed; will retry");
                store::follow_up_done(&mut tx, event_id, Some(&text), retry_after).await?;
            }
        }
        tx.commit().await?;
        Ok(Step::Worked)
    }

    /// A follow-up's work: the order store's mark, or the dead letter's publish.
    async fn perform(&self, work: &FollowUp) -> Performed {
        match work {
            FollowUp::MarkDone {
                event_id,
                project_id,
                order_id,
            } => match (self.mark)(*project_id, *order_id).await {
                Ok(()) => Performed::Done,
                // Retrying a refusal cannot help: give up, loudly, and keep the reason.
                Err(MarkError::Refused(text)) => {
                    tracing::error!(%event_id, project_id, order_id, reason = %text, "the order store refused to mark the order done");
                    Performed::Refused(text)
                }
                Err(MarkError::Failed(text)) => Performed::Failed(text),
            },
            FollowUp::DeadLetter {
                event_id,
                project_id,
                order_id,
                kind,
                attempts,
                envelope,
                last_status_code,
                last_outcome,
                last_error,
            } => {
                // Failed without an attempt: an order_paid superseded by its order's
                // order_canceled, which was sent first (store::order_queue).
                let reason = if *attempts == 0 {
                    "superseded"
                } else if last_outcome.as_deref() == Some("permanent") {
                    "permanent"
                } else {
                    "retries_exhausted"
                };
                let body = serde_json::json!({
                    "event_id": event_id.to_string(),
                    "project_id": project_id,
                    "order_id": order_id,
                    "notification_type": kind,
                    "reason": reason,
                    "attempts": attempts,
                    "last_status_code": last_status_code,
                    "last_error": last_error,
                    "envelope": envelope,
                });
                let body = serde_json::to_vec(&body).unwrap_or_default();
                match self
                    .dead
                    .publish(*event_id, *project_id, *order_id, body)
                    .await
                {
                    Ok(()) => {
                        crate::metrics::dead_letter(reason);
                        Performed::Done
                    }
                    Err(text) => Performed::Failed(text),
                }
            }
        }
    }
}

/// The follow-up a finished attempt leaves, as `store::finish_attempt` records it: a
/// delivered order_paid's order to mark done (not a free order's, whose OrderDone caused
/// it), a failed delivery's dead letter.
fn follow_up_of(claimed: &Claimed, attempt: &Attempt, next: Next) -> Option<FollowUp> {
    match next {
        Next::Delivered
            if claimed.kind == NotificationType::OrderPaid
                && claimed.envelope["event_type"].as_str() != Some("OrderDone") =>
        {
            Some(FollowUp::MarkDone {
                event_id: claimed.event_id,
                project_id: claimed.project_id,
                order_id: claimed.order_id,
            })
        }
        Next::Failed => Some(FollowUp::DeadLetter {
            event_id: claimed.event_id,
            project_id: claimed.project_id,
            order_id: claimed.order_id,
            kind: claimed.kind.as_str().to_owned(),
            attempts: attempt.attempt,
            envelope: claimed.envelope.clone(),
            last_status_code: attempt
                .status_code
                .map(|c| i16::try_from(c).unwrap_or(i16::MAX)),
            last_outcome: Some(attempt.outcome.to_owned()),
            last_error: attempt.error.clone(),
        }),
        _ => None,
    }
}
