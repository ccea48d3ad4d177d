//! Rebuilding the cart projection from the log while the live one keeps serving.
//!
//! 1. Fold every stream, read in one repeatable-read snapshot (read-only, so it holds no
//!    transaction id and never stalls the global readers), into `cart_projection_next`.
//! 2. Catch up: re-fold every stream written since the snapshot, a few times while the
//!    live projection keeps changing.
//! 3. Switch, in one transaction: lock the live table against writers (readers go on),
//!    re-fold what was written since the last catch-up, count the differences, swap the
//!    tables by renaming and drop the old one. A command blocked on the lock writes its
//!    row into the new table once the switch commits: it writes the whole cart at its
//!    new version, so nothing written during the switch is lost.

use cart_domain::Cart;
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::store::{decode_row, lines_json};
use crate::StoreError;

/// What a projection rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    pub streams: u64,
    pub events: u64,
    /// Rows that differed between the rebuilt and the live projection at the switch
    /// (both directions): zero unless the live projection had gone wrong.
    pub differences: u64,
}

/// Progress of the bulk fold: events folded so far and the number to fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub events: u64,
    pub total: u64,
}

// Held (session level) by the one rebuild that may run at a time.
const REBUILD_LOCK: i64 = 0x6361_7274_7265_6231;
const PAGE: i64 = 20_000;
/// The swap, run under the exclusive lock in the switch transaction.
pub(crate) const SWITCH: [&str; 5] = [
    "alter table cart_projection rename to cart_projection_old",
    "alter index cart_projection_pkey rename to cart_projection_old_pkey",
    "alter table cart_projection_next rename to cart_projection",
    "alter index cart_projection_next_pkey rename to cart_projection_pkey",
    "drop table cart_projection_old",
];
const FLUSH: usize = 2_000;

/// Rebuilds `cart_projection` from the log and switches to the result atomically.
///
/// # Errors
/// `RebuildRunning` if another rebuild holds the lock; database and decode errors (the
/// live projection is then left as it was).
pub async fn rebuild_projection(
    pool: &PgPool,
    mut progress: impl FnMut(Progress),
) -> Result<RebuildReport, StoreError> {
    let options = pool.connect_options();
    let mut lock = PgConnection::connect_with(&options).await?;
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(REBUILD_LOCK)
        .fetch_one(&mut lock)
        .await?;
    if !locked {
        return Err(StoreError::RebuildRunning);
    }
    let result = rebuild_locked(pool, &mut progress).await;
    // Closing the session releases the lock, also when the rebuild failed.
    let _ = lock.close().await;
    result
}

