//! Asynchronous projections: readers of the global order that write PostgreSQL rows.
//!
//! Each batch is one transaction that locks the projection's checkpoint row, reads the
//! events after it, applies them and moves the checkpoint, so a crash anywhere leaves
//! either the whole batch (rows and checkpoint) or none of it. Instances that run the
//! same projection queue on the checkpoint row lock instead of applying twice. Every
//! batch also claims `(projection, stream, version)`, so an event delivered again, or an
//! older one after a newer, is ignored even if the checkpoint were reset.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use cart_domain::CartEvent;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::feed::{read_page, read_page_without_owners, Filter, Position, RecordedEvent};
use crate::StoreError;

/// A projection fed from the log.
pub trait Projection: Send + Sync {
    /// The stable name of the projection: its checkpoint row and version claims.
    fn name(&self) -> &str;

    /// Whether [`Self::apply`] reads the events' `user_id` and `cart_id` (a lookup of
    /// the streams' owners per batch); without it they are empty.
    fn owners(&self) -> bool {
        true
    }

    /// Applies a batch's events, in log order, inside the batch's transaction. Called
    /// only with events the projection has not applied before. A batch at a time, so
    /// that a projection can write what many events did in a few statements.
    fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
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

// A batch reads and writes per key, each key a probe of the primary key in a `lateral`
// subquery (or by row id), planned at every execution: a batch of up to a page of streams
// against `= any($1)` or a join was free to scan the table, as the grouped gets did
// (ARCHITECTURE.md, "Plans that cannot go stale").

/// A projection's (`$1`) version claims on a batch's streams (`$2`), in one statement:
/// answers the version it last applied of each stream that has one, as it was before
/// this statement, and raises each stream's claim to the newest version of the batch
/// (`$3`, per stream of `$2`) where that is newer. The `applied` part reads the
/// snapshot before the insert (the parts of a `with` see the same snapshot).
pub const CLAIM_VERSIONS: &str = "with applied as ( \
       select s.id, v.version from unnest($2::uuid[]) as s(id) \
       cross join lateral (select version from projection_versions v \
         where v.projection = $1 and v.stream_id = s.id offset 0) as v), \
     claimed as ( \
       insert into projection_versions (projection, stream_id, version) \
       select $1, s, v from unnest($2::uuid[], $3::bigint[]) as c(s, v) \
       on conflict (projection, stream_id) do update set version = excluded.version \
       where projection_versions.version < excluded.version) \
     select id, version from applied";

/// The `sku_activity` lines a batch needs: `($1 stream, $2 sku)` one line each (the
/// SKUs its events set or remove), and every line of the carts `$3` (those it clears).
pub const STORED_LINES: &str =
    "select k.s, l.sku, l.quantity from unnest($1::uuid[], $2::text[]) as k(s, sku) \
       cross join lateral (select sku, quantity from sku_activity_lines l \
         where l.stream_id = k.s and l.sku = k.sku offset 0) as l \
     union all \
     select c.s, l.sku, l.quantity from unnest($3::uuid[]) as c(s) \
       cross join lateral (select sku, quantity from sku_activity_lines l \
         where l.stream_id = c.s offset 0) as l";

/// Deletes the `sku_activity` lines `($1 stream, $2 sku)` by their row ids.
pub const GONE_LINES: &str = "delete from sku_activity_lines where ctid = any(array( \
       select l.ctid from unnest($1::uuid[], $2::text[]) as d(s, k) \
       cross join lateral (select ctid from sku_activity_lines l \
         where l.stream_id = d.s and l.sku = d.k offset 0) as l))";

/// A projection's checkpoint, its row locked until the batch ends (`$1`: the name).
const LOCK_CHECKPOINT: &str = "select tx_id::text as tx_id, global_position from feed_checkpoints \
     where name = $1 for update";

/// Claims a batch's events for a projection: keeps those newer than anything the
/// projection applied to their stream (earlier events of the batch included), records
/// the newest claimed version of each stream, and drops the rest, already applied.
pub async fn claim<'e>(
    conn: &mut PgConnection,
    projection: &str,
    events: &'e [RecordedEvent],
) -> Result<Vec<&'e RecordedEvent>, StoreError> {
    let mut newest_in_batch: BTreeMap<Uuid, i64> = BTreeMap::new();
    for event in events {
        let newest = newest_in_batch.entry(event.stream_id).or_insert(0);
        *newest = (*newest).max(event.version);
    }
    let applied: HashMap<Uuid, i64> = sqlx::query_as(CLAIM_VERSIONS)
        .persistent(crate::statements::prepared(CLAIM_VERSIONS))
        .bind(projection)
        .bind(newest_in_batch.keys().copied().collect::<Vec<_>>())
        .bind(newest_in_batch.values().copied().collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    let mut newest = applied;
    let mut claimed = Vec::with_capacity(events.len());
    for event in events {
        let last = newest.entry(event.stream_id).or_insert(0);
        if event.version > *last {
            *last = event.version;
            claimed.push(event);
        }
    }
    Ok(claimed)
}

