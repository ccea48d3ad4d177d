//! The export of the order log, alone or interleaved with the cart log.
//!
//! Both logs are read below one read barrier taken when the export starts (the
//! `pg_snapshot_xmin` of that moment): below it, neither log can gain an event any more,
//! so the two ordered streams merge exactly, and a resume from the last event written
//! continues both. Each log is still read with its own gap-safe reader; the pages it
//! returns past the barrier are cut at it, which only stops the export where it would
//! have stopped had it been read in one go.

use std::collections::VecDeque;
use std::io::Write;

use cart_proto::v1;
use cart_proto::view::AmountFormat;
use prost::Message;
use sqlx::{PgConnection, PgPool, Row};

use super::{ExportError, Exported, Format, LogPosition, Logs, Start, PAGE};
use crate::feed::{self, Filter, Log, Position, RecordedEvent};
use crate::orders::{self, RecordedOrderEvent};
use crate::StoreError;

/// What an export of one or both logs wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportedLogs {
    pub events: u64,
    /// Where to resume with the same logs and filter: the last event written, or, when
    /// none was, where the export started (for both logs from a `since`, the read
    /// barrier: no event below it matched, and none can commit below it any more).
    pub last: LogPosition,
}

/// Writes every visible event of `logs` after `start` that matches `filter`: the cart
/// log alone exactly as [`super::export`] does, the order log alone in its global order,
/// or both in the combined order `(tx_id, log, global_position)`, order events first
/// within a transaction. Order events are `OrderEventEnvelope`s with money at
/// `amounts`' scale: their JSON (the `CART_ORDERS` body), or in protobuf
/// `cart.v1.OrderEventEnvelope`; in a combined protobuf export every record is a
/// `cart.v1.ExportRecord`.
///
/// With `stored`, a JSON Lines order line also carries the event as the log stores it
/// (what `cartctl events import` needs to restore orders): payment tokens and sealed
/// personal fields, so only a backup asks for it, never an export for analytics.
///
/// # Errors
/// As [`super::export`]; a combined export given an untagged `Start::After` is
/// [`ExportError::Untagged`].
pub async fn export_logs(
    pool: &PgPool,
    logs: Logs,
    start: &Start,
    filter: &Filter,
    (format, amounts, stored): (Format, AmountFormat, Stored),
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<ExportedLogs, ExportError> {
    if logs == Logs::Carts {
        let Exported { events, last } =
            super::export(pool, start, filter, format, out, progress).await?;
        let last = LogPosition {
            log: Log::Carts,
            position: last,
        };
        return Ok(ExportedLogs { events, last });
    }
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    let (carts_after, orders_after, filter) = resolve(&mut conn, logs, start, filter).await?;
    // Taken after the starts, which are below the barrier of their own moment, so below
    // this one too.
    let barrier = barrier(&mut conn).await?;
    let mut cart_log = Pending::new(logs.has(Log::Carts), carts_after);
    let mut order_log = Pending::new(true, orders_after);
    let mut last = match (logs, start) {
        (Logs::All, Start::AfterEvent(event)) => *event,
        // When nothing is written from a time, nothing of either log below the barrier
        // matched it, and nothing can commit below it any more: resume from there.
        (Logs::All, _) => LogPosition {
            log: Log::Orders,
            position: Position {
                tx_id: barrier,
                global_position: 0,
            },
        },
        _ => order_log.at(Log::Orders),
    };
    let encoder = Encoder {
        logs,
        format,
        amounts,
        stored,
    };
    let (mut written, mut buf) = (0u64, Vec::with_capacity(1024));
    loop {
        if cart_log.wants_page() {
            let page = feed::read_page(&mut conn, cart_log.after, PAGE, &filter).await?;
            cart_log.take(page, barrier, |e| e.position);
            progress(written);
        }
        if order_log.wants_page() {
            let page =
                orders::read_filtered_page(&mut conn, order_log.after, PAGE, &filter).await?;
            order_log.take(page, barrier, |e| e.position);
            progress(written);
        }
        let next_cart = cart_log.front().map(|e| LogPosition {
            log: Log::Carts,
            position: e.position,
        });
        let next_order = order_log.front().map(|e| LogPosition {
            log: Log::Orders,
            position: e.position,
        });
        buf.clear();
        last = match (next_cart, next_order) {
            (None, None) => break,
            (Some(c), Some(o)) if o < c => encoder.order(order_log.pop(), &mut buf, o),
            (Some(c), _) => encoder.cart(cart_log.pop(), &mut buf, c),
            (None, Some(o)) => encoder.order(order_log.pop(), &mut buf, o),
        };
        out.write_all(&buf)?;
        written += 1;
    }
    out.flush()?;
    progress(written);
    Ok(ExportedLogs {
        events: written,
        last,
    })
}

/// The number of events of `logs` after `start` matching `filter`, for a progress bar.
///
/// # Errors
/// Database failures, a `since` PostgreSQL cannot read, [`ExportError::Untagged`].
pub async fn count_logs(
    pool: &PgPool,
    logs: Logs,
    start: &Start,
    filter: &Filter,
) -> Result<u64, ExportError> {
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    let (carts_after, orders_after, filter) = resolve(&mut conn, logs, start, filter).await?;
    let mut n = 0;
    if logs.has(Log::Carts) {
        n += feed::count(&mut conn, carts_after, &filter).await?;
    }
    if logs.has(Log::Orders) {
        n += orders::count_after(&mut conn, orders_after, &filter).await?;
    }
    Ok(n)
}

/// The read barrier now: no transaction below it is still in flight.
async fn barrier(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let row = sqlx::query("select pg_snapshot_xmin(pg_current_snapshot())::text as xmin")
        .fetch_one(&mut *conn)
        .await?;
    let xmin: String = row.try_get("xmin")?;
    Ok(xmin.parse().unwrap_or(0))
}

/// Where the cart log's and the order log's reads start, and the filter with a time
/// start added to it.
async fn resolve(
    conn: &mut PgConnection,
    logs: Logs,
    start: &Start,
    filter: &Filter,
) -> Result<(Position, Position, Filter), ExportError> {
    let mut filter = filter.clone();
    let (carts, orders) = match start {
        Start::After(_) if logs == Logs::All => return Err(ExportError::Untagged),
        Start::After(p) => (*p, *p),
        Start::AfterEvent(event) => (event.after_in(Log::Carts), event.after_in(Log::Orders)),
        Start::Since(t) => {
            filter.since = Some(t.clone());
            let carts = if logs.has(Log::Carts) {
                feed::position_at(conn, t).await?
            } else {
                Position::default()
            };
            let orders = if logs.has(Log::Orders) {
                orders::position_at(conn, t).await?
            } else {
                Position::default()
            };
            (carts, orders)
        }
    };
    Ok((carts, orders, filter))
}

/// One log's events read but not yet written, and where its next read starts.
struct Pending<T> {
    events: VecDeque<T>,
    after: Position,
    /// Nothing more to read: the log is not exported, or its reader reached the barrier.
    done: bool,
}

impl<T> Pending<T> {
    fn new(exported: bool, after: Position) -> Self {
        Self {
            events: VecDeque::new(),
            after,
            done: !exported,
        }
    }

    fn wants_page(&self) -> bool {
        !self.done && self.events.is_empty()
    }

    /// Keeps the page's events below the barrier; a page that is empty or reaches the
    /// barrier is the log's last.
    fn take(&mut self, page: Vec<T>, barrier: u64, position: impl Fn(&T) -> Position) {
        let total = page.len();
        self.events
            .extend(page.into_iter().filter(|e| position(e).tx_id < barrier));
        if self.events.is_empty() || self.events.len() < total {
            self.done = true;
        }
        if let Some(last) = self.events.back() {
            self.after = position(last);
        }
    }

    fn front(&self) -> Option<&T> {
        self.events.front()
    }

    fn pop(&mut self) -> Option<T> {
        self.events.pop_front()
    }

    /// Where this log's read stands, as a point of the combined order.
    fn at(&self, log: Log) -> LogPosition {
        LogPosition {
            log,
            position: self.after,
        }
    }
}

/// Whether order lines carry the stored event ([`export_logs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stored {
    /// The envelope only, as `CART_ORDERS` carries it: for analytics.
    #[default]
    Omit,
    /// The envelope and, as its last member, `stored`: for a logical backup.
    Include,
}

