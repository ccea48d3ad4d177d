//! `cart-bench failover` (make test-cluster): load on a running `make cluster`, and one
//! fault at a time, each driven through `deploy/cluster/cluster.sh`:
//!
//! 1. `nats`: kill -9 the NATS node leading `CART_EVENTS`, start it again later;
//! 2. `pg`: kill -9 the PostgreSQL primary (its Patroni and its postmaster: a node
//!    death), Patroni promotes the synchronous standby; later the old primary rejoins;
//! 3. `cartd`: kill -9 the cartd holding the relay locks, under load (mid-batches);
//! 4. `webhook`: kill -9 one cart-webhook worker mid-deliveries;
//! 5. `rolling`: restart both cartd, one after the other (SIGTERM, start, next).
//!
//! Per fault it reports requests sent, acknowledged and failed, the time from the fault
//! until each client's commands succeed again, and the checks of `failover/checks.rs`.

mod checks;
mod load;
mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::Client;
use clap::{Args, ValueEnum};
use serde_json::json;
use sqlx::PgPool;
use tokio::process::Command;

use crate::fulfilment::lag::Probe;
use crate::fulfilment::receiver::Receiver;
use crate::orders::request;
use crate::workload::{self, Mix, Workload, WorkloadConfig};
use load::{ClientLog, Settings};
use report::FaultReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    Nats,
    Pg,
    Cartd,
    Webhook,
    Rolling,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// The cluster's NATS seeds (cluster.sh env).
    #[arg(long, env = "NATS_URL")]
    nats_url: String,
    /// PostgreSQL through the cluster's HAProxy (cluster.sh env).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The script that starts and kills the cluster's processes.
    #[arg(long, default_value = "deploy/cluster/cluster.sh")]
    cluster: PathBuf,
    /// The faults to inject, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nats,pg,cartd,webhook,rolling"
    )]
    faults: Vec<Fault>,
    #[arg(long, default_value = "cart.v1")]
    subject_prefix: String,
    #[arg(long, default_value = "CART_EVENTS")]
    events_stream: String,
    #[arg(long, default_value = "CART_ORDERS")]
    orders_stream: String,
    #[arg(long, default_value_t = 44056)]
    project: u64,
    /// The SKU every purchase buys (one unit; it must have a price and no limit).
    #[arg(long, default_value = "cup01")]
    sku: String,
    #[arg(long, env = "CART_CATALOG", default_value = "deploy/catalog.json")]
    catalog: PathBuf,
    /// Buying users (fill, checkout, payment, again and again).
    #[arg(long, default_value_t = 4)]
    buyers: usize,
    /// Cart clients (fill, put, delete, clear) beside them.
    #[arg(long, default_value_t = 12)]
    cart_clients: usize,
    /// Seconds of load before each fault.
    #[arg(long, default_value_t = 10)]
    before_secs: u64,
    /// Seconds a killed process stays down before it is started again.
    #[arg(long, default_value_t = 15)]
    down_secs: u64,
    /// Seconds of load after the fault's last step.
    #[arg(long, default_value_t = 20)]
    after_secs: u64,
    /// Per request; a timed-out request is sent again under the same command id.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
    /// A command failing for this long is given up (counted as abandoned).
    #[arg(long, default_value_t = 90)]
    give_up_secs: u64,
    /// After each fault's load, how long to wait for relays and webhooks to catch up.
    #[arg(long, default_value_t = 180)]
    drain_secs: u64,
    /// Every figure as JSON.
    #[arg(long, default_value = "target/bench/failover.json")]
    out: PathBuf,
}

