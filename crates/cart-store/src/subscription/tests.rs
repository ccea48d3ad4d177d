//! Asynchronous projections against a real PostgreSQL: exactly-once under crashes, and
//! the sku_activity numbers.

use std::sync::atomic::{AtomicUsize, Ordering};

use cart_domain::{decide, CartCommand, CartId, ProjectId, Quantity, Sku, UserId};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use sqlx::PgPool;

use super::*;
use crate::{Append, EventStore, StreamKey};

fn key(cart: &str) -> StreamKey {
    StreamKey::new(
        ProjectId::parse(1).unwrap(),
        UserId::parse("alice").unwrap(),
        CartId::parse(cart).unwrap(),
    )
}

async fn run(store: &EventStore, cart: &str, command: CartCommand) {
    let k = key(cart);
    loop {
        let loaded = store.load(&k).await.unwrap();
        let events = decide(&loaded.cart, &command).unwrap();
        let after = events.iter().fold(loaded.cart.clone(), cart_domain::apply);
        let append = Append {
            key: &k,
            expected: loaded.version,
            events: &events,
            cart: &after,
            command: None,
            metadata: serde_json::json!({}),
        };
        match store.append(append).await {
            Ok(_) => return,
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

fn put(sku: &str, n: i64) -> CartCommand {
    CartCommand::PutItem {
        sku: Sku::parse(sku).unwrap(),
        quantity: Quantity::parse(n).unwrap(),
        listed: true,
    }
}

/// Records every event it applies, and crashes (fails the batch) on the n-th call.
struct Recorder {
    name: String,
    calls: AtomicUsize,
    crash_at: Vec<usize>,
}

impl Projection for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), StoreError> {
        // One call per event, as before batches: the crash points stay per event.
        for event in events {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            sqlx::query("insert into handled (projection, event_id) values ($1, $2)")
                .bind(&self.name)
                .bind(event.event_id)
                .execute(&mut *conn)
                .await?;
            if self.crash_at.contains(&call) {
                return Err(StoreError::Invalid(format!(
                    "crash injected at call {call}"
                )));
            }
        }
        Ok(())
    }
}

async fn visible_count(pool: &PgPool) -> usize {
    let store = EventStore::new(pool.clone());
    store
        .read_all(Default::default(), 100_000)
        .await
        .unwrap()
        .len()
}

/// Waits until every committed event is visible to the global reader (transactions of
/// other tests on the server may hold the barrier for moments).
async fn settle(pool: &PgPool) -> usize {
    let total: i64 = sqlx::query_scalar("select count(*) from cart_events")
        .fetch_one(pool)
        .await
        .unwrap();
    let total = usize::try_from(total).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while visible_count(pool).await < total {
        assert!(
            std::time::Instant::now() < deadline,
            "events stay invisible"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    total
}

#[tokio::test]
async fn a_consumer_crashing_at_random_points_handles_every_event_exactly_once() {
    let (_db, pool) = crate::testing::database().await;
    sqlx::query("create table handled (projection text not null, event_id uuid not null)")
        .execute(&pool)
        .await
        .unwrap();
    let store = EventStore::new(pool.clone());
    // A case: batch sizes, crash points among the apply calls, and commands appended
    // between batches (so the consumer moves from catch-up to live and reads empty pages).
    let strategy = (
        proptest::collection::vec(1i64..6, 1..6),
        proptest::collection::vec(0usize..40, 0..6),
        proptest::collection::vec((0usize..4, 0i64..4), 0..8),
    );
    let mut runner = TestRunner::deterministic();
    for case in 0..24 {
        let (limits, crash_at, appends) = strategy.new_tree(&mut runner).unwrap().current();
        let projection = Recorder {
            name: format!("recorder-{case}"),
            calls: AtomicUsize::new(0),
            crash_at,
        };
        let mut step = 0;
        let mut appends = appends.into_iter();
        loop {
            let limit = limits[step % limits.len()];
            step += 1;
            let result = run_batch(&pool, &projection, limit).await;
            match &result {
                Ok(_) => {}
                // The crash: the batch's transaction is gone, rows and checkpoint alike.
                Err(StoreError::Invalid(_)) => {}
                Err(e) => panic!("{e}"),
            }
            if let Some((cart, n)) = appends.next() {
                run(&store, &format!("c{cart}"), put("a", n)).await;
                continue;
            }
            if matches!(result, Ok(0)) {
                // Nothing visible after the checkpoint: done once everything committed
                // is visible and was read.
                let total = settle(&pool).await;
                let done: i64 = sqlx::query_scalar(
                    "select count(distinct event_id) from handled where projection = $1",
                )
                .bind(&projection.name)
                .fetch_one(&pool)
                .await
                .unwrap();
                if usize::try_from(done).unwrap() == total {
                    break;
                }
            }
            assert!(step < 10_000, "case {case}: no progress");
        }
        let (handled, distinct): (i64, i64) = sqlx::query_as(
            "select count(*), count(distinct event_id) from handled where projection = $1",
        )
        .bind(&projection.name)
        .fetch_one(&pool)
        .await
        .unwrap();
        let total = i64::try_from(settle(&pool).await).unwrap();
        assert_eq!(distinct, total, "case {case}: an event was never handled");
        assert_eq!(handled, total, "case {case}: an event was handled twice");
    }
}

#[tokio::test]
async fn sku_activity_counts_carts_and_units_and_ignores_redelivery() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    run(&store, "c1", put("cup", 2)).await;
    run(&store, "c1", put("cup", 5)).await;
    run(&store, "c1", put("gold", 1)).await;
    run(&store, "c2", put("cup", 1)).await;
    run(&store, "c2", CartCommand::Clear).await;
    run(&store, "c3", put("gold", 4)).await;
    run(&store, "c3", put("gold", 0)).await;
    run(&store, "c2", put("cup", 3)).await;
    settle(&pool).await;
    let rows = || async {
        sqlx::query_as::<_, (String, i64, i64, i64, i64)>(
            "select sku, carts_holding, units_held, times_added, times_removed from sku_activity order by sku",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let expected = vec![
        ("cup".to_owned(), 2, 8, 3, 1),
        ("gold".to_owned(), 1, 1, 2, 1),
    ];
    // A batch folds its events in memory: whatever the batch size (one event, a cart's
    // events split across batches, everything at once), the rows come out the same.
    for limit in [1, 3, 1000] {
        for table in [
            "sku_activity",
            "sku_activity_lines",
            "projection_versions",
            "feed_checkpoints",
        ] {
            sqlx::query(&format!("delete from {table}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        while run_batch(&pool, &SkuActivity, limit).await.unwrap() > 0 {}
        assert_eq!(rows().await, expected, "batches of {limit}");
    }
    let lines: Vec<(String, i64)> =
        sqlx::query_as("select sku, quantity from sku_activity_lines order by sku, quantity")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        lines,
        [
            ("cup".to_owned(), 3),
            ("cup".to_owned(), 5),
            ("gold".to_owned(), 1)
        ]
    );
    let catch_up = || async { while run_batch(&pool, &SkuActivity, 3).await.unwrap() > 0 {} };

    // Everything delivered again from the start: the version claims ignore it all.
    sqlx::query("update feed_checkpoints set tx_id = '0', global_position = 0 where name = $1")
        .bind(SkuActivity::NAME)
        .execute(&pool)
        .await
        .unwrap();
    catch_up().await;
    assert_eq!(rows().await, expected);
}
