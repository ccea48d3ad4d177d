//! Retention: what keeps the tables from growing for ever (docs/operations.md, "Data
//! that does not grow for ever"). Each sweep works in small batches, oldest first,
//! through an index of its own (migration `0012_retention.sql`), one transaction per
//! batch:
//!
//! - [`prune_ledger`]: command-ledger rows older than the idempotency window go; a
//!   retry after that is a new command.
//! - [`expire_carts`]: carts untouched since the cut-off get `CartCleared {reason:
//!   expired}` (the log keeps everything) and lose their projection row.
//! - [`crate::orders::OrderStore::expire_unpaid`]: orders still `new` when their payment
//!   window closed get `OrderExpired` without `by_order`.
//!
//! The caller reads the clock and passes the cut-off in, so tests put it on either side
//! of a row's age without sleeping. Each ledger and cart batch first tries its sweep's advisory lock
//! (`locks::retention`): with several instances, one sweeps and the others skip; should
//! two run anyway (a lock lost with its connection), the row locks of the ledger batch
//! and the version guard of the cart and order appends keep them from harm.

use cart_domain::{CartCommand, CartId, ProjectId, Timestamp, UserId};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::locks;
use crate::store::{append_in, load_in, Append, StoreError, StreamKey};

/// Which sweep a lock belongs to. The order sweep needs none: each order is expired
/// under its own lock (`orders/expiry.rs`).
pub(crate) const LEDGER_SWEEP: i32 = 1;
pub(crate) const CART_SWEEP: i32 = 2;

/// The oldest ledger rows recorded before `$1` (unix seconds), at most `$2`, deleted by
/// their row ids; rows another transaction holds are skipped, not waited for.
pub const PRUNE_LEDGER: &str = "delete from processed_commands where ctid = any(array( \
       select ctid from processed_commands where created_at < to_timestamp($1) \
       order by created_at limit $2 for update skip locked))";

/// The carts whose projection was last written before `$1` (unix seconds), oldest
/// first, at most `$2`.
pub const DUE_CARTS: &str =
    "select stream_id, project_id, user_id, cart_id, version from cart_projection \
     where updated_at < to_timestamp($1) order by updated_at limit $2";

/// An expired cart's projection row, only at the version the expiry wrote (`$1` stream,
/// `$2` version).
pub const DROP_PROJECTION: &str =
    "delete from cart_projection where stream_id = $1 and version = $2";

/// The cut-off of a sweep at `now` for rows older than `age`.
pub fn cutoff(now: Timestamp, age: std::time::Duration) -> Timestamp {
    let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    Timestamp::from_unix(now.unix().saturating_sub(age))
}

/// What a sweep did: rows or carts or orders it handled, and whether it stopped because
/// another instance held the sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch {
    pub done: u64,
    pub busy: bool,
}

/// Deletes up to `limit` ledger rows recorded before `before`, in one transaction.
///
/// # Errors
/// A database error.
pub async fn prune_ledger(
    pool: &PgPool,
    before: Timestamp,
    limit: i64,
) -> Result<Batch, StoreError> {
    let mut tx = pool.begin().await?;
    if !locks::try_take(&mut tx, locks::retention(LEDGER_SWEEP)).await? {
        return Ok(Batch {
            done: 0,
            busy: true,
        });
    }
    let deleted = sqlx::query(PRUNE_LEDGER)
        .persistent(crate::statements::prepared(PRUNE_LEDGER))
        .bind(before.unix())
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Batch {
        done: deleted,
        busy: false,
    })
}

/// A cart the sweep found untouched: its key and the version its projection shows.
struct Due {
    key: StreamKey,
    version: i64,
}

/// Expires up to `limit` carts whose projection was last written before `before`, in
/// one transaction: each gets [`CartCommand::Expire`]'s events appended at the version
/// its projection showed, so a command that touched the cart meanwhile wins and the
/// cart is left alone (the append's version guard, under the stream's lock).
///
/// # Errors
/// A database error, or an event of a due cart that cannot be decoded.
pub async fn expire_carts(
    pool: &PgPool,
    before: Timestamp,
    limit: i64,
) -> Result<Batch, StoreError> {
    let mut tx = pool.begin().await?;
    if !locks::try_take(&mut tx, locks::retention(CART_SWEEP)).await? {
        return Ok(Batch {
            done: 0,
            busy: true,
        });
    }
    let due = due_carts(&mut tx, before, limit).await?;
    let mut carts = Vec::with_capacity(due.len());
    for cart in &due {
        let loaded = load_in(&mut tx, &cart.key).await?;
        // Touched since the projection was read: not abandoned after all.
        if loaded.version != cart.version {
            continue;
        }
        // Expire is never refused: at worst it changes nothing.
        let events = cart_domain::decide(&loaded.cart, &CartCommand::Expire).unwrap_or_default();
        let after = events.iter().fold(loaded.cart, cart_domain::apply);
        carts.push((cart, events, after));
    }
    let metadata = serde_json::json!({ "retention": "cart_expiry" });
    let appends: Vec<Append<'_>> = carts
        .iter()
        .map(|(cart, events, after)| Append {
            key: &cart.key,
            expected: cart.version,
            events,
            cart: after,
            command: None,
            metadata: metadata.clone(),
        })
        .collect();
    let outcomes = append_in(&mut tx, &appends).await?;
    let mut expired = 0;
    for ((cart, events, _), outcome) in carts.iter().zip(outcomes) {
        let Ok(outcome) = outcome else { continue };
        if events.is_empty() {
            continue;
        }
        drop_projection(&mut tx, cart.key.stream_id(), outcome.version).await?;
        expired += 1;
    }
    tx.commit().await?;
    Ok(Batch {
        done: expired,
        busy: false,
    })
}

async fn due_carts(
    conn: &mut PgConnection,
    before: Timestamp,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    let rows = sqlx::query(DUE_CARTS)
        .persistent(crate::statements::prepared(DUE_CARTS))
        .bind(before.unix())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        let project: i64 = row.try_get("project_id")?;
        let user: String = row.try_get("user_id")?;
        let cart: String = row.try_get("cart_id")?;
        let stream_id: Uuid = row.try_get("stream_id")?;
        // Every stored id was parsed before it was written; one that no longer parses
        // is left for an operator rather than stop the sweep.
        let key = match (
            u64::try_from(project).ok().map(ProjectId::parse),
            UserId::parse(user),
            CartId::parse(cart),
        ) {
            (Some(Ok(p)), Ok(u), Ok(c)) => StreamKey::new(p, u, c),
            _ => {
                tracing::warn!(%stream_id, "cart expiry: a projection row with ids that no longer parse is skipped");
                continue;
            }
        };
        due.push(Due {
            key,
            version: row.try_get("version")?,
        });
    }
    Ok(due)
}

async fn drop_projection(
    conn: &mut PgConnection,
    stream_id: Uuid,
    version: i64,
) -> Result<(), StoreError> {
    sqlx::query(DROP_PROJECTION)
        .bind(stream_id)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
