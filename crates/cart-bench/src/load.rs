//! `cart-bench load`: drives a running cartd over NATS and sets its figures against this
//! machine's limits, measured in the same run.
//!
//! Phases, each on its own so that the figures do not mix:
//! 1. limits: NATS echo, PostgreSQL single-row and batched inserts;
//! 2. commands only (the mix without gets), closed loop at `--clients`;
//! 3. gets only, closed loop at `--get-clients`;
//! 4. the full mix at `--clients`;
//! 5. half load: the command mix paced at half of phase 2's throughput (open loop);
//! 6. a concurrency sweep of the command mix, each step followed by the single-row
//!    insert limit at the same concurrency;
//! 7. with `--pid`: one put on each of `--memory-carts` fresh carts, RSS before and after.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use cart_proto::{Encoding, ReplyMode};

use crate::chart::{self, Series};
use crate::cpu;
use crate::limits::{self, PgLimits};
use crate::report::{self, HalfLoad, Memory, Phase, Ratios, Report, RunInfo, SweepStep};
use crate::runner::{Driver, PhaseRun};
use crate::stats::Summary;
use crate::workload::{self, Mix, Op, Workload, WorkloadConfig};

/// Load a running cart service and compare it with this machine's limits.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// NATS server of the service; must be on this machine (loopback).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// PostgreSQL server for the insert limits (loopback); the scratch database
    /// `cart_bench_limits` is created on it and its table recreated every run.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Subject prefix of the service's endpoints.
    #[arg(long, env = "CART_SUBJECT_PREFIX", default_value = "cart.v1")]
    subject_prefix: String,
    /// Service name to wait for ($SRV.PING.<name>) before starting.
    #[arg(long, env = "CART_SERVICE_NAME", default_value = "cart")]
    service_name: String,
    /// Seconds to wait for the service to answer $SRV.PING before giving up.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    /// Project id of every request.
    #[arg(long, default_value_t = 44056)]
    project_id: u64,
    /// Distinct users; ids are `bench-<run tag>-u<n>`.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Carts per user; ids `c0`, `c1`, ... Commands pick a cart uniformly at random.
    #[arg(long, default_value_t = 2)]
    carts: usize,
    /// SKUs to put in carts, comma-separated [default: the project's SKUs in --catalog].
    #[arg(long, value_delimiter = ',')]
    skus: Vec<String>,
    /// Catalog file to take the SKUs from when --skus is not given.
    #[arg(long, env = "CART_CATALOG", default_value = "deploy/catalog.json")]
    catalog: PathBuf,
    /// Operation weights (fill, put, delete, get, clear; no checkout yet).
    #[arg(long, default_value = "fill=30,put=30,delete=10,get=25,clear=5")]
    mix: Mix,
    /// Requests in flight (closed-loop clients) for commands and the mix; also the
    /// PostgreSQL connections of the insert limits (capped by --pg-max-connections).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Requests in flight for the gets-only phase and the NATS echo limit.
    #[arg(long, default_value_t = 256)]
    get_clients: usize,
    /// NATS connections the clients share (round robin).
    #[arg(long, default_value_t = 1)]
    nats_connections: usize,
    /// Seconds of each limit and each load phase.
    #[arg(long, default_value_t = 5.0)]
    phase_secs: f64,
    /// Most requests (or transactions) per phase; a phase ends at whichever bound comes first.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Concurrency steps of the sweep, comma-separated; `none` skips the sweep.
    #[arg(long, default_value = "1,4,16,64,256")]
    sweep: Steps,
    /// Seconds of each sweep step (and of its insert limit).
    #[arg(long, default_value_t = 3.0)]
    sweep_secs: f64,
    /// The cartd process: report its resident memory (VmRSS) and run the fresh-cart phase.
    #[arg(long)]
    pid: Option<u32>,
    /// Fresh carts of the memory phase: one put each, each of a distinct user; 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    memory_carts: u64,
    /// Most seconds of the memory phase.
    #[arg(long, default_value_t = 300)]
    memory_max_secs: u64,
    /// Send JSON requests; without it requests are protobuf (`Content-Type:
    /// application/protobuf`).
    #[arg(long)]
    json: bool,
    /// What commands ask to be answered with: `full`, the priced cart, or `minimal`, only
    /// the cart's id, version and warnings (`Cart-Reply: minimal`, docs/protocol.md).
    #[arg(long, default_value = "full", value_parser = parse_reply)]
    reply: ReplyMode,
    /// Milliseconds to wait for a reply before counting a timeout.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Most PostgreSQL connections of the insert limits.
    #[arg(long, default_value_t = 64)]
    pg_max_connections: usize,
    /// Rows per transaction of the batched insert limit.
    #[arg(long, default_value_t = 100)]
    pg_batch_rows: usize,
    /// Where the charts (and by default the JSON) go.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
    /// Where to write every figure as JSON [default: <out-dir>/load.json].
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Tag in user ids [default: random], so that every run starts from fresh carts.
    #[arg(long)]
    run_tag: Option<String>,
}

