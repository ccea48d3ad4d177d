//! Wake on arrival and `done` right after the 2xx (issue 16). Each worker here polls
//! once an hour, so whatever it delivers or marks within the test's waits came from a
//! wake (intake's, or another process's NOTIFY) or from the delivering step itself.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cart_webhook::{MarkDelivered, MarkError};
use common::{paid, Receiver, World};

const HOUR: Duration = Duration::from_secs(3600);

async fn wait_marked(marked: &Arc<Mutex<Vec<(u64, u64)>>>, order: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !marked.lock().unwrap().contains(&(1, order)) {
        assert!(Instant::now() < deadline, "order {order} never marked done");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_worker_delivers_on_arrival_and_marks_done_in_the_same_step() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let mut config = w.config.clone();
    config.poll = HOUR;
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    // The first order may meet the loops' first look; the second finds them idle.
    for order in [101, 102] {
        w.publish(&paid(1, order)).await;
        w.wait_status(order, "order_paid", "delivered").await;
        // The follow-up loop would take it only after store::FOLLOW_UP_AFTER and a
        // wake or poll: the delivering loop marked it.
        wait_marked(&w.marked, order).await;
    }
    // The loop records the follow-up as done right after the mark returns: wait for
    // that commit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let followed: i64 = sqlx::query_scalar(
            "select count(*) from webhook_deliveries
             where followed_up_at is not null and follow_up_error is null",
        )
        .fetch_one(&w.pool)
        .await
        .unwrap();
        if followed == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delivering loop never recorded its follow-ups: {followed} of 2"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_recorded_by_another_process_wakes_an_idle_worker() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let mut config = w.config.clone();
    config.poll = HOUR;
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    // Once this is delivered, the loops are idle (waiting for a wake or the hour).
    w.publish(&paid(1, 111)).await;
    w.wait_status(111, "order_paid", "delivered").await;
    // Recorded here, as another process's intake would: only its NOTIFY reaches the
    // worker.
    w.insert_paid(112).await;
    w.wait_status(112, "order_paid", "delivered").await;
    assert_eq!(receiver.calls().len(), 2);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mark_that_fails_after_the_2xx_is_retried_by_the_follow_up_loop() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    // The first mark fails (the order store unreachable), the next ones succeed.
    let tries = Arc::new(Mutex::new(0));
    let marked = w.marked.clone();
    let counted = tries.clone();
    let mark: MarkDelivered = Arc::new(move |project, order| {
        let first = {
            let mut n = counted.lock().unwrap();
            *n += 1;
            *n == 1
        };
        if !first {
            marked.lock().unwrap().push((project, order));
        }
        Box::pin(async move {
            if first {
                Err(MarkError::Failed("the order store is unreachable".into()))
            } else {
                Ok(())
            }
        })
    });
    let config = w.config.clone();
    let worker = tokio::spawn(async move {
        let pool = cart_webhook::connect(&config).await.unwrap();
        cart_webhook::run_with(config, pool, mark, std::future::pending())
            .await
            .unwrap();
    });
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 121)).await;
    w.wait_status(121, "order_paid", "delivered").await;
    wait_marked(&w.marked, 121).await;
    assert_eq!(*tries.lock().unwrap(), 2, "one failed mark, one retry");
    assert_eq!(receiver.calls().len(), 1, "the webhook is not sent again");
    worker.abort();
}

/// The worker's own VACUUM of the outbox (`--vacuum-every`): it runs, beside the
/// deliveries, so the claim's index sheds the dead entries of finished deliveries even
/// with autovacuum off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_vacuums_the_outbox_on_its_own() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![]).await;
    let mut config = w.config.clone();
    config.vacuum_every = Duration::from_millis(200);
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 131)).await;
    w.wait_status(131, "order_paid", "delivered").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let vacuumed: bool = sqlx::query_scalar(
            "select last_vacuum is not null from pg_stat_user_tables
             where relname = 'webhook_deliveries'",
        )
        .fetch_one(&w.pool)
        .await
        .unwrap();
        if vacuumed {
            break;
        }
        assert!(Instant::now() < deadline, "never vacuumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.abort();
}
