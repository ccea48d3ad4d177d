//! cart-bench: figures for BENCHMARKS.md. `feed` measures, on a database seeded with a
//! synthetic history, how fast the export reads the log and how fast a projection
//! rebuild folds it. Each figure is the median of several runs taken in one process.
//! `load` drives a running cartd over NATS and sets its throughput, latency and memory
//! against this machine's NATS and PostgreSQL limits, measured in the same run.

mod chart;
mod claim;
mod cpu;
mod failover;
mod fulfilment;
mod growth;
mod limits;
mod load;
mod orders;
mod pgstat;
mod report;
mod runner;
mod stats;
mod tracing_cost;
mod workload;

use std::io;
use std::time::Instant;

use anyhow::Context;
use cart_store::export::{self, Format, Start};
use cart_store::{DbConfig, Filter, Position};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cart-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export and rebuild throughput over a seeded log.
    Feed {
        /// The PostgreSQL server; the database `cart_bench_feed` is created on it.
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
        /// Events in the seeded log (five per cart).
        #[arg(long, default_value_t = 1_000_000)]
        events: i64,
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Command throughput, latency and memory of a running cartd, against the limits of
    /// this machine's NATS and PostgreSQL measured in the same run.
    Load(Box<load::LoadArgs>),
    /// The purchase path of a running cartd: fill, checkout, payment, per step and whole.
    Orders(orders::OrdersArgs),
    /// Bytes per cart command and per purchase in PostgreSQL and JetStream, on a running
    /// cartd with relays on (make bench-growth; docs/operations.md).
    Growth(Box<growth::GrowthArgs>),
    /// What one webhook claim costs at backlogs of 100 to 100,000 due deliveries.
    Claim(claim::ClaimArgs),
    /// Whole purchases against a running cartd and cart-webhook worker, with the
    /// project's webhook pointed at a receiver of the bench's own (make bench-fulfilment).
    Fulfilment(Box<fulfilment::FulfilmentArgs>),
    /// Faults one at a time on a running `make cluster` under load, with the checks that
    /// nothing acknowledged was lost or applied twice (make test-cluster).
    Failover(Box<failover::FailoverArgs>),
    /// What exporting traces costs cartd's command throughput: off, 100 % and 1 %
    /// sampling against a local OTLP sink, interleaved, in one run (make bench-tracing).
    Tracing(Box<tracing_cost::TracingArgs>),
    /// Delete JetStream streams (missing ones are fine), so that a run starts without the
    /// last run's messages and consumers (make bench-fulfilment runs this first).
    DropStreams {
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// The streams to delete.
        #[arg(required = true)]
        streams: Vec<String>,
    },
    /// Drop the database named in the URL, if it exists, so a service starts on an empty
    /// one (`make bench` runs this before starting cartd).
    DropDatabase {
        /// The database to drop, e.g. postgres://postgres@127.0.0.1:5432/cart_bench_load.
        #[arg(long)]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Feed {
            database_url,
            events,
            runs,
        } => feed(&database_url, events, runs.max(1)).await,
        Command::Load(args) => load::run(*args).await,
        Command::Orders(args) => orders::run(args).await,
        Command::Claim(args) => claim::run(args).await,
        Command::Growth(args) => growth::run(*args).await,
        Command::Fulfilment(args) => fulfilment::run(*args).await,
        Command::Tracing(args) => tracing_cost::run(*args).await,
        Command::Failover(args) => failover::run(*args).await,
        Command::DropStreams { nats_url, streams } => {
            fulfilment::drop_streams(&nats_url, &streams).await
        }
        Command::DropDatabase { database_url } => drop_database(&database_url).await,
    }
}

