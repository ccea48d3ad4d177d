//! The webhook tables (migrations 0006, 0007 and 0008): settings, the delivery outbox and
//! attempts. The only module of this crate (with `order_queue`) that writes SQL.
//!
//! The hot statements are `pub const`s, so that `tests/plans.rs` prepares exactly the
//! text the worker runs and checks that their plans stay index scans however empty the
//! tables were when they were planned.

pub mod order_queue;

use std::time::Duration;

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::payload::NotificationType;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("stored delivery {event_id} is unreadable: {reason}")]
    Corrupt { event_id: String, reason: String },
}

/// A project's webhook settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub project_id: u64,
    pub url: String,
    pub secret: String,
    pub enabled: bool,
    pub version: i16,
}

fn pid(project_id: u64) -> i64 {
    // Project and order ids are positive and below 2^63 (they come from bigint columns).
    i64::try_from(project_id).unwrap_or(i64::MAX)
}

/// An erased user's outbox rows, queued or finished (`$1` project, `$2` user, `$3` the
/// erased reason): `custom_parameters` null and a cancel reason `"erased"`, as the
/// relay now publishes that user's orders. A range of the project's rows
/// (`webhook_deliveries_order`), filtered by the envelope's user: an operator's command,
/// not a hot path.
pub const SCRUB_USER: &str = "update webhook_deliveries w set envelope = \
       jsonb_set(w.envelope, '{order}', (w.envelope -> 'order') \
         || jsonb_build_object('custom_parameters', null) \
         || case when jsonb_typeof(w.envelope #> '{order,cancel_reason}') = 'string' \
              then jsonb_build_object('cancel_reason', $3::text) else '{}'::jsonb end) \
     where w.project_id = $1 and w.envelope #>> '{order,user_id}' = $2 \
       and (coalesce(jsonb_typeof(w.envelope #> '{order,custom_parameters}'), 'null') <> 'null' \
         or (jsonb_typeof(w.envelope #> '{order,cancel_reason}') = 'string' \
             and w.envelope #>> '{order,cancel_reason}' <> $3::text))";

/// Scrubs the personal fields of an erased user's outbox rows (`cartctl users erase`);
/// the number of rows changed. Idempotent.
pub async fn scrub_user(pool: &PgPool, project_id: u64, user_id: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(SCRUB_USER)
        .bind(pid(project_id))
        .bind(user_id)
        .bind(cart_store::orders::sealed::ERASED_REASON)
        .execute(pool)
        .await?
        .rows_affected())
}

/// A project's settings (the admin endpoints' read; a claim reads them itself).
pub async fn settings<'e>(
    db: impl sqlx::PgExecutor<'e>,
    project_id: u64,
) -> Result<Option<Settings>, StoreError> {
    let row = sqlx::query(
        "select url, secret, enabled, version from webhook_settings where project_id = $1",
    )
    .bind(pid(project_id))
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Settings {
        project_id,
        url: r.get("url"),
        secret: r.get("secret"),
        enabled: r.get("enabled"),
        version: r.get("version"),
    }))
}

pub async fn put_settings(pool: &PgPool, s: &Settings) -> Result<(), StoreError> {
    sqlx::query(
        "insert into webhook_settings (project_id, url, secret, enabled, version, updated_at)
         values ($1, $2, $3, $4, $5, now())
         on conflict (project_id) do update set url = excluded.url, secret = excluded.secret,
           enabled = excluded.enabled, version = excluded.version, updated_at = now()",
    )
    .bind(pid(s.project_id))
    .bind(&s.url)
    .bind(&s.secret)
    .bind(s.enabled)
    .bind(s.version)
    .execute(pool)
    .await?;
    Ok(())
}

/// A delivery to record from an order event.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub event_id: uuid::Uuid,
    pub project_id: u64,
    pub order_id: u64,
    pub version: i64,
    pub kind: NotificationType,
    pub envelope: serde_json::Value,
}

