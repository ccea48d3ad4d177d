//! Export of the event history for analytics: the global order, read with keyset
//! pagination, written as JSON Lines or as length-delimited protobuf envelopes.

use std::io::Write;

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
    let after = start_position(&mut conn, start).await?;
    let n: i64 = sqlx::query_scalar(
        "select count(*) from cart_events e \
         where (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
           and ($3::bigint is null or e.project_id = $3) \
           and ($4::uuid is null or e.stream_id = $4) \
           and (cardinality($5::text[]) = 0 or e.event_type = any($5)) \
           and ($6::timestamptz is null or e.recorded_at >= $6::timestamptz)",
    )
    .bind(after.tx_id.to_string())
    .bind(after.global_position)
    .bind(filter.project_id)
    .bind(filter.stream_id)
    .bind(&filter.event_types)
    .bind(filter.since.as_deref())
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from_query)?;
    Ok(u64::try_from(n).unwrap_or(0))
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
    let mut filter = filter.clone();
    if let Start::Since(t) = start {
        filter.since = Some(t.clone());
    }
    let mut after = start_position(&mut conn, start).await?;
    let mut written = 0;
    let mut buf = Vec::with_capacity(512);
    loop {
        let page = feed::read_page(&mut conn, after, PAGE, &filter).await?;
        let Some(last) = page.last().map(|e| e.position) else {
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
        after = last;
        progress(written);
    }
    out.flush()?;
    Ok(Exported {
        events: written,
        last: after,
    })
}

async fn start_position(
    conn: &mut sqlx::PgConnection,
    start: &Start,
) -> Result<Position, StoreError> {
    match start {
        Start::After(p) => Ok(*p),
        Start::Since(t) => feed::position_at(conn, t).await,
    }
}
