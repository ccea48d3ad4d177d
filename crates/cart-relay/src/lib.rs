//! The event feed: every cart event (or, for an order relay, every order event) from the
//! PostgreSQL log onto a JetStream stream.
//!
//! - Reads the log in its gap-safe global order ([`cart_store::feed`]), so a late
//!   commit is never skipped and a rolled-back append is never waited for.
//! - Publishes each event with `Nats-Msg-Id` = its event id, so JetStream drops a
//!   re-publish inside the stream's duplicate window. A page's events are all in flight
//!   at once, except that an event waits for the ack of the previous event of its cart
//!   (or order): a failed publish can never let a later event of that cart overtake it
//!   (the `publish` module has the argument).
//! - Moves its checkpoint only after every publish of a page is acknowledged. A crash
//!   between the acks and the checkpoint re-publishes that page, and JetStream drops the
//!   duplicates.
//! - One relay is active among all instances: the one whose PostgreSQL session holds an
//!   advisory lock. It reads and writes its checkpoint on that same session, so a relay
//!   whose session died can no longer move the checkpoint; the others try the lock every
//!   second and take over from the checkpoint.
//! - NATS down: publishes fail, the checkpoint stays, the relay backs off and catches up
//!   afterwards. Commands never wait for the relay.
//! - JetStream loses what it acknowledged (a crash of a lazily syncing server, a purge, a
//!   deleted stream): the checkpoint carries the acknowledged stream sequence, the relay
//!   checks the stream still holds it and rewinds when it does not (the `heal` module).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use cart_proto::order as order_wire;
use cart_proto::subject;
use cart_store::feed::{self, Filter, Position, RecordedEvent};
use cart_store::orders::{self, OrderStoreError};
use cart_store::{error_chain, StoreError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tracing::Instrument;

use crate::outgoing::{cart_outgoing, order_outgoing, Outgoing};

mod heal;
mod metrics;
mod outgoing;
mod publish;

pub use heal::Verdict;

/// Where and how events are published.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The JetStream stream, created at first start if missing.
    pub stream: String,
    /// Subjects are `<subject_prefix>.events.<project>.<user>.<cart>.<type>.<sku>`.
    pub subject_prefix: String,
    /// How long the stream keeps events (0: for ever).
    pub max_age: Duration,
    /// How long JetStream remembers a message id to drop a re-publish.
    pub duplicate_window: Duration,
    /// Events read and published per step (whole transactions, so a little more).
    pub batch: i64,
    /// Pause when caught up, and the first pause after a failure.
    pub poll: Duration,
    /// Which log this relay publishes.
    pub log: Log,
    /// Replicas and placement of the stream (`--stream-replicas`, ...): applied when
    /// the relay creates it, and the replicas to an existing one (`cart_nats::stream`).
    pub placement: cart_nats::StreamPlacement,
    /// How often the active relay checks that the stream still holds what it
    /// acknowledged (also at start, after every reconnect and after a suspicious ack).
    pub verify_every: Duration,
}

/// The logs a relay can publish; each has its own stream, checkpoint and lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Log {
    /// `cart_events`, on `<prefix>.events.<project>.<user>.<cart>.<type>.<sku>`.
    #[default]
    Carts,
    /// `order_events`, on `<prefix>.orders.<project>.<order_id>.<status>`, each event with
    /// the order as it was right after it; money at `amount_scale` decimals.
    Orders { amount_scale: u32 },
}

impl Log {
    /// The log's label in the metrics: `carts` or `orders`.
    pub fn name(self) -> &'static str {
        match self {
            Log::Carts => "carts",
            Log::Orders { .. } => "orders",
        }
    }
}

impl RelayConfig {
    /// The name of the relay's checkpoint row in `feed_checkpoints`.
    pub fn checkpoint_name(&self) -> String {
        format!("relay:{}", self.stream)
    }
}

/// Why a relay step failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("event store")]
    Store(#[from] StoreError),
    #[error("order store")]
    Orders(#[from] OrderStoreError),
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("publish to JetStream: {0}")]
    Publish(String),
    #[error("prepare JetStream stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("JetStream numbered a new message {sequence}, not above the acknowledged {floor}: the stream went backwards")]
    Behind { sequence: u64, floor: u64 },
    #[error("JetStream dropped {msg_id} as a duplicate of sequence {sequence}, which it no longer holds; publishing again once its duplicate window forgets it")]
    Remembered { msg_id: String, sequence: u64 },
}