/// Records a delivery; false when it was there already (a redelivered message, or the
/// same notification of the order under another event id). Its place in its order's
/// queue is decided here (`order_queue::insert`): an order_canceled that may have no
/// order_paid coming waits `cancel_grace` for one.
pub async fn insert_delivery(
    pool: &PgPool,
    d: &NewDelivery,
    cancel_grace: Duration,
) -> Result<bool, StoreError> {
    order_queue::insert(pool, d, cancel_grace).await
}

/// A claimed delivery.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub event_id: uuid::Uuid,
    pub project_id: u64,
    pub order_id: u64,
    pub kind: NotificationType,
    pub envelope: serde_json::Value,
    /// Attempts counted before this claim (a lost lease's attempt included).
    pub attempts: i32,
}

/// What a claim did with the delivery it took.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Leased to the claiming worker, with the project's webhook: attempt `number` is
    /// to be made now.
    Leased {
        delivery: Claimed,
        settings: Settings,
        number: i32,
    },
    /// The project has no enabled webhook (yet): the delivery was left pending and
    /// unleased, without counting an attempt, until `postpone` from now. The
    /// notification is kept for when the project turns its webhook on, rather than
    /// dropped.
    Postponed(Claimed),
}

/// The claim, as one statement (one round trip, one commit, no transaction held
/// open): take the first due, ready, pending delivery whose lease is free or expired,
/// in `next_attempt_at, id` order (`skip locked`: claims of other loops and processes
/// pass each other), and lease it at once, or postpone it when its project has no
/// enabled webhook.
///
/// `ready` (kept by `order_queue`) already says that the row heads its order's queue
/// and waits for nothing, so `claimed` is a range scan of the partial index
/// `webhook_deliveries_ready` that stops at the first row it can lock, whatever the
/// backlog. `now()` (stable) bounds the scan in the index; the lease's end is compared
/// with, and the lease timed from, `clock_timestamp()`. The rows it passes over are the
/// leased ones (deliveries in flight, at most one per delivery loop of all workers) and
/// those other claims hold.
///
/// `lost`: when the row's previous lease expired without an outcome (its worker died
/// or stalled mid-call), that attempt is recorded as an `error` whose outcome is
/// unknown; a stalled worker that comes back later replaces it with what it saw.
///
/// A postponed delivery keeps `leased_by` and `attempts`: when its previous lease had
/// expired, that worker may still come back with the outcome, and `finish_attempt`
/// records it only while `leased_by` and `attempts` are its own. Nobody else has sent
/// the notification since, so a late success must still end the delivery; erasing
/// `leased_by` would refuse it and send it once more. A later lease overwrites
/// `leased_by` and counts a new attempt, which ends that.
///
/// $1 the worker, $2 the lease in seconds, $3 the postponement in seconds.
pub const CLAIM_SQL: &str = "with claimed as (
    select d.event_id, d.attempts, d.leased_at, d.leased_until is not null as lease_lost,
           coalesce((select s.enabled from webhook_settings s
                     where s.project_id = d.project_id), false) as go
    from webhook_deliveries d
    where d.status = 'pending' and d.ready and d.next_attempt_at <= now()
      and (d.leased_until is null or d.leased_until < clock_timestamp())
    order by d.next_attempt_at, d.id
    limit 1
    for update of d skip locked
), lost as (
    insert into webhook_attempts
      (event_id, attempt, started_at, status_code, latency_ms, outcome, error)
    select event_id, attempts, coalesce(leased_at, now()), null,
           least(extract(epoch from now() - coalesce(leased_at, now())) * 1000,
                 2147483647)::integer,
           'error',
           'the lease expired without an outcome (the worker stopped or stalled '
           || 'mid-attempt); the receiver may have had the request'
    from claimed where lease_lost and attempts > 0
    on conflict do nothing
), taken as (
    update webhook_deliveries d set
      attempts = case when c.go then d.attempts + 1 else d.attempts end,
      leased_by = case when c.go then $1 else d.leased_by end,
      leased_at = case when c.go then clock_timestamp() else d.leased_at end,
      leased_until = case when c.go
                       then clock_timestamp() + make_interval(secs => $2) end,
      next_attempt_at = case when c.go then d.next_attempt_at
                          else clock_timestamp() + make_interval(secs => $3) end
    from claimed c
    where d.event_id = c.event_id
    returning d.event_id, d.project_id, d.order_id, d.notification_type, d.envelope,
              d.attempts, c.attempts as attempts_before, c.lease_lost, c.go
)
select t.*, s.url, s.secret, s.version
from taken t left join webhook_settings s on s.project_id = t.project_id and t.go";

