//! Export of the event history for analytics: the global order, read with keyset
//! pagination, written as JSON Lines or as length-delimited protobuf envelopes; the cart
//! log, the order log, or both interleaved in one combined order ([`export_logs`],
//! `merged.rs`).

use std::io::Write;

use futures::{SinkExt, StreamExt};
use prost::Message;
use sqlx::PgPool;

use crate::feed::{self, Filter, Log, Position};
use crate::orders::OrderStoreError;
use crate::StoreError;

mod merged;

pub use merged::{count_logs, export_logs, ExportedLogs, Stored};

/// How exported events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON envelope per line.
    JsonLines,
    /// Each protobuf `cart.v1.EventEnvelope` preceded by its length as a varint
    /// (prost's `encode_length_delimited`, Java's `writeDelimitedTo`).
    Protobuf,
}

/// Which logs an export reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// The cart log alone, as before order events were exported.
    Carts,
    /// The order log alone.
    Orders,
    /// Both, in the combined order (docs/events.md, "Both logs in one export").
    All,
}

impl Logs {
    pub fn has(self, log: Log) -> bool {
        match self {
            Logs::Carts => log == Log::Carts,
            Logs::Orders => log == Log::Orders,
            Logs::All => true,
        }
    }
}

/// Where an export starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After this position of the one log exported (the default position is the start
    /// of the log).
    After(Position),
    /// After this event of one log, in the combined order: how a combined export
    /// resumes.
    AfterEvent(LogPosition),
    /// With the first event recorded at or after this time.
    Since(String),
}

/// An event's place in the combined order of both logs: its log and its position there.
/// Written `<log>:<tx_id>:<global_position>`, e.g. `orders:905:12`.
///
/// Both logs take `tx_id` from the same transaction ids, so the combined order is
/// `(tx_id, log, global_position)` with the order log before the cart log within one
/// transaction (`Log::rank`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogPosition {
    pub log: Log,
    pub position: Position,
}

impl LogPosition {
    /// The key of the combined order.
    fn key(self) -> (u64, u8, i64) {
        (
            self.position.tx_id,
            self.log.rank(),
            self.position.global_position,
        )
    }

    /// Where a reader of `log` resumes so that it reads exactly the events of `log`
    /// after this one in the combined order.
    pub fn after_in(self, log: Log) -> Position {
        let tx_id = self.position.tx_id;
        match (self.log, log) {
            (a, b) if a == b => self.position,
            // After an order event of transaction T: every cart event of T comes later.
            (Log::Orders, _) => Position {
                tx_id,
                global_position: 0,
            },
            // After a cart event of T: every order event of T came before it.
            (Log::Carts, _) => Position {
                tx_id,
                global_position: i64::MAX,
            },
        }
    }
}

impl PartialOrd for LogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LogPosition {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::fmt::Display for LogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.log, self.position)
    }
}

/// A log position that is not `<log>:<tx_id>:<global_position>`.
#[derive(Debug, thiserror::Error)]
#[error("a position in a combined export is written <log>:<tx_id>:<global_position>, the log carts or orders")]
pub struct BadLogPosition;

impl std::str::FromStr for LogPosition {
    type Err = BadLogPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (log, position) = s.trim().split_once(':').ok_or(BadLogPosition)?;
        Ok(LogPosition {
            log: log.parse().map_err(|_| BadLogPosition)?,
            position: position.parse().map_err(|_| BadLogPosition)?,
        })
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub events: u64,
    /// The position to resume after with the same filter: the last event written, or
    /// where the export started when it wrote nothing.
    pub last: Position,
}

/// Error of an export: the store, or the output.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The order log's reader (an order event it cannot decode, the database).
    #[error(transparent)]
    Orders(#[from] OrderStoreError),
    /// A combined export was given a position without its log.
    #[error("a combined export resumes after an event of one log: <log>:<tx_id>:<global_position>, e.g. carts:812:40")]
    Untagged,
    #[error("write the export")]
    Write(#[from] std::io::Error),
}

const PAGE: i64 = 10_000;

/// The number of events after `start` matching `filter`, for a progress bar.
pub async fn count(pool: &PgPool, start: &Start, filter: &Filter) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await?;
    let (after, filter) = resolve(&mut conn, start, filter).await?;
    feed::count(&mut conn, after, &filter).await
}

