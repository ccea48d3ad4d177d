//! Latency histograms and per-operation outcome counts, and their summaries.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::Op;

/// The largest latency kept exactly, in microseconds; longer ones are clamped to it.
/// Requests time out well before (see `--timeout-ms`).
const MAX_MICROS: u64 = 120_000_000;

/// A latency distribution in microseconds, three significant digits.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // The bounds are constants that hdrhistogram accepts.
        Self(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// How many latencies are at most `limit` (to histogram precision).
    pub fn count_within(&self, limit: Duration) -> u64 {
        let micros = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        self.0.count_between(0, micros.clamp(1, MAX_MICROS))
    }

    pub fn percentiles(&self) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50_ms: ms(self.0.value_at_quantile(0.5)),
            p90_ms: ms(self.0.value_at_quantile(0.9)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p999_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
            mean_ms: self.0.mean() / 1000.0,
        }
    }

    /// (quantile, milliseconds) points from the median to the largest value, spaced
    /// evenly in "nines" (0.9, 0.99, 0.999...), for a percentile plot.
    pub fn quantile_curve(&self) -> Vec<(f64, f64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let total = self.0.len() as f64;
        // Beyond 1 - 1/n the curve is the maximum: no sample tells more.
        let last_nines = total.log10().max(1.0);
        let steps = 200;
        (0..=steps)
            .map(|i| {
                // From the median (log10(2) nines: 1 - 10^-0.301 = 0.5) upwards.
                let first = std::f64::consts::LOG10_2;
                let nines = (first + (last_nines - first) * f64::from(i) / f64::from(steps))
                    .min(last_nines);
                let q = 1.0 - 10f64.powf(-nines);
                (nines, self.0.value_at_quantile(q) as f64 / 1000.0)
            })
            .collect()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// What became of one request.
pub enum Outcome {
    Ok,
    /// A failure, by kind: `409/1421` for an error reply (status/errorCode), `timeout`,
    /// `no responders` or `nats error`.
    Error(String),
}

/// Body sizes of one exchange: the payload only, without the NATS headers (which the
/// request's `Content-Type` and `Cart-Command-Id` and the reply's headers add on the
/// wire), so that the figure is what the service encodes and decodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyBytes {
    pub request: usize,
    /// None when no reply came (a timeout or a NATS error).
    pub reply: Option<usize>,
}

/// Outcomes of one operation: latencies of the OK replies, error counts by kind, and
/// body bytes of every request sent and every reply received (error replies included).
#[derive(Clone, Default)]
pub struct OpRecord {
    pub latencies: Latencies,
    pub errors: BTreeMap<String, u64>,
    pub requests: u64,
    pub request_bytes: u64,
    pub replies: u64,
    pub reply_bytes: u64,
}

impl OpRecord {
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn add(&mut self, other: &OpRecord) {
        self.latencies.add(&other.latencies);
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.requests += other.requests;
        self.request_bytes += other.request_bytes;
        self.replies += other.replies;
        self.reply_bytes += other.reply_bytes;
    }

    fn count_bytes(&mut self, bytes: BodyBytes) {
        self.requests += 1;
        self.request_bytes += bytes.request as u64;
        if let Some(reply) = bytes.reply {
            self.replies += 1;
            self.reply_bytes += reply as u64;
        }
    }
}

/// `total / n`, or None when nothing was counted.
fn mean(total: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| total as f64 / n as f64)
}

/// Outcomes of a phase, per operation. Latency is only recorded for OK replies: a fast
/// error or a timeout would say nothing about the service's speed.
#[derive(Clone, Default)]
pub struct Recorder {
    ops: [OpRecord; 5],
}

impl Recorder {
    pub fn record(&mut self, op: Op, outcome: Outcome, latency: Duration, bytes: BodyBytes) {
        let record = &mut self.ops[op.index()];
        record.count_bytes(bytes);
        match outcome {
            Outcome::Ok => record.latencies.record(latency),
            Outcome::Error(kind) => *record.errors.entry(kind).or_default() += 1,
        }
    }

    pub fn op(&self, op: Op) -> &OpRecord {
        &self.ops[op.index()]
    }

    /// Everything the ops accepted by `filter` recorded, as one record.
    pub fn combined(&self, filter: impl Fn(Op) -> bool) -> OpRecord {
        let mut all = OpRecord::default();
        for op in Op::ALL.into_iter().filter(|&op| filter(op)) {
            all.add(self.op(op));
        }
        all
    }