/// Claims one due delivery (`CLAIM_SQL`) for `worker`: leased for `lease`, or, when its
/// project has no enabled webhook, postponed by `postpone`. The caller makes the call
/// of a leased delivery with no transaction open, then records it (`finish_attempt`).
///
/// Only the head of an order's queue is ready (`order_queue`): an earlier pending
/// delivery of the same order (pending includes leased, i.e. in flight) holds the later
/// one back, so an order is never delivered by two workers at once and its
/// notifications go out in event order. An order_canceled of a paid order waits, with no
/// time limit, until its order_paid is recorded and finished; any other order_canceled
/// waits up to the grace for an order_paid to be recorded. An order_paid recorded after
/// its order's order_canceled was attempted is failed as superseded when it is recorded,
/// and one still pending when its cancel finishes is failed then; no claim sweeps.
pub async fn claim<'e>(
    db: impl sqlx::PgExecutor<'e>,
    worker: uuid::Uuid,
    lease: Duration,
    postpone: Duration,
) -> Result<Option<Claim>, StoreError> {
    let row = sqlx::query(CLAIM_SQL)
        .bind(worker)
        .bind(lease.as_secs_f64())
        .bind(postpone.as_secs_f64())
        .fetch_optional(db)
        .await?;
    let Some(r) = row else { return Ok(None) };
    let event_id: uuid::Uuid = r.get("event_id");
    if r.get::<bool, _>("lease_lost") {
        tracing::warn!(%event_id, "a delivery's lease expired without an outcome; sending it again");
    }
    let kind_text: String = r.get("notification_type");
    let kind = NotificationType::parse(&kind_text).ok_or_else(|| StoreError::Corrupt {
        event_id: event_id.to_string(),
        reason: format!("notification type {kind_text:?}"),
    })?;
    let project_id = u64::try_from(r.get::<i64, _>("project_id")).unwrap_or_default();
    let delivery = Claimed {
        event_id,
        project_id,
        order_id: u64::try_from(r.get::<i64, _>("order_id")).unwrap_or_default(),
        kind,
        envelope: r.get("envelope"),
        attempts: r.get("attempts_before"),
    };
    // `url` is there exactly when the claim leased (`go`: the settings are enabled).
    let url: Option<String> = r.get("url");
    Ok(Some(match url {
        Some(url) => Claim::Leased {
            delivery,
            settings: Settings {
                project_id,
                url,
                secret: r.get("secret"),
                enabled: true,
                version: r.get("version"),
            },
            number: r.get("attempts"),
        },
        None => Claim::Postponed(delivery),
    }))
}

/// One attempt's record.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempt: i32,
    pub started_at: std::time::SystemTime,
    pub status_code: Option<u16>,
    pub latency: Duration,
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// What an attempt leaves the delivery as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    Failed,
    RetryAfter(Duration),
}

/// How long a finished delivery's follow-up (order done, dead letter) is left to the
/// loop that finished it, which does it right after the outcome's commit, before the
/// follow-up loop takes it over as the crash-safe retry.
pub const FOLLOW_UP_AFTER: Duration = Duration::from_secs(5);

