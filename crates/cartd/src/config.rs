//! The service's configuration: flags, each with an environment variable and a default.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The cart service: cart commands over NATS into a PostgreSQL event log, and a query
/// responder serving carts in the Xsolla cart format.
#[derive(Debug, Clone, Parser)]
#[command(name = "cartd", version)]
pub struct Config {
    /// PostgreSQL URL. The database is created when missing and migrated at start.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cart"
    )]
    pub database_url: String,

    /// NATS server URL, or several separated by commas (seeds of a cluster: the client
    /// reconnects to another one when its server goes away).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// The catalog file loaded at start (see deploy/catalog.json for the format).
    #[arg(long, env = "CART_CATALOG", default_value = "deploy/catalog.json")]
    pub catalog: PathBuf,

    /// Subject prefix of the endpoints: `<prefix>.fill`, `<prefix>.get`, ...
    #[arg(long, env = "CART_SUBJECT_PREFIX", default_value = "cart.v1")]
    pub subject_prefix: String,

    /// Name under which the service answers $SRV.PING, INFO and STATS.
    #[arg(long, env = "CART_SERVICE_NAME", default_value = "cart")]
    pub service_name: String,

    /// Most pooled PostgreSQL connections.
    #[arg(long, env = "CART_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Milliseconds a command waits for a PostgreSQL connection before it is answered 503.
    #[arg(long, env = "CART_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    pub db_acquire_timeout_ms: u64,

    /// How many times a command is decided and appended before a lost race to a
    /// concurrent writer is answered 409 (attempts in total, not retries).
    #[arg(long, env = "CART_MAX_ATTEMPTS", default_value_t = 10)]
    pub max_attempts: u32,

    /// Carts whose state this instance keeps in memory (least recently used go first);
    /// 0 reads every command's cart from the log.
    #[arg(long, env = "CART_CACHE_CARTS", default_value_t = 100_000)]
    pub cache_carts: usize,

    /// Bytes of rendered get replies this instance keeps, to answer a get of an
    /// unchanged cart with a copy (least recently used go first); 0 renders every get.
    #[arg(long, env = "CART_CACHE_REPLY_BYTES", default_value_t = 8 << 20)]
    pub cache_reply_bytes: usize,

    /// Most commands written in one transaction (group commit).
    #[arg(long, env = "CART_BATCH_MAX", default_value_t = 256)]
    pub batch_max: usize,

    /// Most group-commit transactions in flight at once.
    #[arg(long, env = "CART_BATCH_IN_FLIGHT", default_value_t = 2)]
    pub batch_in_flight: usize,

    /// A group-commit transaction starts beside others only once each has run this
    /// many milliseconds (0: at once, up to `--batch-in-flight`).
    #[arg(long, env = "CART_BATCH_OVERLAP_MS", default_value_t = 20)]
    pub batch_overlap_ms: u64,

    /// Decimals in money strings.
    #[arg(long, env = "CART_AMOUNT_SCALE", default_value_t = 2)]
    pub amount_scale: u32,

    /// Most requests handled at once by this instance; more wait.
    #[arg(long, env = "CART_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Run the event relay (log -> JetStream). Every instance may run it; one at a time
    /// is active, the others stand by.
    #[arg(long, env = "CART_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay: bool,

    /// The JetStream stream the relay publishes to, subjects `<prefix>.events.>`.
    #[arg(long, env = "CART_EVENTS_STREAM", default_value = "CART_EVENTS")]
    pub events_stream: String,

    /// Seconds the stream keeps events when the relay creates it; 0 keeps them for ever.
    #[arg(long, env = "CART_EVENTS_MAX_AGE_SECS", default_value_t = 0)]
    pub events_max_age_secs: u64,

    /// Seconds JetStream remembers an event id to drop a re-publish.
    #[arg(long, env = "CART_EVENTS_DUPLICATE_WINDOW_SECS", default_value_t = 120)]
    pub events_duplicate_window_secs: u64,

    /// Seconds between the active relay's checks that its stream still holds what
    /// JetStream acknowledged (also checked at start and after every reconnect); a stream
    /// that lost events is published again from what it still holds.
    #[arg(long, env = "CART_RELAY_VERIFY_EVERY_SECS", default_value_t = 30)]
    pub relay_verify_every: u64,

    /// The JetStream stream order events are published to, subjects `<prefix>.orders.>`
    /// (by the order relay, which runs with the event relay).
    #[arg(long, env = "CART_ORDERS_STREAM", default_value = "CART_ORDERS")]
    pub orders_stream: String,

    /// Replicas of the streams the relays create (CART_EVENTS, CART_ORDERS): 1 on a single
    /// nats-server, 3 (or 5) on a JetStream cluster. An existing stream's replicas are
    /// changed to this; when JetStream refuses, the stream stays and a warning says why.
    #[arg(long, env = "CART_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// Comma-separated server tags: the streams the relays create go only on nodes with
    /// all of them (JetStream placement). Empty: any node.
    #[arg(long, env = "CART_STREAM_PLACEMENT_TAGS", default_value = "")]
    pub stream_placement_tags: String,

    /// Seconds an unpaid order holds its units of an item with a global (`per_item`)
    /// limit against other users' checkouts.
    #[arg(long, env = "CART_ORDER_HOLD_SECS", default_value_t = 900)]
    pub order_hold_secs: u64,

    /// Seconds a command id stays in the command ledger (the idempotency window): a
    /// retry within it gets the first reply, a retry after it is a new command. 0 keeps
    /// the ledger for ever.
    #[arg(long, env = "CART_LEDGER_RETENTION_SECS", default_value_t = 7 * 86_400)]
    pub ledger_retention_secs: u64,

    /// Days a cart may stay untouched before it expires (`CartCleared` with reason
    /// `expired`; the current cart reads empty again, a named cart 404). 0: never.
    #[arg(long, env = "CART_EXPIRY_DAYS", default_value_t = 90)]
    pub cart_expiry_days: u64,

    /// Seconds an order may stay unpaid after checkout (Xsolla's payment token lives
    /// 24 h); then it expires and can no longer be paid. 0: never.
    #[arg(long, env = "CART_ORDER_PAYMENT_WINDOW_SECS", default_value_t = 86_400)]
    pub order_payment_window_secs: u64,

    /// Seconds between rounds of the retention sweeps (ledger, carts, unpaid orders).
    #[arg(long, env = "CART_RETENTION_INTERVAL_SECS", default_value_t = 60)]
    pub retention_interval_secs: u64,

    /// Rows, carts or orders a retention sweep handles per transaction.
    #[arg(long, env = "CART_RETENTION_BATCH", default_value_t = 500)]
    pub retention_batch: u32,

    /// Run the asynchronous projections (sku_activity). Instances running them take turns.
    #[arg(long, env = "CART_PROJECTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub projections: bool,

    /// The HTTP admin port: GET /metrics (Prometheus text), /healthz and /readyz. `off`
    /// (or an empty value) disables it; port 0 takes a free port.
    #[arg(long, env = "CART_ADMIN_ADDR", default_value = "127.0.0.1:9464")]
    pub admin_addr: cart_metrics::AdminAddr,

    /// Seconds a shutdown (SIGTERM) may take: the endpoints are unsubscribed at once, then
    /// the requests in flight (their group-commit batches included) finish and their
    /// replies are flushed, the relay lock is released; what is left after this long is
    /// abandoned (a command not committed by then was never answered OK).
    #[arg(long, env = "CART_DRAIN_TIMEOUT_SECS", default_value_t = 20)]
    pub drain_timeout_secs: u64,

    /// Log format: text or json. The level comes from RUST_LOG (default info).
    #[arg(long, env = "CART_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The defaults, with the environment applied, as `cartd` with no flags would run.
    pub fn from_env() -> Self {
        Self::parse_from(["cartd"])
    }

    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }

    pub fn tuning(&self) -> crate::app::Tuning {
        crate::app::Tuning {
            max_attempts: self.max_attempts,
            cache_carts: self.cache_carts,
            cache_reply_bytes: self.cache_reply_bytes,
            group: cart_store::GroupConfig {
                max_batch: self.batch_max.max(1),
                max_in_flight: self.batch_in_flight.max(1),
                overlap_after: Duration::from_millis(self.batch_overlap_ms),
            },
        }
    }

    /// The retention sweeps' settings; a 0 keeps that data for ever.
    pub fn retention(&self) -> crate::retention::Retention {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        crate::retention::Retention {
            ledger: secs(self.ledger_retention_secs),
            carts: secs(self.cart_expiry_days.saturating_mul(86_400)),
            unpaid_orders: secs(self.order_payment_window_secs),
            interval: Duration::from_secs(self.retention_interval_secs.max(1)),
            batch: i64::from(self.retention_batch.max(1)),
        }
    }

    pub fn relay_config(&self) -> cart_relay::RelayConfig {
        cart_relay::RelayConfig {
            stream: self.events_stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            max_age: Duration::from_secs(self.events_max_age_secs),
            duplicate_window: Duration::from_secs(self.events_duplicate_window_secs.max(1)),
            batch: 1000,
            poll: Duration::from_millis(100),
            log: cart_relay::Log::Carts,
            placement: cart_nats::StreamPlacement::new(
                self.stream_replicas,
                &self.stream_placement_tags,
            ),
            verify_every: Duration::from_secs(self.relay_verify_every.max(1)),
        }
    }

    /// The order relay: order events onto their own stream, with their own checkpoint
    /// and lock (both named after the stream).
    pub fn orders_relay_config(&self) -> cart_relay::RelayConfig {
        cart_relay::RelayConfig {
            stream: self.orders_stream.clone(),
            batch: 200,
            log: cart_relay::Log::Orders {
                amount_scale: self.amount_scale.min(16),
            },
            ..self.relay_config()
        }
    }
}