async fn locked_row(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as(LOCK_CHECKPOINT)
        .bind(name)
        .fetch_optional(conn)
        .await
}

/// Locks a projection's checkpoint row (made on its first batch) and reads it: the row
/// lock makes concurrent runners of one projection take turns.
async fn lock_checkpoint(conn: &mut PgConnection, name: &str) -> Result<Position, StoreError> {
    let row = match locked_row(&mut *conn, name).await? {
        Some(row) => row,
        None => {
            sqlx::query(
                "insert into feed_checkpoints (name) values ($1) on conflict (name) do nothing",
            )
            .bind(name)
            .execute(&mut *conn)
            .await?;
            locked_row(&mut *conn, name).await?.ok_or_else(|| {
                StoreError::Invalid(format!("the checkpoint row of {name} is gone"))
            })?
        }
    };
    Ok(Position {
        tx_id: row.0.parse().unwrap_or(u64::MAX),
        global_position: row.1,
    })
}

/// Applies the next batch of at most about `limit` events; returns how many events the
/// batch read (0 when the projection is caught up).
pub async fn run_batch<P: Projection>(
    pool: &PgPool,
    projection: &P,
    limit: i64,
) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    let after = lock_checkpoint(&mut tx, projection.name()).await?;
    let events = if projection.owners() {
        read_page(&mut tx, after, limit, &Filter::default()).await?
    } else {
        read_page_without_owners(&mut tx, after, limit, &Filter::default()).await?
    };
    let Some(last) = events.last().map(|e| e.position) else {
        tx.rollback().await?;
        return Ok(0);
    };
    let claimed: Vec<RecordedEvent> = claim(&mut tx, projection.name(), &events)
        .await?
        .into_iter()
        .cloned()
        .collect();
    if !claimed.is_empty() {
        projection.apply(&mut tx, &claimed).await?;
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

    fn owners(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), StoreError> {
        // The stored lines the batch's events need, changed in memory event by event,
        // then written back with the per-SKU totals: a few statements per batch. A set
        // or a removal needs its own line only; a clear needs the cart's every line.
        let cleared: BTreeSet<Uuid> = events
            .iter()
            .filter(|e| matches!(e.event, CartEvent::CartCleared { .. }))
            .map(|e| e.stream_id)
            .collect();
        let mut needed: BTreeSet<(Uuid, &str)> = BTreeSet::new();
        for event in events.iter().filter(|e| !cleared.contains(&e.stream_id)) {
            match &event.event {
                CartEvent::ItemQuantitySet { sku, .. } | CartEvent::ItemRemoved { sku } => {
                    needed.insert((event.stream_id, sku.as_str()));
                }
                _ => {}
            }
        }
        let stored: Vec<(Uuid, String, i64)> = sqlx::query_as(STORED_LINES)
            .persistent(crate::statements::prepared(STORED_LINES))
            .bind(needed.iter().map(|n| n.0).collect::<Vec<_>>())
            .bind(needed.iter().map(|n| n.1).collect::<Vec<_>>())
            .bind(cleared.iter().copied().collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        let mut lines: HashMap<Uuid, BTreeMap<String, i64>> = HashMap::new();
        for (stream, sku, quantity) in stored {
            lines.entry(stream).or_default().insert(sku, quantity);
        }
        let mut touched: BTreeSet<(Uuid, String)> = BTreeSet::new();
        let mut totals: BTreeMap<(i64, String), SkuTotals> = BTreeMap::new();
        for event in events {
            let cart = lines.entry(event.stream_id).or_default();
            let remove = |sku: String, quantity: i64, totals: &mut BTreeMap<_, SkuTotals>| {
                let t = totals.entry((event.project_id, sku)).or_default();
                t.carts_holding -= 1;
                t.units_held -= quantity;
                t.times_removed += 1;
            };
            match &event.event {
                // Promo codes do not change which SKUs a cart holds.
                CartEvent::CartOpened
                | CartEvent::PromoCodeRedeemed { .. }
                | CartEvent::PromoCodeRemoved => {}
                CartEvent::ItemQuantitySet { sku, quantity } => {
                    let quantity = i64::from(*quantity);
                    let before = cart.insert(sku.as_str().to_owned(), quantity);
                    let t = totals
                        .entry((event.project_id, sku.as_str().to_owned()))
                        .or_default();
                    let added = i64::from(before.is_none());
                    t.carts_holding += added;
                    t.times_added += added;
                    t.units_held += quantity - before.unwrap_or(0);
                    touched.insert((event.stream_id, sku.as_str().to_owned()));
                }
                CartEvent::ItemRemoved { sku } => {
                    if let Some(quantity) = cart.remove(sku.as_str()) {
                        remove(sku.as_str().to_owned(), quantity, &mut totals);
                    }
                    touched.insert((event.stream_id, sku.as_str().to_owned()));
                }
                CartEvent::CartCleared { .. } => {
                    for (sku, quantity) in std::mem::take(cart) {
                        touched.insert((event.stream_id, sku.clone()));
                        remove(sku, quantity, &mut totals);
                    }
                }
            }
        }
        let (mut gone, mut kept) = (Vec::new(), Vec::new());
        for (stream, sku) in touched {
            match lines.get(&stream).and_then(|l| l.get(&sku)) {
                Some(quantity) => kept.push((stream, sku, *quantity)),
                None => gone.push((stream, sku)),
            }
        }
        if !gone.is_empty() {
            sqlx::query(GONE_LINES)
                .persistent(crate::statements::prepared(GONE_LINES))
                .bind(gone.iter().map(|g| g.0).collect::<Vec<_>>())
                .bind(gone.iter().map(|g| g.1.as_str()).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
        }
        if !kept.is_empty() {
            sqlx::query(
                "insert into sku_activity_lines (stream_id, sku, quantity) \
                 select * from unnest($1::uuid[], $2::text[], $3::bigint[]) \
                 on conflict (stream_id, sku) do update set quantity = excluded.quantity",
            )
            .bind(kept.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind(kept.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
            .bind(kept.iter().map(|k| k.2).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !totals.is_empty() {
            sqlx::query(
                "insert into sku_activity (project_id, sku, carts_holding, units_held, times_added, times_removed) \
                 select * from unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) \
                 on conflict (project_id, sku) do update set \
                   carts_holding = sku_activity.carts_holding + excluded.carts_holding, \
                   units_held = sku_activity.units_held + excluded.units_held, \
                   times_added = sku_activity.times_added + excluded.times_added, \
                   times_removed = sku_activity.times_removed + excluded.times_removed",
            )
            .bind(totals.keys().map(|k| k.0).collect::<Vec<_>>())
            .bind(totals.keys().map(|k| k.1.as_str()).collect::<Vec<_>>())
            .bind(totals.values().map(|t| t.carts_holding).collect::<Vec<_>>())
            .bind(totals.values().map(|t| t.units_held).collect::<Vec<_>>())
            .bind(totals.values().map(|t| t.times_added).collect::<Vec<_>>())
            .bind(totals.values().map(|t| t.times_removed).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// What a batch changed of one SKU's row in `sku_activity`.
#[derive(Debug, Default)]
struct SkuTotals {
    carts_holding: i64,
    units_held: i64,
    times_added: i64,
    times_removed: i64,
}

#[cfg(test)]
mod tests;
