//! `cart-bench fulfilment`: whole purchases against a running cartd (relays on) and
//! cart-webhook worker, with the project's webhook pointed at a receiver this process
//! runs. Per phase: purchases per second, payment-to-webhook and payment-to-`done`
//! latency, webhooks that never came, duplicate idempotency keys, and both relays' lag.
//!
//! `done` is read from the database (`OrderDone`'s `recorded_at`) rather than from the
//! orders stream: the stream would add the order relay's lag, which is reported on its
//! own, and the database is where the order's status lives.

pub(crate) mod figures;
pub(crate) mod lag;
mod purchase;
pub(crate) mod receiver;
mod report;
mod stages;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::Client;
use clap::Args;
use serde_json::json;
use sqlx::{PgPool, Row};

use crate::orders::request;
use crate::runner::Driver;
use crate::workload::{self, Mix, Workload, WorkloadConfig};
use figures::{PhaseSpec, Phases};
use lag::Probe;
use purchase::Shop;
use receiver::Receiver;
use report::PhaseReport;

#[derive(Debug, Args)]
pub struct FulfilmentArgs {
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The service's database (for `OrderDone` times and the order relay's lag).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The subject prefix of cartd and of the worker.
    #[arg(long, default_value = "cart.bench")]
    subject_prefix: String,
    /// cartd's order stream; the order relay's checkpoint is `relay:<stream>`.
    #[arg(long, default_value = "CART_ORDERS")]
    orders_stream: String,
    #[arg(long, default_value_t = 44056)]
    project: u64,
    /// The SKU every purchase buys (one unit; it must have a price and no limit).
    #[arg(long, default_value = "cup01")]
    sku: String,
    /// Phases, comma-separated: `USERS[+CART_CLIENTS]:SECS`. Users each buy again and
    /// again (fill, checkout, payment); cart clients send plain cart commands beside.
    #[arg(long, default_value = "16:60,16+64:60")]
    phases: Phases,
    /// After each phase's load, how long to wait for missing webhooks and `done`s.
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
    /// How long to wait for cartd and the worker to answer at start.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    /// Operation weights of the cart clients (fill, put, delete, get, clear).
    #[arg(long, default_value = "fill=30,put=30,delete=10,clear=5")]
    cart_mix: Mix,
    /// Distinct users of the cart clients (two carts each).
    #[arg(long, default_value_t = 1000)]
    cart_users: usize,
    /// Catalog file to take the cart clients' SKUs from.
    #[arg(long, env = "CART_CATALOG", default_value = "deploy/catalog.json")]
    catalog: PathBuf,
    /// Where to write every figure as JSON.
    #[arg(long, default_value = "target/bench/fulfilment.json")]
    out: PathBuf,
}

/// What every phase shares.
struct Bench {
    args: FulfilmentArgs,
    client: Client,
    pool: PgPool,
    receiver: Receiver,
    probe: Probe,
    run: String,
    skus: Vec<String>,
}

pub async fn run(args: FulfilmentArgs) -> anyhow::Result<()> {
    // The first query comes after the warm-up purchase, which waits for cartd.
    let probe = Probe::connect(
        &args.nats_url,
        &args.database_url,
        &args.subject_prefix,
        &args.orders_stream,
        "cart-bench fulfilment",
    )
    .await?;
    let (client, pool) = (probe.client.clone(), probe.pool.clone());
    let receiver = Receiver::start().await?;
    let skus = workload::catalog_skus(&args.catalog, args.project)?;
    let bench = Bench {
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        args,
        client,
        pool,
        receiver,
        probe,
        skus,
    };
    bench.start().await?;
    let mut reports = Vec::new();
    for spec in bench.args.phases.0.clone() {
        let report = bench.phase(spec, reports.len()).await?;
        report::print_phase(&report);
        reports.push(report);
    }
    report::print_table(&reports);
    report::write_json(&bench.args.out, &bench.header(), &reports)?;
    println!("figures written to {}", bench.args.out.display());
    Ok(())
}

impl Bench {
    fn header(&self) -> serde_json::Value {
        json!({
            "project": self.args.project, "sku": self.args.sku,
            "drain_secs": self.args.drain_secs, "cart_mix": self.args.cart_mix.to_string(),
            "receiver": self.receiver.url(),
        })
    }

