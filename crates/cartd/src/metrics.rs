//! cartd's instruments (docs/observability.md, "Metrics"), made once from the process's
//! meter provider, which `start` installs (`cart_metrics::init`) before anything records.
//! Labels are bounded: endpoint names, statuses, Xsolla codes, project ids; never a
//! user, cart or order.

use std::sync::LazyLock;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::KeyValue;

pub(crate) struct Instruments {
    requests: Counter<u64>,
    request_duration: Histogram<f64>,
    pub(crate) version_conflicts: Counter<u64>,
    pub(crate) command_retries: Counter<u64>,
    pub(crate) concurrent_change_refusals: Counter<u64>,
    ledger_replays: Counter<u64>,
    pub(crate) cache_hits: Counter<u64>,
    pub(crate) cache_misses: Counter<u64>,
    pub(crate) cache_evictions: Counter<u64>,
    pub(crate) reply_cache_hits: Counter<u64>,
    pub(crate) reply_cache_misses: Counter<u64>,
    db_unavailable: Counter<u64>,
    orders: Counter<u64>,
    projection_events: Counter<u64>,
    projection_lag: Gauge<i64>,
    retention_removed: Counter<u64>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(Instruments::new);

/// The instruments; the first call makes them, after `start` installed the provider.
pub(crate) fn get() -> &'static Instruments {
    &INSTRUMENTS
}

impl Instruments {
    fn new() -> Self {
        let m = opentelemetry::global::meter("cartd");
        let counter = |name: &'static str, description: &'static str| {
            m.u64_counter(name).with_description(description).build()
        };
        Self {
            requests: counter(
                "cart_requests",
                "Requests answered, per endpoint, status and Xsolla code (0 on success)",
            ),
            request_duration: m
                .f64_histogram("cart_request_duration")
                .with_description("Time from a request's arrival to its reply, per endpoint and outcome (ok, refused: 4xx, failed: 5xx)")
                .with_unit("s")
                .with_boundaries(cart_metrics::SECONDS_BUCKETS.to_vec())
                .build(),
            version_conflicts: counter(
                "cart_version_conflicts",
                "Cart appends refused by the version guard (another writer got there first)",
            ),
            command_retries: counter(
                "cart_command_retries",
                "Cart commands decided again after a version conflict",
            ),
            concurrent_change_refusals: counter(
                "cart_concurrent_change_refusals",
                "Commands answered 409/1421 after losing every attempt to concurrent writers",
            ),
            ledger_replays: counter(
                "cart_ledger_replays",
                "Repeated command ids answered with their first reply from the ledger, per kind (cart, order)",
            ),
            cache_hits: counter("cart_cache_hits", "Cart commands that found the cart's state in this instance's cache"),
            cache_misses: counter("cart_cache_misses", "Cart commands that loaded the cart from the log"),
            cache_evictions: counter(
                "cart_cache_evictions",
                "Cart states dropped from the cache to make room (least recently used)",
            ),
            reply_cache_hits: counter(
                "cart_reply_cache_hits",
                "Gets answered with a reply rendered before (same version, catalog, view, encoding and counts)",
            ),
            reply_cache_misses: counter(
                "cart_reply_cache_misses",
                "Gets of an existing cart rendered anew (no reply kept, or the cart, catalog, view, encoding or counts changed)",
            ),
            db_unavailable: counter(
                "cart_db_unavailable",
                "Requests answered 503 because PostgreSQL could not be used, per cause (acquire_timeout: no pooled connection in time; unreachable)",
            ),
            orders: counter(
                "cart_orders",
                "Order events written by this instance's checkouts and payments, per project and event (created, paid, canceled, expired)",
            ),
            projection_events: counter(
                "cart_projection_events_applied",
                "Events folded into an asynchronous projection, per projection",
            ),
            projection_lag: m
                .i64_gauge("cart_projection_lag_events")
                .with_description("Events of the log not yet folded into an asynchronous projection (capped), per projection, measured every few seconds by the instance running it")
                .build(),
            retention_removed: counter(
                "cart_retention_swept",
                "What this instance's retention sweeps removed or expired, per sweep (ledger: ledger rows; carts: carts expired; unpaid_orders: orders expired)",
            ),
        }
    }

    /// One answered request.
    pub(crate) fn request(
        &self,
        endpoint: &'static str,
        status: u16,
        code: u32,
        elapsed: Duration,
    ) {
        let outcome = match status {
            500.. => "failed",
            400.. => "refused",
            _ => "ok",
        };
        self.requests.add(
            1,
            &[
                KeyValue::new("endpoint", endpoint),
                KeyValue::new("status", i64::from(status)),
                KeyValue::new("code", i64::from(code)),
            ],
        );
        self.request_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("endpoint", endpoint),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    pub(crate) fn ledger_replay(&self, kind: &'static str) {
        self.ledger_replays.add(1, &[KeyValue::new("kind", kind)]);
    }

    pub(crate) fn db_unavailable(&self, cause: &'static str) {
        self.db_unavailable.add(1, &[KeyValue::new("cause", cause)]);
    }

    /// `n` order events of one kind in `project`.
    pub(crate) fn orders(&self, project: u64, event: &'static str, n: u64) {
        if n > 0 {
            let project = i64::try_from(project).unwrap_or(i64::MAX);
            self.orders.add(
                n,
                &[
                    KeyValue::new("project", project),
                    KeyValue::new("event", event),
                ],
            );
        }
    }

    pub(crate) fn projection_applied(&self, projection: &'static str, n: u64) {
        self.projection_events
            .add(n, &[KeyValue::new("projection", projection)]);
    }

    pub(crate) fn retention_swept(&self, sweep: &'static str, n: u64) {
        self.retention_removed
            .add(n, &[KeyValue::new("sweep", sweep)]);
    }

    pub(crate) fn projection_lag(&self, projection: &'static str, events: i64) {
        self.projection_lag
            .record(events, &[KeyValue::new("projection", projection)]);
    }
}
