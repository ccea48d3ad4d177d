//! The failover suite's figures: per fault, what the clients saw and what the checks
//! found; printed as a table (docs/operations.md quotes it) and written as JSON.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::checks::Checks;
use super::load::ClientLog;
use super::Fault;
use crate::fulfilment::figures::Quantiles;

#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    pub fault: String,
    pub load_secs: f64,
    /// How long the fault's own steps took (kill, wait, start and readiness).
    pub steps_secs: f64,
    pub drain_secs: f64,
    /// Requests sent (first tries and retries), answered OK, and failed.
    pub sent: usize,
    pub acked: usize,
    pub failed: usize,
    /// Commands given up after `--give-up-secs` of failures.
    pub abandoned: u64,
    pub purchases: usize,
    /// Per client: seconds from the fault until commands succeed again (see `recovered`).
    pub recovery: Option<Quantiles>,
    /// Seconds from the fault to the last failed request (0 when none failed).
    pub last_failure_secs: f64,
    pub first_errors: Vec<String>,
    pub checks: Checks,
}

impl FaultReport {
    pub fn new(
        fault: Fault,
        logs: &[ClientLog],
        at: Instant,
        load_secs: f64,
        steps_secs: f64,
        drain_secs: f64,
        checks: Checks,
    ) -> Self {
        let attempts = logs.iter().flat_map(|l| l.attempts.iter());
        let sent = attempts.clone().count();
        let acked = attempts.clone().filter(|a| a.ok).count();
        let last_failure_secs = attempts
            .filter(|a| !a.ok && a.answered > at)
            .map(|a| a.answered.duration_since(at).as_secs_f64())
            .fold(0.0, f64::max);
        let recovery = Quantiles::of(logs.iter().filter_map(|l| recovered(l, at)).collect());
        let mut first_errors: Vec<String> = Vec::new();
        for e in logs.iter().flat_map(|l| l.errors.iter()) {
            if first_errors.len() < 5 && !first_errors.contains(e) {
                first_errors.push(e.clone());
            }
        }
        Self {
            fault: name(fault).to_owned(),
            load_secs,
            steps_secs,
            drain_secs,
            sent,
            acked,
            failed: sent - acked,
            abandoned: logs.iter().map(|l| l.abandoned).sum(),
            purchases: logs.iter().map(|l| l.paid.len()).sum(),
            recovery,
            last_failure_secs,
            first_errors,
            checks,
        }
    }

    pub fn ok(&self) -> bool {
        self.checks.ok() && (self.fault != name(Fault::Rolling) || self.failed == 0)
    }
}

/// Seconds from the fault at `at` until the client's first OK answer to a request sent
/// after its last failure (after its first request sent after the fault, when nothing
/// failed): when its commands succeed again.
fn recovered(log: &ClientLog, at: Instant) -> Option<f64> {
    let from = log
        .attempts
        .iter()
        .filter(|a| !a.ok && a.answered > at)
        .map(|a| a.answered)
        .max()
        .unwrap_or(at);
    log.attempts
        .iter()
        .find(|a| a.ok && a.sent >= from)
        .map(|a| a.answered.duration_since(at).as_secs_f64())
}

fn name(fault: Fault) -> &'static str {
    match fault {
        Fault::Nats => "kill -9 the NATS node leading CART_EVENTS, restart it",
        Fault::Pg => "kill -9 the PostgreSQL primary (Patroni + postmaster), rejoin",
        Fault::Cartd => "kill -9 the cartd holding the relay locks, restart it",
        Fault::Webhook => "kill -9 one cart-webhook, restart it",
        Fault::Rolling => "rolling restart of both cartd (SIGTERM)",
    }
}

pub fn print_fault(r: &FaultReport) {
    println!("{}", row(r));
    println!(
        "  load {:.0} s, fault steps {:.1} s, drain {:.1} s, last failure {:.1} s after the fault; checks {}",
        r.load_secs,
        r.steps_secs,
        r.drain_secs,
        r.last_failure_secs,
        if r.checks.ok() { "passed" } else { "FAILED" }
    );
    for e in &r.first_errors {
        println!("    error: {e}");
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s"))
}

pub fn print_table(reports: &[FaultReport]) {
    println!();
    println!("| fault | requests sent / OK / failed | abandoned | purchases | recovery p50 / max | acked missing | duplicate commands / orders | CART_EVENTS: log / msgs, missing, dup, out of order | CART_ORDERS: log / msgs, missing, dup, out of order | webhooks missing / duplicates (same key) / foreign key |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        println!("{}", row(r));
    }
}

/// One fault's row of the table.
fn row(r: &FaultReport) -> String {
    let c = &r.checks;
    let stream = |s: &super::checks::StreamCheck| {
        format!(
            "{} / {}, {}, {}, {}",
            s.log_events,
            s.messages,
            s.missing,
            s.duplicated + s.extra,
            s.out_of_order
        )
    };
    format!(
        "| {} | {} / {} / {} | {} | {} | {} / {} | {} | {} / {} | {} | {} | {} / {} / {} |",
        r.fault,
        r.sent,
        r.acked,
        r.failed,
        r.abandoned,
        r.purchases,
        secs(r.recovery.map(|q| q.p50)),
        secs(r.recovery.map(|q| q.max)),
        c.acked_missing,
        c.duplicate_commands,
        c.duplicate_orders,
        stream(&c.events),
        stream(&c.orders),
        c.webhooks_missing,
        c.webhook_duplicates,
        c.webhook_key_mismatches,
    )
}

pub fn write_json(path: &Path, reports: &[FaultReport]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(reports)?)
        .with_context(|| format!("write {}", path.display()))
}
