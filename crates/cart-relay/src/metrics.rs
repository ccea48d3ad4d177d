//! The relay's instruments, per log (`carts`, `orders`), through the OpenTelemetry API
//! only: the service that runs the relay installs the exporters (cart-metrics).

use std::sync::LazyLock;

use opentelemetry::metrics::{Counter, Gauge};
use opentelemetry::KeyValue;

pub(crate) struct Instruments {
    published: Counter<u64>,
    republished: Counter<u64>,
    rewinds: Counter<u64>,
    lag_events: Gauge<i64>,
    lag_seconds: Gauge<f64>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let m = opentelemetry::global::meter("cart-relay");
    Instruments {
        published: m
            .u64_counter("cart_relay_published")
            .with_description("Events the relay published and JetStream stored, per log")
            .build(),
        republished: m
            .u64_counter("cart_relay_republished")
            .with_description("Events published again (after a failed step) that JetStream dropped as duplicates, per log")
            .build(),
        rewinds: m
            .u64_counter("cart_relay_rewinds")
            .with_description("Times the active relay found that JetStream had lost acknowledged events (purged, deleted, a stream made anew, a lost tail) and rewound its checkpoint to publish them again, per log")
            .build(),
        lag_events: m
            .i64_gauge("cart_relay_lag_events")
            .with_description("Events committed but not yet published, per log, as the active relay measured it last (capped; 0 once this instance stops being the active relay)")
            .build(),
        lag_seconds: m
            .f64_gauge("cart_relay_lag")
            .with_description("Age of the oldest event not yet published, per log (0 once this instance stops being the active relay)")
            .with_unit("s")
            .build(),
    }
});

pub(crate) fn published(log: &'static str, stored: u64, duplicates: u64) {
    let attrs = [KeyValue::new("log", log)];
    INSTRUMENTS.published.add(stored, &attrs);
    INSTRUMENTS.republished.add(duplicates, &attrs);
}

pub(crate) fn lag(log: &'static str, events: i64, seconds: f64) {
    let attrs = [KeyValue::new("log", log)];
    INSTRUMENTS.lag_events.record(events, &attrs);
    INSTRUMENTS.lag_seconds.record(seconds, &attrs);
}

pub(crate) fn rewound(log: &'static str) {
    INSTRUMENTS.rewinds.add(1, &[KeyValue::new("log", log)]);
}
