//! Group commit: appends of different carts that arrive together share one transaction,
//! so one fsync serves many commands. Each command is still decided, guarded and
//! answered on its own (see [`EventStore::append_batch`]); none is answered before the
//! transaction that holds it has committed. Projection reads are grouped the same way.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cart_domain::{Cart, CartEvent};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use crate::store::{
    Append, AppendOutcome, EventStore, Loaded, ProcessedCommand, Projected, StoreError, StreamKey,
};

/// An [`Append`] that owns its parts, so that it can wait in the queue.
#[derive(Debug, Clone)]
pub struct PendingAppend {
    pub key: StreamKey,
    pub expected: i64,
    pub events: Vec<CartEvent>,
    pub cart: Cart,
    pub command: Option<ProcessedCommand>,
    pub metadata: serde_json::Value,
}

impl PendingAppend {
    fn view(&self) -> Append<'_> {
        Append {
            key: &self.key,
            expected: self.expected,
            events: &self.events,
            cart: &self.cart,
            command: self.command.as_ref(),
            metadata: self.metadata.clone(),
        }
    }
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// Most commands in one transaction.
    pub max_batch: usize,
    /// Most batch transactions in flight at once. While they all wait for their commit,
    /// new commands queue up and go together in the next one.
    pub max_in_flight: usize,
    /// A batch starts beside others only once each of them has run this long: until
    /// then what arrives waits for the next one. One batch at a time makes the largest
    /// batches, so the fewest commits, statements and wake-ups a command (issue 17:
    /// CPU per command -19 % at full load against two at a time); the overlap keeps a
    /// slow batch (a lock wait behind a payment, a slow flush) from stalling the rest.
    pub overlap_after: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            max_in_flight: 2,
            overlap_after: Duration::from_millis(20),
        }
    }
}

struct Job {
    append: PendingAppend,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    /// When it was queued, for the queue-wait histogram.
    queued: Instant,
}

/// The queue in front of the batch writer; cheap to clone. The writer task ends when
/// every handle is dropped, after the queued commands are written.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the batch writer on the current tokio runtime.
    pub fn start(store: EventStore, config: GroupConfig) -> Self {
        let (queue, jobs) = mpsc::channel(config.max_batch.max(1) * 16);
        // A command for a cart already in the forming batch waits for the next one: one
        // batch holds at most one command per cart, so none can lose to a batch-mate.
        let one_per_cart: fn(&Job) -> Uuid = |job| job.append.key.stream_id();
        tokio::spawn(run_batches(
            jobs,
            config,
            Some(one_per_cart),
            move |batch: Vec<Job>| {
                let (span, unsampled) = batch_span(&batch);
                cart_telemetry::scope(
                    unsampled,
                    write_batch(store.clone(), batch).instrument(span),
                )
            },
        ));
        Self { queue }
    }

    /// Appends one command's events in the next batch; returns once that batch's
    /// transaction has committed (or failed).
    ///
    /// # Errors
    /// As [`EventStore::append`]; `Batch` when the shared transaction failed.
    pub async fn append(&self, append: PendingAppend) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                append,
                reply,
                queued: Instant::now(),
            })
            .await
            .map_err(|_| StoreError::Invalid("the batch writer has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| StoreError::Invalid("the batch writer dropped a command".to_owned()))?
    }
}

async fn write_batch(store: EventStore, batch: Vec<Job>) {
    let metrics = &*crate::metrics::GROUP;
    let began = Instant::now();
    metrics.batch_size.record(batch.len() as u64, &[]);
    for job in &batch {
        let waited = began.saturating_duration_since(job.queued);
        metrics.queue_wait.record(waited.as_secs_f64(), &[]);
    }
    let views: Vec<Append<'_>> = batch.iter().map(|j| j.append.view()).collect();
    let result = store.append_batch(&views).await;
    metrics
        .transaction
        .record(began.elapsed().as_secs_f64(), &[]);
    drop(views);
    match result {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for job in batch {
                let _ = job.reply.send(Err(StoreError::Batch(error.clone())));
            }
        }
    }
}

