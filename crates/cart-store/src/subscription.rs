//! Asynchronous projections: readers of the global order that write PostgreSQL rows.
//!
//! Each batch is one transaction that locks the projection's checkpoint row, reads the
//! events after it, applies them and moves the checkpoint, so a crash anywhere leaves
//! either the whole batch (rows and checkpoint) or none of it. Instances that run the
//! same projection queue on the checkpoint row lock instead of applying twice. Every
//! apply also claims `(projection, stream, version)`, so an event delivered again, or an
//! older one after a newer, is ignored even if the checkpoint were reset.

use std::future::Future;

use cart_domain::CartEvent;
use sqlx::{PgConnection, PgPool, Row};

use crate::feed::{read_page, Filter, Position, RecordedEvent};
use crate::StoreError;

/// A projection fed from the log.
pub trait Projection: Send + Sync {
    /// The stable name of the projection: its checkpoint row and version claims.
    fn name(&self) -> &str;

    /// Applies one event inside the batch's transaction. Called only for events the
    /// projection has not applied before.
    fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The checkpoint of a named reader, or the start of the log.
pub async fn checkpoint(conn: &mut PgConnection, name: &str) -> Result<Position, StoreError> {
    let row = sqlx::query(
        "select tx_id::text as tx_id, global_position from feed_checkpoints where name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Position::default());
    };
    let tx_id: String = row.try_get("tx_id")?;
    Ok(Position {
        tx_id: tx_id.parse().unwrap_or(u64::MAX),
        global_position: row.try_get("global_position")?,
    })
}

/// Moves a named reader's checkpoint forward (never back).
pub async fn save_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    position: Position,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into feed_checkpoints (name, tx_id, global_position) values ($1, $2::text::xid8, $3) \
         on conflict (name) do update set tx_id = excluded.tx_id, global_position = excluded.global_position, updated_at = now() \
         where (feed_checkpoints.tx_id, feed_checkpoints.global_position) < (excluded.tx_id, excluded.global_position)",
    )
    .bind(name)
    .bind(position.tx_id.to_string())
    .bind(position.global_position)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims an event for a projection: true if it is newer than anything the projection
/// applied to that stream, false if it was applied already.
pub async fn claim(
    conn: &mut PgConnection,
    projection: &str,
    event: &RecordedEvent,
) -> Result<bool, StoreError> {
    let claimed = sqlx::query(
        "insert into projection_versions (projection, stream_id, version) values ($1, $2, $3) \
         on conflict (projection, stream_id) do update set version = excluded.version \
         where projection_versions.version < excluded.version",
    )
    .bind(projection)
    .bind(event.stream_id)
    .bind(event.version)
    .execute(&mut *conn)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Applies the next batch of at most about `limit` events; returns how many events the
/// batch read (0 when the projection is caught up).
pub async fn run_batch<P: Projection>(
    pool: &PgPool,
    projection: &P,
    limit: i64,
) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("insert into feed_checkpoints (name) values ($1) on conflict (name) do nothing")
        .bind(projection.name())
        .execute(&mut *tx)
        .await?;
    // The row lock makes concurrent runners of one projection take turns.
    sqlx::query("select 1 from feed_checkpoints where name = $1 for update")
        .bind(projection.name())
        .execute(&mut *tx)
        .await?;
    let after = checkpoint(&mut tx, projection.name()).await?;
    let events = read_page(&mut tx, after, limit, &Filter::default()).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        tx.rollback().await?;
        return Ok(0);
    };
    for event in &events {
        if claim(&mut tx, projection.name(), event).await? {
            projection.apply(&mut tx, event).await?;
        }
    }
    save_checkpoint(&mut tx, projection.name(), last).await?;
    tx.commit().await?;
    Ok(events.len())
}

/// Per project and SKU: carts holding it now, units held, and how often it was added to
/// and taken out of a cart. Table `sku_activity`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SkuActivity;

impl SkuActivity {
    pub const NAME: &'static str = "sku_activity";
}

impl Projection for SkuActivity {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), StoreError> {
        let removed: Vec<(String, i64)> = match &event.event {
            CartEvent::CartOpened => vec![],
            CartEvent::ItemQuantitySet { sku, quantity } => {
                let before: Option<i64> = sqlx::query_scalar(
                    "select quantity from sku_activity_lines where stream_id = $1 and sku = $2",
                )
                .bind(event.stream_id)
                .bind(sku.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                sqlx::query(
                    "insert into sku_activity_lines (stream_id, sku, quantity) values ($1, $2, $3) \
                     on conflict (stream_id, sku) do update set quantity = excluded.quantity",
                )
                .bind(event.stream_id)
                .bind(sku.as_str())
                .bind(i64::from(*quantity))
                .execute(&mut *conn)
                .await?;
                let added = i64::from(before.is_none());
                sqlx::query(
                    "insert into sku_activity (project_id, sku, carts_holding, units_held, times_added) \
                     values ($1, $2, $3, $4, $3) \
                     on conflict (project_id, sku) do update set \
                       carts_holding = sku_activity.carts_holding + excluded.carts_holding, \
                       units_held = sku_activity.units_held + excluded.units_held, \
                       times_added = sku_activity.times_added + excluded.times_added",
                )
                .bind(event.project_id)
                .bind(sku.as_str())
                .bind(added)
                .bind(i64::from(*quantity) - before.unwrap_or(0))
                .execute(&mut *conn)
                .await?;
                vec![]
            }
            CartEvent::ItemRemoved { sku } => {
                sqlx::query_as(
                    "delete from sku_activity_lines where stream_id = $1 and sku = $2 returning sku, quantity",
                )
                .bind(event.stream_id)
                .bind(sku.as_str())
                .fetch_all(&mut *conn)
                .await?
            }
            CartEvent::CartCleared { .. } => {
                sqlx::query_as(
                    "delete from sku_activity_lines where stream_id = $1 returning sku, quantity",
                )
                .bind(event.stream_id)
                .fetch_all(&mut *conn)
                .await?
            }
        };
        for (sku, quantity) in removed {
            sqlx::query(
                "update sku_activity set carts_holding = carts_holding - 1, units_held = units_held - $3, \
                   times_removed = times_removed + 1 where project_id = $1 and sku = $2",
            )
            .bind(event.project_id)
            .bind(sku)
            .bind(quantity)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