/// Writes every visible event after `start` that matches `filter`, in the global order,
/// then stops (it does not follow the live log: the JetStream stream does that).
/// `progress` is called after each page with the number of events written so far.
///
/// # Errors
/// The store or the output. Events are written a whole page at a time (pages end at
/// transaction boundaries): an event that cannot be decoded ends the export with an
/// error naming its stream and version after the pages before the one holding it, and
/// nothing of that page is written.
pub async fn export(
    pool: &PgPool,
    start: &Start,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<Exported, ExportError> {
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    let (first, filter) = resolve(&mut conn, start, filter).await?;
    // The next page is read while this one is encoded: PostgreSQL works on the query in
    // its own process meanwhile. Keyset order makes the next query known as soon as a
    // page arrives.
    let (mut pages, mut received) = futures::channel::mpsc::channel(1);
    let reader = async move {
        let mut after = first;
        loop {
            let page = feed::read_page(&mut conn, after, PAGE, &filter).await;
            let last = page
                .as_ref()
                .ok()
                .and_then(|p| p.last())
                .map(|e| e.position);
            let stop = last.is_none();
            if pages.send(page).await.is_err() || stop {
                return;
            }
            after = last.unwrap_or(after);
        }
    };
    let writer = async move {
        let mut written = 0;
        let mut last = first;
        let mut buf = Vec::with_capacity(512);
        while let Some(page) = received.next().await {
            let page = page?;
            let Some(end) = page.last().map(|e| e.position) else {
                break;
            };
            for event in &page {
                let envelope = event.envelope();
                buf.clear();
                match format {
                    Format::JsonLines => {
                        // Serializing a generated message cannot fail.
                        serde_json::to_writer(&mut buf, &envelope).unwrap_or_default();
                        buf.push(b'\n');
                    }
                    Format::Protobuf => envelope
                        .encode_length_delimited(&mut buf)
                        .unwrap_or_default(),
                }
                out.write_all(&buf)?;
            }
            written += page.len() as u64;
            last = end;
            progress(written);
        }
        out.flush()?;
        Ok::<_, ExportError>(Exported {
            events: written,
            last,
        })
    };
    // The writer ends first on an error; dropping the receiver then stops the reader.
    let ((), exported) = futures::join!(reader, writer);
    exported
}

/// Where a read starts, and the filter with a time start added to it (events recorded
/// before the time may still follow the start position in the global order).
async fn resolve(
    conn: &mut sqlx::PgConnection,
    start: &Start,
    filter: &Filter,
) -> Result<(Position, Filter), StoreError> {
    let mut filter = filter.clone();
    let after = match start {
        Start::After(p) => *p,
        Start::AfterEvent(event) => event.after_in(Log::Carts),
        Start::Since(t) => {
            filter.since = Some(t.clone());
            feed::position_at(conn, t).await?
        }
    };
    Ok((after, filter))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn an_undecodable_event_stops_the_export_after_the_whole_pages_before_it() {
        let (_db, pool) = crate::testing::database().await;
        // A first transaction of exactly one page...
        sqlx::query(
            "insert into cart_events (stream_id, version, event_id, project_id, event_type, \
                 schema_version, payload, metadata) \
             select gen_random_uuid(), 1, gen_random_uuid(), 1, 'CartOpened', 1, '{}', '{}' \
             from generate_series(1, $1)",
        )
        .bind(PAGE)
        .execute(&pool)
        .await
        .unwrap();
        // ...then one with a good event and, after it, one of a type this build does
        // not know.
        let stream = uuid::Uuid::now_v7();
        let mut tx = pool.begin().await.unwrap();
        for (version, event_type) in [(1, "CartOpened"), (2, "OrderPlaced")] {
            sqlx::query(
                "insert into cart_events (stream_id, version, event_id, project_id, \
                     event_type, schema_version, payload, metadata) \
                 values ($1, $2, $3, 1, $4, 1, '{}', '{}')",
            )
            .bind(stream)
            .bind(version)
            .bind(uuid::Uuid::now_v7())
            .bind(event_type)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();

        // Another database's transaction may hold the cluster-wide barrier before the
        // second transaction a while: export again until the export meets it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (out, error) = loop {
            let mut out = Vec::new();
            let result = export(
                &pool,
                &Start::After(Position::default()),
                &Filter::default(),
                Format::JsonLines,
                &mut out,
                |_| {},
            )
            .await;
            match result {
                Err(error) => break (out, error),
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(exported) => panic!("never met the unknown event: {exported:?}"),
            }
        };
        // The error names the stream and the version.
        assert!(
            matches!(
                &error,
                ExportError::Store(StoreError::Decode { stream_id, version: 2, .. })
                    if *stream_id == stream
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&stream.to_string()) && message.contains("version 2"),
            "{message}"
        );
        // Written: the whole first page, and nothing of the page holding the unknown
        // event, not even the good event before it in its transaction.
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), usize::try_from(PAGE).unwrap());
        assert!(lines.iter().all(|l| l["stream_id"] != stream.to_string()));
    }
}