/// The span of one batch transaction. It serves many commands, so it is a root of its
/// own linked to each sampled command's span (OpenTelemetry's way for batches), found
/// in the `traceparent` the command put in its events' metadata (there only for sampled
/// commands). A batch is traced when one of its commands is; otherwise it comes with
/// `true`, to run unseen by the exporter (`cart_telemetry::batch_root`).
fn batch_span(batch: &[Job]) -> (tracing::Span, bool) {
    let span = || {
        tracing::info_span!(
            parent: None,
            "batch",
            otel.name = "group commit",
            batch.size = batch.len(),
            db.system.name = "postgresql",
        )
    };
    if !cart_telemetry::exporting() {
        return (span(), false);
    }
    let traces: Vec<_> = batch
        .iter()
        .filter_map(|job| cart_telemetry::TraceParent::from_metadata(&job.append.metadata))
        .collect();
    let traces: Vec<_> = traces.iter().collect();
    cart_telemetry::batch_root(&traces, usize::MAX, span)
}

struct Read {
    stream_id: Uuid,
    /// The version the caller already has (rendered), if any.
    known: Option<i64>,
    reply: oneshot::Sender<Result<Option<Projected>, StoreError>>,
}

/// Reads of the cart projection that arrive together go to PostgreSQL as one query, so
/// many concurrent gets cost one round trip. Cheap to clone.
#[derive(Clone)]
pub struct GroupRead {
    queue: mpsc::Sender<Read>,
    probes: PgPool,
}

impl GroupRead {
    /// Starts the batch reader on the current tokio runtime. Its reads run on probe
    /// sessions beside `store`'s pool (`crate::probe`), one per batch in flight.
    pub fn start(store: EventStore, config: GroupConfig) -> Self {
        let (queue, probes) = start_probe_reader(store.pool(), config, read_batch);
        Self { queue, probes }
    }

    /// The probe sessions the reads run on (for the pool gauges).
    pub fn pool(&self) -> &PgPool {
        &self.probes
    }

    /// As [`EventStore::projection`], in the next batch.
    ///
    /// # Errors
    /// As [`EventStore::projection`]; `Batch` when the shared query failed.
    pub async fn projection(&self, key: &StreamKey) -> Result<Option<Loaded>, StoreError> {
        Ok(match self.projection_since(key, None).await? {
            Some(Projected::Cart(loaded)) => Some(loaded),
            Some(Projected::Unchanged { .. }) | None => None,
        })
    }

