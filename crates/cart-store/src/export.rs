//! Export of the event history for analytics: the global order, read with keyset
//! pagination, written as JSON Lines or as length-delimited protobuf envelopes.

use std::io::Write;

use futures::{SinkExt, StreamExt};
use prost::Message;
use sqlx::PgPool;

use crate::feed::{self, Filter, Position};
use crate::StoreError;

/// How exported events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON envelope per line.
    JsonLines,
    /// Each protobuf `cart.v1.EventEnvelope` preceded by its length as a varint
    /// (prost's `encode_length_delimited`, Java's `writeDelimitedTo`).
    Protobuf,
}

/// Where an export starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After this position (the default position is the start of the log).
    After(Position),
    /// With the first event recorded at or after this time.
    Since(String),
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
        Start::Since(t) => {
            filter.since = Some(t.clone());
            feed::position_at(conn, t).await?
        }
    };
    Ok((after, filter))
}
