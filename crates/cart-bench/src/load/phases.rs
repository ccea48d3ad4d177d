//! The phases of `cart-bench load`: the limits, the closed-loop phases, the sized echo,
//! half load, the sweep and the memory phase, each printed as it ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chart::{self, Series};
use crate::cpu;
use crate::limits::{self, PgLimits};
use crate::pgstat::{self, PgStat, PgStatReport};
use crate::report::{self, HalfLoad, Memory, Phase, SweepStep};
use crate::runner::{Driver, PhaseRun};
use crate::stats::Summary;
use crate::workload::{CommandHeaders, Mix, Op};

use super::process::{rss_mb, status_mb};
use super::{progress, LoadArgs};

/// Seconds of quiet before the get-sized echo: the gets phase writes no events, so after
/// this the service's relay and projections have nothing left to do and the echo runs on
/// an idle service, as the small echo did at the start.
const ECHO_SETTLE: Duration = Duration::from_secs(1);

/// What every phase shares.
pub struct Bench<'a> {
    pub args: &'a LoadArgs,
    pub driver: Driver,
    pub phase: Duration,
    pub budget: u64,
    /// The mix without gets.
    pub commands_mix: Mix,
}

impl Bench<'_> {
    /// The small NATS echo at `--get-clients`, then the inserts at `--clients`
    /// connections. Returns the scratch database for the sweep.
    pub async fn limits(&self, get_bytes: f64) -> anyhow::Result<(report::Limits, PgLimits)> {
        let args = self.args;
        progress(&format!(
            "limits: NATS echo of the request, {} in flight",
            args.get_clients
        ));
        let echo = limits::nats_echo(
            &self.driver,
            &args.nats_url,
            args.get_clients,
            None,
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
            nats_echo_small: report::Echo {
                concurrency: args.get_clients,
                request_bytes: get_bytes,
                reply_bytes: get_bytes,
                secs: echo.elapsed.as_secs_f64(),
                summary: Summary::of(echo.recorder.op(Op::Get), echo.elapsed),
            },
            nats_echo_get_sized: None,
            pg_single_insert,
            pg_batch_insert,
            note: pg.note.clone(),
        };
        Ok((limits, pg))
    }

    /// The echo at `--get-clients` answered with `reply_bytes` (the gets phase's mean
    /// reply), after [`ECHO_SETTLE`]; its requests are get requests, as the small echo's.
    pub async fn sized_echo(&self, reply_bytes: f64) -> anyhow::Result<report::Echo> {
        let args = self.args;
        tokio::time::sleep(ECHO_SETTLE).await;
        let reply = reply_bytes.round() as usize;
        progress(&format!(
            "limits: NATS echo with {reply} B replies, {} in flight",
            args.get_clients
        ));
        let echo = limits::nats_echo(
            &self.driver,
            &args.nats_url,
            args.get_clients,
            Some(reply),
            self.phase,
            self.budget,
        )
        .await?;
        let summary = Summary::of(echo.recorder.op(Op::Get), echo.elapsed);
        let echo = report::Echo {
            concurrency: args.get_clients,
            request_bytes: summary.mean_request_body_bytes.unwrap_or(0.0),
            reply_bytes: reply as f64,
            secs: echo.elapsed.as_secs_f64(),
            summary,
        };
        report::print_sized_echo(&echo);
        Ok(echo)
    }

    /// The command mix at `--clients` for `--warmup-secs`, not measured: the carts reach
    /// the size the mix keeps them at, cartd's cache and PostgreSQL's plans warm up, and
    /// the three command phases after it start alike.
    pub async fn warm_up(&self) {
        let args = self.args;
        if args.warmup_secs <= 0.0 {
            return;
        }
        progress(&format!(
            "warm-up: the command mix, {} clients, {} s",
            args.clients, args.warmup_secs
        ));
        let done = closed(
            &self.driver,
            &self.commands_mix,
            args.clients,
            self.driver.workload().default_headers(),
            Duration::from_secs_f64(args.warmup_secs),
            self.budget,
        )
        .await;
        let all = done.recorder.combined(|_| true);
        let s = Summary::of(&all, done.elapsed);
        println!();
        println!(
            "Warm-up (not measured): {} commands OK in {:.1} s, {} errors",
            s.ok,
            done.elapsed.as_secs_f64(),
            s.errors
        );
    }

    /// A closed-loop phase of `mix` at `clients`, its commands sent with `headers`,
    /// printed as it ends.
    pub async fn closed_phase(
        &self,
        title: &str,
        mix: &Mix,
        clients: usize,
        headers: CommandHeaders,
    ) -> (Phase, PhaseRun) {
        progress(&format!("phase: {title}, {clients} clients"));
        let before = cpu::sample(self.args.pid);
        let done = closed(&self.driver, mix, clients, headers, self.phase, self.budget).await;
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
    pub async fn half_load(
        &self,
        commands_per_sec: f64,
        pgstat: Option<&PgStat>,
    ) -> Option<(HalfLoad, Vec<(f64, f64)>)> {
        if commands_per_sec < 2.0 {
            println!();
            println!("Half load: skipped, the commands phase had no throughput to halve.");
            return None;
        }
        let target = commands_per_sec / 2.0;
        // Latency at half load, not while the relay, the projections and autovacuum
        // catch up on the full-speed phases before it.
        let (waited, busy) = cpu::settle(15.0, Duration::from_secs(60)).await;
        progress(&format!(
            "half load: waited {:.1} s for the machine to settle ({busy:.0} % busy)",
            waited.as_secs_f64()
        ));
        progress(&format!("phase: half load, {target:.0} commands/s paced"));
        let pgstat = match pgstat {
            Some(stat) => stat.reset().await.ok().map(|()| stat),
            None => None,
        };
        let mix = self.commands_mix.clone();
        let before = cpu::sample(self.args.pid);
        let paced = self
            .driver
            .open_loop(target, self.phase, self.budget, move |w, rng, _| {
                let op = mix.pick(rng);
                w.request(op, rng)
            })
            .await;
        let after = cpu::sample(self.args.pid);
        let all = paced.recorder.combined(|_| true);
        let ops = paced.recorder.summarize(paced.elapsed);
        let sent = ops.get("all").map_or(0, |s| s.ok + s.errors);
        let ok = ops.get("all").map_or(0, |s| s.ok);
        // The p99 is over every command sent, a failed one counting as slower than any
        // target: the target holds when 99 % of all commands were OK within it.
        let target_ms = report::HALF_LOAD_P99_TARGET_MS;
        let within = all
            .latencies
            .count_within(Duration::from_secs_f64(target_ms / 1000.0));
        let statements = match pgstat {
            Some(stat) => Some(match stat.read("half load", ok).await {
                Ok(report) => report,
                Err(e) => PgStatReport::unavailable("half load", format!("{e:#}")),
            }),
            None => None,
        };
        let half_load = HalfLoad {
            target_per_sec: target,
            secs: paced.elapsed.as_secs_f64(),
            p99_ms: all.latencies.percentiles().p99_ms,
            p99_target_ms: target_ms,
            p99_target_met: sent > 0 && within as f64 >= 0.99 * sent as f64,
            ops,
            cpu: before.until(&after, ok),
            statements,
        };
        report::print_half_load(&half_load);
        if let Some(statements) = &half_load.statements {
            pgstat::print(statements);
        }
        Some((half_load, all.latencies.quantile_curve()))
    }

    /// Each step: the command mix at that concurrency, then the single-row insert limit
    /// at as many connections (capped).
    pub async fn sweep(&self, pg: &PgLimits) -> anyhow::Result<Vec<SweepStep>> {
        let duration = Duration::from_secs_f64(self.args.sweep_secs);
        let mut steps = Vec::new();
        for &clients in &self.args.sweep.0 {
            progress(&format!("sweep: {clients} clients"));
            let done = closed(
                &self.driver,
                &self.commands_mix,
                clients,
                self.driver.workload().default_headers(),
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
    pub async fn memory(&self, pid: u32, rss_at_start_mb: f64) -> anyhow::Result<Memory> {
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
pub fn write_charts(
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
    headers: CommandHeaders,
    duration: Duration,
    budget: u64,
) -> PhaseRun {
    let mix = mix.clone();
    driver
        .closed_loop(clients, duration, budget, move |w, rng, _| {
            let op = mix.pick(rng);
            w.request_with(op, rng, headers)
        })
        .await
}

/// Percentile curves of each command and of all commands together.
pub fn latency_series(run: &PhaseRun, what: &str) -> Vec<Series> {
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
