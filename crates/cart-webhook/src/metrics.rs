//! The worker's instruments (docs/observability.md, "Metrics"), made once from the
//! process's meter provider (`cart_metrics::init`, called first by `run_with`), and the
//! backlog sampler: a few capped counts every [`BACKLOG_EVERY`], so that a scrape costs
//! no query and a large backlog costs a bounded one.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::KeyValue;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::payload::NotificationType;
use crate::store::Claimed;

/// How often the backlog is counted.
pub const BACKLOG_EVERY: Duration = Duration::from_secs(10);

/// Counts stop here: a backlog above it reads as the cap (the alert fires all the same).
const BACKLOG_CAP: i64 = 100_000;

struct Instruments {
    attempts: Counter<u64>,
    paid_to_delivered: Histogram<f64>,
    dead_letters: Counter<u64>,
    postponed: Counter<u64>,
    reconciled: Counter<u64>,
    deliveries: Gauge<i64>,
    unconfigured_projects: Gauge<i64>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let m = opentelemetry::global::meter("cart-webhook");
    Instruments {
        attempts: m
            .u64_counter("cart_webhook_attempts")
            .with_description("Webhook POSTs, per notification type and outcome (success, retry, permanent, timeout, error)")
            .build(),
        paid_to_delivered: m
            .f64_histogram("cart_webhook_paid_to_delivered")
            .with_description("Time from an order's OrderPaid (recorded_at) to its order_paid webhook's 2xx")
            .with_unit("s")
            .with_boundaries(cart_metrics::SECONDS_BUCKETS.to_vec())
            .build(),
        dead_letters: m
            .u64_counter("cart_webhook_dead_letters")
            .with_description("Failed deliveries published to the dead-letter stream, per reason (permanent, retries_exhausted, superseded)")
            .build(),
        postponed: m
            .u64_counter("cart_webhook_postponed_unconfigured")
            .with_description("Claims postponed because the project has no enabled webhook settings")
            .build(),
        reconciled: m
            .u64_counter("cart_webhook_reconciled")
            .with_description("Deliveries the reconciliation against the order log recorded because their CART_ORDERS message never reached intake, per notification type")
            .build(),
        deliveries: m
            .i64_gauge("cart_webhook_deliveries")
            .with_description("Outbox deliveries by state: pending (not finished), leased (an attempt in flight), due (claimable now); capped at 100000")
            .build(),
        unconfigured_projects: m
            .i64_gauge("cart_webhook_projects_without_settings")
            .with_description("Projects with pending deliveries but no enabled webhook settings")
            .build(),
    }
});

/// One attempt's outcome; a delivered order_paid also records its paid-to-delivered time.
pub(crate) fn attempt(claimed: &Claimed, outcome: &'static str) {
    INSTRUMENTS.attempts.add(
        1,
        &[
            KeyValue::new("type", claimed.kind.as_str()),
            KeyValue::new("outcome", outcome),
        ],
    );
    if outcome == "success" && claimed.kind == NotificationType::OrderPaid {
        if let Some(seconds) = since_recorded(&claimed.envelope) {
            INSTRUMENTS.paid_to_delivered.record(seconds, &[]);
        }
    }
}

pub(crate) fn dead_letter(reason: &'static str) {
    INSTRUMENTS
        .dead_letters
        .add(1, &[KeyValue::new("reason", reason)]);
}

pub(crate) fn reconciled(kind: NotificationType) {
    INSTRUMENTS
        .reconciled
        .add(1, &[KeyValue::new("type", kind.as_str())]);
}

pub(crate) fn postponed_unconfigured() {
    INSTRUMENTS.postponed.add(1, &[]);
}

/// Seconds since the envelope's `recorded_at` (the OrderPaid's commit time).
fn since_recorded(envelope: &serde_json::Value) -> Option<f64> {
    let text = envelope.get("recorded_at")?.as_str()?;
    let at = cart_domain::DateTime::parse(text).ok()?.micros();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_micros();
    let elapsed = i128::try_from(now).ok()? - i128::from(at);
    // Microseconds to seconds: f64 holds any realistic delay exactly enough.
    Some((elapsed.max(0) as f64) / 1e6)
}

/// The capped counts behind `cart_webhook_deliveries` and
/// `cart_webhook_projects_without_settings`; `due` is the claim's own condition.
const BACKLOG_SQL: &str = "select \
    (select count(*) from (select 1 from webhook_deliveries where status = 'pending' limit $1) p), \
    (select count(*) from (select 1 from webhook_deliveries where status = 'pending' \
        and leased_until > now() limit $1) l), \
    (select count(*) from (select 1 from webhook_deliveries where status = 'pending' and ready \
        and next_attempt_at <= now() and (leased_until is null or leased_until <= now()) limit $1) d), \
    (select count(distinct p.project_id) from (select project_id from webhook_deliveries \
        where status = 'pending' limit $1) p \
        where not exists (select 1 from webhook_settings s where s.project_id = p.project_id and s.enabled))";

/// Samples the backlog until `stop` turns true; a failed count is skipped (the worker's
/// own loops report PostgreSQL trouble).
pub(crate) async fn sample_backlog(pool: PgPool, mut stop: watch::Receiver<bool>) {
    loop {
        let counted = sqlx::query_as::<_, (i64, i64, i64, i64)>(BACKLOG_SQL)
            .bind(BACKLOG_CAP)
            .fetch_one(&pool);
        if let Ok(Ok((pending, leased, due, unconfigured))) =
            tokio::time::timeout(Duration::from_secs(5), counted).await
        {
            for (state, n) in [("pending", pending), ("leased", leased), ("due", due)] {
                INSTRUMENTS
                    .deliveries
                    .record(n, &[KeyValue::new("state", state)]);
            }
            INSTRUMENTS.unconfigured_projects.record(unconfigured, &[]);
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(BACKLOG_EVERY) => {}
        }
    }
}
