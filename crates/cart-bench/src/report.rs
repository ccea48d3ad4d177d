//! Every figure of a load run: the JSON document (`--json-out`) and the tables printed
//! on stdout, Markdown-shaped so they paste into BENCHMARKS.md.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cpu::CpuUse;
use crate::limits::PgLimit;
use crate::pgstat::PgStatReport;
use crate::stats::Summary;

pub mod targets;

pub use targets::{print_targets, Ratios, Target, Throughputs};

/// Issue 17's latency target: command p99 at most this at half of the maximum throughput.
pub const HALF_LOAD_P99_TARGET_MS: f64 = 15.0;

#[derive(Debug, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub limits: Limits,
    /// `commands`, `commands_without_ids`, `commands_minimal_reply`, `gets` and `mix`.
    pub phases: BTreeMap<String, Phase>,
    /// The service's statements over the `commands` phase.
    pub pg_stat_statements: Option<PgStatReport>,
    pub half_load: Option<HalfLoad>,
    pub sweep: Vec<SweepStep>,
    pub ratios: Ratios,
    /// Issue 17's targets, each with its figure and whether it was met.
    pub targets: Vec<Target>,
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
    /// Seconds of unmeasured command mix before the command phases.
    pub warmup_secs: f64,
    pub sweep_secs: f64,
    pub timeout_ms: u64,
    pub max_requests_per_phase: u64,
    /// Mean request body size per operation, in bytes.
    pub request_bytes: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
pub struct Limits {
    /// The echo answered with the request itself (a get request's bytes), at the start.
    pub nats_echo_small: Echo,
    /// The echo answered with a reply of the gets phase's mean reply size, right after
    /// the gets phase: the one the gets are set against (None when there were no gets).
    pub nats_echo_get_sized: Option<Echo>,
    pub pg_single_insert: PgLimit,
    pub pg_batch_insert: PgLimit,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Echo {
    pub concurrency: usize,
    /// The body of each echo request: a cart get's.
    pub request_bytes: f64,
    /// The body of each echo reply: the request's own, or the mean get reply's.
    pub reply_bytes: f64,
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
    pub cpu: Option<CpuUse>,
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
    /// Where the CPU went meanwhile.
    pub cpu: Option<CpuUse>,
    /// The service's statements meanwhile: at half load the batches are smaller, so
    /// what each batch costs weighs more on every command.
    pub statements: Option<crate::pgstat::PgStatReport>,
}

#[derive(Debug, Serialize)]
pub struct SweepStep {
    pub clients: usize,
    pub secs: f64,
    pub commands: Summary,
    pub pg_single_insert: PgLimit,
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

pub(crate) fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(crate) fn rate(v: f64) -> String {
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
pub fn print_cpu(cpu: &CpuUse) {
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
    print_echo_row(&limits.nats_echo_small);
    if let Some(echo) = &limits.nats_echo_get_sized {
        print_echo_row(echo);
    }
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

/// The echo measured after the gets phase, in the limits table's shape.
pub fn print_sized_echo(e: &Echo) {
    println!();
    println!(
        "NATS echo with replies of a get reply's size (after the gets phase, the service idle)"
    );
    println!();
    println!("| limit | concurrency | per second | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    print_echo_row(e);
}

fn print_echo_row(e: &Echo) {
    println!(
        "| NATS request/reply echo, {:.0} B requests, {:.0} B replies | {} in flight | {} requests | {} | {} | {} |",
        e.request_bytes,
        e.reply_bytes,
        e.concurrency,
        rate(e.summary.per_sec),
        ms(e.summary.latency.p50_ms),
        ms(e.summary.latency.p99_ms),
        errors(&e.summary)
    );
}

/// Mean body bytes per operation and phase: what the service decodes and encodes, NATS
/// headers left out.
pub fn print_bytes(phases: &[(&str, &Phase)], echo: Option<&Echo>) {
    let bytes = |b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{b:.0}"));
    println!();
    println!("Bytes per request: mean body (payload) bytes, NATS headers not counted");
    println!();
    println!("| phase | operation | request body B | reply body B | OK/s | body MB/s both ways |");
    println!("|---|---|---|---|---|---|");
    for (name, phase) in phases {
        for op in ["fill", "put", "delete", "clear", "get", "all"] {
            let Some(s) = phase.ops.get(op) else { continue };
            // `all` only adds to a phase of several operations.
            if op == "all" && phase.ops.len() == 1 {
                continue;
            }
            let volume = (s.mean_request_body_bytes.unwrap_or(0.0)
                + s.mean_reply_body_bytes.unwrap_or(0.0))
                * s.per_sec
                / 1e6;
            println!(
                "| {name} | {op} | {} | {} | {} | {volume:.1} |",
                bytes(s.mean_request_body_bytes),
                bytes(s.mean_reply_body_bytes),
                rate(s.per_sec)
            );
        }
    }
    if let Some(e) = echo {
        println!(
            "| NATS echo (limit) | get-sized | {:.0} | {:.0} | {} | {:.1} |",
            e.request_bytes,
            e.reply_bytes,
            rate(e.summary.per_sec),
            (e.request_bytes + e.reply_bytes) * e.summary.per_sec / 1e6
        );
    }
}

/// The CPU of every phase in one table (microseconds per OK request), for the budget.
pub fn print_cpu_budget(phases: &[(&str, Option<&CpuUse>)]) {
    println!();
    println!("CPU per OK request by phase, us (from /proc)");
    println!();
    println!(
        "| phase | cartd | nats-server | postgres | cart-bench | whole machine | machine busy % |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, cpu) in phases {
        let Some(cpu) = cpu else {
            println!("| {name} | - | - | - | - | - | - |");
            continue;
        };
        let us = |who: &str| {
            cpu.us_per_request
                .get(who)
                .map_or("-".to_owned(), |u| format!("{u:.0}"))
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.0} |",
            us("cartd"),
            us("nats-server"),
            us("postgres"),
            us("cart-bench"),
            us("machine"),
            cpu.machine_percent
        );
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
    if let Some(cpu) = &h.cpu {
        print_cpu(cpu);
    }
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
