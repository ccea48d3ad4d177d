//! A logical restore: the logs of an export (`cartctl events export`, JSON Lines, `--log
//! carts`, `orders` or `all`) written back into an empty database, all in one
//! transaction, so that a refused line leaves the database as it was. Each log keeps the
//! export's order (one transaction: every event gets its tx_id, and `global_position`
//! runs in the export's order). The cart projection is not written here:
//! `rebuild_projection` folds it from the imported log afterwards; the order store's
//! rows are folded from the imported order log before the commit (`orders.rs`).
//! docs/operations.md, "Logical backup".

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{StoreError, StreamKey};

mod line;
mod orders;

pub use line::{parse_line, ImportedLine, ImportedOrderEvent};

/// One event of the cart log as an export line carries it, in its stored form.
#[derive(Debug, Clone)]
pub struct ImportedEvent {
    pub event_id: Uuid,
    pub key: StreamKey,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i16,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    /// RFC 3339, as exported; PostgreSQL parses it.
    pub recorded_at: String,
}

/// An import under way: one transaction holding the logs' table locks.
pub struct Import {
    tx: Transaction<'static, Postgres>,
    /// Whether the target's cart log was found empty (checked at the first cart event,
    /// so that an export of the order log alone can follow one of the cart log).
    carts_checked: bool,
    orders: orders::OrderImport,
    /// The last version written per stream: each stream must run 1, 2, 3... in the
    /// export's order, or the fold of the restored log would differ from the source's.
    versions: HashMap<Uuid, i64>,
    events: u64,
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// Cart events, and the carts they make.
    pub events: u64,
    pub streams: u64,
    pub order_events: u64,
    pub orders: u64,
}

fn project(key: &StreamKey) -> i64 {
    i64::try_from(key.project.get()).unwrap_or(i64::MAX)
}

impl Import {
    /// Starts an import into `pool`'s database. The log an export line belongs to must
    /// be empty there (no cart event or stream; no order event, order, user key or
    /// webhook delivery): an import is a restore, never a merge. That is checked at the
    /// first event of each log.
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin(pool: &PgPool) -> Result<Import, StoreError> {
        let mut tx = pool.begin().await?;
        // No command may append while the logs are restored under it.
        sqlx::query(
            "lock table cart_streams, cart_events, order_events, orders, user_keys, \
               webhook_deliveries in exclusive mode",
        )
        .execute(&mut *tx)
        .await?;
        Ok(Import {
            tx,
            carts_checked: false,
            orders: orders::OrderImport::default(),
            versions: HashMap::new(),
            events: 0,
        })
    }

    /// Writes a batch of order events, in the export's order.
    ///
    /// # Errors
    /// `Invalid` when the target already holds orders, for an event out of its order's
    /// sequence (each order's versions must run 1, 2, 3... from its `OrderCreated`) or
    /// a value PostgreSQL refuses; database errors. The caller then drops the import
    /// and nothing is written.
    pub async fn add_orders(&mut self, batch: &[ImportedOrderEvent]) -> Result<(), StoreError> {
        self.orders.add(&mut self.tx, batch).await
    }

    /// Writes a batch of cart events, in the export's order.
    ///
    /// # Errors
    /// `Invalid` when the target already holds cart events, for an event out of its
    /// stream's order (a gap, a repeat, a stream not starting at 1: a filtered or partial
    /// export) or a value PostgreSQL refuses; database errors. The caller then drops the
    /// import and nothing is written.
    pub async fn add(&mut self, batch: &[ImportedEvent]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if !self.carts_checked {
            let present: bool = sqlx::query_scalar(
                "select exists (select 1 from cart_events) or exists (select 1 from cart_streams)",
            )
            .fetch_one(&mut *self.tx)
            .await?;
            if present {
                return Err(StoreError::Invalid(
                    "the database already holds cart events: import restores into an empty \
                     database only"
                        .to_owned(),
                ));
            }
            self.carts_checked = true;
        }
        let mut new_streams = Vec::new();
        for e in batch {
            let stream_id = e.key.stream_id();
            let last = self.versions.get(&stream_id).copied().unwrap_or(0);
            if e.version != last + 1 {
                return Err(StoreError::Invalid(format!(
                    "event {} is version {} of cart stream {stream_id}, after version {last}: \
                     import needs each cart's whole history in order (an unfiltered export \
                     of the cart log)",
                    e.event_id, e.version
                )));
            }
            if last == 0 {
                new_streams.push(&e.key);
            }
            self.versions.insert(stream_id, e.version);
        }
        let streams = new_streams
            .iter()
            .map(|k| k.stream_id())
            .collect::<Vec<_>>();
        sqlx::query(
            "insert into cart_streams (stream_id, project_id, user_id, cart_id) \
             select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[])",
        )
        .bind(&streams)
        .bind(new_streams.iter().map(|k| project(k)).collect::<Vec<_>>())
        .bind(
            new_streams
                .iter()
                .map(|k| k.user.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            new_streams
                .iter()
                .map(|k| k.cart.to_string())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *self.tx)
        .await
        .map_err(invalid_value)?;
        sqlx::query(
            "insert into cart_events (stream_id, version, event_id, project_id, event_type, \
               schema_version, payload, metadata, recorded_at) \
             select s, v, id, pr, t, sv, p::jsonb, m::jsonb, r::timestamptz \
             from unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::bigint[], $5::text[], \
               $6::int2[], $7::text[], $8::text[], $9::text[]) \
               with ordinality as e(s, v, id, pr, t, sv, p, m, r, n) \
             order by n",
        )
        .bind(batch.iter().map(|e| e.key.stream_id()).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| e.version).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| project(&e.key)).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|e| e.event_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|e| e.schema_version).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|e| e.payload.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|e| e.metadata.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|e| e.recorded_at.clone())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *self.tx)
        .await
        .map_err(invalid_value)?;
        self.events += batch.len() as u64;
        Ok(())
    }

    /// Rebuilds the order store's rows from the imported order log, then commits
    /// everything added.
    ///
    /// # Errors
    /// Database errors, an imported order event that does not decode (then nothing is
    /// written).
    pub async fn commit(mut self) -> Result<ImportReport, StoreError> {
        self.orders.finish(&mut self.tx).await?;
        self.tx.commit().await?;
        Ok(ImportReport {
            events: self.events,
            streams: self.versions.len() as u64,
            order_events: self.orders.events,
            orders: self.orders.orders(),
        })
    }
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Invalid(message.into())
}

/// A value of the file that PostgreSQL refuses (a malformed time, a duplicate event id)
/// is the file's fault, not the store's.
fn invalid_value(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23")) =>
        {
            StoreError::Invalid(db.message().to_owned())
        }
        _ => StoreError::from(error),
    }
}
