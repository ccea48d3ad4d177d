use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = cartd::Config::parse();
    cartd::telemetry::init(config.log_format);
    cartd::run(config, cartd::shutdown_signal()).await
}