impl LoadArgs {
    fn check(&self) -> anyhow::Result<()> {
        ensure_loopback("--nats-url", &self.nats_url)?;
        ensure_loopback("--database-url", &self.database_url)?;
        for (flag, value) in [
            ("--clients", self.clients),
            ("--get-clients", self.get_clients),
            ("--nats-connections", self.nats_connections),
            ("--users", self.users),
            ("--carts", self.carts),
            ("--pg-max-connections", self.pg_max_connections),
            ("--pg-batch-rows", self.pg_batch_rows),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if self.clients.max(self.get_clients) > 100_000 {
            bail!("at most 100000 clients");
        }
        if self.pg_batch_rows > 10_000 {
            bail!("--pg-batch-rows must be at most 10000");
        }
        for (flag, secs) in [
            ("--phase-secs", self.phase_secs),
            ("--sweep-secs", self.sweep_secs),
        ] {
            if !(0.1..=3600.0).contains(&secs) {
                bail!("{flag} must be between 0.1 and 3600");
            }
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            bail!("--timeout-ms must be between 1 and 600000");
        }
        if self.memory_max_secs > 3600 {
            bail!("--memory-max-secs must be at most 3600");
        }
        if let Some(tag) = &self.run_tag {
            let ok = !tag.is_empty()
                && tag.len() <= 32
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                bail!("--run-tag must be 1-32 characters of A-Z a-z 0-9 - _");
            }
        }
        Ok(())
    }
}

/// The concurrency steps of the sweep.
#[derive(Debug, Clone)]
struct Steps(Vec<usize>);

impl FromStr for Steps {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        if s.trim().is_empty() || s.trim() == "none" {
            return Ok(Self(Vec::new()));
        }
        let steps = s
            .split(',')
            .map(|step| match step.trim().parse::<usize>() {
                Ok(n @ 1..=100_000) => Ok(n),
                _ => bail!("a sweep step is a number of clients from 1 to 100000, not `{step}`"),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self(steps))
    }
}

/// `--reply`: the values of the `Cart-Reply` header.
fn parse_reply(value: &str) -> Result<ReplyMode, String> {
    ReplyMode::parse(value).ok_or_else(|| format!("`{value}` is not `full` or `minimal`"))
}

