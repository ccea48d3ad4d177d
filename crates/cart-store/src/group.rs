//! Group commit: appends of different carts that arrive together share one transaction,
//! so one fsync serves many commands. Each command is still decided, guarded and
//! answered on its own (see [`EventStore::append_batch`]); none is answered before the
//! transaction that holds it has committed.

use std::collections::HashSet;
use std::sync::Arc;

use cart_domain::{Cart, CartEvent};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use crate::store::{Append, AppendOutcome, EventStore, ProcessedCommand, StoreError, StreamKey};

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
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            max_in_flight: 2,
        }
    }
}

struct Job {
    append: PendingAppend,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
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
        tokio::spawn(write_batches(store, jobs, config));
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
            .send(Job { append, reply })
            .await
            .map_err(|_| StoreError::Invalid("the batch writer has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| StoreError::Invalid("the batch writer dropped a command".to_owned()))?
    }
}

async fn write_batches(store: EventStore, mut jobs: mpsc::Receiver<Job>, config: GroupConfig) {
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let max_batch = config.max_batch.max(1);
    // A command for a cart already in the forming batch waits for the next one: one
    // batch holds at most one command per cart, so none of them can lose to a batch-mate.
    let mut held: Option<Job> = None;
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
        let mut streams: HashSet<Uuid> = HashSet::from([first.append.key.stream_id()]);
        let mut batch = vec![first];
        while batch.len() < max_batch {
            let Ok(job) = jobs.try_recv() else { break };
            if streams.insert(job.append.key.stream_id()) {
                batch.push(job);
            } else {
                held = Some(job);
                break;
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            let views: Vec<Append<'_>> = batch.iter().map(|j| j.append.view()).collect();
            let result = store.append_batch(&views).await;
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
            drop(slot);
        });
    }
}
