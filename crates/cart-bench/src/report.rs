//! Every figure of a load run: the JSON document (`--json-out`) and the tables printed
//! on stdout, Markdown-shaped so they paste into BENCHMARKS.md.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::limits::PgLimit;
use crate::stats::Summary;

/// The latency target: p99 at most this at half of the maximum throughput.
pub const HALF_LOAD_P99_TARGET_MS: f64 = 10.0;

#[derive(Debug, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub limits: Limits,
    /// `commands` (phase 2), `gets` (phase 3) and `mix` (phase 4).
    pub phases: BTreeMap<String, Phase>,
    pub half_load: Option<HalfLoad>,
    pub sweep: Vec<SweepStep>,
    pub ratios: Ratios,
    pub memory: Option<Memory>,
    /// Files written besides this one.
    pub charts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RunInfo {
    pub tag: String,
    pub started_unix_secs: u64,
    pub encoding: &'static str,
    /// What commands asked to be answered with: `full` (the cart) or `minimal`.
    pub reply: &'static str,
    pub nats_url: String,
    pub subject_prefix: String,
    pub project_id: u64,
    pub users: usize,
    pub carts_per_user: usize,
    pub skus: Vec<String>,
    pub mix: String,
    pub clients: usize,
    pub get_clients: usize,
    pub nats_connections: usize,
    pub phase_secs: f64,
    pub sweep_secs: f64,
    pub timeout_ms: u64,
    pub max_requests_per_phase: u64,
    /// Mean request body size per operation, in bytes.
    pub request_bytes: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
pub struct Limits {
    pub nats_echo: Echo,
    pub pg_single_insert: PgLimit,
    pub pg_batch_insert: PgLimit,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Echo {
    pub concurrency: usize,
    /// The body of each echo request: a cart get's.
    pub request_bytes: f64,
    pub secs: f64,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub clients: usize,
    pub secs: f64,
    /// Per operation, plus `all` (and `commands` when gets were mixed in).
    pub ops: BTreeMap<String, Summary>,
    /// Where the CPU went meanwhile (None when /proc could not be read).
    pub cpu: Option<crate::cpu::CpuUse>,
}

impl Phase {
    /// The figures of every operation together.
    pub fn all(&self) -> Option<&Summary> {
        self.ops.get("all")
    }
}

#[derive(Debug, Serialize)]
pub struct HalfLoad {
    /// Half of the commands phase's OK replies per second.
    pub target_per_sec: f64,
    pub secs: f64,
    /// Latency measured from each command's scheduled send time.
    pub ops: BTreeMap<String, Summary>,
    /// Of the OK replies.
    pub p99_ms: f64,
    pub p99_target_ms: f64,
    /// At least 99 % of all commands sent were answered OK within the target.
    pub p99_target_met: bool,
}

#[derive(Debug, Serialize)]
pub struct SweepStep {
    pub clients: usize,
    pub secs: f64,
    pub commands: Summary,
    pub pg_single_insert: PgLimit,
}

#[derive(Debug, Default, Serialize)]
pub struct Ratios {
    pub commands_per_sec: f64,
    pub pg_single_insert_tx_per_sec: f64,
    /// Commands/s over single-row transactions/s at the same concurrency.
    pub commands_vs_pg_single_insert: f64,
    pub pg_batch_insert_rows_per_sec: f64,
    /// Commands/s over batched rows/s.
    pub commands_vs_pg_batch_rows: f64,
    pub gets_per_sec: f64,
    pub nats_echo_per_sec: f64,
    /// Gets/s over echo requests/s at the same concurrency.
    pub gets_vs_nats_echo: f64,
}

impl Ratios {
    pub fn new(commands: f64, single: f64, batch_rows: f64, gets: f64, echo: f64) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Self {
            commands_per_sec: commands,
            pg_single_insert_tx_per_sec: single,
            commands_vs_pg_single_insert: ratio(commands, single),
            pg_batch_insert_rows_per_sec: batch_rows,
            commands_vs_pg_batch_rows: ratio(commands, batch_rows),
            gets_per_sec: gets,
            nats_echo_per_sec: echo,
            gets_vs_nats_echo: ratio(gets, echo),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub pid: u32,
    pub rss_at_start_mb: f64,
    pub rss_before_mb: f64,
    pub rss_after_mb: f64,
    /// VmHWM: the most resident memory the process ever had.
    pub rss_peak_mb: f64,
    pub carts_requested: u64,
    /// Distinct fresh carts answered OK (one put each).
    pub carts_written: u64,
    pub secs: f64,
    pub puts: Summary,
    /// (after - before) / carts written.
    pub bytes_per_cart: f64,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn errors(s: &Summary) -> String {
    if s.errors == 0 {
        return "0".to_owned();
    }
    let kinds: Vec<String> = s
        .errors_by_kind
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect();
    format!("{} ({})", s.errors, kinds.join(", "))
}

/// The per-operation table of a phase, operations first, then the totals.
pub fn print_ops(title: &str, ops: &BTreeMap<String, Summary>) {
    println!();
    println!("{title}");
    println!();
    println!("| operation | OK/s | OK | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let order = ["fill", "put", "delete", "clear", "get", "commands", "all"];
    for name in order {
        if let Some(s) = ops.get(name) {
            let l = &s.latency;
            println!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                rate(s.per_sec),
                s.ok,
                errors(s),
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.p999_ms),
                ms(l.max_ms)
            );
        }
    }
}

/// The CPU table of a phase: who used how much, per OK request.
pub fn print_cpu(cpu: &crate::cpu::CpuUse) {
    println!();
    println!(
        "CPU meanwhile: the machine was {:.0} % busy ({} cores)",
        cpu.machine_percent, cpu.cores
    );
    println!();
    println!("| process | % of one core | CPU us per OK request |");
    println!("|---|---|---|");
    for name in ["cartd", "nats-server", "postgres", "cart-bench"] {
        if let Some(percent) = cpu.percent_of_a_core.get(name) {
            let us = cpu
                .us_per_request
                .get(name)
                .map_or("-".to_owned(), |u| format!("{u:.0}"));
            println!("| {name} | {percent:.0} | {us} |");
        }
    }
    if let Some(us) = cpu.us_per_request.get("machine") {
        println!(
            "| whole machine | {:.0} | {us:.0} |",
            cpu.machine_percent * cpu.cores as f64
        );
    }
}

pub fn print_limits(limits: &Limits) {
    println!();
    println!("Limits of this machine");
    println!();
    println!("| limit | concurrency | per second | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    let e = &limits.nats_echo;
    println!(
        "| NATS request/reply echo, {:.0} B requests | {} in flight | {} requests | {} | {} | {} |",
        e.request_bytes,
        e.concurrency,
        rate(e.summary.per_sec),
        ms(e.summary.latency.p50_ms),
        ms(e.summary.latency.p99_ms),
        errors(&e.summary)
    );
    for (what, pg, figure) in [
        (
            "PostgreSQL insert, 1 event row per transaction".to_owned(),
            &limits.pg_single_insert,
            format!("{} transactions", rate(limits.pg_single_insert.tx_per_sec)),
        ),
        (
            format!(
                "PostgreSQL insert, {} event rows per transaction",
                limits.pg_batch_insert.rows_per_tx
            ),
            &limits.pg_batch_insert,
            format!("{} rows", rate(limits.pg_batch_insert.rows_per_sec)),
        ),
    ] {
        println!(
            "| {what} | {} connections | {figure} | {} | {} | {} |",
            pg.connections,
            ms(pg.latency.p50_ms),
            ms(pg.latency.p99_ms),
            pg_errors(pg)
        );
    }
    if let Some(note) = &limits.note {
        println!();
        println!("Note: {note}.");
    }
}

fn pg_errors(pg: &PgLimit) -> String {
    match &pg.first_error {
        Some(first) => format!("{} (first: {first})", pg.errors),
        None => pg.errors.to_string(),
    }
}

pub fn print_half_load(h: &HalfLoad) {
    print_ops(
        &format!(
            "Half load: commands at a fixed {} per second (half of the commands phase), latency from the scheduled send time",
            rate(h.target_per_sec)
        ),
        &h.ops,
    );
    println!();
    println!(
        "p99 at half load: {} ms (target <= {} ms: {})",
        ms(h.p99_ms),
        h.p99_target_ms,
        if h.p99_target_met { "met" } else { "NOT met" }
    );
}

pub fn print_sweep(steps: &[SweepStep]) {
    println!();
    println!("Concurrency sweep: the command mix, and the single-row insert limit at the same concurrency");
    println!();
    println!("| clients | commands/s | p50 ms | p99 ms | errors | PG 1-row tx/s | PG connections | commands / PG tx |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in steps {
        let c = &s.commands;
        let ratio = if s.pg_single_insert.tx_per_sec > 0.0 {
            format!("{:.2}", c.per_sec / s.pg_single_insert.tx_per_sec)
        } else {
            "-".to_owned()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {ratio} |",
            s.clients,
            rate(c.per_sec),
            ms(c.latency.p50_ms),
            ms(c.latency.p99_ms),
            errors(c),
            rate(s.pg_single_insert.tx_per_sec),
            s.pg_single_insert.connections
        );
    }
}

pub fn print_ratios(r: &Ratios, clients: usize, get_clients: usize) {
    println!();
    println!("The service against the limits");
    println!();
    println!("| figure | service | limit | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| commands/s vs PostgreSQL 1-row transactions/s ({clients} clients) | {} | {} | {:.3} |",
        rate(r.commands_per_sec),
        rate(r.pg_single_insert_tx_per_sec),
        r.commands_vs_pg_single_insert
    );
    println!(
        "| commands/s vs PostgreSQL batched rows/s | {} | {} | {:.3} |",
        rate(r.commands_per_sec),
        rate(r.pg_batch_insert_rows_per_sec),
        r.commands_vs_pg_batch_rows
    );
    println!(
        "| gets/s vs NATS echo requests/s ({get_clients} in flight) | {} | {} | {:.3} |",
        rate(r.gets_per_sec),
        rate(r.nats_echo_per_sec),
        r.gets_vs_nats_echo
    );
}

pub fn print_memory(m: &Memory) {
    println!();
    println!("Memory of cartd (pid {}), VmRSS", m.pid);
    println!();
    println!("| when | MB |");
    println!("|---|---|");
    println!("| at the start of the run | {:.1} |", m.rss_at_start_mb);
    println!("| before the fresh-cart phase | {:.1} |", m.rss_before_mb);
    println!(
        "| after one put on each of {} fresh carts ({} requested, {} errors, {} puts/s) | {:.1} |",
        m.carts_written,
        m.carts_requested,
        errors(&m.puts),
        rate(m.puts.per_sec),
        m.rss_after_mb
    );
    println!("| peak (VmHWM) | {:.1} |", m.rss_peak_mb);
    println!();
    println!(
        "Growth: {:+.1} MB, {:.0} bytes per cart.",
        m.rss_after_mb - m.rss_before_mb,
        m.bytes_per_cart
    );
}