    /// The summary per operation that was sent at all, plus `all` and, when both
    /// commands and gets were sent, `commands`.
    pub fn summarize(&self, elapsed: Duration) -> BTreeMap<String, Summary> {
        let mut out = BTreeMap::new();
        let sent = |op: Op| self.op(op).latencies.len() + self.op(op).error_count() > 0;
        for op in Op::ALL.into_iter().filter(|&op| sent(op)) {
            out.insert(op.name().to_owned(), Summary::of(self.op(op), elapsed));
        }
        let commands = Op::ALL
            .into_iter()
            .filter(|&op| op.is_command() && sent(op))
            .count();
        if commands > 0 && sent(Op::Get) {
            out.insert(
                "commands".to_owned(),
                Summary::of(&self.combined(Op::is_command), elapsed),
            );
        }
        out.insert(
            "all".to_owned(),
            Summary::of(&self.combined(|_| true), elapsed),
        );
        out
    }
}

/// The figures of one operation in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// OK replies.
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// OK replies per second over the phase.
    pub per_sec: f64,
    /// Of the OK replies.
    pub latency: Percentiles,
    /// Mean body (payload) bytes of the requests sent, NATS headers not counted.
    pub mean_request_body_bytes: Option<f64>,
    /// Mean body (payload) bytes of the replies received, OK and error replies alike,
    /// NATS headers not counted; None when no reply came.
    pub mean_reply_body_bytes: Option<f64>,
}

impl Summary {
    pub fn of(record: &OpRecord, elapsed: Duration) -> Self {
        let ok = record.latencies.len();
        Self {
            ok,
            errors: record.error_count(),
            errors_by_kind: record.errors.clone(),
            per_sec: ok as f64 / elapsed.as_secs_f64().max(1e-9),
            latency: record.latencies.percentiles(),
            mean_request_body_bytes: mean(record.request_bytes, record.requests),
            mean_reply_body_bytes: mean(record.reply_bytes, record.replies),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_per_op_and_combine() {
        let mut r = Recorder::default();
        let bytes = |request, reply| BodyBytes { request, reply };
        for ms in 1..=100 {
            r.record(
                Op::Put,
                Outcome::Ok,
                Duration::from_millis(ms),
                bytes(60, Some(1000)),
            );
        }
        r.record(
            Op::Get,
            Outcome::Ok,
            Duration::from_millis(2),
            bytes(30, Some(2000)),
        );
        r.record(
            Op::Put,
            Outcome::Error("409/1421".into()),
            Duration::ZERO,
            bytes(60, Some(100)),
        );
        r.record(
            Op::Put,
            Outcome::Error("timeout".into()),
            Duration::ZERO,
            bytes(63, None),
        );
        let s = r.summarize(Duration::from_secs(2));
        assert_eq!(
            s.keys().map(String::as_str).collect::<Vec<_>>(),
            ["all", "commands", "get", "put"]
        );
        let put = &s["put"];
        assert_eq!((put.ok, put.errors), (100, 2));
        assert_eq!(put.per_sec, 50.0);
        assert!((put.latency.p50_ms - 50.0).abs() < 0.1, "{:?}", put.latency);
        assert!((put.latency.p99_ms - 99.0).abs() < 0.1, "{:?}", put.latency);
        assert_eq!(s["all"].ok, 101);
        assert_eq!(s["commands"].errors_by_kind["timeout"], 1);
        // Every request sent counts for the request bytes, every reply for the reply bytes.
        assert_eq!(
            put.mean_request_body_bytes,
            Some((101.0 * 60.0 + 63.0) / 102.0)
        );
        assert_eq!(
            put.mean_reply_body_bytes,
            Some((100.0 * 1000.0 + 100.0) / 101.0)
        );
        assert_eq!(s["get"].mean_reply_body_bytes, Some(2000.0));
        assert_eq!(
            s["all"].mean_reply_body_bytes,
            Some((100_000.0 + 100.0 + 2000.0) / 102.0)
        );
        let mut timeouts = Recorder::default();
        timeouts.record(
            Op::Get,
            Outcome::Error("timeout".into()),
            Duration::ZERO,
            bytes(30, None),
        );
        let t = &timeouts.summarize(Duration::from_secs(1))["get"];
        assert_eq!(
            (t.mean_request_body_bytes, t.mean_reply_body_bytes),
            (Some(30.0), None)
        );
        assert!(!Recorder::default()
            .summarize(Duration::ZERO)
            .contains_key("commands"));
    }

    #[test]
    fn the_quantile_curve_rises() {
        let mut l = Latencies::default();
        for us in 1..=10_000u64 {
            l.record(Duration::from_micros(us * 10));
        }
        let curve = l.quantile_curve();
        assert!(curve
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!((curve[0].1 - 50.0).abs() < 0.5, "{:?}", curve[0]);
        assert!((curve.last().unwrap().0 - 4.0).abs() < 1e-9);
        assert!(Latencies::default().quantile_curve().is_empty());
    }
}