/// How each record is written.
struct Encoder {
    logs: Logs,
    format: Format,
    amounts: AmountFormat,
    stored: Stored,
}

impl Encoder {
    /// Encodes a cart event (when there is one) into `buf`; returns its place.
    fn cart(
        &self,
        event: Option<RecordedEvent>,
        buf: &mut Vec<u8>,
        at: LogPosition,
    ) -> LogPosition {
        let Some(event) = event else { return at };
        let envelope = event.envelope();
        match self.format {
            Format::JsonLines => {
                // Serializing a generated message cannot fail.
                serde_json::to_writer(&mut *buf, &envelope).unwrap_or_default();
                buf.push(b'\n');
            }
            Format::Protobuf => record(buf, v1::export_record::Record::CartEvent(envelope)),
        }
        at
    }

    /// Encodes an order event (when there is one) into `buf`; returns its place.
    fn order(
        &self,
        event: Option<RecordedOrderEvent>,
        buf: &mut Vec<u8>,
        at: LogPosition,
    ) -> LogPosition {
        let Some(event) = event else { return at };
        let envelope = event.envelope(self.amounts);
        match (self.format, self.logs) {
            (Format::JsonLines, _) => {
                // The envelope's types serialize without failing (strings, numbers, JSON).
                serde_json::to_writer(&mut *buf, &envelope).unwrap_or_default();
                // Then the stored form, for `cartctl events import`, as the object's last
                // member: the envelope's members keep their bytes and their order.
                if self.stored == Stored::Include && buf.last() == Some(&b'}') {
                    buf.pop();
                    buf.extend_from_slice(b",\"stored\":");
                    serde_json::to_writer(&mut *buf, &event.stored.to_json()).unwrap_or_default();
                    buf.push(b'}');
                }
                buf.push(b'\n');
            }
            (Format::Protobuf, Logs::All) => record(
                buf,
                v1::export_record::Record::OrderEvent(envelope.to_protobuf()),
            ),
            (Format::Protobuf, _) => envelope
                .to_protobuf()
                .encode_length_delimited(buf)
                .unwrap_or_default(),
        }
        at
    }
}

fn record(buf: &mut Vec<u8>, record: v1::export_record::Record) {
    v1::ExportRecord {
        record: Some(record),
    }
    .encode_length_delimited(buf)
    .unwrap_or_default();
}
