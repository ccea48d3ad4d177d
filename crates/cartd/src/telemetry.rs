//! Logs and traces: readable text for people, JSON for machines, and OpenTelemetry
//! export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`cart-telemetry`).

use crate::config::LogFormat;

/// Installs the global subscriber. Called once, from `main`, which keeps the guard until
/// it exits (dropping it flushes the spans still queued).
///
/// # Errors
/// The OTLP exporter cannot be built, or a subscriber is already installed.
pub fn init(format: LogFormat) -> Result<cart_telemetry::Guard, cart_telemetry::TelemetryError> {
    let format = match format {
        LogFormat::Text => cart_telemetry::LogFormat::Text,
        LogFormat::Json => cart_telemetry::LogFormat::Json,
    };
    cart_telemetry::init(&cart_telemetry::Settings::new("cartd", format))
}
