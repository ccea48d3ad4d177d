//! cart-analytics: replay the cart events from JetStream and print a report.

use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = cart_analytics::Options::parse();
    cart_analytics::run(
        &options,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    )
    .await
    .with_context(|| format!("cart-analytics on stream {}", options.stream))?;
    Ok(())
}
