//! cart-webhook: parse the configuration, run the worker until Ctrl-C or SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = cart_webhook::Config::parse();
    // Logs (text), and traces when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let telemetry = cart_telemetry::init(&cart_telemetry::Settings::new(
        "cart-webhook",
        cart_telemetry::LogFormat::Text,
    ))?;
    let result = cart_webhook::run(config, shutdown()).await;
    // The spans of the last deliveries, before the process ends.
    telemetry.shutdown();
    result?;
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