    /// As [`GroupRead::projection`] for a caller that already has version `known` of
    /// the cart: while the cart is still at it, only the version comes back
    /// (`Projected::Unchanged`), its lines neither sent nor decoded.
    ///
    /// # Errors
    /// As [`GroupRead::projection`].
    pub async fn projection_since(
        &self,
        key: &StreamKey,
        known: Option<i64>,
    ) -> Result<Option<Projected>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let read = Read {
            stream_id: key.stream_id(),
            known,
            reply,
        };
        self.queue
            .send(read)
            .await
            .map_err(|_| StoreError::Invalid("the batch reader has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| StoreError::Invalid("the batch reader dropped a read".to_owned()))?
    }
}

async fn read_batch(probes: PgPool, batch: Vec<Read>) {
    let reads: Vec<(Uuid, Option<i64>)> = batch.iter().map(|r| (r.stream_id, r.known)).collect();
    match crate::store::grouped_get(&probes, &reads, true).await {
        Ok(found) => {
            let found: HashMap<Uuid, Result<Projected, Arc<StoreError>>> = found
                .into_iter()
                .map(|(id, projected)| (id, projected.map_err(Arc::new)))
                .collect();
            for read in batch {
                let answer = match found.get(&read.stream_id) {
                    None => Ok(None),
                    // Asked twice with different known versions, the cart came with its
                    // lines: each caller gets them.
                    Some(Ok(projected)) => Ok(Some(projected.clone())),
                    Some(Err(error)) => Err(StoreError::Batch(error.clone())),
                };
                let _ = read.reply.send(answer);
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for read in batch {
                let _ = read.reply.send(Err(StoreError::Batch(error.clone())));
            }
        }
    }
}

/// Starts a grouped reader whose batches run `read` on probe sessions beside `main`
/// (`crate::probe`), one per batch in flight; returns its queue and those sessions.
pub(crate) fn start_probe_reader<J, F, Fut>(
    main: &PgPool,
    config: GroupConfig,
    read: F,
) -> (mpsc::Sender<J>, PgPool)
where
    J: Send + 'static,
    F: Fn(PgPool, Vec<J>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (queue, jobs) = mpsc::channel(config.max_batch.max(1) * 16);
    let probes = crate::probe::pool(main, config.max_in_flight);
    let reader = probes.clone();
    tokio::spawn(run_batches(jobs, config, None, move |batch| {
        read(reader.clone(), batch)
    }));
    (queue, probes)
}

/// Takes jobs off the queue in batches: whatever has queued up while the previous
/// batches were busy, up to `max_batch`, with at most `max_in_flight` batches running,
/// and a batch beside others only once they have all run `overlap_after`.
/// With `one_per_stream`, a job for a stream already in the forming batch starts the next.
pub(crate) async fn run_batches<J, F, Fut>(
    mut jobs: mpsc::Receiver<J>,
    config: GroupConfig,
    one_per_stream: Option<fn(&J) -> Uuid>,
    run: F,
) where
    J: Send + 'static,
    F: Fn(Vec<J>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let max_batch = config.max_batch.max(1);
    let running = Arc::new(Running::default());
    let mut held: Option<J> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match held.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        running.overlap_after(config.overlap_after).await;
        let mut streams: HashSet<Uuid> = HashSet::new();
        if let Some(stream_of) = one_per_stream {
            streams.insert(stream_of(&first));
        }
        let mut batch = vec![first];
        while batch.len() < max_batch {
            let Ok(job) = jobs.try_recv() else { break };
            if one_per_stream.is_some_and(|stream_of| !streams.insert(stream_of(&job))) {
                held = Some(job);
                break;
            }
            batch.push(job);
        }
        let started = running.start();
        let running = running.clone();
        let batch = run(batch);
        tokio::spawn(async move {
            batch.await;
            running.finish(started);
            drop(slot);
        });
    }
}

/// When the batches in flight started, and a wake-up when one ends.
#[derive(Default)]
struct Running {
    started: std::sync::Mutex<Vec<(u64, tokio::time::Instant)>>,
    next: std::sync::atomic::AtomicU64,
    ended: Notify,
}

impl Running {
    fn start(&self) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut started) = self.started.lock() {
            started.push((id, tokio::time::Instant::now()));
        }
        id
    }

    fn finish(&self, id: u64) {
        if let Ok(mut started) = self.started.lock() {
            started.retain(|(i, _)| *i != id);
        }
        self.ended.notify_waiters();
    }

    /// Returns once no batch is in flight or each has run `overlap` (what ends first).
    async fn overlap_after(&self, overlap: Duration) {
        loop {
            // Registered before the check, so an end between the two still wakes us.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let youngest = self
                .started
                .lock()
                .ok()
                .and_then(|started| started.iter().map(|(_, at)| *at).max());
            let Some(youngest) = youngest else { return };
            // An overlap too long to add to an instant is never reached: only an end
            // lets the next batch start.
            let Some(due) = youngest.checked_add(overlap) else {
                ended.await;
                continue;
            };
            if due <= tokio::time::Instant::now() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(due) => return,
                () = &mut ended => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