struct Suite {
    args: FailoverArgs,
    client: Client,
    pool: PgPool,
    receiver: Receiver,
    probe: Probe,
    run: String,
    skus: Vec<String>,
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let probe = Probe::connect(
        &args.nats_url,
        &args.database_url,
        &args.subject_prefix,
        &args.orders_stream,
        "cart-bench failover",
    )
    .await?;
    let (client, pool) = (probe.client.clone(), probe.pool.clone());
    let suite = Suite {
        skus: workload::catalog_skus(&args.catalog, args.project)?,
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        receiver: Receiver::start().await?,
        args,
        client,
        pool,
        probe,
    };
    suite.point_webhook().await?;
    let mut reports = Vec::new();
    for (i, fault) in suite.args.faults.clone().into_iter().enumerate() {
        suite.script(&["wait-healthy"]).await?;
        let report = suite.fault(fault, i).await?;
        report::print_fault(&report);
        reports.push(report);
    }
    report::print_table(&reports);
    report::write_json(&suite.args.out, &reports)?;
    println!("figures written to {}", suite.args.out.display());
    anyhow::ensure!(
        reports.iter().all(FaultReport::ok),
        "a check failed (see the table)"
    );
    Ok(())
}

impl Suite {
    async fn point_webhook(&self) -> anyhow::Result<()> {
        let settings = json!({"project_id": self.args.project, "url": self.receiver.url(),
                              "secret": "cart-bench", "enabled": true, "version": 2});
        let subject = format!("{}.admin.webhook.set", self.args.subject_prefix);
        request(&self.client, subject, settings).await.map(|_| ())
    }

