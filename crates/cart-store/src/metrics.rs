//! The group commit's instruments, through the OpenTelemetry API only (no exporter: the
//! service installs those). Made at first use, after the service installed its provider.

use std::sync::LazyLock;

use opentelemetry::metrics::Histogram;

pub(crate) struct GroupMetrics {
    pub(crate) batch_size: Histogram<u64>,
    pub(crate) queue_wait: Histogram<f64>,
    pub(crate) transaction: Histogram<f64>,
}

/// Buckets in seconds, as cart-metrics's `SECONDS_BUCKETS` (cart-store cannot depend on
/// cart-metrics, which carries the exporters).
const SECONDS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

pub(crate) static GROUP: LazyLock<GroupMetrics> = LazyLock::new(|| {
    let m = opentelemetry::global::meter("cart-store");
    GroupMetrics {
        batch_size: m
            .u64_histogram("cart_group_commit_batch_size")
            .with_description("Cart commands written per group-commit transaction")
            .with_unit("{command}")
            .with_boundaries(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0])
            .build(),
        queue_wait: m
            .f64_histogram("cart_group_commit_queue_wait")
            .with_description("Time a cart command waited in the group-commit queue before its batch's transaction began")
            .with_unit("s")
            .with_boundaries(SECONDS.to_vec())
            .build(),
        transaction: m
            .f64_histogram("cart_group_commit_transaction")
            .with_description("Time of one group-commit transaction, locks to commit")
            .with_unit("s")
            .with_boundaries(SECONDS.to_vec())
            .build(),
    }
});