impl RelayError {
    /// A NATS-side failure: the relay keeps its leadership and retries.
    fn is_nats(&self) -> bool {
        matches!(
            self,
            RelayError::Publish(_)
                | RelayError::Stream { .. }
                | RelayError::Behind { .. }
                | RelayError::Remembered { .. }
        )
    }
}

/// What the relay of this instance is doing, for operators.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Whether this instance holds the relay lock.
    pub leader: bool,
    /// The last position published and checkpointed.
    pub checkpoint: Position,
    /// Events this instance published, and re-publishes JetStream dropped as duplicates.
    pub published: u64,
    pub duplicates: u64,
    /// Events in the log after the checkpoint, and the age of the oldest, in seconds
    /// (measured by the leader about once a second).
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub last_error: Option<String>,
    /// Times this instance found the stream had lost acknowledged events and rewound,
    /// and why the last time.
    pub rewinds: u64,
    pub last_rewind: Option<String>,
}

/// The outcome of publishing a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub stored: u64,
    pub duplicates: u64,
    /// The highest sequence JetStream stored a message of the batch at, and its id.
    pub last: Option<cart_store::relay::StoredAt>,
}

/// A relay; cheap to clone (clones share the status).
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    config: RelayConfig,
    status: Arc<Mutex<Status>>,
    /// When this relay last wrote a mark (`cart_store::relay`): at most one a second.
    marked: Arc<Mutex<Option<Instant>>>,
}

