//! Live fuzzing: generated payloads across every subject of a running service (admin,
//! orders and payments included), checked for what a client outside may rely on: every
//! request gets a reply, every error is structured (`Nats-Service-Error-Code` and
//! `Nats-Service-Error` headers, a JSON body of `statusCode`, `errorCode`,
//! `errorMessage`), bad input is never a 5xx, nothing panics, and every endpoint still
//! answers a valid request afterwards.
//!
//! The payloads come from one seeded PRNG: a failure prints the seed, and
//! `FUZZ_SEED=<seed>` generates the same payloads again. `FUZZ_LIVE_PAYLOADS` sets how
//! many (`make test` runs a few thousand, `make fuzz-live` 100,000). Failures are
//! collected, not stopped at, so one run reports every kind of failure with one
//! reproducer each.

mod payloads;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{HeaderMap, RequestErrorKind};
use cart_proto::ErrorReply;
use cart_tests::{Client, World};
use futures::StreamExt;

use payloads::{Kind, Payload};

/// Payloads of the run in `make test`.
const SHORT_RUN: usize = 3_000;
/// Requests in flight at once: enough that requests left without a reply cost the run
/// a few timeouts, not one each.
const IN_FLIGHT: usize = 64;
/// How long a reply may take (the harness client's request timeout, 10 s), generous so
/// that only a request that is never answered fails, however busy the machine.
const NO_REPLY: &str = "no reply within the client's 10 s request timeout";

/// What went wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    NoReply,
    /// The endpoint is gone: a panic ended its loop.
    NoResponders,
    RequestError(String),
    ServerError(u16),
    Unstructured(String),
    NoContentType,
    /// Accepted, though no endpoint may accept it (`Payload::must_refuse`).
    Accepted,
    /// Answered with another status than the contract fixes (`Payload::status`).
    WrongStatus {
        want: u16,
        got: u16,
    },
}

impl Failure {
    /// The failure's category in the report; detail that varies per request is dropped.
    fn category(&self) -> String {
        match self {
            Failure::NoReply => NO_REPLY.to_owned(),
            Failure::NoResponders => "no responders (the endpoint stopped serving)".to_owned(),
            Failure::RequestError(_) => "request failed".to_owned(),
            Failure::ServerError(status) => format!("{status} for bad input"),
            Failure::Unstructured(why) => format!("unstructured error reply: {why}"),
            Failure::NoContentType => "reply without Content-Type".to_owned(),
            Failure::Accepted => "bad input accepted (200)".to_owned(),
            Failure::WrongStatus { want, got } => format!("{got} where {want} is due"),
        }
    }
}

/// Panics anywhere in this process (cartd runs in-process), counted by a hook that keeps
/// the default report. Installed once; each run compares counts before and after.
fn panics() -> &'static Mutex<Vec<String>> {
    static PANICS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            let seen = PANICS.get().map_or(0, |p| {
                let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                p.push(format!("[{thread}] {info}"));
                p.len()
            });
            // A fuzz run can panic the service thousands of times the same way: the
            // default report (with its backtrace) for the first few on the runtime's
            // workers, and always for a test's own thread.
            if seen <= 3 || !thread.starts_with("tokio-") {
                previous(info);
            }
        }));
        Mutex::new(vec![])
    })
}

/// Sends one payload and judges the reply.
async fn send(client: &Client, payload: &Payload) -> Result<u16, Failure> {
    let mut headers = HeaderMap::new();
    for (name, value) in &payload.headers {
        headers.append(name.as_str(), value.as_str());
    }
    match client
        .raw(payload.subject, headers, payload.body.clone())
        .await
    {
        Ok((headers, body)) => match (judge(headers.as_ref(), &body), payload.status) {
            (Ok(200), _) if payload.must_refuse => Err(Failure::Accepted),
            (Ok(got), Some(want)) if got != want => Err(Failure::WrongStatus { want, got }),
            (outcome, _) => outcome,
        },
        Err(e) => Err(match e.kind() {
            RequestErrorKind::TimedOut => Failure::NoReply,
            RequestErrorKind::NoResponders => Failure::NoResponders,
            _ => Failure::RequestError(e.to_string()),
        }),
    }
}