    fn shop(&self, phase: usize) -> Shop {
        Shop {
            prefix: self.args.subject_prefix.clone(),
            project: self.args.project,
            sku: self.args.sku.clone(),
            tag: format!("{}-p{phase}", self.run),
        }
    }

    /// Points the project's webhook at the receiver (which waits for the worker), then
    /// buys once (which waits for cartd) and waits for that purchase's webhook (which
    /// proves the whole path) before any phase.
    async fn start(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(self.args.wait_secs);
        let p = &self.args.subject_prefix;
        let settings = json!({"project_id": self.args.project, "url": self.receiver.url(),
                              "secret": "cart-bench", "enabled": true, "version": 2});
        retry_until(
            deadline,
            "set the webhook (is cart-webhook running?)",
            || {
                request(
                    &self.client,
                    format!("{p}.admin.webhook.set"),
                    settings.clone(),
                )
            },
        )
        .await?;
        let shop = self.shop(0);
        let user = format!("bench-{}-warm-up", self.run);
        let warm_up = retry_until(deadline, "buy once (is cartd running?)", || {
            purchase::purchase(&self.client, &shop, &user)
        })
        .await?;
        // And its webhook: the first phase starts on a running path, not while the
        // worker's intake still waits for the order relay to create its stream (which it
        // retries every 2 s): purchases of those seconds would measure the start-up.
        let key = figures::idempotency_key(self.args.project, warm_up.order_id, "order_paid");
        retry_until(
            deadline,
            "the warm-up's webhook (is cart-webhook running?)",
            || {
                let arrived = self.receiver.arrivals().iter().any(|a| a.key == key);
                async move {
                    anyhow::ensure!(arrived, "not arrived yet");
                    Ok(())
                }
            },
        )
        .await?;
        println!(
            "fulfilment benchmark: project {}, one {} per purchase, webhooks to {}, drain up to {} s",
            self.args.project,
            self.args.sku,
            self.receiver.url(),
            self.args.drain_secs
        );
        Ok(())
    }

    async fn phase(&self, spec: PhaseSpec, index: usize) -> anyhow::Result<PhaseReport> {
        println!("phase {}: {spec} ...", index + 1);
        let duration = Duration::from_secs(spec.secs);
        let shop = self.shop(index + 1);
        let carts = self.cart_driver(spec, index).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let sampler = {
            let probe = self.probe.clone();
            tokio::spawn(async move { probe.max_until(stopped).await })
        };
        let started = Instant::now();
        let (purchases, cart_run) = tokio::join!(
            purchase::run(&self.client, &shop, spec.users, duration),
            async {
                match &carts {
                    Some(driver) => {
                        let mix = self.args.cart_mix.clone();
                        let run = driver
                            .closed_loop(spec.cart_clients, duration, u64::MAX, move |w, rng, _| {
                                w.request(mix.pick(rng), rng)
                            })
                            .await;
                        Some(run)
                    }
                    None => None,
                }
            }
        );
        let load_secs = started.elapsed().as_secs_f64();
        let _ = stop.send(());
        let max_lag = sampler.await.unwrap_or_default();
        let at_end = self.probe.relays().await;
        let drained = Instant::now();
        self.drain(&purchases.paid).await?;
        let drain_secs = drained.elapsed().as_secs_f64();
        // One read of each paid order's path: the `done` times and the stages.
        let timelines = self.timelines(&purchases.paid).await?;
        let done_at: HashMap<u64, f64> = timelines
            .iter()
            .filter_map(|t| Some((t.order_id, t.done_at?)))
            .collect();
        let delivery = figures::delivery(
            self.args.project,
            &purchases.paid,
            &self.receiver.arrivals(),
            &done_at,
        );
        let stages = stages::stages(&timelines, 5);
        Ok(PhaseReport::new(
            spec,
            load_secs,
            &purchases,
            cart_run,
            (delivery, stages),
            drain_secs,
            max_lag,
            at_end,
            self.probe.relays().await,
        ))
    }