impl Relay {
    pub fn new(pool: PgPool, client: async_nats::Client, config: RelayConfig) -> Self {
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(5));
        Self {
            pool,
            js,
            config,
            status: Arc::default(),
            marked: Arc::default(),
        }
    }

    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }

    /// Creates the stream if it does not exist; an existing stream is left as its
    /// operators configured it, but for its replicas, which follow the setting.
    pub async fn ensure_stream(&self) -> Result<(), RelayError> {
        let config = stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![match self.config.log {
                Log::Carts => subject::events_wildcard(&self.config.subject_prefix),
                Log::Orders { .. } => order_wire::orders_wildcard(&self.config.subject_prefix),
            }],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            max_age: self.config.max_age,
            duplicate_window: self.config.duplicate_window,
            ..Default::default()
        };
        cart_nats::ensure_stream(&self.js, config, &self.config.placement)
            .await
            .map(|_| ())
            .map_err(|message| RelayError::Stream {
                stream: self.config.stream.clone(),
                message,
            })
    }

    /// Publishes events in order, waiting for every acknowledgement. Events of
    /// different carts are pipelined; an event of a cart with one in flight waits for its
    /// ack, and only for that one.
    ///
    /// # Errors
    /// The first failed publish or acknowledgement. Some events may have been stored;
    /// publishing them again is harmless (their ids are known to JetStream).
    pub async fn publish(&self, events: &[RecordedEvent]) -> Result<Published, RelayError> {
        let outgoing: Vec<Outgoing> = events
            .iter()
            .map(|e| cart_outgoing(&self.config.subject_prefix, e))
            .collect();
        self.publish_all(0, outgoing).await
    }

    async fn publish_all(
        &self,
        floor: u64,
        outgoing: Vec<Outgoing>,
    ) -> Result<Published, RelayError> {
        let span = outgoing::publish_span(&self.config.stream, &outgoing);
        let expect = publish::Expect {
            stream: &self.config.stream,
            floor,
        };
        publish::publish_all(&self.js, &expect, outgoing)
            .instrument(span)
            .await
    }

    /// One step of the active relay on its locked session: reads a page after the
    /// checkpoint, publishes it, then moves the checkpoint. Returns the number of events.
    pub async fn step(&self, conn: &mut PgConnection) -> Result<usize, RelayError> {
        let name = self.config.checkpoint_name();
        let checkpoint = cart_store::relay::checkpoint(conn, &name).await?;
        let after = checkpoint.position;
        let prefix = &self.config.subject_prefix;
        let (outgoing, last) = match self.config.log {
            Log::Carts => {
                let events =
                    feed::read_page(conn, after, self.config.batch, &Filter::default()).await?;
                let last = events.last().map(|e| e.position);
                (
                    events
                        .iter()
                        .map(|e| cart_outgoing(prefix, e))
                        .collect::<Vec<_>>(),
                    last,
                )
            }
            Log::Orders { amount_scale } => {
                let events = orders::read_page(conn, after, self.config.batch).await?;
                let last = events.last().map(|e| e.position);
                let outgoing = events
                    .iter()
                    .map(|e| order_outgoing(prefix, amount_scale, e))
                    .collect::<Vec<_>>();
                (outgoing, last)
            }
        };
        let Some(last) = last else {
            self.update(|s| s.checkpoint = after);
            return Ok(0);
        };
        let n = outgoing.len();
        let floor = checkpoint.stored.as_ref().map_or(0, |s| s.sequence);
        let published = self.publish_all(floor, outgoing).await?;
        // Only now: every event up to `last` is in the stream, at or below this sequence.
        let stored = published.last.clone().or(checkpoint.stored);
        let mark = self.mark_due();
        cart_store::relay::advance(conn, &name, last, stored.as_ref(), mark).await?;
        self.update(|s| {
            s.checkpoint = last;
            s.published += published.stored;
            s.duplicates += published.duplicates;
            s.last_error = None;
        });
        metrics::published(
            self.config.log.name(),
            published.stored,
            published.duplicates,
        );
        if published.duplicates > 0 {
            tracing::info!(
                duplicates = published.duplicates,
                "JetStream dropped re-published events"
            );
        }
        Ok(n)
    }

    /// Whether a mark is due (one a second at most), counting it as written.
    fn mark_due(&self) -> bool {
        let Ok(mut marked) = self.marked.lock() else {
            return false;
        };
        if marked.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return false;
        }
        *marked = Some(Instant::now());
        true
    }

    /// Campaigns for the relay lock and relays while holding it, until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut pause = self.config.poll;
        loop {
            tokio::select! {
                () = &mut stop => break,
                result = self.campaign() => {
                    self.update(|s| s.leader = false);
                    // A standby reports no lag, so that max() over instances is the
                    // active relay's figure.
                    metrics::lag(self.config.log.name(), 0, 0.0);
                    if let Err(e) = result {
                        let reason = failure_reason(&e);
                        tracing::warn!(error = %error_chain(&e), retry_in = ?pause, "{reason}");
                        self.update(|s| s.last_error = Some(error_chain(&e)));
                    }
                }
            }
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
        self.update(|s| s.leader = false);
    }

    async fn campaign(&self) -> Result<(), RelayError> {
        let options = lock_session_options(&self.pool.connect_options());
        let mut conn = PgConnection::connect_with(&options).await?;
        // The lock of a read-only server (a standby, a demoted primary) would make this
        // relay the leader of nothing: it could never move the checkpoint.
        cart_store::require_writable(&mut conn).await?;
        let key = format!("cart-relay:{}", self.config.stream);
        loop {
            let locked: bool =
                sqlx::query_scalar("select pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&key)
                    .fetch_one(&mut conn)
                    .await?;
            if locked {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tracing::info!(stream = %self.config.stream, "relay: this instance is the active relay");
        self.update(|s| s.leader = true);
        let result = self.lead(&mut conn).await;
        // Closing the session releases the lock for the next relay at once.
        let _ = conn.close().await;
        result
    }

    async fn lead(&self, conn: &mut PgConnection) -> Result<(), RelayError> {
        let mut pause = self.config.poll;
        let mut ready = false;
        let mut measured = Instant::now() - Duration::from_secs(60);
        let mut logged = measured;
        // Checked on start, after every reconnect, every `verify_every`, and after any
        // NATS failure (which may have been a server that came back with less).
        let mut verified: Option<(Instant, u64)> = None;
        let stats = self.js.client().statistics();
        loop {
            let connects = stats.connects.load(std::sync::atomic::Ordering::Relaxed);
            let due = verified.is_none_or(|(at, seen)| {
                seen != connects || at.elapsed() >= self.config.verify_every
            });
            let result = if !ready {
                self.ensure_stream().await.map(|()| {
                    ready = true;
                    0
                })
            } else if due {
                self.verify(conn).await.map(|verdict| {
                    verified = Some((Instant::now(), connects));
                    if let Verdict::Expired(why) = verdict {
                        tracing::debug!(
                            why,
                            "the checkpoint's message expired by the stream's limits"
                        );
                    }
                    0
                })
            } else {
                self.step(conn).await
            };
            match result {
                Ok(n) => {
                    pause = self.config.poll;
                    if n == 0 {
                        tokio::time::sleep(self.config.poll).await;
                    }
                }
                Err(e) if e.is_nats() => {
                    tracing::warn!(error = %error_chain(&e), retry_in = ?pause, "relay cannot publish; the checkpoint stays");
                    self.update(|s| s.last_error = Some(error_chain(&e)));
                    // The stream may be gone or shorter now: make sure of it, then check.
                    ready = false;
                    verified = None;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
            if measured.elapsed() >= Duration::from_secs(1) {
                measured = Instant::now();
                let checkpoint = self.status().checkpoint;
                match self.measure_lag(checkpoint).await {
                    Ok((events, seconds)) => {
                        self.update(|s| {
                            s.lag_events = events;
                            s.lag_seconds = seconds;
                        });
                        metrics::lag(self.config.log.name(), events, seconds);
                        if events > 0 && logged.elapsed() >= Duration::from_secs(10) {
                            logged = Instant::now();
                            tracing::info!(lag_events = events, lag_seconds = seconds, checkpoint = %checkpoint, "relay lag");
                        }
                    }
                    // Only a figure for operators: the relay goes on, and keeps its lock.
                    // A busy pool fails it every second: warn at most every 10 s.
                    Err(e) if logged.elapsed() >= Duration::from_secs(10) => {
                        logged = Instant::now();
                        tracing::warn!(error = %error_chain(&e), "relay cannot measure its lag");
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// The lag behind `checkpoint`, measured on a pooled connection rather than on the
    /// locked session: a slow or failed measurement can never cost the relay its lock
    /// (the count is bounded by [`feed::LAG_COUNT_CAP`] as well).
    async fn measure_lag(&self, checkpoint: Position) -> Result<(i64, f64), RelayError> {
        let mut conn = tokio::time::timeout(Duration::from_secs(1), self.pool.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(match self.config.log {
            Log::Carts => feed::lag(&mut conn, checkpoint).await?,
            Log::Orders { .. } => orders::lag(&mut conn, checkpoint).await?,
        })
    }
}

/// The options of the session that campaigns for and holds the relay lock: `base` with
/// server-side TCP keepalives and a TCP user timeout, named `cart-relay` in
/// `pg_stat_activity`.
///
/// PostgreSQL releases an advisory lock only when the session holding it ends. A relay
/// whose process dies closes its socket, and the lock goes at once; but when its host
/// dies or the network between them fails, nothing closes the socket, and without these
/// the server would notice only after the kernel's defaults (two hours of keepalive
/// idle, or minutes of retransmissions). With them the server probes an idle session
/// after 5 s, every 2 s, and drops it after 3 unanswered probes or 10 s of unacknowledged
/// data: a dead leader's lock is free within about 11 s. They apply to TCP connections;
/// a Unix socket has no dead peer to detect.
pub fn lock_session_options(base: &PgConnectOptions) -> PgConnectOptions {
    base.clone().application_name("cart-relay").options([
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "2"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "10000"),
    ])
}

/// What a relay that gave up its lock after `error` says in its log.
fn failure_reason(error: &RelayError) -> &'static str {
    match error {
        RelayError::Store(StoreError::Decode { .. }) => {
            "relay stopped at an event it cannot decode; the checkpoint stays before it"
        }
        RelayError::Database(_) | RelayError::Store(StoreError::Database(_)) => {
            "relay lost its PostgreSQL session"
        }
        _ => "relay step failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_names_why_the_relay_gave_up_its_lock() {
        let decode = RelayError::Store(StoreError::Decode {
            stream_id: sqlx::types::Uuid::nil(),
            version: 3,
            source: cart_proto::event::decode("OrderPlaced", 1, serde_json::json!({})).unwrap_err(),
        });
        assert!(failure_reason(&decode).contains("cannot decode"));
        assert!(!failure_reason(&decode).contains("session"));
        let gone = RelayError::Database(sqlx::Error::PoolClosed);
        assert_eq!(failure_reason(&gone), "relay lost its PostgreSQL session");
        let gone = RelayError::Store(StoreError::Database(sqlx::Error::PoolClosed));
        assert_eq!(failure_reason(&gone), "relay lost its PostgreSQL session");
    }
}
