//! Sending requests over NATS: closed-loop clients (each waits for its reply before it
//! sends the next, so the concurrency is the number of requests in flight) and an
//! open-loop pacer (a fixed rate whatever the replies do, for latency at a given load).
//!
//! Every loop stops by itself: at its deadline or after its request budget, whichever
//! comes first, and no request waits longer than the request timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::{Client, RequestErrorKind};
use tokio::task::JoinSet;

use crate::stats::{BodyBytes, Outcome, Recorder};
use crate::workload::{Request, Workload};

/// The reply header that marks an error reply (docs/protocol.md, Headers).
const ERROR_STATUS_HEADER: &str = "Nats-Service-Error-Code";
const ERROR_CODE_HEADER: &str = "Cart-Error-Code";

/// Most open-loop requests in flight at once. When the service falls this far behind,
/// sending waits; the latency is still measured from the scheduled send time, so the
/// wait shows in the figures instead of hiding (no coordinated omission).
const MAX_OPEN_LOOP_IN_FLIGHT: usize = 8192;

/// Builds the `seq`-th request of a phase.
pub trait MakeRequest:
    Fn(&Workload, &mut fastrand::Rng, u64) -> Request + Send + Sync + 'static
{
}
impl<F: Fn(&Workload, &mut fastrand::Rng, u64) -> Request + Send + Sync + 'static> MakeRequest
    for F
{
}

/// The NATS connections and the workload the phases share.
pub struct Driver {
    clients: Vec<Client>,
    workload: Arc<Workload>,
    timeout: Duration,
}

/// What a phase did.
pub struct PhaseRun {
    pub recorder: Recorder,
    /// From the first send until the last reply (or timeout).
    pub elapsed: Duration,
}

impl Driver {
    pub async fn connect(
        url: &str,
        connections: usize,
        workload: Workload,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut clients = Vec::with_capacity(connections);
        for i in 0..connections.max(1) {
            clients.push(connect(url, &format!("cart-bench load {i}")).await?);
        }
        Ok(Self {
            clients,
            workload: Arc::new(workload),
            timeout,
        })
    }

