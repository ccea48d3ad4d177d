use clap::Parser;

// Under load the command path allocates many small, short-lived buffers (requests,
// replies, rows); glibc's malloc spent a sixth of the service's CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = cartd::Config::parse();
    let telemetry = cartd::telemetry::init(config.log_format)?;
    let result = cartd::run(config, cartd::shutdown_signal()).await;
    // The spans of the last requests, before the process ends.
    telemetry.shutdown();
    result
}