/// Refuses a URL whose host is not this machine: the bench sends load, and load only
/// ever goes to loopback addresses (or a PostgreSQL Unix socket).
fn ensure_loopback(flag: &str, url: &str) -> anyhow::Result<()> {
    let is_local = |host: &str| {
        host.is_empty()
            || host.starts_with('/')
            || host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    let refuse = |host: &str| {
        anyhow::anyhow!(
            "{flag}: `{host}` is not a loopback address; cart-bench load only loads this machine"
        )
    };
    // Several servers may be listed, comma-separated, each with or without a scheme.
    for part in url.split(',') {
        let rest = part.split_once("://").map_or(part, |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host_port.split(':').next().unwrap_or_default(),
        };
        if !is_local(host) {
            return Err(refuse(host));
        }
    }
    // A PostgreSQL URL may also name its host in the query string.
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            let host = pair
                .strip_prefix("host=")
                .or_else(|| pair.strip_prefix("hostaddr="));
            if let Some(host) = host {
                if !host.split(',').all(is_local) {
                    return Err(refuse(host));
                }
            }
        }
    }
    Ok(())
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    args.check()?;
    let skus = if args.skus.is_empty() {
        workload::catalog_skus(&args.catalog, args.project_id)?
    } else {
        args.skus
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let commands_mix = args
        .mix
        .commands_only()
        .context("--mix needs at least one command (fill, put, delete or clear)")?;
    let encoding = if args.json {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let run_tag = args
        .run_tag
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    let workload = Workload::new(WorkloadConfig {
        subject_prefix: args.subject_prefix.clone(),
        project_id: args.project_id,
        encoding,
        reply: args.reply,
        run_tag: run_tag.clone(),
        users: args.users,
        carts_per_user: args.carts,
        skus: skus.clone(),
    })?;
    let request_bytes: BTreeMap<String, f64> = {
        let sizes = workload.mean_body_sizes(&mut fastrand::Rng::new());
        Op::ALL
            .into_iter()
            .map(|op| (op.name().to_owned(), sizes[op.index()]))
            .collect()
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("create {}", args.out_dir.display()))?;
    let json_out = args
        .json_out
        .clone()
        .unwrap_or_else(|| args.out_dir.join("load.json"));

    let timeout = Duration::from_millis(args.timeout_ms);
    let driver = Driver::connect(&args.nats_url, args.nats_connections, workload, timeout).await?;
    wait_for_service(&driver, &args.service_name, args.wait_secs, args.pid).await?;
    let rss_at_start = args.pid.map(rss_mb).transpose()?;

    let run = RunInfo {
        tag: run_tag,
        started_unix_secs: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        encoding: encoding.content_type(),
        reply: args.reply.as_str(),
        nats_url: args.nats_url.clone(),
        subject_prefix: args.subject_prefix.clone(),
        project_id: args.project_id,
        users: args.users,
        carts_per_user: args.carts,
        skus,
        mix: args.mix.to_string(),
        clients: args.clients,
        get_clients: args.get_clients,
        nats_connections: args.nats_connections,
        phase_secs: args.phase_secs,
        sweep_secs: args.sweep_secs,
        timeout_ms: args.timeout_ms,
        max_requests_per_phase: args.max_requests,
        request_bytes,
    };
    print_header(&run);
    let bench = Bench {
        args: &args,
        driver,
        phase: Duration::from_secs_f64(args.phase_secs),
        budget: args.max_requests,
        commands_mix,
    };

    // 1. Limits, while the service is idle.
    let get_bytes = run.request_bytes.get("get").copied().unwrap_or_default();
    let (limits, pg) = bench.limits(get_bytes).await?;
    report::print_limits(&limits);

    // 2-4. Closed-loop phases.
    let (commands, command_run) = bench
        .closed_phase(
            &format!("Commands only ({})", bench.commands_mix),
            &bench.commands_mix,
            args.clients,
        )
        .await;
    let (gets, _) = bench
        .closed_phase("Gets only", &Mix::only(Op::Get), args.get_clients)
        .await;
    let (mix, _) = bench
        .closed_phase(&format!("Full mix ({})", args.mix), &args.mix, args.clients)
        .await;
    let commands_per_sec = commands.all().map_or(0.0, |s| s.per_sec);
    let gets_per_sec = gets.all().map_or(0.0, |s| s.per_sec);

    // 5-7.
    let half_load = bench.half_load(commands_per_sec).await;
    let sweep = bench.sweep(&pg).await?;
    pg.finish().await?;
    let memory = match (args.pid, rss_at_start) {
        (Some(pid), Some(rss_at_start_mb)) if args.memory_carts > 0 => {
            Some(bench.memory(pid, rss_at_start_mb).await?)
        }
        _ => None,
    };

    let ratios = Ratios::new(
        commands_per_sec,
        limits.pg_single_insert.tx_per_sec,
        limits.pg_batch_insert.rows_per_sec,
        gets_per_sec,
        limits.nats_echo.summary.per_sec,
    );
    report::print_ratios(&ratios, args.clients, args.get_clients);

    let mut curves = latency_series(&command_run, "at max throughput");
    if let Some((_, points)) = &half_load {
        let end = points.last().map_or(1.0, |p| p.0.ceil());
        curves.push(Series {
            name: "all commands at half load (from scheduled send)".to_owned(),
            points: points.clone(),
        });
        let target = report::HALF_LOAD_P99_TARGET_MS;
        curves.push(Series {
            name: format!("target: p99 <= {target} ms at half load"),
            points: vec![(0.0, target), (end, target)],
        });
    }
    let charts = write_charts(&args.out_dir, args.clients, &sweep, &curves)?;

    let report = Report {
        run,
        limits,
        phases: BTreeMap::from([
            ("commands".to_owned(), commands),
            ("gets".to_owned(), gets),
            ("mix".to_owned(), mix),
        ]),
        half_load: half_load.map(|(h, _)| h),
        sweep,
        ratios,
        memory,
        charts: charts.iter().map(|p| p.display().to_string()).collect(),
    };
    write_json(&json_out, &report)?;
    println!();
    for path in &charts {
        println!("chart: {}", path.display());
    }
    println!("figures: {}", json_out.display());
    Ok(())
}

/// What every phase shares.
struct Bench<'a> {
    args: &'a LoadArgs,
    driver: Driver,
    phase: Duration,
    budget: u64,
    /// The mix without gets.
    commands_mix: Mix,
}