    /// Runs `cluster.sh ARGS` and returns what it printed last (e.g. a member's name).
    async fn script(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.args.cluster)
            .args(args)
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .with_context(|| format!("run {} {args:?}", self.args.cluster.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for line in text.lines() {
            println!("  {line}");
        }
        anyhow::ensure!(
            out.status.success(),
            "{} {args:?} failed",
            self.args.cluster.display()
        );
        Ok(text.lines().last().unwrap_or_default().trim().to_owned())
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        Ok(Settings {
            prefix: self.args.subject_prefix.clone(),
            project: self.args.project,
            sku: self.args.sku.clone(),
            timeout: Duration::from_secs(self.args.timeout_secs),
            give_up: Duration::from_secs(self.args.give_up_secs),
            mix: "fill=30,put=30,delete=10,clear=5".parse::<Mix>()?,
        })
    }

    /// Load, the fault's steps, more load, then the drain and the checks.
    async fn fault(&self, fault: Fault, index: usize) -> anyhow::Result<FaultReport> {
        println!("fault {}: {fault:?} ...", index + 1);
        let workload = Arc::new(Workload::new(WorkloadConfig {
            subject_prefix: self.args.subject_prefix.clone(),
            project_id: self.args.project,
            encoding: cart_proto::Encoding::Protobuf,
            reply: cart_proto::ReplyMode::Minimal,
            run_tag: format!("{}-f{index}", self.run),
            users: 1000,
            carts_per_user: 2,
            skus: self.skus.clone(),
        })?);
        let stop = Arc::new(AtomicBool::new(false));
        let settings = self.settings()?;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.args.cart_clients {
            let (c, w, s, st) = (
                self.client.clone(),
                workload.clone(),
                settings.clone(),
                stop.clone(),
            );
            tasks.spawn(load::cart_client(c, w, s, st));
        }
        for b in 0..self.args.buyers {
            let tag = format!("{}-f{index}-b{b}", self.run);
            let (c, s, st) = (self.client.clone(), settings.clone(), stop.clone());
            tasks.spawn(load::buyer(c, s, tag, st));
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(self.args.before_secs)).await;
        let at = Instant::now();
        let steps = self.inject(fault).await;
        let steps_secs = at.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(self.args.after_secs)).await;
        stop.store(true, Ordering::Relaxed);
        let mut logs: Vec<ClientLog> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            logs.push(done.context("a load task panicked")?);
        }
        let load_secs = started.elapsed().as_secs_f64();
        steps?;
        let drained = Instant::now();
        let paid: Vec<_> = logs.iter().flat_map(|l| l.paid.iter().copied()).collect();
        let users: Vec<String> = logs.iter().flat_map(|l| l.users.iter().cloned()).collect();
        self.drain(&paid, &users).await;
        let drain_secs = drained.elapsed().as_secs_f64();
        let checks = self.checks(&logs, &paid, &users).await?;
        Ok(FaultReport::new(
            fault, &logs, at, load_secs, steps_secs, drain_secs, checks,
        ))
    }

    /// The fault's steps through the cluster script.
    async fn inject(&self, fault: Fault) -> anyhow::Result<()> {
        let down = Duration::from_secs(self.args.down_secs);
        match fault {
            Fault::Nats => {
                let node = self
                    .script(&["nats-leader", &self.args.events_stream])
                    .await?;
                self.script(&["kill", "nats", &node]).await?;
                tokio::time::sleep(down).await;
                self.script(&["start", "nats", &node]).await?;
            }
            Fault::Pg => {
                let member = self.script(&["kill", "pg-primary"]).await?;
                tokio::time::sleep(down).await;
                self.script(&["start", "pg", &member]).await?;
            }
            Fault::Cartd => {
                let node = self.script(&["relay-holder"]).await?;
                self.script(&["kill", "cartd", &node]).await?;
                tokio::time::sleep(down).await;
                self.script(&["start", "cartd", &node]).await?;
            }
            Fault::Webhook => {
                self.script(&["kill", "webhook", "1"]).await?;
                tokio::time::sleep(down).await;
                self.script(&["start", "webhook", "1"]).await?;
            }
            Fault::Rolling => {
                self.script(&["restart", "cartd", "1"]).await?;
                self.script(&["restart", "cartd", "2"]).await?;
            }
        }
        Ok(())
    }

    /// Until both relays have published everything, every paid order's webhook arrived
    /// and none of the run's orders is left `paid` (not done), or `--drain-secs` passed.
    async fn drain(&self, paid: &[crate::fulfilment::figures::Paid], users: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(self.args.drain_secs);
        while Instant::now() < deadline {
            let (missing, _, _) =
                checks::webhooks(self.args.project, paid, &self.receiver.arrivals());
            let relays = self.probe.relays().await;
            let caught_up = relays.cart.is_some_and(|l| l.events == 0)
                && relays.order.is_some_and(|l| l.events == 0);
            let waiting: Result<i64, _> = sqlx::query_scalar(
                "select count(*) from orders where project_id = $1 and user_id = any($2) and status = 'paid'",
            )
            .bind(i64::try_from(self.args.project).unwrap_or_default())
            .bind(users)
            .persistent(false)
            .fetch_one(&self.pool)
            .await;
            if missing == 0 && caught_up && matches!(waiting, Ok(0)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("  drain: gave up after {} s", self.args.drain_secs);
    }

    async fn checks(
        &self,
        logs: &[ClientLog],
        paid: &[crate::fulfilment::figures::Paid],
        users: &[String],
    ) -> anyhow::Result<checks::Checks> {
        let acked: Vec<String> = logs.iter().flat_map(|l| l.acked.iter().cloned()).collect();
        let (acked_missing, duplicate_commands) = checks::commands(&self.pool, &acked).await?;
        let duplicate_orders =
            checks::duplicate_orders(&self.pool, self.args.project, users).await?;
        let js = async_nats::jetstream::new(self.client.clone());
        let p = &self.args.subject_prefix;
        let events = checks::read_stream(
            &js,
            &self.args.events_stream,
            format!("{p}.events.>"),
            checks::cart_key,
        )
        .await?;
        let orders = checks::read_stream(
            &js,
            &self.args.orders_stream,
            format!("{p}.orders.>"),
            checks::order_key,
        )
        .await?;
        let (webhooks_missing, webhook_duplicates, webhook_key_mismatches) =
            checks::webhooks(self.args.project, paid, &self.receiver.arrivals());
        Ok(checks::Checks {
            acked_missing,
            duplicate_commands,
            duplicate_orders,
            events: checks::compare(&checks::log_ids(&self.pool, "cart_events").await?, &events),
            orders: checks::compare(&checks::log_ids(&self.pool, "order_events").await?, &orders),
            webhooks_missing,
            webhook_duplicates,
            webhook_key_mismatches,
        })
    }
}
