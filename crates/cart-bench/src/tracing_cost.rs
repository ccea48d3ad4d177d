//! `cart-bench tracing`: what exporting traces costs cartd's command throughput (issue 12:
//! "1 % sampling costs at most 5 % of command throughput").
//!
//! The bench runs a local OTLP/HTTP sink (it answers every export 200 at once and counts
//! what it got), then starts the given `cartd` once per mode and round, on the same
//! database and NATS server, and drives it with the closed-loop command workload of
//! `cart-bench load` for `--secs`:
//!
//! - `off`: no `OTEL_*` variable at all (export off, the service's default);
//! - `100%`: `OTEL_EXPORTER_OTLP_ENDPOINT` at the sink, `OTEL_TRACES_SAMPLER=
//!   parentbased_traceidratio`, `OTEL_TRACES_SAMPLER_ARG=1.0`;
//! - `1%`: the same with `0.01`.
//!
//! The modes are interleaved and their order rotates each round, so drift in the
//! machine (a busy neighbour, the tables growing) falls on every mode alike; each mode's
//! figure is the median over rounds, and its ratio is taken against `off` of the same
//! run. The workload's requests carry no `traceparent`: each command starts a trace,
//! sampled at cartd by the ratio.
//!
//! Beside throughput, each run reports cartd's own CPU time per OK command (from
//! /proc): the cost of tracing proper, which a busy neighbour shifts far less than it
//! shifts throughput on a shared 2-core machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::runner::Driver;
use crate::workload::{self, Mix, Workload, WorkloadConfig};

#[derive(Debug, clap::Args)]
pub struct TracingArgs {
    /// The cartd binary to start, once per mode and round.
    #[arg(long)]
    cartd: PathBuf,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// cartd's database (created by cartd; drop it first for a fresh start).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The subject prefix and service name of the cartd this bench starts.
    #[arg(long, default_value = "cart.bench.tracing")]
    subject_prefix: String,
    /// cartd's event stream (its relay runs, as in production).
    #[arg(long, default_value = "CART_BENCH_TRACING_EVENTS")]
    events_stream: String,
    #[arg(long, env = "CART_CATALOG", default_value = "deploy/catalog.json")]
    catalog: PathBuf,
    #[arg(long, default_value_t = 44056)]
    project: u64,
    /// Clients sending commands back to back.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of load per mode and round.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Rounds (each runs every mode once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Operation weights (fill, put, delete, get, clear).
    #[arg(long, default_value = "fill=30,put=30,delete=10,clear=5")]
    mix: Mix,
    /// cartd's `RUST_LOG` in every mode: `warn` as in `make bench` (the service's info
    /// spans are then only made when traces are exported), or `info`, the service's
    /// default (they are made in every mode, and only export differs).
    #[arg(long, default_value = "warn")]
    rust_log: String,
    /// Where to write every figure as JSON.
    #[arg(long, default_value = "target/bench/tracing.json")]
    out: PathBuf,
}

