//! An example consumer of the event feed: replays every cart event from the JetStream
//! stream (`CART_EVENTS`, written by `cart-relay`) and every order event (`CART_ORDERS`,
//! unless `--no-orders`) and reports what an analyst asks about carts and orders.
//!
//! - [`Report`] is the pure fold. Per cart, versions run 1, 2, 3...; an event whose
//!   version is not above the last one applied for its cart is ignored, because
//!   JetStream drops a re-published event only within its duplicate window (2 minutes)
//!   and may hold a later copy. An envelope without an event this build knows (a later
//!   event type) is counted and listed, never skipped silently.
//! - [`replay`] reads the stream through an ephemeral ordered consumer from the first
//!   message and stops once caught up, so nothing is left on the server.
//! - [`run`] is the binary: flags in, a table or JSON out, warnings on stderr.
//!
//! What the report says:
//! - **open carts** hold at least one line now; **abandoned** ones are open carts without
//!   any event for longer than `--idle` before the reference time (`--now`, else the
//!   newest event's `recorded_at`, so replaying an old stream gives the same answer
//!   as it would have then).
//! - **emptied by shopper**: carts empty now because the shopper cleared them (reason
//!   `shopper`) or removed their last line. Clears with another reason (later schemas,
//!   e.g. a paid order) are still clears, listed by reason.
//! - Per SKU and project: carts that ever set a quantity of it, carts holding it now,
//!   units held now, and the **kept rate** = carts holding / carts that ever added. "Kept"
//!   means still in the cart at the reference time; it is not a purchase (a bought cart
//!   is emptied, listed under the clear reason `purchased`).
//! - Orders ([`OrderReport`]): checkouts (free ones apart), payments, done, refunds,
//!   expiries, orders by their status now, and per currency the paid, refunded and net
//!   revenue as exact decimal strings (`rust_decimal`, never floats). A payment is the
//!   order's total and a refund gives the whole total back, so both are read from the
//!   envelope's order. Duplicates are ignored by per-order version.
//!
//! Times are RFC 3339 (`recorded_at` is `YYYY-MM-DDTHH:MM:SS.ffffffZ` from the relay) and
//! are parsed into microseconds by [`Timestamp`] rather than compared as text, so
//! `--now` may carry any offset.

mod orders;
mod replay;
mod report;
mod time;

use std::io::Write;
use std::time::Duration;

pub use orders::{Counts, OrderReport, OrderSummary, Revenue};
pub use replay::{
    decode, fold, replay, replay_orders, replay_stream, ReplayError, Source, STALL_TIMEOUT,
};
pub use report::{Outcome, Report, SkuSummary, Summary, UnknownEvent, SHOPPER};
pub use time::{InvalidTimestamp, Timestamp};

/// Replays the cart and order events from JetStream and prints open, abandoned and
/// emptied carts, per-SKU kept rates, and checkouts, payments, refunds and revenue.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "cart-analytics", version)]
pub struct Options {
    /// NATS server URL, or several separated by commas (seeds of a cluster: the client
    /// reconnects to another one when its server goes away).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The JetStream stream the relay writes.
    #[arg(long, env = "CART_EVENTS_STREAM", default_value = "CART_EVENTS")]
    pub stream: String,
    /// The JetStream stream the order relay writes.
    #[arg(long, env = "CART_ORDERS_STREAM", default_value = "CART_ORDERS")]
    pub orders_stream: String,
    /// Replay the cart events only (no order figures).
    #[arg(long)]
    pub no_orders: bool,
    /// Subjects are `<prefix>.events.<project>.<user>.<cart>.<type>.<sku>` and
    /// `<prefix>.orders.<project>.<order_id>.<status>`.
    #[arg(long, env = "CART_SUBJECT_PREFIX", default_value = "cart.v1")]
    pub subject_prefix: String,
    /// Only this project's carts and orders.
    #[arg(long)]
    pub project: Option<i64>,
    /// Seconds without an event after which an open cart counts as abandoned.
    #[arg(long, default_value_t = 86_400)]
    pub idle: u64,
    /// Reference time for idleness (RFC 3339); default: the newest event's time.
    #[arg(long)]
    pub now: Option<Timestamp>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Options {
    pub fn source(&self) -> Source {
        Source {
            stream: self.stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            project: self.project,
        }
    }
}

/// Why [`run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("--nats-url (NATS_URL)")]
    Seeds(#[from] cart_nats::SeedError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("write the report")]
    Output(#[from] std::io::Error),
}

/// Connects, replays and writes the report to `out`; warnings (each unknown event,
/// missing history) go to `warnings`. Returns the summary it wrote.
pub async fn run(
    options: &Options,
    out: &mut impl Write,
    warnings: &mut impl Write,
) -> Result<Summary, RunError> {
    let client = async_nats::connect(cart_nats::servers(&options.nats_url)?.as_slice())
        .await
        .map_err(|source| RunError::Connect {
            url: options.nats_url.clone(),
            source,
        })?;
    let js = async_nats::jetstream::new(client);
    let report = replay(&js, &options.source()).await?;
    let mut summary = report.summary(options.now.as_ref(), Duration::from_secs(options.idle));
    if !options.no_orders {
        let orders = replay_orders(&js, &options.source(), &options.orders_stream).await?;
        let orders = orders.summary();
        summary.unknown_events += orders.unknown_events;
        summary.orders = Some(orders);
    }
    let order_unknown = summary.orders.iter().flat_map(|o| &o.unknown);

    for unknown in summary.unknown.iter().chain(order_unknown) {
        writeln!(
            warnings,
            "warning: unknown event {:?} in stream {:?} version {} at position {:?} ({}); this \
             report does not include its effect",
            unknown.event_type,
            unknown.stream_id,
            unknown.version,
            unknown.position,
            unknown.reason
        )?;
    }
    if summary.version_gaps > 0 {
        writeln!(
            warnings,
            "warning: {} version gaps: some carts' earlier events are no longer in the \
             stream, so their figures are incomplete",
            summary.version_gaps
        )?;
    }
    if options.json {
        serde_json::to_writer_pretty(&mut *out, &summary).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write!(out, "{summary}")?;
    }
    Ok(summary)
}