/// The attempt's row (written in any case, replacing the "lease expired" row another
/// worker may have written for it) and the outcome's update, only while the lease is
/// still `worker`'s (`leased_by` and the attempt number unchanged), in one statement. A
/// finished delivery's `next_attempt_at` is when the follow-up loop may take over its
/// follow-up (`FOLLOW_UP_AFTER`).
///
/// $1 event, $2 status, $3 attempt, $4 follow-up delay or retry delay (seconds),
/// $5 finished, $6 worker, $7 started (epoch seconds), $8 HTTP status, $9 latency (ms),
/// $10 outcome, $11 error.
pub const FINISH_SQL: &str = "with attempt as (
    insert into webhook_attempts
      (event_id, attempt, started_at, status_code, latency_ms, outcome, error)
    values ($1, $3, to_timestamp($7), $8, $9, $10, $11)
    on conflict (event_id, attempt) do update set started_at = excluded.started_at,
      status_code = excluded.status_code, latency_ms = excluded.latency_ms,
      outcome = excluded.outcome, error = excluded.error
)
update webhook_deliveries set status = $2,
       next_attempt_at = now() + make_interval(secs => $4),
       finished_at = case when $5 then now() end,
       leased_until = null, leased_by = null, leased_at = null,
       -- A delivered order_canceled leaves nothing to follow up, nor does a free
       -- order's order_paid (its OrderDone caused it: the order is done already).
       followed_up_at = case when $2 = 'delivered'
                          and (notification_type = 'order_canceled'
                               or envelope ->> 'event_type' = 'OrderDone')
                        then now() end
     where event_id = $1 and status = 'pending' and leased_by = $6 and attempts = $3
     returning project_id, order_id, notification_type";

