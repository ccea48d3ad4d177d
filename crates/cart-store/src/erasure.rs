//! Erasure of a user's personal data (`cartctl users erase`; docs/operations.md, "Right
//! to erasure"): crypto-shredding. The order log keeps every event; the user's key goes,
//! and with it every sealed field of theirs (`orders::sealed`). The copies of those
//! fields outside the log that this database holds, the webhook outbox's envelopes, are
//! scrubbed in the same transaction. Events written in clear before sealing existed are
//! not rewritten (the log is append-only): they are counted, by type, for the operator.

use cart_domain::{ProjectId, UserId};
use sqlx::{PgPool, Row};

use crate::orders::sealed;
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
    /// Webhook deliveries (queued or done) whose envelope lost its personal fields.
    pub webhook_deliveries_scrubbed: u64,
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

/// The user's webhook envelopes, with `custom_parameters` null and a cancel reason
/// `"erased"`, as the relay now publishes them for that user.
const SCRUB_WEBHOOKS: &str = "update webhook_deliveries w set envelope = \
       jsonb_set(w.envelope, '{order}', (w.envelope -> 'order') \
         || jsonb_build_object('custom_parameters', null) \
         || case when jsonb_typeof(w.envelope #> '{order,cancel_reason}') = 'string' \
              then jsonb_build_object('cancel_reason', $3::text) else '{}'::jsonb end) \
     where w.project_id = $1 \
       and w.order_id in (select order_id from orders where project_id = $1 and user_id = $2) \
       and (coalesce(jsonb_typeof(w.envelope #> '{order,custom_parameters}'), 'null') <> 'null' \
         or (jsonb_typeof(w.envelope #> '{order,cancel_reason}') = 'string' \
             and w.envelope #>> '{order,cancel_reason}' <> $3::text))";

/// Erases `user`'s personal data in `project`: deletes their key, scrubs their webhook
/// envelopes, and reports what stays. Idempotent: a repeat finds nothing to delete. A
/// later order of the user makes a fresh key.
///
/// # Errors
/// Database failures.
pub async fn erase_user(
    pool: &PgPool,
    project: ProjectId,
    user: &UserId,
) -> Result<ErasureReport, StoreError> {
    let (project, user) = (pid(project), user.as_str());
    let mut tx = pool.begin().await?;
    let key_deleted = sqlx::query("delete from user_keys where project_id = $1 and user_id = $2")
        .bind(project)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_query)?
        .rows_affected()
        > 0;
    let webhook_deliveries_scrubbed = sqlx::query(SCRUB_WEBHOOKS)
        .bind(project)
        .bind(user)
        .bind(sealed::ERASED_REASON)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let mut report = ErasureReport {
        key_deleted,
        webhook_deliveries_scrubbed,
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
