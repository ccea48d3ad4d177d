//! A logical restore: the cart log of an export (`cartctl events export`) written back
//! into an empty database, all in one transaction, so that a refused line leaves the
//! database as it was. The projection is not written here: `rebuild_projection` folds
//! it from the imported log afterwards (docs/operations.md, "Logical backup").

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{StoreError, StreamKey};

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

/// An import under way: one transaction holding the log's table locks.
pub struct Import {
    tx: Transaction<'static, Postgres>,
    /// The last version written per stream: each stream must run 1, 2, 3... in the
    /// export's order, or the fold of the restored log would differ from the source's.
    versions: HashMap<Uuid, i64>,
    events: u64,
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub events: u64,
    pub streams: u64,
}

fn project(key: &StreamKey) -> i64 {
    i64::try_from(key.project.get()).unwrap_or(i64::MAX)
}

impl Import {
    /// Starts an import into `pool`'s database, which must hold no cart event and no
    /// cart stream: an import is a restore, never a merge.
    ///
    /// # Errors
    /// `Invalid` when the cart log is not empty; database errors.
    pub async fn begin(pool: &PgPool) -> Result<Import, StoreError> {
        let mut tx = pool.begin().await?;
        // No command may append while the log is restored under it.
        sqlx::query("lock table cart_streams, cart_events in exclusive mode")
            .execute(&mut *tx)
            .await?;
        let present: bool = sqlx::query_scalar(
            "select exists (select 1 from cart_events) or exists (select 1 from cart_streams)",
        )
        .fetch_one(&mut *tx)
        .await?;
        if present {
            return Err(StoreError::Invalid(
                "the database already holds cart events: import restores into an empty \
                 database only"
                    .to_owned(),
            ));
        }
        Ok(Import {
            tx,
            versions: HashMap::new(),
            events: 0,
        })
    }

    /// Writes a batch of events, in the export's order.
    ///
    /// # Errors
    /// `Invalid` for an event out of its stream's order (a gap, a repeat, a stream not
    /// starting at 1: a filtered or partial export) or a value PostgreSQL refuses;
    /// database errors. The caller then drops the import and nothing is written.
    pub async fn add(&mut self, batch: &[ImportedEvent]) -> Result<(), StoreError> {
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
        .map_err(invalid)?;
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
        .map_err(invalid)?;
        self.events += batch.len() as u64;
        Ok(())
    }

    /// Commits everything added.
    ///
    /// # Errors
    /// Database errors (then nothing is written).
    pub async fn commit(self) -> Result<ImportReport, StoreError> {
        self.tx.commit().await?;
        Ok(ImportReport {
            events: self.events,
            streams: self.versions.len() as u64,
        })
    }
}

/// A value of the file that PostgreSQL refuses (a malformed time, a duplicate event id)
/// is the file's fault, not the store's.
fn invalid(error: sqlx::Error) -> StoreError {
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
