//! Erasure of a user's personal data (`cartctl users erase`; docs/operations.md, "Right
//! to erasure"): crypto-shredding. The order log keeps every event; the user's key goes,
//! and with it every sealed field of theirs (`orders::sealed`). The copies of those
//! fields in the webhook outbox are cart-webhook's to scrub (`cart_webhook::store::
//! scrub_user`; `cartctl users erase` runs both). Events written in clear before sealing existed are
//! not rewritten (the log is append-only): they are counted, by type, for the operator.

use cart_domain::{ProjectId, UserId};
use sqlx::{PgPool, Row};

use crate::store::{project_id as pid, StoreError};

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    /// Whether a key was deleted (false: none was there, e.g. a repeat erasure).
    pub key_deleted: bool,
    /// The user's order events with a sealed field: unreadable from now on.
    pub sealed_events: u64,
    /// The user's order events with personal data in clear (written before sealing), by
    /// event type: still readable, since the log is never rewritten.
    pub clear_events: Vec<(String, u64)>,
}

/// The user's order events with a personal field, sealed or in clear, by type.
const PERSONAL_EVENTS: &str = "select e.event_type, \
       (jsonb_typeof(e.payload -> f.field) = 'object' and e.payload -> f.field ? 'sealed') as sealed, \
       count(*) as n \
     from orders o \
     join order_events e on e.stream_id = o.stream_id \
     join (values ('OrderCreated', 'custom_parameters'), ('OrderCanceled', 'reason')) \
       as f(event_type, field) on f.event_type = e.event_type \
     where o.project_id = $1 and o.user_id = $2 \
       and coalesce(jsonb_typeof(e.payload -> f.field), 'null') <> 'null' \
     group by 1, 2 order by 1, 2";

/// Erases `user`'s personal data in `project`: deletes their key and reports what
/// stays. Idempotent: a repeat finds nothing to delete. A
/// later order of the user makes a fresh key.
///
/// The user's key lock is taken exclusively first (`locks::user_key`): the erasure
/// waits for the user's order commands that are sealing (they hold it shared), so what
/// they sealed is under the key deleted here and counted in the report; commands that
/// come later wait for this commit and make a fresh key.
///
/// # Errors
/// Database failures.
pub async fn erase_user(
    pool: &PgPool,
    project: ProjectId,
    user: &UserId,
) -> Result<ErasureReport, StoreError> {
    let (project, user) = (pid(project), user.as_str());
    crate::locks::retry_on_deadlock("erase user", || erase_in(pool, project, user)).await
}

async fn erase_in(pool: &PgPool, project: i64, user: &str) -> Result<ErasureReport, StoreError> {
    let mut tx = pool.begin().await?;
    crate::locks::take(&mut tx, &[crate::locks::user_key(project, user)]).await?;
    let key_deleted = sqlx::query("delete from user_keys where project_id = $1 and user_id = $2")
        .bind(project)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_query)?
        .rows_affected()
        > 0;
    let mut report = ErasureReport {
        key_deleted,
        ..ErasureReport::default()
    };
    for row in sqlx::query(PERSONAL_EVENTS)
        .bind(project)
        .bind(user)
        .fetch_all(&mut *tx)
        .await?
    {
        let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
        if row.try_get::<Option<bool>, _>("sealed")?.unwrap_or(false) {
            report.sealed_events += n;
        } else {
            report.clear_events.push((row.try_get("event_type")?, n));
        }
    }
    tx.commit().await?;
    Ok(report)
}