    /// The cart clients' connection and carts, fresh per phase; None without clients.
    async fn cart_driver(&self, spec: PhaseSpec, index: usize) -> anyhow::Result<Option<Driver>> {
        if spec.cart_clients == 0 {
            return Ok(None);
        }
        let workload = Workload::new(WorkloadConfig {
            subject_prefix: self.args.subject_prefix.clone(),
            project_id: self.args.project,
            encoding: cart_proto::Encoding::Protobuf,
            reply: cart_proto::ReplyMode::Full,
            run_tag: format!("{}-c{index}", self.run),
            users: self.args.cart_users,
            carts_per_user: 2,
            skus: self.skus.clone(),
        })?;
        let driver =
            Driver::connect(&self.args.nats_url, 1, workload, Duration::from_secs(5)).await?;
        Ok(Some(driver))
    }

    /// Waits until every payment of the phase has its `order_paid` at the receiver and
    /// no order of the project is left `paid` (not done), or `--drain-secs` passed.
    async fn drain(&self, paid: &[figures::Paid]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(self.args.drain_secs);
        let project = self.args.project;
        loop {
            let keys: HashSet<String> = self
                .receiver
                .arrivals()
                .into_iter()
                .map(|a| a.key)
                .collect();
            let webhooks = figures::all_webhooks_arrived(project, paid, &keys);
            // A count on the status index, cheap enough to repeat: the full `done`
            // times are read once, at the end.
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from orders where project_id = $1 and status = 'paid'",
            )
            .bind(i64::try_from(project)?)
            .persistent(false)
            .fetch_one(&self.pool)
            .await?;
            if (webhooks && waiting == 0) || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Each paid order's path through the service (`stages`), from its tables.
    async fn timelines(&self, paid: &[figures::Paid]) -> anyhow::Result<Vec<stages::Timeline>> {
        let replied: HashMap<i64, f64> = paid
            .iter()
            .filter_map(|p| Some((i64::try_from(p.order_id).ok()?, p.replied_at)))
            .collect();
        let ids: Vec<i64> = replied.keys().copied().collect();
        let rows = sqlx::query(
            "select o.order_id, \
               extract(epoch from p.recorded_at)::float8 as paid_at, \
               extract(epoch from d.created_at)::float8 as recorded_at, \
               extract(epoch from a.started_at)::float8 as attempt_at, \
               a.latency_ms::float8 / 1000 as http_secs, \
               (select extract(epoch from e.recorded_at)::float8 from order_events e \
                 where e.stream_id = o.stream_id and e.event_type = 'OrderDone') as done_at \
             from orders o \
             join order_events p on p.stream_id = o.stream_id and p.event_type = 'OrderPaid' \
             left join webhook_deliveries d on d.event_id = p.event_id \
             left join webhook_attempts a on a.event_id = p.event_id and a.attempt = 1 \
             where o.project_id = $1 and o.order_id = any($2)",
        )
        .bind(i64::try_from(self.args.project)?)
        .bind(&ids)
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("order_id")?;
                Ok(stages::Timeline {
                    order_id: u64::try_from(id)?,
                    replied_at: replied.get(&id).copied().unwrap_or_default(),
                    paid_at: row.try_get("paid_at")?,
                    recorded_at: row.try_get("recorded_at")?,
                    attempt_at: row.try_get("attempt_at")?,
                    http_secs: row.try_get("http_secs")?,
                    done_at: row.try_get("done_at")?,
                })
            })
            .collect()
    }
}

/// Runs `attempt` every half second until it succeeds or `deadline` passes.
async fn retry_until<T, F, Fut>(deadline: Instant, what: &str, attempt: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => return Err(e.context(what.to_owned())),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Deletes JetStream streams (and so their consumers), those missing included, so that
/// a run starts without the messages and the worker's consumer of the last one.
pub async fn drop_streams(nats_url: &str, streams: &[String]) -> anyhow::Result<()> {
    let client = crate::runner::connect(nats_url, "cart-bench drop-streams").await?;
    let js = async_nats::jetstream::new(client);
    for name in streams {
        use async_nats::jetstream::context::DeleteStreamErrorKind;
        use async_nats::jetstream::ErrorCode;
        match js.delete_stream(name).await {
            Ok(_) => {}
            Err(e)
                if matches!(e.kind(), DeleteStreamErrorKind::JetStream(ref j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {}
            Err(e) => return Err(e).with_context(|| format!("delete stream {name}")),
        }
    }
    Ok(())
}