/// Records an attempt made under `worker`'s lease and, only while that lease is still
/// this worker's (`leased_by` and the attempt number unchanged: nobody claimed the
/// delivery again after the lease expired), the delivery's new state, ending the lease.
/// The attempt's row is written in any case (replacing the "lease expired" row another
/// worker may have written for it). Returns false when the lease was lost: the state
/// then belongs to the worker holding the newer lease and is left alone.
///
/// A delivery that ends (delivered or failed) releases its order's other notification
/// in the same transaction, under the order's lock (`order_queue::release_sibling`).
pub async fn finish_attempt(
    pool: &PgPool,
    event_id: uuid::Uuid,
    worker: uuid::Uuid,
    attempt: &Attempt,
    next: Next,
) -> Result<bool, StoreError> {
    let started: f64 = attempt
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let (status, delay, finished) = match next {
        Next::Delivered => ("delivered", FOLLOW_UP_AFTER.as_secs_f64(), true),
        Next::Failed => ("failed", FOLLOW_UP_AFTER.as_secs_f64(), true),
        Next::RetryAfter(d) => ("pending", d.as_secs_f64(), false),
    };
    let finish = sqlx::query(FINISH_SQL)
        .bind(event_id)
        .bind(status)
        .bind(attempt.attempt)
        .bind(delay)
        .bind(finished)
        .bind(worker)
        .bind(started)
        .bind(
            attempt
                .status_code
                .map(|c| i16::try_from(c).unwrap_or(i16::MAX)),
        )
        .bind(i32::try_from(attempt.latency.as_millis()).unwrap_or(i32::MAX))
        .bind(attempt.outcome)
        .bind(attempt.error.as_deref());
    if !finished {
        // A retry changes nothing for the order's other notification: one statement.
        return Ok(finish.fetch_optional(pool).await?.is_some());
    }
    let mut tx = pool.begin().await?;
    // The order's lock first, as intake takes it: then the rows.
    order_queue::lock_order_of(&mut tx, event_id).await?;
    let row = finish.fetch_optional(&mut *tx).await?;
    let kept = row.is_some();
    if let Some(r) = row {
        let kind_text: String = r.get("notification_type");
        if let Some(kind) = NotificationType::parse(&kind_text) {
            order_queue::release_sibling(&mut tx, r.get("project_id"), r.get("order_id"), kind)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(kept)
}

/// Ends a finished delivery's follow-up from the loop that finished it (no row lock:
/// the follow-up loop does not take it before `FOLLOW_UP_AFTER`, and both ends are
/// idempotent). `error` keeps the reason a follow-up was given up.
pub async fn followed_up(
    pool: &PgPool,
    event_id: uuid::Uuid,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update webhook_deliveries set followed_up_at = now(), follow_up_error = $2
         where event_id = $1 and followed_up_at is null",
    )
    .bind(event_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Work left after a delivery finished: marking a delivered order_paid's order done,
/// and publishing a failed delivery's dead letter.
#[derive(Debug, Clone)]
pub enum FollowUp {
    MarkDone {
        event_id: uuid::Uuid,
        project_id: u64,
        order_id: u64,
    },
    DeadLetter {
        event_id: uuid::Uuid,
        project_id: u64,
        order_id: u64,
        kind: String,
        attempts: i32,
        envelope: serde_json::Value,
        last_status_code: Option<i16>,
        last_outcome: Option<String>,
        last_error: Option<String>,
    },
}

impl FollowUp {
    pub fn event_id(&self) -> uuid::Uuid {
        match self {
            Self::MarkDone { event_id, .. } | Self::DeadLetter { event_id, .. } => *event_id,
        }
    }
}

/// The follow-up claim: a range scan of the partial index `webhook_deliveries_follow_up`
/// (finished deliveries whose follow-up is not done) in `finished_at` order.
pub const FOLLOW_UP_SQL: &str = "select d.event_id, d.project_id, d.order_id,
       d.notification_type, d.status, d.attempts, d.envelope, a.status_code, a.outcome,
       a.error
    from webhook_deliveries d
    left join webhook_attempts a on a.event_id = d.event_id and a.attempt = d.attempts
    where d.followed_up_at is null and d.finished_at is not null
      and d.next_attempt_at <= now()
      and ((d.status = 'delivered' and d.notification_type = 'order_paid')
        or d.status = 'failed')
    order by d.finished_at
    limit 1
    for update of d skip locked";

/// Claims one follow-up (locked for the transaction): the caller does it, then calls
/// `follow_up_done` in the same transaction.
pub async fn claim_follow_up(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Option<FollowUp>, StoreError> {
    let row = sqlx::query(FOLLOW_UP_SQL).fetch_optional(&mut **tx).await?;
    let Some(r) = row else { return Ok(None) };
    let event_id: uuid::Uuid = r.get("event_id");
    let project_id = u64::try_from(r.get::<i64, _>("project_id")).unwrap_or_default();
    let order_id = u64::try_from(r.get::<i64, _>("order_id")).unwrap_or_default();
    let status: String = r.get("status");
    Ok(Some(if status == "delivered" {
        FollowUp::MarkDone {
            event_id,
            project_id,
            order_id,
        }
    } else {
        FollowUp::DeadLetter {
            event_id,
            project_id,
            order_id,
            kind: r.get("notification_type"),
            attempts: r.get("attempts"),
            envelope: r.get("envelope"),
            last_status_code: r.get("status_code"),
            last_outcome: r.get("outcome"),
            last_error: r.get("error"),
        }
    }))
}

/// Ends a follow-up (`error` None) or spaces out its next try (`error` Some).
pub async fn follow_up_done(
    tx: &mut Transaction<'_, Postgres>,
    event_id: uuid::Uuid,
    error: Option<&str>,
    retry_after: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "update webhook_deliveries set
           followed_up_at = case when $2::text is null then now() end,
           follow_up_error = $2,
           next_attempt_at = case when $2::text is null then next_attempt_at
                             else now() + make_interval(secs => $3) end
         where event_id = $1",
    )
    .bind(event_id)
    .bind(error)
    .bind(retry_after.as_secs_f64())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps the reason a follow-up was given up.
pub async fn note_follow_up_error(
    tx: &mut Transaction<'_, Postgres>,
    event_id: uuid::Uuid,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query("update webhook_deliveries set follow_up_error = $2 where event_id = $1")
        .bind(event_id)
        .bind(error)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Vacuums the outbox (`skip_locked`: when another instance's VACUUM or autovacuum holds
/// the table, this one is skipped). Each lease and outcome leaves a dead row version
/// whose entry stays at the old end of `webhook_deliveries_ready` until a VACUUM: the
/// claim skips such entries without reading the table, but walks their index pages, so
/// without VACUUM (autovacuum off) its cost would grow with the deliveries ever made.
/// On a connection of its own, without the 10 s statement timeout, closed afterwards.
pub async fn vacuum(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    conn.close_on_drop();
    sqlx::query("set statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    sqlx::query("vacuum (skip_locked) webhook_deliveries")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
