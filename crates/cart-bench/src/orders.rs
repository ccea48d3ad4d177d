//! `cart-bench orders`: the purchase path of a running cartd. Each client, again and
//! again with a fresh user: fill one line, check out, confirm the payment (which clears
//! the cart in the same transaction). Reported per step, and as whole purchases per
//! second next to the fill alone measured by the same clients, so the ratio says what a
//! purchase costs against a plain cart command on this machine, in this run.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::Client;
use clap::Args;
use serde_json::{json, Value};

use crate::stats::Latencies;

#[derive(Debug, Args)]
pub struct OrdersArgs {
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The service's subject prefix (make bench-orders runs cartd on its own).
    #[arg(long, default_value = "cart.bench")]
    subject_prefix: String,
    #[arg(long, default_value_t = 44056)]
    project: u64,
    /// The SKU every purchase buys (one unit; it must have a price and no limit).
    #[arg(long, default_value = "cup01")]
    sku: String,
    /// Purchases in flight at once.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of each phase (fills only, then purchases).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
}

#[derive(Default, Clone)]
struct Steps {
    fill: Latencies,
    checkout: Latencies,
    pay: Latencies,
    purchase: Latencies,
    errors: u64,
}

impl Steps {
    fn add(&mut self, other: &Steps) {
        self.fill.add(&other.fill);
        self.checkout.add(&other.checkout);
        self.pay.add(&other.pay);
        self.purchase.add(&other.purchase);
        self.errors += other.errors;
    }
}

pub(crate) async fn request(
    client: &Client,
    subject: String,
    body: Value,
) -> anyhow::Result<Value> {
    let reply = client
        .request(subject.clone(), serde_json::to_vec(&body)?.into())
        .await
        .with_context(|| format!("request {subject}"))?;
    let refused = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
        .is_some();
    anyhow::ensure!(
        !refused,
        "{subject} refused: {}",
        String::from_utf8_lossy(&reply.payload)
    );
    Ok(serde_json::from_slice(&reply.payload)?)
}

/// One client: until `end`, fills only (`purchase` false) or whole purchases.
async fn client_loop(
    client: Client,
    args: &OrdersArgs,
    id: usize,
    run: &str,
    purchase: bool,
    end: Instant,
) -> Steps {
    let p = &args.subject_prefix;
    let mut steps = Steps::default();
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        let user = format!("bench-{run}-{}-{id}-{n}", u8::from(purchase));
        let scope = json!({"project_id": args.project, "user_id": user});
        let mut fill = scope.clone();
        fill["items"] = json!([{"sku": args.sku, "quantity": 1}]);
        let started = Instant::now();
        let result = async {
            let t = Instant::now();
            let cart = request(&client, format!("{p}.fill"), fill).await?;
            steps.fill.record(t.elapsed());
            if !purchase {
                return Ok(());
            }
            let amount = cart["price"]["amount"]
                .as_str()
                .context("the cart has no total")?
                .to_owned();
            let currency = cart["price"]["currency"].as_str().unwrap_or("USD").to_owned();
            let t = Instant::now();
            let order = request(&client, format!("{p}.order.checkout"), scope).await?;
            steps.checkout.record(t.elapsed());
            let order_id = order["order_id"].as_u64().context("no order id")?;
            let t = Instant::now();
            let paid = request(
                &client,
                format!("{p}.payment.confirm"),
                json!({"project_id": args.project, "order_id": order_id,
                       "invoice_id": format!("inv-{user}"), "amount": amount, "currency": currency}),
            )
            .await?;
            steps.pay.record(t.elapsed());
            anyhow::ensure!(paid["status"] == "paid", "not paid: {paid}");
            steps.purchase.record(started.elapsed());
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            steps.errors += 1;
            if steps.errors <= 3 {
                eprintln!("cart-bench orders: {e:#}");
            }
        }
    }
    steps
}

async fn phase(client: &Client, args: &OrdersArgs, run: &str, purchase: bool) -> (Steps, f64) {
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.secs);
    let tasks: Vec<_> = (0..args.clients.max(1))
        .map(|id| client_loop(client.clone(), args, id, run, purchase, end))
        .collect();
    let mut total = Steps::default();
    for steps in futures::future::join_all(tasks).await {
        total.add(&steps);
    }
    (total, started.elapsed().as_secs_f64())
}

fn row(what: &str, latencies: &Latencies, secs: f64) {
    let p = latencies.percentiles();
    println!(
        "| {what} | {:.0} | {:.1} | {:.1} | {:.1} |",
        latencies.len() as f64 / secs,
        p.p50_ms,
        p.p90_ms,
        p.p99_ms
    );
}

pub async fn run(args: OrdersArgs) -> anyhow::Result<()> {
    let client = crate::runner::connect(&args.nats_url, "cart-bench orders").await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    println!(
        "orders benchmark: {} clients, {} s per phase, one {} per purchase, project {}",
        args.clients, args.secs, args.sku, args.project
    );
    let (fills, fill_secs) = phase(&client, &args, &run, false).await;
    let (buys, buy_secs) = phase(&client, &args, &run, true).await;
    println!("| what | per second | p50 ms | p90 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    row("fill alone (phase 1)", &fills.fill, fill_secs);
    row(
        "purchase: fill + checkout + payment (phase 2)",
        &buys.purchase,
        buy_secs,
    );
    row("  its fill", &buys.fill, buy_secs);
    row("  its checkout", &buys.checkout, buy_secs);
    row("  its payment", &buys.pay, buy_secs);
    let fill_rate = fills.fill.len() as f64 / fill_secs;
    let buy_rate = buys.purchase.len() as f64 / buy_secs;
    if fill_rate > 0.0 {
        println!(
            "purchases/s over fills/s: {:.2} (a purchase is 3 requests)",
            buy_rate / fill_rate
        );
    }
    println!(
        "errors: {} (fills), {} (purchases)",
        fills.errors, buys.errors
    );
    anyhow::ensure!(
        fills.errors + buys.errors == 0,
        "requests failed; see the first errors above"
    );
    Ok(())
}
