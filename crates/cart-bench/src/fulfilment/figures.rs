//! The pure part of the fulfilment figures: which payment got its webhook when, which
//! order became done when, what never came and what came twice. Times are wall-clock
//! seconds since the Unix epoch, all read on this machine (the bench, the receiver it
//! runs and PostgreSQL share one clock).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use serde::Serialize;

/// A payment the service confirmed, and when its reply arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paid {
    pub order_id: u64,
    pub replied_at: f64,
}

/// One request the receiver got.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// The `Idempotency-Key` header, empty when absent.
    pub key: String,
    /// `notification_type` of the body, empty when the body had none.
    pub notification_type: String,
    /// `order.id` of the body, when it had one (to tell a key that does not match its
    /// body from a duplicate under the same key).
    pub order_id: Option<u64>,
    pub at: f64,
}

/// `<project_id>:<order_id>:<notification_type>`, as the worker sends it
/// (docs/webhooks.md, "What is sent").
pub fn idempotency_key(project_id: u64, order_id: u64, notification_type: &str) -> String {
    format!("{project_id}:{order_id}:{notification_type}")
}

/// Nearest-rank percentiles of a set of latencies, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    /// None when there is no value.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        // Nearest rank: the smallest value with at least q of the values at or below it.
        let at = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Self {
            count: n,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: values[n - 1],
        })
    }
}

/// Webhook and `done` figures of one phase's payments.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delivery {
    pub paid: usize,
    /// Payment reply -> first `order_paid` arrival of its order.
    pub to_webhook: Option<Quantiles>,
    /// Payment reply -> `OrderDone` recorded.
    pub to_done: Option<Quantiles>,
    /// Paid orders whose `order_paid` never arrived.
    pub webhooks_missing: usize,
    /// Paid orders with no `OrderDone`.
    pub not_done: usize,
    /// Keys of this phase's orders that arrived more than once.
    pub duplicate_keys: usize,
    /// Arrivals beyond the first of those keys.
    pub duplicate_arrivals: usize,
}

/// Matches payments to arrivals (by idempotency key) and to `done` times (by order id).
/// A latency below zero (clock steps) is kept as it is: hiding it would hide the step.
pub fn delivery(
    project_id: u64,
    paid: &[Paid],
    arrivals: &[Arrival],
    done_at: &HashMap<u64, f64>,
) -> Delivery {
    let mine: HashSet<String> = paid
        .iter()
        .flat_map(|p| {
            ["order_paid", "order_canceled"].map(|t| idempotency_key(project_id, p.order_id, t))
        })
        .collect();
    let mut first: HashMap<&str, f64> = HashMap::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for a in arrivals.iter().filter(|a| mine.contains(&a.key)) {
        *seen.entry(&a.key).or_default() += 1;
        if a.notification_type == "order_paid" {
            let at = first.entry(&a.key).or_insert(a.at);
            *at = at.min(a.at);
        }
    }
    let mut to_webhook = Vec::with_capacity(paid.len());
    let mut to_done = Vec::with_capacity(paid.len());
    for p in paid {
        let key = idempotency_key(project_id, p.order_id, "order_paid");
        if let Some(at) = first.get(key.as_str()) {
            to_webhook.push(at - p.replied_at);
        }
        if let Some(at) = done_at.get(&p.order_id) {
            to_done.push(at - p.replied_at);
        }
    }
    let repeated = seen.values().filter(|&&n| n > 1);
    Delivery {
        paid: paid.len(),
        webhooks_missing: paid.len() - to_webhook.len(),
        not_done: paid.len() - to_done.len(),
        to_webhook: Quantiles::of(to_webhook),
        to_done: Quantiles::of(to_done),
        duplicate_keys: repeated.clone().count(),
        duplicate_arrivals: repeated.map(|n| n - 1).sum(),
    }
}

/// Whether every payment has had its `order_paid` (keys: those that arrived).
pub fn all_webhooks_arrived(project_id: u64, paid: &[Paid], keys: &HashSet<String>) -> bool {
    paid.iter()
        .all(|p| keys.contains(&idempotency_key(project_id, p.order_id, "order_paid")))
}

/// One phase of the run: purchasing users, plain cart clients beside them, and seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhaseSpec {
    pub users: usize,
    pub cart_clients: usize,
    pub secs: u64,
}

impl FromStr for PhaseSpec {
    type Err = anyhow::Error;

    /// `USERS[+CART_CLIENTS]:SECS`, e.g. `4:60` or `16+64:300`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (who, secs) = s
            .trim()
            .split_once(':')
            .with_context(|| format!("phase `{s}` is not USERS[+CART_CLIENTS]:SECS"))?;
        let (users, carts) = who.split_once('+').unwrap_or((who, "0"));
        let number = |text: &str, what: &str| {
            text.trim()
                .parse::<u64>()
                .with_context(|| format!("{what} of phase `{s}` is not a whole number"))
        };
        let spec = Self {
            users: usize::try_from(number(users, "users")?)?,
            cart_clients: usize::try_from(number(carts, "cart clients")?)?,
            secs: number(secs, "seconds")?,
        };
        anyhow::ensure!(
            spec.users > 0 && spec.secs > 0,
            "phase `{s}` needs at least one user and one second"
        );
        anyhow::ensure!(
            spec.users <= 10_000 && spec.cart_clients <= 10_000,
            "phase `{s}`: at most 10,000 users and cart clients"
        );
        Ok(spec)
    }
}

impl fmt::Display for PhaseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} users", self.users)?;
        if self.cart_clients > 0 {
            write!(f, " + {} cart clients", self.cart_clients)?;
        }
        write!(f, ", {} s", self.secs)
    }
}

/// Phases separated by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phases(pub Vec<PhaseSpec>);

impl FromStr for Phases {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let phases = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!phases.is_empty(), "no phase in `{s}`");
        Ok(Self(phases))
    }
}

#[cfg(test)]
mod tests;