/// The reply's status (200 when accepted), or why it breaks the contract.
fn judge(headers: Option<&HeaderMap>, body: &[u8]) -> Result<u16, Failure> {
    let get = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let status = match get(NATS_SERVICE_ERROR_CODE) {
        None => 200,
        Some(code) => {
            let status: u16 = code
                .parse()
                .map_err(|_| Failure::Unstructured(format!("error code header {code:?}")))?;
            if get(NATS_SERVICE_ERROR).is_none() {
                return Err(Failure::Unstructured("no Nats-Service-Error header".into()));
            }
            let Some(error) = ErrorReply::from_body(body) else {
                return Err(Failure::Unstructured(
                    "body is not {statusCode, errorCode, errorMessage}".into(),
                ));
            };
            if error.status != status {
                return Err(Failure::Unstructured("header and body disagree".into()));
            }
            if status >= 500 {
                return Err(Failure::ServerError(status));
            }
            status
        }
    };
    if get("Content-Type").is_none() {
        return Err(Failure::NoContentType);
    }
    Ok(status)
}

/// Failures by category and payload kind, with a count and the first reproducer each.
#[derive(Default)]
struct Findings {
    failures: BTreeMap<(String, Kind), (usize, String)>,
    statuses: BTreeMap<u16, usize>,
}

impl Findings {
    fn record(&mut self, payload: &Payload, outcome: Result<u16, Failure>) {
        match outcome {
            Ok(status) => *self.statuses.entry(status).or_default() += 1,
            Err(failure) => {
                let entry = self
                    .failures
                    .entry((failure.category(), payload.kind))
                    .or_insert_with(|| (0, format!("{payload} -> {failure:?}")));
                entry.0 += 1;
            }
        }
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for ((category, kind), (count, example)) in &self.failures {
            out.push_str(&format!(
                "  {category} [{kind:?}] x{count}\n    e.g. {example}\n"
            ));
        }
        out
    }
}

fn seed() -> u64 {
    match std::env::var("FUZZ_SEED") {
        Ok(s) => s.parse().expect("FUZZ_SEED is a u64"),
        Err(_) => fastrand::u64(..),
    }
}

fn payload_count() -> usize {
    std::env::var("FUZZ_LIVE_PAYLOADS")
        .ok()
        .map_or(SHORT_RUN, |n| {
            n.parse().expect("FUZZ_LIVE_PAYLOADS is a count")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_payloads_on_every_subject_get_structured_replies_and_break_nothing() {
    let panics_before = panics().lock().unwrap().len();
    let w = World::start().await;
    let (seed, count) = (seed(), payload_count());
    println!("live fuzz: {count} payloads, seed {seed} (FUZZ_SEED={seed} replays them)");
    let subjects = payloads::subjects();
    let generated = payloads::generate(seed, count, &subjects);

    let mut findings = Findings::default();
    let client = &w.client.clone();
    let mut replies = futures::stream::iter(generated.iter())
        .map(|p| async move { (p, send(client, p).await) })
        .buffer_unordered(IN_FLIGHT);
    while let Some((payload, outcome)) = replies.next().await {
        findings.record(payload, outcome);
    }

    // Afterwards, every endpoint still answers its valid request (a refusal is an
    // answer: the order it names may not exist).
    let mut dead = vec![];
    for (subject, body) in &subjects {
        let payload = Payload {
            index: usize::MAX,
            subject,
            kind: Kind::OddHeaders,
            headers: vec![],
            body: serde_json::to_vec(body).unwrap(),
            must_refuse: false,
            status: None,
        };
        if let Err(failure) = send(client, &payload).await {
            dead.push(format!("  {subject}: {}", failure.category()));
        }
    }
    let new_panics: Vec<String> = panics().lock().unwrap()[panics_before..].to_vec();

    println!("live fuzz: replies by status {:?}", findings.statuses);
    let mut problems = String::new();
    if !findings.failures.is_empty() {
        problems.push_str(&format!("failed requests:\n{}", findings.report()));
    }
    if !dead.is_empty() {
        problems.push_str(&format!(
            "endpoints that no longer answer a valid request:\n{}\n",
            dead.join("\n")
        ));
    }
    if !new_panics.is_empty() {
        let first: Vec<&String> = new_panics.iter().take(3).collect();
        problems.push_str(&format!(
            "{} panics, the first: {first:#?}\n",
            new_panics.len()
        ));
    }
    w.finish().await;
    assert!(
        problems.is_empty(),
        "live fuzz with seed {seed} ({count} payloads; FUZZ_SEED={seed} FUZZ_LIVE_PAYLOADS={count} replays it):\n{problems}"
    );
}
