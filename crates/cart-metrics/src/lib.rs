//! The services' metrics and admin port (docs/observability.md).
//!
//! One set of OpenTelemetry instruments per process: every crate records through the
//! `opentelemetry` API (`opentelemetry::global::meter`), and [`init`] installs the one
//! meter provider that reads them two ways, as Prometheus text for `GET /metrics` and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set, as
//! an OTLP push over HTTP/protobuf.
//!
//! `admin.rs` is the HTTP admin port (`/metrics`, `/healthz`, `/readyz`); `pool.rs`
//! observes PostgreSQL pools; `checks.rs` has the readiness checks both services share
//! (PostgreSQL and its migrations, NATS). The duration buckets of cartd and cart-webhook
//! are here (cart-store, which may not depend on this crate, repeats them).

pub mod admin;
pub mod checks;
mod pool;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::OnceLock;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;

pub use admin::{AdminAddr, AdminListener, Check, Probe};
pub use pool::{watch_pool, PoolWatch};

/// Buckets, in seconds, of every duration histogram: from half a millisecond (a warm
/// command) to five minutes (a webhook's paid-to-delivered time after a retry).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("build the Prometheus exporter: {0}")]
    Prometheus(String),
    #[error("encode the metrics as Prometheus text: {0}")]
    Encode(#[from] prometheus::Error),
}

/// The process's meter provider and the Prometheus registry its exporter fills.
pub struct Metrics {
    registry: prometheus::Registry,
    otlp: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("otlp", &self.otlp).finish()
    }
}

static METRICS: OnceLock<Result<Metrics, String>> = OnceLock::new();

/// Installs the process's meter provider once (later calls return the first), named
/// `service` unless `OTEL_SERVICE_NAME` says otherwise. Call it before any component
/// creates its instruments: an instrument made before it records into nothing.
///
/// The OTLP push runs on the current tokio runtime, so call it inside one.
///
/// # Errors
/// The Prometheus exporter could not be built (not expected: it registers one collector
/// in a registry of its own).
pub fn init(service: &'static str) -> Result<&'static Metrics, MetricsError> {
    METRICS
        .get_or_init(|| build(service))
        .as_ref()
        .map_err(|e| MetricsError::Prometheus(e.clone()))
}

fn build(service: &'static str) -> Result<Metrics, String> {
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        // Every instrument comes from this service's own crates: the scope labels on
        // each series would only repeat the crate name.
        .scope_info_enabled(false)
        .build()
        .map_err(|e| e.to_string())?;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| service.to_owned());
    let resource = Resource::builder().with_service_name(name).build();
    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(exporter);
    let otlp = otlp_endpoint_set();
    if otlp {
        match otlp_reader() {
            Ok(reader) => builder = builder.with_reader(reader),
            Err(e) => {
                tracing::warn!(error = %e, "OTLP metrics export off: the exporter could not be built")
            }
        }
    }
    let provider = builder.build();
    // The global provider is the one every crate's instruments come from; it lives as
    // long as the process.
    opentelemetry::global::set_meter_provider(provider);
    tracing::info!(otlp, "metrics installed");
    Ok(Metrics { registry, otlp })
}

/// Whether the standard variables ask for an OTLP export of metrics.
fn otlp_endpoint_set() -> bool {
    [
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// The OTLP push: HTTP/protobuf to the endpoint of the standard variables (the exporter
/// reads them, `/v1/metrics` appended to the generic one), every
/// `OTEL_METRIC_EXPORT_INTERVAL` ms (60 s by default), on a tokio task, so a collector
/// that is down or slow costs a failed export in the background and nothing on the
/// request path.
fn otlp_reader() -> Result<impl opentelemetry_sdk::metrics::reader::MetricReader, String> {
    use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(PeriodicReader::builder(exporter, opentelemetry_sdk::runtime::Tokio).build())
}

impl Metrics {
    /// Every instrument's current value in the Prometheus text format (0.0.4).
    ///
    /// # Errors
    /// The encoder refused a family (not expected: names are sanitized by the exporter).
    pub fn render(&self) -> Result<String, MetricsError> {
        use prometheus::Encoder;
        let families = self.registry.gather();
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Whether metrics are also pushed over OTLP.
    pub fn otlp(&self) -> bool {
        self.otlp
    }
}