impl Bench<'_> {
    /// The NATS echo at `--get-clients` (it is set against the gets), then the inserts at
    /// `--clients` connections. Returns the scratch database for the sweep.
    async fn limits(&self, get_bytes: f64) -> anyhow::Result<(report::Limits, PgLimits)> {
        let args = self.args;
        progress(&format!(
            "limits: NATS echo, {} in flight",
            args.get_clients
        ));
        let echo = limits::nats_echo(
            &self.driver,
            &args.nats_url,
            args.get_clients,
            self.phase,
            self.budget,
        )
        .await?;
        let pg = PgLimits::prepare(&args.database_url, args.pg_max_connections).await?;
        let connections = args.clients.min(pg.max_connections);
        progress(&format!(
            "limits: PostgreSQL single-row inserts, {connections} connections"
        ));
        let pg_single_insert = pg.inserts(args.clients, 1, self.phase, self.budget).await?;
        progress(&format!(
            "limits: PostgreSQL {}-row inserts, {connections} connections",
            args.pg_batch_rows
        ));
        let pg_batch_insert = pg
            .inserts(args.clients, args.pg_batch_rows, self.phase, self.budget)
            .await?;
        let limits = report::Limits {
            nats_echo: report::Echo {
                concurrency: args.get_clients,
                request_bytes: get_bytes,
                secs: echo.elapsed.as_secs_f64(),
                summary: Summary::of(echo.recorder.op(Op::Get), echo.elapsed),
            },
            pg_single_insert,
            pg_batch_insert,
            note: pg.note.clone(),
        };
        Ok((limits, pg))
    }

    /// A closed-loop phase of `mix` at `clients`, printed as it ends.
    async fn closed_phase(&self, title: &str, mix: &Mix, clients: usize) -> (Phase, PhaseRun) {
        progress(&format!("phase: {title}, {clients} clients"));
        let before = cpu::sample(self.args.pid);
        let done = closed(&self.driver, mix, clients, self.phase, self.budget).await;
        let after = cpu::sample(self.args.pid);
        let ops = done.recorder.summarize(done.elapsed);
        let requests = ops.get("all").map_or(0, |s| s.ok);
        let phase = Phase {
            clients,
            secs: done.elapsed.as_secs_f64(),
            ops,
            cpu: before.until(&after, requests),
        };
        report::print_ops(&format!("{title}, {clients} clients"), &phase.ops);
        if let Some(cpu) = &phase.cpu {
            report::print_cpu(cpu);
        }
        (phase, done)
    }

    /// The command mix paced at half of `commands_per_sec`, with the latency curve of
    /// all its commands.
    async fn half_load(&self, commands_per_sec: f64) -> Option<(HalfLoad, Vec<(f64, f64)>)> {
        if commands_per_sec < 2.0 {
            println!();
            println!("Half load: skipped, the commands phase had no throughput to halve.");
            return None;
        }
        let target = commands_per_sec / 2.0;
        progress(&format!("phase: half load, {target:.0} commands/s paced"));
        let mix = self.commands_mix.clone();
        let paced = self
            .driver
            .open_loop(target, self.phase, self.budget, move |w, rng, _| {
                let op = mix.pick(rng);
                w.request(op, rng)
            })
            .await;
        let all = paced.recorder.combined(|_| true);
        let ops = paced.recorder.summarize(paced.elapsed);
        let sent = ops.get("all").map_or(0, |s| s.ok + s.errors);
        // The p99 is over every command sent, a failed one counting as slower than any
        // target: the target holds when 99 % of all commands were OK within it.
        let target_ms = report::HALF_LOAD_P99_TARGET_MS;
        let within = all
            .latencies
            .count_within(Duration::from_secs_f64(target_ms / 1000.0));
        let half_load = HalfLoad {
            target_per_sec: target,
            secs: paced.elapsed.as_secs_f64(),
            p99_ms: all.latencies.percentiles().p99_ms,
            p99_target_ms: target_ms,
            p99_target_met: sent > 0 && within as f64 >= 0.99 * sent as f64,
            ops,
        };
        report::print_half_load(&half_load);
        Some((half_load, all.latencies.quantile_curve()))
    }

    /// Each step: the command mix at that concurrency, then the single-row insert limit
    /// at as many connections (capped).
    async fn sweep(&self, pg: &PgLimits) -> anyhow::Result<Vec<SweepStep>> {
        let duration = Duration::from_secs_f64(self.args.sweep_secs);
        let mut steps = Vec::new();
        for &clients in &self.args.sweep.0 {
            progress(&format!("sweep: {clients} clients"));
            let done = closed(
                &self.driver,
                &self.commands_mix,
                clients,
                duration,
                self.budget,
            )
            .await;
            steps.push(SweepStep {
                clients,
                secs: done.elapsed.as_secs_f64(),
                commands: Summary::of(&done.recorder.combined(Op::is_command), done.elapsed),
                pg_single_insert: pg.inserts(clients, 1, duration, self.budget).await?,
            });
        }
        if !steps.is_empty() {
            report::print_sweep(&steps);
        }
        Ok(steps)
    }

    /// One put on each of `--memory-carts` fresh carts, with cartd's RSS around it.
    async fn memory(&self, pid: u32, rss_at_start_mb: f64) -> anyhow::Result<Memory> {
        let carts = self.args.memory_carts;
        progress(&format!(
            "phase: memory, one put on each of {carts} fresh carts"
        ));
        let rss_before_mb = rss_mb(pid)?;
        let done = self
            .driver
            .closed_loop(
                self.args.clients,
                Duration::from_secs(self.args.memory_max_secs),
                carts,
                |w, rng, seq| w.fresh_cart_put(seq, rng),
            )
            .await;
        let rss_after_mb = rss_mb(pid)?;
        let puts = Summary::of(done.recorder.op(Op::Put), done.elapsed);
        let memory = Memory {
            pid,
            rss_at_start_mb,
            rss_before_mb,
            rss_after_mb,
            rss_peak_mb: status_mb(pid, "VmHWM")?,
            carts_requested: carts,
            carts_written: puts.ok,
            secs: done.elapsed.as_secs_f64(),
            bytes_per_cart: (rss_after_mb - rss_before_mb) * 1024.0 * 1024.0
                / puts.ok.max(1) as f64,
            puts,
        };
        report::print_memory(&memory);
        Ok(memory)
    }
}

