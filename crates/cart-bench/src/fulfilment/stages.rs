//! Where a webhook's time went, per stage, read from the service's own tables once the
//! drain is over: `order_events.recorded_at` of `OrderPaid`, `webhook_deliveries.created_at`
//! (intake recorded it), the first attempt's `started_at` and `latency_ms`, and
//! `OrderDone`'s `recorded_at`. Each timestamp is `now()` of its transaction, so a stage
//! can read up to one transaction's length short or long; the quantiles of thousands of
//! purchases still say which stage a tail comes from.

use std::collections::HashMap;

use serde::Serialize;

use super::figures::Quantiles;

/// One paid order's timestamps (seconds since the epoch), from the database.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeline {
    pub order_id: u64,
    /// The payment's reply at the bench (not in the database).
    pub replied_at: f64,
    /// `OrderPaid` recorded.
    pub paid_at: f64,
    /// Intake recorded the delivery.
    pub recorded_at: Option<f64>,
    /// The first attempt started, and how long its HTTP call took.
    pub attempt_at: Option<f64>,
    pub http_secs: Option<f64>,
    /// `OrderDone` recorded.
    pub done_at: Option<f64>,
}

/// The stages' quantiles over a phase, and the same stages over its slowest 1 %.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stages {
    /// `OrderPaid` recorded -> delivery recorded: the order relay, JetStream, intake.
    pub relay_and_intake: Option<Quantiles>,
    /// Delivery recorded -> first attempt started: waiting for a delivery loop (wake,
    /// claim, lease).
    pub queue: Option<Quantiles>,
    /// The first attempt's HTTP call, as the worker timed it.
    pub http: Option<Quantiles>,
    /// The attempt's end -> `OrderDone` recorded: the outcome's commit and the mark.
    pub done_after_webhook: Option<Quantiles>,
    /// The slowest 1 % of purchases by payment-to-attempt-end time (at least one), and
    /// the median of each stage among them: which stage the tail comes from.
    pub tail: Option<Tail>,
    /// The seconds of load (by payment reply) whose slowest webhook was slowest, worst
    /// first: when a tail comes in bursts, when they were (to match with logs).
    pub worst_seconds: Vec<WorstSecond>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tail {
    pub purchases: usize,
    pub relay_and_intake_p50: f64,
    pub queue_p50: f64,
    pub http_p50: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstSecond {
    /// The second's start, UTC, RFC 3339 (the workspace's one calendar, cart-domain).
    pub at: String,
    /// Payments in that second.
    pub purchases: usize,
    /// Their slowest payment-to-attempt-end time, in seconds.
    pub max_secs: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    Quantiles::of(std::mem::take(&mut v)).map_or(0.0, |q| q.p50)
}

/// The stages of `timelines`; `worst` is how many worst seconds to keep.
pub fn stages(timelines: &[Timeline], worst: usize) -> Stages {
    let stage = |f: &dyn Fn(&Timeline) -> Option<f64>| {
        Quantiles::of(timelines.iter().filter_map(f).collect())
    };
    let end = |t: &Timeline| Some(t.attempt_at? + t.http_secs?);
    let total = |t: &Timeline| Some(end(t)? - t.replied_at);
    let relay = |t: &Timeline| Some(t.recorded_at? - t.paid_at);
    let queue = |t: &Timeline| Some(t.attempt_at? - t.recorded_at?);
    let mut out = Stages {
        relay_and_intake: stage(&relay),
        queue: stage(&queue),
        http: stage(&|t| t.http_secs),
        done_after_webhook: stage(&|t| Some(t.done_at? - end(t)?)),
        ..Stages::default()
    };
    let mut by_total: Vec<(f64, &Timeline)> = timelines
        .iter()
        .filter_map(|t| Some((total(t)?, t)))
        .collect();
    if !by_total.is_empty() {
        by_total.sort_by(|a, b| b.0.total_cmp(&a.0));
        let slow: Vec<&Timeline> = by_total
            .iter()
            .take(by_total.len().div_ceil(100))
            .map(|(_, t)| *t)
            .collect();
        out.tail = Some(Tail {
            purchases: slow.len(),
            relay_and_intake_p50: median(slow.iter().filter_map(|t| relay(t)).collect()),
            queue_p50: median(slow.iter().filter_map(|t| queue(t)).collect()),
            http_p50: median(slow.iter().filter_map(|t| t.http_secs).collect()),
        });
    }
    let mut seconds: HashMap<i64, (usize, f64)> = HashMap::new();
    for t in timelines {
        if let Some(s) = total(t) {
            #[allow(clippy::cast_possible_truncation)]
            let e = seconds.entry(t.replied_at.floor() as i64).or_default();
            e.0 += 1;
            e.1 = e.1.max(s);
        }
    }
    let mut seconds: Vec<(i64, (usize, f64))> = seconds.into_iter().collect();
    seconds.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1).then(a.0.cmp(&b.0)));
    out.worst_seconds = seconds
        .into_iter()
        .take(worst)
        .map(|(at, (purchases, max_secs))| WorstSecond {
            at: cart_domain::Timestamp::from_unix(at).civil().to_string(),
            purchases,
            max_secs,
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(order_id: u64, replied: f64, relay: f64, queue: f64, http: f64) -> Timeline {
        let paid_at = replied - 0.001;
        let recorded_at = paid_at + relay;
        let attempt_at = recorded_at + queue;
        Timeline {
            order_id,
            replied_at: replied,
            paid_at,
            recorded_at: Some(recorded_at),
            attempt_at: Some(attempt_at),
            http_secs: Some(http),
            done_at: Some(attempt_at + http + 0.04),
        }
    }

    #[test]
    fn the_tail_names_the_stage_it_comes_from() {
        // 99 quick purchases and one that waited 3 s for a delivery loop.
        let mut all: Vec<Timeline> = (0..99)
            .map(|i| {
                t(
                    i,
                    1000.0 + f64::from(u32::try_from(i).unwrap()) / 100.0,
                    0.05,
                    0.01,
                    0.01,
                )
            })
            .collect();
        all.push(t(99, 1001.5, 0.05, 3.0, 0.01));
        let s = stages(&all, 2);
        let tail = s.tail.unwrap();
        assert_eq!(tail.purchases, 1);
        assert!((tail.queue_p50 - 3.0).abs() < 1e-9, "{tail:?}");
        assert!((tail.relay_and_intake_p50 - 0.05).abs() < 1e-9);
        assert_eq!(s.worst_seconds[0].at, "1970-01-01T00:16:41+00:00");
        assert_eq!(s.worst_seconds[0].purchases, 1);
        assert_eq!(s.worst_seconds[1].purchases, 99);
        assert!((s.queue.unwrap().p50 - 0.01).abs() < 1e-9);
        assert!((s.done_after_webhook.unwrap().p50 - 0.04).abs() < 1e-9);
    }

    #[test]
    fn missing_attempts_leave_their_stages_out() {
        let mut one = t(1, 1000.0, 0.05, 0.01, 0.01);
        one.attempt_at = None;
        let s = stages(&[one], 3);
        assert!(s.queue.is_none() && s.tail.is_none() && s.worst_seconds.is_empty());
        assert!(s.relay_and_intake.is_some());
    }
}
