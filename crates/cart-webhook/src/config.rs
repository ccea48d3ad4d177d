//! The worker's configuration: flags, each with an environment variable and a default
//! (the database, NATS and prefix defaults are cartd's).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::schedule::{self, RetrySchedule};

/// Webhook fulfilment worker: sends order_paid and order_canceled to each project's URL
/// (http:// or https://; https receivers are verified against the bundled Mozilla roots
/// and --ca-file).
#[derive(Debug, Clone, Parser)]
#[command(name = "cart-webhook", version)]
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

    /// Subject prefix: order events on `<prefix>.orders.>`, settings on
    /// `<prefix>.admin.webhook.{set,get}`, dead letters on `<prefix>.webhooks.dead.>`.
    #[arg(long, env = "CART_SUBJECT_PREFIX", default_value = "cart.v1")]
    pub prefix: String,

    /// The JetStream stream of order events (created by the order relay, not here).
    #[arg(long, env = "CART_ORDERS_STREAM", default_value = "CART_ORDERS")]
    pub orders_stream: String,

    /// The durable pull consumer shared by every worker instance.
    #[arg(long, env = "CART_WEBHOOK_CONSUMER", default_value = "cart-webhook")]
    pub consumer: String,

    /// The dead-letter stream (subjects `<prefix>.webhooks.dead.>`), created if missing.
    #[arg(
        long,
        env = "CART_WEBHOOK_DEAD_STREAM",
        default_value = "CART_WEBHOOK_DEAD"
    )]
    pub dead_stream: String,

    /// How long a receiver has to answer an attempt (e.g. 10s, 500ms).
    #[arg(long, env = "CART_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// A claimed delivery is leased for `--timeout` plus this margin (connection set-up,
    /// the outcome's write, clock drift between the worker and the database). When a
    /// worker dies mid-call, another one sends the delivery again once the lease ends.
    #[arg(long, env = "CART_WEBHOOK_LEASE_MARGIN", default_value = "30s", value_parser = parse_duration)]
    pub lease_margin: Duration,

    /// Delays between retries: COUNTxDURATION groups (Xsolla's 2x5m,7x15m,10x60m).
    #[arg(
        long,
        env = "CART_WEBHOOK_RETRY_SCHEDULE",
        default_value = "2x5m,7x15m,10x60m"
    )]
    pub retry_schedule: RetrySchedule,

    /// How long a shutdown (SIGTERM) may take: intake and the delivery loops stop taking
    /// work at once and finish what they hold (a POST in flight takes up to --timeout,
    /// then its outcome is recorded and its lease ends); what is left after this is
    /// abandoned, and its lease runs out on its own. Keep it above --timeout.
    #[arg(long, env = "CART_WEBHOOK_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// How often an idle delivery loop looks for due deliveries.
    #[arg(long, env = "CART_WEBHOOK_POLL", default_value = "1s", value_parser = parse_duration)]
    pub poll: Duration,

    /// Replicas of the dead-letter stream when this worker creates it (and of an existing
    /// one, as cartd's `--stream-replicas` does for its streams).
    #[arg(long, env = "CART_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// Comma-separated server tags for the dead-letter stream's placement, as cartd's.
    #[arg(long, env = "CART_STREAM_PLACEMENT_TAGS", default_value = "")]
    pub stream_placement_tags: String,

    /// Delivery loops in this instance (deliveries in flight at once).
    #[arg(long, env = "CART_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,

    /// Order events recorded at once by this instance's intake (each acked when its own
    /// insert commits).
    #[arg(long, env = "CART_WEBHOOK_INTAKE_CONCURRENCY", default_value_t = 16)]
    pub intake_concurrency: usize,

    /// When a project has no webhook settings, or they are disabled, its deliveries stay
    /// pending and are looked at again after this long.
    #[arg(long, env = "CART_WEBHOOK_UNCONFIGURED_DELAY", default_value = "60s", value_parser = parse_duration)]
    pub unconfigured_delay: Duration,

    /// How long an order_canceled waits for its order's order_paid to be recorded.
    #[arg(long, env = "CART_WEBHOOK_CANCEL_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub cancel_grace: Duration,

    /// How often this instance vacuums the outbox (`webhook_deliveries`), so that the
    /// claim's index holds no dead entries of finished deliveries (which only VACUUM
    /// removes, and autovacuum may be off); 0s for never.
    #[arg(long, env = "CART_WEBHOOK_VACUUM_EVERY", default_value = "60s", value_parser = parse_duration)]
    pub vacuum_every: Duration,

    /// How often this instance reconciles the outbox against the order log in
    /// PostgreSQL, so that an order_paid or order_canceled whose CART_ORDERS message was
    /// lost still gets its delivery (each round covers what the log held a round
    /// earlier); 0s for never.
    #[arg(long, env = "CART_WEBHOOK_RECONCILE_EVERY", default_value = "60s", value_parser = parse_duration)]
    pub reconcile_every: Duration,

    /// Decimals in money strings of reconciled deliveries: cartd's `CART_AMOUNT_SCALE`,
    /// with which its order relay wrote the envelopes intake records.
    #[arg(long, env = "CART_AMOUNT_SCALE", default_value_t = 2)]
    pub amount_scale: u32,

    /// The HTTP admin port: GET /metrics (Prometheus text), /healthz and /readyz. `off`
    /// (or an empty value) disables it; port 0 takes a free port.
    #[arg(
        long,
        env = "CART_WEBHOOK_ADMIN_ADDR",
        default_value = "127.0.0.1:9465"
    )]
    pub admin_addr: cart_metrics::AdminAddr,

    /// Extra trusted CA certificates for https receivers (PEM, one or more), beside the
    /// bundled Mozilla roots: a private CA, or a receiver's self-signed certificate.
    /// Read at start; an unreadable file or one without a certificate stops the worker.
    #[arg(long, env = "CART_WEBHOOK_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    schedule::duration(text).ok_or_else(|| format!("{text:?} is not a duration like 10s or 500ms"))
}

impl Config {
    /// How long a claim is leased: the request timeout plus the margin.
    pub fn lease(&self) -> Duration {
        self.timeout.saturating_add(self.lease_margin)
    }

    /// The defaults, with the environment applied.
    pub fn from_env() -> Self {
        Self::parse_from(["cart-webhook"])
    }
}