/// The throughput-against-concurrency chart (when there was a sweep) and the latency
/// chart; returns the files written.
fn write_charts(
    out_dir: &Path,
    clients: usize,
    sweep: &[SweepStep],
    curves: &[Series],
) -> anyhow::Result<Vec<PathBuf>> {
    let mut charts = Vec::new();
    if !sweep.is_empty() {
        let path = out_dir.join("load-throughput.svg");
        let line = |name: &str, y: fn(&SweepStep) -> f64| Series {
            name: name.to_owned(),
            points: sweep.iter().map(|s| (s.clients as f64, y(s))).collect(),
        };
        chart::throughput(
            &path,
            "Throughput against concurrency: cart commands and PostgreSQL single-row inserts",
            &[
                line("cart commands/s (command mix)", |s| s.commands.per_sec),
                line("PostgreSQL 1-row transactions/s (limit)", |s| {
                    s.pg_single_insert.tx_per_sec
                }),
            ],
        )?;
        charts.push(path);
    }
    if curves.iter().any(|c| !c.points.is_empty()) {
        let path = out_dir.join("load-latency.svg");
        chart::latency(
            &path,
            &format!("Command latency: {clients} clients (commands phase), and at half load"),
            curves,
        )?;
        charts.push(path);
    }
    Ok(charts)
}

