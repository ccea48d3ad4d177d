//! For tests of the services (feature `testing`): the admin port read over real HTTP,
//! and `/metrics` parsed by a Prometheus text-format parser.

use std::net::SocketAddr;

use prometheus_parse::{Sample, Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` over HTTP/1.1 (`Connection: close`): the status and the body.
///
/// # Errors
/// The connection or the exchange failed, or the answer is not HTTP.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer");
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

/// One scrape of `/metrics`, parsed.
pub struct Metrics {
    pub scrape: Scrape,
    pub text: String,
}

/// Scrapes `/metrics` at `addr`.
///
/// # Panics
/// The scrape fails, answers other than 200, or does not parse.
pub async fn scrape(addr: SocketAddr) -> Metrics {
    let (status, text) = get(addr, "/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    Metrics { scrape, text }
}

impl Metrics {
    /// The samples of `metric` whose labels include every pair of `labels`.
    pub fn samples<'a>(
        &'a self,
        metric: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.scrape.samples.iter().filter(move |s| {
            s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
    }

    /// The sum over the matching samples: counters and gauges by value, histograms by
    /// observation count (their `+Inf` bucket). 0 when nothing matches.
    pub fn total(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(metric, labels)
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// Whether the scrape names `metric` at all (a family, or a histogram's series).
    pub fn has(&self, metric: &str) -> bool {
        self.scrape.samples.iter().any(|s| s.metric == metric)
    }
}

/// The metric catalog, `deploy/observability/metrics.txt`: `(name, type)` per line.
pub fn catalog() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/observability/metrics.txt"
    );
    let text = std::fs::read_to_string(path).expect("deploy/observability/metrics.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

impl Metrics {
    /// Panics unless every `cart_*` family of the scrape is in the catalog, with its type:
    /// the dashboard and the alerts are checked against that catalog.
    pub fn assert_catalogued(&self) {
        let catalog = catalog();
        for sample in &self.scrape.samples {
            if !sample.metric.starts_with("cart_") {
                continue;
            }
            let kind = match sample.value {
                Value::Counter(_) => "counter",
                Value::Gauge(_) => "gauge",
                Value::Histogram(_) => "histogram",
                Value::Summary(_) => "summary",
                Value::Untyped(_) => "untyped",
            };
            // A histogram's `_sum` and `_count` come as untyped samples of their own.
            let base = ["_sum", "_count"]
                .iter()
                .find_map(|suffix| sample.metric.strip_suffix(suffix))
                .filter(|_| kind == "untyped");
            let (name, kind) = match base {
                Some(base) => (base, "histogram"),
                None => (sample.metric.as_str(), kind),
            };
            assert!(
                catalog.iter().any(|(n, k)| n == name && k == kind),
                "{name} ({kind}) is exported but not in deploy/observability/metrics.txt"
            );
        }
    }
}