    pub fn client(&self) -> &Client {
        // connect() makes at least one.
        &self.clients[0]
    }

    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// `concurrency` clients send requests back to back until `duration` has passed or
    /// `budget` requests were sent.
    pub async fn closed_loop(
        &self,
        concurrency: usize,
        duration: Duration,
        budget: u64,
        make: impl MakeRequest,
    ) -> PhaseRun {
        let make = Arc::new(make);
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let issued = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = JoinSet::new();
        for i in 0..concurrency.max(1) {
            let client = self.clients[i % self.clients.len()].clone();
            let (workload, make, recorder, issued) = (
                self.workload.clone(),
                make.clone(),
                recorder.clone(),
                issued.clone(),
            );
            let timeout = self.timeout;
            tasks.spawn(async move {
                let mut rng = fastrand::Rng::new();
                while Instant::now() < deadline {
                    let seq = issued.fetch_add(1, Ordering::Relaxed);
                    if seq >= budget {
                        break;
                    }
                    let request = make(&workload, &mut rng, seq);
                    let sent = Instant::now();
                    let (op, outcome, bytes) = exchange(&client, &workload, request, timeout).await;
                    lock(&recorder).record(op, outcome, sent.elapsed(), bytes);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = started.elapsed();
        PhaseRun {
            recorder: take(recorder),
            elapsed,
        }
    }

    /// Sends `rate` requests per second on a fixed schedule for `duration` (at most
    /// `budget` requests). Latency is measured from each request's scheduled send time,
    /// so a service that falls behind is charged for the queueing it causes.
    pub async fn open_loop(
        &self,
        rate: f64,
        duration: Duration,
        budget: u64,
        make: impl MakeRequest,
    ) -> PhaseRun {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        // A float-to-int `as` saturates, so a huge or NaN product cannot overflow.
        let total = ((rate * duration.as_secs_f64()).ceil() as u64).min(budget);
        let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
        let mut rng = fastrand::Rng::new();
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        for seq in 0..total {
            // Computed from the start, not by adding periods, so rounding never drifts.
            let due = started + period.mul_f64(seq as f64);
            // tokio's timer has millisecond resolution: at high rates several requests
            // leave together at the top of a millisecond, up to 1 ms after their due time,
            // and that lateness is counted in their latency.
            tokio::time::sleep_until(due.into()).await;
            while tasks.len() >= MAX_OPEN_LOOP_IN_FLIGHT {
                tasks.join_next().await;
            }
            while tasks.try_join_next().is_some() {}
            let request = make(&self.workload, &mut rng, seq);
            let client = self.clients[seq as usize % self.clients.len()].clone();
            let (workload, recorder, timeout) =
                (self.workload.clone(), recorder.clone(), self.timeout);
            tasks.spawn(async move {
                let (op, outcome, bytes) = exchange(&client, &workload, request, timeout).await;
                lock(&recorder).record(op, outcome, due.elapsed(), bytes);
            });
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = started.elapsed();
        PhaseRun {
            recorder: take(recorder),
            elapsed,
        }
    }
}

/// Connects to NATS, failing at once when nothing answers (a benchmark should not wait
/// for a server that is not there). `url` may list several servers separated by commas
/// (a cluster's seeds): the client reconnects to another one when its server dies.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Client> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(cart_nats::servers(url)?.as_slice())
        .await
        .with_context(|| format!("connect to NATS at {url}"))
}

/// Sends one request and classifies the reply; a command answered OK marks its cart
/// written, so later gets may read it.
async fn exchange(
    client: &Client,
    workload: &Workload,
    request: Request,
    timeout: Duration,
) -> (crate::workload::Op, Outcome, BodyBytes) {
    let (op, cart) = (request.op, request.cart);
    let request_bytes = request.payload.len();
    let (outcome, reply) = send_measured(client, request, timeout).await;
    if let (Outcome::Ok, Some(slot)) = (&outcome, cart) {
        workload.mark_written(slot);
    }
    let bytes = BodyBytes {
        request: request_bytes,
        reply,
    };
    (op, outcome, bytes)
}

pub(crate) async fn send(client: &Client, request: Request, timeout: Duration) -> Outcome {
    send_measured(client, request, timeout).await.0
}

/// Sends one request; the outcome and the reply's body size when a reply came. The body
/// is never parsed: an error is told by a header, and the load generator must stay cheap
/// so that the CPU figures measure the service.
async fn send_measured(
    client: &Client,
    request: Request,
    timeout: Duration,
) -> (Outcome, Option<usize>) {
    let message = async_nats::Request::new()
        .headers(request.headers)
        .payload(request.payload)
        .timeout(Some(timeout));
    match client.send_request(request.subject, message).await {
        Ok(reply) => {
            // An error reply is told by this header, never by the body (docs/protocol.md).
            let headers = reply.headers.as_ref();
            let outcome = match headers.and_then(|h| h.get(ERROR_STATUS_HEADER)) {
                None => Outcome::Ok,
                Some(status) => {
                    let code = headers
                        .and_then(|h| h.get(ERROR_CODE_HEADER))
                        .map_or_else(|| "?".to_owned(), ToString::to_string);
                    Outcome::Error(format!("{status}/{code}"))
                }
            };
            (outcome, Some(reply.payload.len()))
        }
        Err(e) => (
            Outcome::Error(
                match e.kind() {
                    RequestErrorKind::TimedOut => "timeout",
                    RequestErrorKind::NoResponders => "no responders",
                    _ => "nats error",
                }
                .to_owned(),
            ),
            None,
        ),
    }
}

fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    // Recording cannot leave the recorder half-updated, so a poisoned lock is still good.
    recorder.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take(recorder: Arc<Mutex<Recorder>>) -> Recorder {
    std::mem::take(&mut *lock(&recorder))
}
