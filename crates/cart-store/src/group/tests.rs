//! The batch scheduler on tokio's paused clock: when a batch may start beside others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use super::{run_batches, GroupConfig};

/// Each batch's jobs and when it started.
type Starts = mpsc::UnboundedReceiver<(Vec<u32>, Instant)>;

/// A scheduler whose batches report (jobs, start) and each wait for a permit of the
/// returned semaphore before they end (the first to wait gets the first permit).
fn scheduler(overlap_after: Duration) -> (mpsc::Sender<u32>, Starts, Arc<Semaphore>) {
    let (jobs, queue) = mpsc::channel(64);
    let (started, starts) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let config = GroupConfig {
        max_batch: 256,
        max_in_flight: 2,
        overlap_after,
    };
    let gate = release.clone();
    tokio::spawn(run_batches(queue, config, None, move |batch: Vec<u32>| {
        let (started, gate) = (started.clone(), gate.clone());
        async move {
            let _ = started.send((batch, Instant::now()));
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
        }
    }));
    (jobs, starts, release)
}

#[tokio::test(start_paused = true)]
async fn a_batch_starts_beside_another_only_once_that_one_has_run_the_overlap() {
    let t0 = Instant::now();
    let (jobs, mut starts, _release) = scheduler(Duration::from_millis(20));
    jobs.send(1).await.unwrap();
    let (first, at) = starts.recv().await.unwrap();
    assert_eq!((first, at - t0), (vec![1], Duration::ZERO));
    for job in [2, 3] {
        jobs.send(job).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    jobs.send(4).await.unwrap();
    let (second, at) = starts.recv().await.unwrap();
    assert_eq!(
        (second, at - t0),
        (vec![2, 3, 4], Duration::from_millis(20)),
        "what came while the first ran went together, once it had run 20 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_starts_as_soon_as_the_one_before_ends() {
    let t0 = Instant::now();
    let (jobs, mut starts, release) = scheduler(Duration::from_millis(20));
    jobs.send(1).await.unwrap();
    starts.recv().await.unwrap();
    jobs.send(2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    release.add_permits(1);
    let (second, at) = starts.recv().await.unwrap();
    assert_eq!((second, at - t0), (vec![2], Duration::from_millis(5)));
}

#[tokio::test(start_paused = true)]
async fn without_an_overlap_batches_start_side_by_side_at_once() {
    let t0 = Instant::now();
    let (jobs, mut starts, _release) = scheduler(Duration::ZERO);
    jobs.send(1).await.unwrap();
    starts.recv().await.unwrap();
    jobs.send(2).await.unwrap();
    let (second, at) = starts.recv().await.unwrap();
    assert_eq!((second, at - t0), (vec![2], Duration::ZERO));
    // Both slots are taken: the third waits for an end, however long.
    jobs.send(3).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(starts.try_recv().is_err(), "a third batch beside two");
}

#[tokio::test(start_paused = true)]
async fn an_overlap_too_long_for_the_clock_waits_for_the_end_and_never_panics() {
    let t0 = Instant::now();
    let (jobs, mut starts, release) = scheduler(Duration::MAX);
    jobs.send(1).await.unwrap();
    starts.recv().await.unwrap();
    jobs.send(2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(
        starts.try_recv().is_err(),
        "a second batch before the first ended"
    );
    release.add_permits(1);
    let (second, at) = starts.recv().await.unwrap();
    assert_eq!((second, at - t0), (vec![2], Duration::from_secs(3600)));
}