/// The URL of database `name` on the server of `server` (a URL naming any database).
pub(crate) fn database_url(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').unwrap_or((server, ""));
    let cut = base
        .rfind('/')
        .filter(|&i| i > base.find("://").map_or(0, |s| s + 2));
    let base = cut.map_or(base, |i| &base[..i]);
    let mut url = format!("{base}/{name}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

async fn feed(server: &str, events: i64, runs: usize) -> anyhow::Result<()> {
    let url = database_url(server, "cart_bench_feed");
    cart_store::ensure_database(&url).await?;
    let pool = cart_store::connect(&DbConfig {
        url: url.clone(),
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_secs(30),
    })
    .await
    .with_context(|| format!("connect to {url}"))?;
    seed(&pool, events).await?;

    let mut json = vec![];
    let mut protobuf = vec![];
    let mut rebuild = vec![];
    for _ in 0..runs {
        json.push(export_rate(&pool, Format::JsonLines).await?);
        protobuf.push(export_rate(&pool, Format::Protobuf).await?);
        let started = Instant::now();
        let report = cart_store::rebuild_projection(&pool, |_| {}).await?;
        rebuild.push(report.events as f64 / started.elapsed().as_secs_f64());
    }
    println!(
        "feed benchmark: {events} events, {} carts, median of {runs} runs",
        events / 5
    );
    println!("| what | events/s (median) | runs |");
    println!("|---|---|---|");
    for (what, rates) in [
        ("export, JSON Lines to a sink", &mut json),
        ("export, length-delimited protobuf to a sink", &mut protobuf),
        ("projection rebuild (fold + write + switch)", &mut rebuild),
    ] {
        let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!("| {what} | {:.0} | {} |", median(rates), runs.join(", "));
    }
    Ok(())
}

async fn drop_database(url: &str) -> anyhow::Result<()> {
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;

    let target =
        sqlx::postgres::PgConnectOptions::from_str(url).with_context(|| format!("parse {url}"))?;
    let name = target
        .get_database()
        .map(str::to_owned)
        .with_context(|| format!("{url} names no database"))?;
    if name == "postgres" {
        anyhow::bail!("refusing to drop the maintenance database `postgres`");
    }
    let mut admin = target
        .database("postgres")
        .connect()
        .await
        .with_context(|| format!("connect to the server of {url}"))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    // WITH (FORCE): a service left running by an interrupted run must not block the drop.
    sqlx::query(&format!("drop database if exists {quoted} with (force)"))
        .execute(&mut admin)
        .await
        .with_context(|| format!("drop database {name}"))?;
    admin.close().await?;
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn export_rate(pool: &sqlx::PgPool, format: Format) -> anyhow::Result<f64> {
    let started = Instant::now();
    let done = export::export(
        pool,
        &Start::After(Position::default()),
        &Filter::default(),
        format,
        &mut io::sink(),
        |_| {},
    )
    .await?;
    Ok(done.events as f64 / started.elapsed().as_secs_f64())
}

/// Writes a synthetic history once: per cart, opened, two lines set, one removed, one
/// more set. Rows go in by SQL in large statements; this is set-up, not a measurement.
async fn seed(pool: &sqlx::PgPool, events: i64) -> anyhow::Result<()> {
    let carts = events / 5;
    // One transaction per cart, as the service writes them: the export's pages end at
    // transaction boundaries, so a log of a few huge transactions would be read in a few
    // huge pages and measure something else.
    let (have, transactions): (i64, i64) =
        sqlx::query_as("select count(*), count(distinct tx_id) from cart_events")
            .fetch_one(pool)
            .await?;
    if have == carts * 5 && transactions == carts {
        return Ok(());
    }
    println!("seeding {} events in {carts} transactions...", carts * 5);
    sqlx::query("truncate cart_events, cart_streams, cart_projection")
        .execute(pool)
        .await?;
    // A DO block may commit between carts only when sent alone as a simple query; the
    // seed is not the service, so its commits need not wait for the disk.
    let mut conn = pool.acquire().await?;
    // The seed runs for about a minute: past the store's statement timeout.
    sqlx::raw_sql("set synchronous_commit = off; set statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(&format!(
        "do $$ declare id uuid; begin \
           for n in 0..{last} loop \
             id := gen_random_uuid(); \
             insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
             select id, e.v, gen_random_uuid(), 44056, e.t, e.sv, e.p::jsonb, '{{}}'::jsonb \
             from (values \
               (1, 'CartOpened', 1, '{{}}'), \
               (2, 'ItemQuantitySet', 1, '{{\"sku\": \"cup01\", \"quantity\": 2}}'), \
               (3, 'ItemQuantitySet', 1, '{{\"sku\": \"gold\", \"quantity\": 10}}'), \
               (4, 'ItemRemoved', 1, '{{\"sku\": \"cup01\"}}'), \
               (5, 'ItemQuantitySet', 1, '{{\"sku\": \"t-shirt01\", \"quantity\": 1}}')) as e(v, t, sv, p) \
             order by e.v; \
             insert into cart_streams (stream_id, project_id, user_id, cart_id) \
             values (id, 44056, 'user' || n, 'cart' || n); \
             commit; \
           end loop; \
         end $$",
        last = carts - 1
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::raw_sql("reset synchronous_commit; reset statement_timeout")
        .execute(&mut *conn)
        .await?;
    drop(conn);
    sqlx::query("vacuum analyze cart_events")
        .execute(pool)
        .await?;
    Ok(())
}