/// Export off, or on at the sink with this sampling ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Off,
    Sampled(f64),
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Off, Mode::Sampled(1.0), Mode::Sampled(0.01)];

    /// For user ids (which refuse `%`).
    fn tag(self) -> String {
        match self {
            Mode::Off => "off".to_owned(),
            Mode::Sampled(r) => format!("s{}", (r * 10_000.0).round()),
        }
    }

    fn name(self) -> String {
        match self {
            Mode::Off => "off".to_owned(),
            Mode::Sampled(r) => format!("{}%", r * 100.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    mode: String,
    round: usize,
    commands_per_sec: f64,
    errors: u64,
    errors_by_kind: BTreeMap<String, u64>,
    p50_ms: f64,
    p99_ms: f64,
    /// cartd's CPU (user and system) per OK command, in microseconds.
    cartd_us_per_command: f64,
    /// OTLP export requests and bytes the sink got during the load.
    exports: u64,
    export_bytes: u64,
}

pub async fn run(args: TracingArgs) -> anyhow::Result<()> {
    let sink = Sink::start().await?;
    let skus = workload::catalog_skus(&args.catalog, args.project)?;
    let mut runs = Vec::new();
    for round in 0..args.rounds.max(1) {
        for i in 0..Mode::ALL.len() {
            let mode = Mode::ALL[(i + round) % Mode::ALL.len()];
            let run = one(&args, &sink, &skus, mode, round).await?;
            println!(
                "  round {} {:>5}: {:.0} commands/s, {} errors, p50 {:.1} ms, p99 {:.1} ms, cartd {:.0} µs CPU/command, {} exports ({} bytes)",
                round + 1,
                run.mode,
                run.commands_per_sec,
                run.errors,
                run.p50_ms,
                run.p99_ms,
                run.cartd_us_per_command,
                run.exports,
                run.export_bytes
            );
            if run.errors > 0 {
                println!("    errors: {:?}", run.errors_by_kind);
            }
            runs.push(run);
        }
    }
    let medians = medians(&runs);
    let (off, off_cpu) = medians.get("off").map_or((0.0, 0.0), |m| (m.0, m.3));
    println!();
    println!(
        "cartd with RUST_LOG={}, {} clients, {} s per mode and round",
        args.rust_log, args.clients, args.secs
    );
    println!(
        "| tracing | commands/s (median of {}) | ratio to off | cartd CPU µs/command | ratio to off | p99 (median) | exports per run (median) |",
        args.rounds.max(1)
    );
    println!("|---|---|---|---|---|---|---|");
    for mode in Mode::ALL {
        let name = mode.name();
        if let Some((per_sec, p99, exports, cpu)) = medians.get(&name) {
            println!(
                "| {name} | {per_sec:.0} | {:.3} | {cpu:.0} | {:.3} | {p99:.1} ms | {exports:.0} |",
                per_sec / off.max(1e-9),
                cpu / off_cpu.max(1e-9)
            );
        }
    }
    // The tables grow through the run, so later runs are slower whatever their mode: the
    // ratio of each mode to `off` of the same round, whose order rotates, is the fairer
    // figure.
    println!();
    println!("| tracing | ratio to off of the same round, per round | median |");
    println!("|---|---|---|");
    for mode in Mode::ALL.into_iter().filter(|m| *m != Mode::Off) {
        let mut ratios: Vec<f64> = (1..=args.rounds.max(1))
            .filter_map(|round| {
                let of = |name: &str| {
                    runs.iter()
                        .find(|r| r.round == round && r.mode == name)
                        .map(|r| r.commands_per_sec)
                };
                Some(of(&mode.name())? / of("off")?.max(1e-9))
            })
            .collect();
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        ratios.sort_by(f64::total_cmp);
        if let Some(median) = ratios.get(ratios.len() / 2) {
            println!("| {} | {} | {median:.3} |", mode.name(), shown.join(", "));
        }
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&runs)?)
        .with_context(|| format!("write {}", args.out.display()))?;
    println!("figures written to {}", args.out.display());
    Ok(())
}

/// Per mode: median commands/s, median p99, median exports, median cartd CPU per command.
fn medians(runs: &[Run]) -> BTreeMap<String, (f64, f64, f64, f64)> {
    let mut by: BTreeMap<String, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by.entry(r.mode.clone()).or_default().push(r);
    }
    by.into_iter()
        .map(|(mode, rs)| {
            let med = |f: &dyn Fn(&Run) -> f64| {
                let mut v: Vec<f64> = rs.iter().map(|r| f(r)).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let m = (
                med(&|r| r.commands_per_sec),
                med(&|r| r.p99_ms),
                med(&|r| r.exports as f64),
                med(&|r| r.cartd_us_per_command),
            );
            (mode, m)
        })
        .collect()
}

/// Starts cartd in `mode`, waits for it, drives it, stops it.
async fn one(
    args: &TracingArgs,
    sink: &Sink,
    skus: &[String],
    mode: Mode,
    round: usize,
) -> anyhow::Result<Run> {
    let mut command = tokio::process::Command::new(&args.cartd);
    command
        .env("DATABASE_URL", &args.database_url)
        .env("NATS_URL", &args.nats_url)
        .env("CART_CATALOG", &args.catalog)
        .env("CART_SUBJECT_PREFIX", &args.subject_prefix)
        .env("CART_SERVICE_NAME", "cart-bench-tracing")
        .env("CART_EVENTS_STREAM", &args.events_stream)
        .env("CART_EVENTS_MAX_AGE_SECS", "3600")
        .env("RUST_LOG", &args.rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
        command.env_remove(key);
    }
    if let Mode::Sampled(ratio) = mode {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url())
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_SERVICE_NAME", "cartd-bench")
            .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", ratio.to_string());
    }
    let mut cartd = command
        .spawn()
        .with_context(|| format!("start {}", args.cartd.display()))?;
    let workload = Workload::new(WorkloadConfig {
        subject_prefix: args.subject_prefix.clone(),
        project_id: args.project,
        encoding: cart_proto::Encoding::Protobuf,
        reply: cart_proto::ReplyMode::Full,
        run_tag: format!("{}-r{round}", mode.tag()),
        users: 1000,
        carts_per_user: 2,
        skus: skus.to_vec(),
    })?;
    let driver = Driver::connect(&args.nats_url, 1, workload, Duration::from_secs(5)).await?;
    wait_ready(&driver, &args.subject_prefix, &mut cartd).await?;
    let before = sink.counts();
    if let Some(db) = crate::cpu::database_of(&args.database_url) {
        crate::cpu::count_postgres_databases(vec![db]);
    }
    let cpu_before = crate::cpu::sample(cartd.id());
    let mix = args.mix.clone();
    let run = driver
        .closed_loop(
            args.clients,
            Duration::from_secs(args.secs),
            u64::MAX,
            move |w, rng, _| w.request(mix.pick(rng), rng),
        )
        .await;
    let after = sink.counts();
    let cpu_after = crate::cpu::sample(cartd.id());
    let _ = cartd.start_kill();
    let _ = cartd.wait().await;
    let all = run
        .recorder
        .summarize(run.elapsed)
        .remove("all")
        .context("no figures")?;
    let cartd_us_per_command = cpu_before
        .until(&cpu_after, all.ok)
        .and_then(|cpu| cpu.us_per_request.get("cartd").copied())
        .unwrap_or(0.0);
    Ok(Run {
        mode: mode.name(),
        round: round + 1,
        commands_per_sec: all.per_sec,
        errors: all.errors,
        errors_by_kind: all.errors_by_kind,
        p50_ms: all.latency.p50_ms,
        p99_ms: all.latency.p99_ms,
        cartd_us_per_command,
        exports: after.0 - before.0,
        export_bytes: after.1 - before.1,
    })
}

/// Until cartd answers a request (any reply: a refusal proves it is subscribed).
async fn wait_ready(
    driver: &Driver,
    prefix: &str,
    cartd: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = cartd.try_wait()? {
            anyhow::bail!("cartd exited at start: {status}");
        }
        let probe = tokio::time::timeout(
            Duration::from_secs(1),
            driver
                .client()
                .request(format!("{prefix}.get"), bytes::Bytes::from_static(b"{}")),
        )
        .await;
        if matches!(probe, Ok(Ok(_))) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "cartd did not answer in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A local OTLP/HTTP receiver that takes every export and answers 200 at once.
struct Sink {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Sink {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counts = (requests.clone(), bytes.clone());
        let app = axum::Router::new().fallback(move |body: bytes::Bytes| {
            let (requests, bytes) = counts.clone();
            async move {
                requests.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                // An empty Export*ServiceResponse: every item accepted.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            requests,
            bytes,
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}