async fn rebuild_locked(
    pool: &PgPool,
    progress: &mut impl FnMut(Progress),
) -> Result<RebuildReport, StoreError> {
    let mut writer = pool.acquire().await?;
    sqlx::query("drop table if exists cart_projection_next")
        .execute(&mut *writer)
        .await?;
    sqlx::query("create table cart_projection_next (like cart_projection including all)")
        .execute(&mut *writer)
        .await?;
    // `like ... including all` leaves out the table's storage parameters, among them the
    // fillfactor that keeps appends' updates HOT (migration 0015): copy them over.
    sqlx::query(
        "do $$ declare options text; begin \
           select array_to_string(reloptions, ', ') into options from pg_class \
             where oid = 'cart_projection'::regclass; \
           if options is not null then \
             execute format('alter table cart_projection_next set (%s)', options); \
           end if; \
         end $$",
    )
    .execute(&mut *writer)
    .await?;

    let mut reader = PgConnection::connect_with(&pool.connect_options()).await?;
    sqlx::query("begin isolation level repeatable read read only")
        .execute(&mut reader)
        .await?;
    let mut since: String =
        sqlx::query_scalar("select pg_snapshot_xmin(pg_current_snapshot())::text")
            .fetch_one(&mut reader)
            .await?;
    let total: i64 = sqlx::query_scalar("select count(*) from cart_events")
        .fetch_one(&mut reader)
        .await?;
    let total = u64::try_from(total).unwrap_or(0);

    let mut report = RebuildReport {
        streams: 0,
        events: 0,
        differences: 0,
    };
    let mut folder = Folder::default();
    let mut after: (Uuid, i64) = (Uuid::nil(), 0);
    loop {
        // Keyset pagination over the primary key: never OFFSET.
        let rows = sqlx::query(
            "select stream_id, version, event_type, schema_version, payload from cart_events \
             where (stream_id, version) > ($1, $2) order by stream_id, version limit $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(PAGE)
        .fetch_all(&mut reader)
        .await?;
        let Some(last) = rows.last() else { break };
        after = (last.try_get("stream_id")?, last.try_get("version")?);
        for row in &rows {
            folder.push(row)?;
        }
        report.events += rows.len() as u64;
        if folder.done.len() >= FLUSH {
            report.streams += folder.flush(&mut writer).await?;
        }
        progress(Progress {
            events: report.events,
            total: total.max(report.events),
        });
    }
    folder.finish();
    report.streams += folder.flush(&mut writer).await?;
    sqlx::query("commit").execute(&mut reader).await?;
    let _ = reader.close().await;

    // Catch up without blocking anyone, until little is left for the locked switch.
    for _ in 0..5 {
        let next: String =
            sqlx::query_scalar("select pg_snapshot_xmin(pg_current_snapshot())::text")
                .fetch_one(&mut *writer)
                .await?;
        let refolded = refold_since(&mut writer, &since).await?;
        since = next;
        if refolded < 100 {
            break;
        }
    }

    let mut tx = writer.begin().await?;
    // EXCLUSIVE stops the inline projection writers and lets readers go on.
    sqlx::query("lock table cart_projection in exclusive mode")
        .execute(&mut *tx)
        .await?;
    refold_since(&mut tx, &since).await?;
    let differences: i64 = sqlx::query_scalar(
        "select count(*) from ( \
           (select stream_id, project_id, user_id, cart_id, version, lines from cart_projection \
            except select stream_id, project_id, user_id, cart_id, version, lines from cart_projection_next) \
           union all \
           (select stream_id, project_id, user_id, cart_id, version, lines from cart_projection_next \
            except select stream_id, project_id, user_id, cart_id, version, lines from cart_projection)) d",
    )
    .fetch_one(&mut *tx)
    .await?;
    report.differences = u64::try_from(differences).unwrap_or(0);
    for statement in SWITCH {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Folds, from the whole stream, every cart written by a transaction at or after
/// `since` (an xid8 as text) into `cart_projection_next`. Returns how many.
async fn refold_since(conn: &mut PgConnection, since: &str) -> Result<u64, StoreError> {
    let rows = sqlx::query(
        "select stream_id, version, event_type, schema_version, payload from cart_events \
         where stream_id in (select distinct stream_id from cart_events where tx_id >= $1::text::xid8) \
         order by stream_id, version",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let mut folder = Folder::default();
    for row in &rows {
        folder.push(row)?;
    }
    folder.finish();
    folder.flush(conn).await
}

/// Folds rows ordered by (stream, version) into finished carts.
#[derive(Default)]
struct Folder {
    current: Option<(Uuid, i64, Cart)>,
    done: Vec<(Uuid, i64, Cart)>,
}

impl Folder {
    fn push(&mut self, row: &sqlx::postgres::PgRow) -> Result<(), StoreError> {
        let stream_id: Uuid = row.try_get("stream_id")?;
        let version: i64 = row.try_get("version")?;
        let event = decode_row(row, stream_id, version)?;
        self.current = match self.current.take() {
            Some((id, _, cart)) if id == stream_id => {
                Some((id, version, cart_domain::apply(cart, &event)))
            }
            other => {
                self.done.extend(other);
                Some((
                    stream_id,
                    version,
                    cart_domain::apply(Cart::default(), &event),
                ))
            }
        };
        Ok(())
    }

    fn finish(&mut self) {
        self.done.extend(self.current.take());
    }

    /// Writes the finished carts in one statement; returns how many.
    async fn flush(&mut self, conn: &mut PgConnection) -> Result<u64, StoreError> {
        if self.done.is_empty() {
            return Ok(0);
        }
        let n = self.done.len();
        // An expired cart (folded back to never opened) has no projection row.
        let gone: Vec<Uuid> = self
            .done
            .iter()
            .filter(|(_, _, cart)| !cart.is_opened())
            .map(|(id, _, _)| *id)
            .collect();
        self.done.retain(|(_, _, cart)| cart.is_opened());
        if !gone.is_empty() {
            sqlx::query("delete from cart_projection_next where stream_id = any($1)")
                .bind(&gone)
                .execute(&mut *conn)
                .await?;
        }
        let mut ids = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut lines = Vec::with_capacity(n);
        for (id, version, cart) in self.done.drain(..) {
            ids.push(id);
            versions.push(version);
            lines.push(lines_json(&cart).to_string());
        }
        sqlx::query(
            "insert into cart_projection_next (stream_id, project_id, user_id, cart_id, version, lines) \
             select s.stream_id, s.project_id, s.user_id, s.cart_id, r.v, r.l::jsonb \
             from unnest($1::uuid[], $2::bigint[], $3::text[]) as r(id, v, l) \
             join cart_streams s on s.stream_id = r.id \
             on conflict (stream_id) do update set version = excluded.version, lines = excluded.lines",
        )
        .bind(&ids)
        .bind(&versions)
        .bind(&lines)
        .execute(&mut *conn)
        .await?;
        Ok(n as u64)
    }
}
