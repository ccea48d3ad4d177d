//! `cart-bench growth`: what the data grows by, per cart command and per order, on a
//! running cartd (relays on): the PostgreSQL tables with their indexes
//! (`pg_total_relation_size`, so TOAST and indexes count) and the JetStream streams
//! (`state.bytes`), measured before and after N commands and M purchases, once the
//! relays have published everything. Sizes do not depend on how fast the service is, so
//! a debug build measures the same (make bench-growth; docs/operations.md).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use async_nats::Client;
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;

use crate::orders::request;

#[derive(Debug, Args)]
pub struct GrowthArgs {
    /// The running service's database (the sizes are read there).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The service's subject prefix.
    #[arg(long, default_value = "cart.bench")]
    subject_prefix: String,
    /// The service's event and order streams.
    #[arg(long, default_value = "CART_BENCH_EVENTS")]
    events_stream: String,
    #[arg(long, default_value = "CART_BENCH_ORDERS")]
    orders_stream: String,
    #[arg(long, default_value_t = 44056)]
    project: u64,
    /// Cart commands of the first phase (item.put, each with a command id, on carts of
    /// five commands each).
    #[arg(long, default_value_t = 20_000)]
    commands: usize,
    /// Purchases of the second phase (fill, checkout, payment, each of a fresh user).
    #[arg(long, default_value_t = 2_000)]
    orders: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

/// The tables that grow with carts and orders.
const TABLES: [&str; 9] = [
    "cart_events",
    "cart_streams",
    "cart_projection",
    "processed_commands",
    "order_events",
    "orders",
    "order_units",
    "promo_code_redemptions",
    "order_promotions",
];

/// Bytes per table and per stream at one moment.
type Sizes = BTreeMap<String, i64>;

async fn sizes(
    pool: &PgPool,
    js: &async_nats::jetstream::Context,
    args: &GrowthArgs,
) -> anyhow::Result<Sizes> {
    // A checkpoint so that what was written is in the files the sizes are read from.
    sqlx::query("checkpoint").execute(pool).await.ok();
    let mut out = Sizes::new();
    for table in TABLES {
        let bytes: i64 = sqlx::query_scalar("select pg_total_relation_size($1::regclass)")
            .bind(table)
            .fetch_one(pool)
            .await
            .with_context(|| format!("size of {table}"))?;
        out.insert(format!("pg {table}"), bytes);
    }
    for stream in [&args.events_stream, &args.orders_stream] {
        let bytes = match js.get_stream(stream.as_str()).await {
            Ok(mut s) => i64::try_from(s.info().await?.state.bytes).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        out.insert(format!("js {stream}"), bytes);
    }
    Ok(out)
}

/// Waits until the relays published every event of both logs (the streams' message
/// counts reach the logs' event counts).
async fn published(
    pool: &PgPool,
    js: &async_nats::jetstream::Context,
    args: &GrowthArgs,
) -> anyhow::Result<()> {
    for _ in 0..600 {
        let (carts, orders): (i64, i64) = sqlx::query_as(
            "select (select count(*) from cart_events), (select count(*) from order_events)",
        )
        .fetch_one(pool)
        .await?;
        let mut done = true;
        for (stream, want) in [(&args.events_stream, carts), (&args.orders_stream, orders)] {
            let have = match js.get_stream(stream.as_str()).await {
                Ok(mut s) => i64::try_from(s.info().await?.state.messages).unwrap_or(0),
                Err(_) => 0,
            };
            done &= have >= want;
        }
        if done {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the relays did not publish the logs within two minutes (is cartd running with CART_RELAY=true?)")
}

async fn cart_phase(client: &Client, args: &GrowthArgs, run: &str) -> anyhow::Result<()> {
    let p = &args.subject_prefix;
    let skus = ["cup01", "gold", "t-shirt01"];
    futures::stream::iter(0..args.commands)
        .map(|i| async move {
            let user = format!("growth-{run}-{}", i / 5);
            let body = json!({"project_id": args.project, "user_id": user,
                "sku": skus[i % skus.len()], "quantity": 1 + i % 4});
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                cart_proto::COMMAND_ID_HEADER,
                uuid::Uuid::new_v4().to_string().as_str(),
            );
            client
                .request_with_headers(
                    format!("{p}.item.put"),
                    headers,
                    serde_json::to_vec(&body)?.into(),
                )
                .await
                .context("item.put")?;
            anyhow::Ok(())
        })
        .buffer_unordered(args.clients.max(1))
        .fold(Ok(()), |acc, r| async move { acc.and(r) })
        .await
}

async fn order_phase(client: &Client, args: &GrowthArgs, run: &str) -> anyhow::Result<()> {
    let p = &args.subject_prefix;
    futures::stream::iter(0..args.orders)
        .map(|i| async move {
            let scope = json!({"project_id": args.project, "user_id": format!("buyer-{run}-{i}")});
            let mut fill = scope.clone();
            fill["items"] = json!([{"sku": "cup01", "quantity": 1}]);
            request(client, format!("{p}.fill"), fill).await?;
            let order = request(client, format!("{p}.order.checkout"), scope.clone()).await?;
            let order_id = order["order_id"].as_u64().context("order_id")?;
            let amount = order_amount(client, args, &scope, order_id).await?;
            request(
                client,
                format!("{p}.payment.confirm"),
                json!({"project_id": args.project, "order_id": order_id,
                       "invoice_id": format!("inv-{run}-{i}"), "amount": amount, "currency": "USD"}),
            )
            .await?;
            anyhow::Ok(())
        })
        .buffer_unordered(args.clients.max(1))
        .fold(Ok(()), |acc, r| async move { acc.and(r) })
        .await
}

/// The order's total, read as the payment side would from the order (`order.get`).
async fn order_amount(
    client: &Client,
    args: &GrowthArgs,
    scope: &serde_json::Value,
    order_id: u64,
) -> anyhow::Result<String> {
    let mut get = scope.clone();
    get["order_id"] = json!(order_id);
    let order = request(client, format!("{}.order.get", args.subject_prefix), get).await?;
    order["content"]["price"]["amount"]
        .as_str()
        .map(str::to_owned)
        .context("the order's amount")
}

fn report(title: &str, before: &Sizes, after: &Sizes, n: usize) -> i64 {
    // Bytes per one are also megabytes per million.
    println!("{title} ({n}):");
    println!(
        "  {:<32} {:>14} {:>22}",
        "table or stream", "grew (bytes)", "bytes per one = MB per million"
    );
    let mut pg = 0;
    for (name, b) in after {
        let grew = b - before.get(name).copied().unwrap_or(0);
        let per = grew as f64 / n as f64;
        if name.starts_with("pg ") {
            pg += grew;
        }
        println!("  {name:<32} {grew:>14} {per:>22.0}");
    }
    let per = pg as f64 / n as f64;
    println!("  {:<32} {pg:>14} {per:>22.0}", "PostgreSQL in all");
    pg
}

pub async fn run(args: GrowthArgs) -> anyhow::Result<()> {
    let pool = PgPool::connect(&args.database_url)
        .await
        .with_context(|| format!("connect to {}", args.database_url))?;
    let client = async_nats::connect(&args.nats_url).await?;
    let js = async_nats::jetstream::new(client.clone());
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    published(&pool, &js, &args).await?;
    let start = sizes(&pool, &js, &args).await?;
    cart_phase(&client, &args, &run).await?;
    published(&pool, &js, &args).await?;
    let carts = sizes(&pool, &js, &args).await?;
    order_phase(&client, &args, &run).await?;
    published(&pool, &js, &args).await?;
    let orders = sizes(&pool, &js, &args).await?;
    report(
        "cart commands: item.put with a command id, 5 per cart",
        &start,
        &carts,
        args.commands,
    );
    println!();
    report(
        "purchases: fill + checkout + payment (the payment clears the cart)",
        &carts,
        &orders,
        args.orders,
    );
    Ok(())
}
