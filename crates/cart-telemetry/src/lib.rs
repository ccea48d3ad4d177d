//! Logs and traces for the cart binaries: `cartd` and `cart-webhook` call [`init`];
//! `cartctl` and the library crates use [`propagate`] only.
//!
//! [`init`] installs the one global `tracing` subscriber: text or JSON logs, and, when an
//! OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), a `tracing-opentelemetry` layer whose spans the
//! SDK's batch processor exports over OTLP/HTTP (protobuf). Without an endpoint there is
//! no OpenTelemetry layer at all.
//!
//! [`propagate`] carries W3C Trace Context (`traceparent`, `tracestate`) in NATS headers,
//! HTTP headers and event metadata. Every helper is a no-op when export is off (a span
//! without the layer has no context to give).

mod export;
pub mod propagate;
mod sampling;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use propagate::{
    context_from_nats, context_from_traceparent, inject_http, inject_nats, inject_nats_traceparent,
    link, link_traceparent, new_traceparent, set_parent_from_nats, trace_id, trace_metadata,
    traceparent_of, TraceParent,
};
pub use sampling::{batch_root, exporting, scope, scope_sync, unsampled};
// The span extension (`set_parent`, `add_link`, `context`) for crates that need more.
pub use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable text, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// What [`init`] sets up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub format: LogFormat,
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES`
    /// names one.
    pub service_name: &'static str,
    /// The full OTLP/HTTP traces URL (`http://host:4318/v1/traces`), overriding the
    /// environment; `None` reads the standard variables. Tests set it.
    pub endpoint: Option<String>,
    /// The log filter when `RUST_LOG` is not set.
    pub default_filter: &'static str,
}

impl Settings {
    pub fn new(service_name: &'static str, format: LogFormat) -> Self {
        Self {
            format,
            service_name,
            endpoint: None,
            default_filter: "info",
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP trace exporter: {0}")]
    Exporter(String),
    #[error("the exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the trace pipeline alive; dropping it (or [`Guard::shutdown`]) flushes the
/// spans still queued and stops the exporter. Binaries hold it until they exit.
#[must_use = "dropping the guard stops trace export"]
#[derive(Debug, Default)]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Whether spans are exported (an endpoint was configured).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is queued and stops, waiting 5 s at most (the SDK's shutdown
    /// timeout), so a hanging collector cannot hold the process's exit for long.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The batch processor's thread does the last export; this only waits for it,
            // so it is safe on a runtime thread of a multi-thread runtime.
            if let Err(e) = provider.shutdown() {
                eprintln!("trace export shutdown: {e}");
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the global subscriber (logs, and traces when an endpoint is configured).
///
/// # Errors
/// The exporter cannot be built, or a global subscriber is already installed.
pub fn init(settings: &Settings) -> Result<Guard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.default_filter));
    // Colours only for a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi);
    // RUST_LOG filters the logs only: traces keep the service's info spans whatever the
    // log level, so `RUST_LOG=warn` does not switch tracing off.
    let logs = match settings.format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    let provider = match export::endpoint(settings) {
        Some(endpoint) => Some(export::provider(settings, endpoint)?),
        None => None,
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("cart"))
            // Busy/idle times and thread names on every span cost per poll and say
            // little that the span's own duration does not.
            .with_tracked_inactivity(false)
            .with_threads(false)
            // Nothing here reads OpenTelemetry's active context (propagation reads the
            // span's own, `OpenTelemetrySpanExt::context`), and activating it on every
            // poll of every instrumented future cost more than the spans themselves.
            .with_context_activation(false)
            // Source location and target: three strings more per span, for every span
            // whether sampled or not; the span names say where they come from.
            .with_location(false)
            .with_target(false)
            // Info spans, and none made while an unsampled request runs (`sampling`).
            .with_filter(sampling::layer_filter())
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    if let Some(provider) = &provider {
        sampling::set_exporting();
        // For code that asks OpenTelemetry's global API rather than `tracing`.
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    Ok(Guard { provider })
}