async fn closed(
    driver: &Driver,
    mix: &Mix,
    clients: usize,
    duration: Duration,
    budget: u64,
) -> PhaseRun {
    let mix = mix.clone();
    driver
        .closed_loop(clients, duration, budget, move |w, rng, _| {
            let op = mix.pick(rng);
            w.request(op, rng)
        })
        .await
}

/// Percentile curves of each command and of all commands together.
fn latency_series(run: &PhaseRun, what: &str) -> Vec<Series> {
    let mut out: Vec<Series> = Op::ALL
        .into_iter()
        .filter(|op| op.is_command())
        .map(|op| Series {
            name: format!("{} {what}", op.name()),
            points: run.recorder.op(op).latencies.quantile_curve(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    out.push(Series {
        name: format!("all commands {what}"),
        points: run
            .recorder
            .combined(Op::is_command)
            .latencies
            .quantile_curve(),
    });
    out
}

fn print_header(run: &RunInfo) {
    let sizes: Vec<String> = run
        .request_bytes
        .iter()
        .map(|(op, bytes)| format!("{op} {bytes:.0}"))
        .collect();
    println!(
        "cart-bench load: run {}, {} requests to {}.* on {}, {} replies to commands",
        run.tag, run.encoding, run.subject_prefix, run.nats_url, run.reply
    );
    println!(
        "{} clients ({} for gets), {} users x {} carts, mix {}, {} s per phase, {} s per sweep step",
        run.clients, run.get_clients, run.users, run.carts_per_user, run.mix, run.phase_secs, run.sweep_secs
    );
    println!("mean request body, bytes: {}", sizes.join(", "));
}

fn progress(what: &str) {
    eprintln!("cart-bench: {what}...");
}

/// Pings `$SRV.PING.<service>` until an instance answers, the process of `--pid` is
/// gone, or `wait_secs` pass.
async fn wait_for_service(
    driver: &Driver,
    service: &str,
    wait_secs: u64,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    let subject = format!("$SRV.PING.{service}");
    let started = Instant::now();
    loop {
        let ping = driver
            .client()
            .request(subject.clone(), bytes::Bytes::new());
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), ping).await {
            return Ok(());
        }
        if let Some(pid) = pid.filter(|&pid| !alive(pid)) {
            bail!("process {pid} (--pid) ended before the service answered {subject}");
        }
        if started.elapsed() >= Duration::from_secs(wait_secs) {
            bail!("no `{service}` service answered {subject} within {wait_secs} s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether `pid` runs: it exists and is not a zombie (a crashed cartd stays a zombie
/// until the shell that started it reaps it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        !matches!(state, None | Some('Z' | 'X'))
    })
}

/// Resident memory of `pid` in MB (VmRSS).
fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    status_mb(pid, "VmRSS")
}

/// A `kB` field of /proc/<pid>/status, in MB.
fn status_mb(pid: u32, field: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path} (--pid)"))?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))?;
    Ok(kb as f64 / 1024.0)
}

fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_loaded() {
        for url in [
            "nats://127.0.0.1:4222",
            "127.0.0.1:4222",
            "nats://localhost",
            "nats://127.0.0.1:4222,nats://[::1]:4223",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://u:p@[::1]/db?sslmode=disable",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            ensure_loopback("x", url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        for url in [
            "nats://10.0.0.1:4222",
            "nats://example.com",
            "postgres://postgres@192.168.1.5/db",
            "postgres://127.0.0.1/db?host=10.1.1.1",
            "nats://127.0.0.1,nats://8.8.8.8",
        ] {
            assert!(ensure_loopback("x", url).is_err(), "{url}");
        }
    }

    #[test]
    fn sweep_steps_parse() {
        assert_eq!("1, 4,16".parse::<Steps>().unwrap().0, [1, 4, 16]);
        assert!("none".parse::<Steps>().unwrap().0.is_empty());
        assert!("".parse::<Steps>().unwrap().0.is_empty());
        for bad in ["0", "1,,2", "x", "-1", "100001"] {
            assert!(bad.parse::<Steps>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_fields_are_read_in_mb() {
        let me = std::process::id();
        let rss = rss_mb(me).unwrap();
        assert!(rss > 0.1 && rss < 100_000.0, "{rss}");
        assert!(status_mb(me, "NoSuchField").is_err());
        assert!(rss_mb(u32::MAX).is_err());
        assert!(alive(me));
        assert!(!alive(u32::MAX));
    }
}
