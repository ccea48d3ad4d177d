//! The figures of each phase: a line as it ends, a table like issue 16's at the end, and
//! every figure as JSON.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::figures::{Delivery, PhaseSpec, Quantiles};
use super::lag::{Lag, Relays};
use super::purchase::Purchases;
use super::stages::Stages;
use crate::runner::PhaseRun;
use crate::stats::{Percentiles, Summary};

#[derive(Debug, Serialize)]
pub struct PhaseReport {
    pub phase: PhaseSpec,
    /// Seconds of load, from the first request to the last reply.
    pub load_secs: f64,
    pub purchases: usize,
    pub purchases_per_sec: f64,
    pub purchase_errors: u64,
    pub first_errors: Vec<String>,
    /// Fill + checkout + payment, as the users saw it (milliseconds).
    pub purchase_latency: Percentiles,
    /// The cart clients' commands, when the phase had any.
    pub cart_commands: Option<Summary>,
    pub delivery: Delivery,
    /// Where the webhooks' time went, per stage (`stages`).
    pub stages: Stages,
    /// How long the wait for missing webhooks and `done`s took.
    pub drain_secs: f64,
    pub cart_relay_max_lag: Lag,
    pub order_relay_max_lag: Lag,
    pub relays_at_end_of_load: Relays,
    pub relays_after_drain: Relays,
}

impl PhaseReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        phase: PhaseSpec,
        load_secs: f64,
        purchases: &Purchases,
        carts: Option<PhaseRun>,
        (delivery, stages): (Delivery, Stages),
        drain_secs: f64,
        (cart_relay_max_lag, order_relay_max_lag): (Lag, Lag),
        relays_at_end_of_load: Relays,
        relays_after_drain: Relays,
    ) -> Self {
        Self {
            phase,
            load_secs,
            purchases: purchases.paid.len(),
            purchases_per_sec: purchases.paid.len() as f64 / load_secs.max(1e-9),
            purchase_errors: purchases.errors,
            first_errors: purchases.first_errors.clone(),
            purchase_latency: purchases.latency.percentiles(),
            cart_commands: carts.map(|run| {
                run.recorder
                    .summarize(run.elapsed)
                    .remove("all")
                    .unwrap_or_else(|| Summary::of(&Default::default(), run.elapsed))
            }),
            delivery,
            stages,
            drain_secs,
            cart_relay_max_lag,
            order_relay_max_lag,
            relays_at_end_of_load,
            relays_after_drain,
        }
    }
}

fn secs(q: Option<Quantiles>, pick: impl Fn(&Quantiles) -> f64) -> String {
    q.map_or_else(|| "-".to_owned(), |q| format!("{:.2} s", pick(&q)))
}

fn lag(l: Option<Lag>) -> String {
    l.map_or_else(
        || "?".to_owned(),
        |l| format!("{:.1} s / {}", l.seconds, l.events),
    )
}

/// One phase, as it ends, with what the table leaves out.
pub fn print_phase(r: &PhaseReport) {
    println!(
        "  {} purchases in {:.1} s ({:.1}/s), {} failed; purchase p50 {:.0} ms, p99 {:.0} ms",
        r.purchases,
        r.load_secs,
        r.purchases_per_sec,
        r.purchase_errors,
        r.purchase_latency.p50_ms,
        r.purchase_latency.p99_ms
    );
    for e in &r.first_errors {
        println!("    error: {e}");
    }
    if let Some(c) = &r.cart_commands {
        println!(
            "  cart clients: {:.0} commands/s, {} errors, p50 {:.1} ms, p99 {:.1} ms",
            c.per_sec, c.errors, c.latency.p50_ms, c.latency.p99_ms
        );
    }
    let d = &r.delivery;
    println!(
        "  drain {:.1} s: webhooks missing {} of {}, not done {}, duplicate keys {} ({} extra requests)",
        r.drain_secs, d.webhooks_missing, d.paid, d.not_done, d.duplicate_keys, d.duplicate_arrivals
    );
    println!(
        "  relay lag (seconds / events), max during load: cart {}, order {}; end of load: cart {}, order {}; after drain: cart {}, order {}",
        lag(Some(r.cart_relay_max_lag)),
        lag(Some(r.order_relay_max_lag)),
        lag(r.relays_at_end_of_load.cart),
        lag(r.relays_at_end_of_load.order),
        lag(r.relays_after_drain.cart),
        lag(r.relays_after_drain.order),
    );
    print_stages(&r.stages);
    println!(
        "  feed.status at end of load: {}",
        r.relays_at_end_of_load.feed_status
    );
}

fn print_stages(s: &Stages) {
    let q = |q: Option<Quantiles>| {
        q.map_or_else(
            || "-".to_owned(),
            |q| format!("p50 {:.3} s, p99 {:.3} s, max {:.3} s", q.p50, q.p99, q.max),
        )
    };
    println!("  stages: relay and intake {}", q(s.relay_and_intake));
    println!("          queue (recorded -> first attempt) {}", q(s.queue));
    println!("          http {}", q(s.http));
    println!("          attempt end -> done {}", q(s.done_after_webhook));
    if let Some(t) = s.tail {
        println!(
            "  the slowest 1 % ({} purchases), median per stage: relay and intake {:.3} s, queue {:.3} s, http {:.3} s",
            t.purchases, t.relay_and_intake_p50, t.queue_p50, t.http_p50
        );
    }
    for w in &s.worst_seconds {
        println!(
            "  worst second {}: {} purchases, slowest {:.2} s",
            w.at, w.purchases, w.max_secs
        );
    }
}

/// The table of every phase, in the shape plus `done`, duplicates and lag.
pub fn print_table(reports: &[PhaseReport]) {
    println!();
    println!(
        "| phase | purchases/s | webhook p50 | p90 | p99 | max | done p50 | done p99 | done max \
         | webhooks missing | not done | duplicate keys | cart commands/s \
         | cart relay lag, end (max) | order relay lag, end (max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let (w, d) = (r.delivery.to_webhook, r.delivery.to_done);
        let end =
            |l: Option<Lag>| l.map_or_else(|| "?".to_owned(), |l| format!("{:.1} s", l.seconds));
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} of {} | {} | {} | {} | {} ({:.1} s) | {} ({:.1} s) |",
            r.phase,
            r.purchases_per_sec,
            secs(w, |q| q.p50),
            secs(w, |q| q.p90),
            secs(w, |q| q.p99),
            secs(w, |q| q.max),
            secs(d, |q| q.p50),
            secs(d, |q| q.p99),
            secs(d, |q| q.max),
            r.delivery.webhooks_missing,
            r.delivery.paid,
            r.delivery.not_done,
            r.delivery.duplicate_keys,
            r.cart_commands
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| format!("{:.0}", c.per_sec)),
            end(r.relays_at_end_of_load.cart),
            r.cart_relay_max_lag.seconds,
            end(r.relays_at_end_of_load.order),
            r.order_relay_max_lag.seconds,
        );
    }
}

pub fn write_json(
    path: &Path,
    header: &serde_json::Value,
    reports: &[PhaseReport],
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let json = serde_json::json!({"run": header, "phases": reports});
    std::fs::write(path, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("write {}", path.display()))
}
