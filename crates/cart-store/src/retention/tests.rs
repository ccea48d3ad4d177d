//! Retention against a real PostgreSQL. Time is data: the sweeps take their cut-off as
//! an argument, and rows are aged by writing their time, never by sleeping.

use std::collections::BTreeMap;
use std::time::Duration;

use cart_domain::{decide, Cart, CartError, Existence, Quantity, Sku};

use super::*;
use crate::{EventStore, ProcessedCommand, StoreError};

const DAY: Duration = Duration::from_secs(86_400);

fn key(user: &str, cart: &str) -> StreamKey {
    StreamKey::new(
        ProjectId::parse(1).unwrap(),
        UserId::parse(user).unwrap(),
        CartId::parse(cart).unwrap(),
    )
}

fn put(sku: &str, n: i64) -> CartCommand {
    CartCommand::PutItem {
        sku: Sku::parse(sku).unwrap(),
        quantity: Quantity::parse(n).unwrap(),
        listed: true,
    }
}

fn redeem(existence: Existence) -> CartCommand {
    CartCommand::RedeemPromoCode {
        code: "WINTER".into(),
        selected_unit_items: BTreeMap::new(),
        check: Ok(()),
        existence,
    }
}

/// Decides and appends one command as the service does (retrying a lost race); the
/// version it wrote, or the domain's refusal.
async fn run(
    store: &EventStore,
    key: &StreamKey,
    command: &CartCommand,
    ledger: Option<&ProcessedCommand>,
) -> Result<i64, CartError> {
    for _ in 0..50 {
        let loaded = store.load(key).await.unwrap();
        let events = decide(&loaded.cart, command)?;
        let cart = events.iter().fold(loaded.cart.clone(), cart_domain::apply);
        let append = Append {
            key,
            expected: loaded.version,
            events: &events,
            cart: &cart,
            command: ledger,
            metadata: serde_json::json!({}),
        };
        match store.append(append).await {
            Ok(outcome) => return Ok(outcome.version),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("no progress after 50 attempts")
}

/// The database's clock, which stamps `created_at` and `updated_at`.
async fn db_now(pool: &PgPool) -> Timestamp {
    let now: f64 = sqlx::query_scalar("select extract(epoch from now())::float8")
        .fetch_one(pool)
        .await
        .unwrap();
    Timestamp::from_unix(now as i64)
}

/// Ages every cart's projection row by `days`, as if nobody had touched them since.
async fn age_carts(pool: &PgPool, days: i32) {
    sqlx::query("update cart_projection set updated_at = updated_at - make_interval(days => $1)")
        .bind(days)
        .execute(pool)
        .await
        .unwrap();
}

async fn rows(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn event_types(pool: &PgPool, key: &StreamKey) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as(
        "select event_type, payload from cart_events where stream_id = $1 order by version",
    )
    .bind(key.stream_id())
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_retry_inside_the_ledger_window_is_answered_and_after_it_is_a_new_command() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("alice", "c1");
    let ledger = ProcessedCommand {
        command_id: "cmd-1".into(),
        fingerprint: vec![1],
        content_type: "application/json".into(),
        reply: b"{}".to_vec(),
    };
    run(&store, &k, &put("a", 1), Some(&ledger)).await.unwrap();
    let now = db_now(&pool).await;
    let window = 7 * DAY;

    // Six days on, the row is inside the window: kept, and a retry is recognised.
    let six_days_on = Timestamp::from_unix(now.unix() + 6 * 86_400);
    let batch = prune_ledger(&pool, cutoff(six_days_on, window), 100)
        .await
        .unwrap();
    assert_eq!(
        batch,
        Batch {
            done: 0,
            busy: false
        }
    );
    let found = store.processed(k.project, &k.user, "cmd-1").await.unwrap();
    assert_eq!(found.map(|p| p.reply), Some(b"{}".to_vec()));

    // Eight days on, it is out of the window: gone, and the same id is a new command.
    let eight_days_on = Timestamp::from_unix(now.unix() + 8 * 86_400);
    let batch = prune_ledger(&pool, cutoff(eight_days_on, window), 100)
        .await
        .unwrap();
    assert_eq!(
        batch,
        Batch {
            done: 1,
            busy: false
        }
    );
    assert!(store
        .processed(k.project, &k.user, "cmd-1")
        .await
        .unwrap()
        .is_none());
    let version = run(&store, &k, &put("a", 2), Some(&ledger)).await.unwrap();
    assert_eq!(
        version, 3,
        "CartOpened, a=1, then the retry's a=2 as a new command"
    );
}

#[tokio::test]
async fn the_ledger_is_pruned_in_batches_oldest_first_and_one_instance_at_a_time() {
    let (_db, pool) = crate::testing::database().await;
    sqlx::query(
        "insert into processed_commands (project_id, user_id, command_id, fingerprint, stream_id, content_type, reply, created_at) \
         select 1, 'u', 'c' || i, '\\x01', gen_random_uuid(), 'application/json', '\\x7b7d', now() - make_interval(days => i) \
         from generate_series(1, 25) as i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let now = db_now(&pool).await;
    // Rows older than 10 days: 15 of them (11..=25 days old), in batches of 10.
    let before = cutoff(now, 10 * DAY);
    assert_eq!(prune_ledger(&pool, before, 10).await.unwrap().done, 10);
    let oldest_left: i64 =
        sqlx::query_scalar("select max(substr(command_id, 2)::int8) from processed_commands")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(oldest_left, 15, "the oldest went first");

    // While another transaction holds the sweep, a batch skips instead of waiting.
    let mut other = pool.begin().await.unwrap();
    assert!(locks::try_take(&mut other, locks::retention(LEDGER_SWEEP))
        .await
        .unwrap());
    assert_eq!(
        prune_ledger(&pool, before, 10).await.unwrap(),
        Batch {
            done: 0,
            busy: true
        }
    );
    other.rollback().await.unwrap();
    assert_eq!(prune_ledger(&pool, before, 10).await.unwrap().done, 5);
    assert_eq!(prune_ledger(&pool, before, 10).await.unwrap().done, 0);
    assert_eq!(rows(&pool, "processed_commands").await, 10);
}

#[tokio::test]
async fn an_untouched_cart_expires_by_an_event_loses_its_projection_row_and_starts_over() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let old = key("alice", "old");
    let fresh = key("alice", "fresh");
    run(&store, &old, &put("a", 2), None).await.unwrap();
    run(&store, &old, &redeem(Existence::Always), None)
        .await
        .unwrap();
    age_carts(&pool, 31).await;
    run(&store, &fresh, &put("b", 1), None).await.unwrap();
    let now = db_now(&pool).await;

    // With 32 days as the setting, nothing is due yet.
    let batch = expire_carts(&pool, cutoff(now, 32 * DAY), 100)
        .await
        .unwrap();
    assert_eq!(batch.done, 0);
    // With 30 days, the old cart is due and the fresh one is not.
    let batch = expire_carts(&pool, cutoff(now, 30 * DAY), 100)
        .await
        .unwrap();
    assert_eq!(
        batch,
        Batch {
            done: 1,
            busy: false
        }
    );
    assert_eq!(store.projection(&old).await.unwrap(), None);
    assert!(store.projection(&fresh).await.unwrap().is_some());

    // The log keeps everything and ends with the expiry.
    let types = event_types(&pool, &old).await;
    let names: Vec<&str> = types.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "CartOpened",
            "ItemQuantitySet",
            "PromoCodeRedeemed",
            "PromoCodeRemoved",
            "CartCleared"
        ]
    );
    assert_eq!(types[4].1, serde_json::json!({"reason": "expired"}));
    let loaded = store.load(&old).await.unwrap();
    assert_eq!(loaded.cart, Cart::default(), "folds to a cart never opened");
    assert_eq!(loaded.version, 5);

    // A named cart is not found again; written again, it opens anew.
    assert_eq!(
        run(&store, &old, &redeem(Existence::OnceOpened), None).await,
        Err(CartError::CartNotFound)
    );
    assert_eq!(run(&store, &old, &put("c", 1), None).await, Ok(7));
    let names: Vec<String> = event_types(&pool, &old)
        .await
        .into_iter()
        .skip(5)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(names, ["CartOpened", "ItemQuantitySet"]);
    assert_eq!(store.projection(&old).await.unwrap().unwrap().version, 7);

    // An expired cart is not expired again, and the rebuild agrees with the sweep.
    age_carts(&pool, 40).await;
    assert_eq!(
        expire_carts(&pool, cutoff(now, 30 * DAY), 100)
            .await
            .unwrap()
            .done,
        2
    );
    assert_eq!(
        expire_carts(&pool, cutoff(now, 30 * DAY), 100)
            .await
            .unwrap()
            .done,
        0
    );
    let report = crate::rebuild_projection(&pool, |_| {}).await.unwrap();
    assert_eq!(report.differences, 0);
    assert_eq!(rows(&pool, "cart_projection").await, 0);
}

#[tokio::test]
async fn a_command_racing_the_expiry_of_its_cart_is_never_lost() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let carts: Vec<StreamKey> = (0..24).map(|i| key("bob", &format!("c{i}"))).collect();
    for k in &carts {
        run(&store, k, &put("a", 1), None).await.unwrap();
    }
    age_carts(&pool, 40).await;
    let now = db_now(&pool).await;
    let before = cutoff(now, 30 * DAY);
    // The sweep, in small batches, and a put on every cart, at the same time.
    let sweep = async {
        let mut expired = 0;
        loop {
            let batch = expire_carts(&pool, before, 4).await.unwrap();
            expired += batch.done;
            if batch.done == 0 && !batch.busy {
                return expired;
            }
        }
    };
    let put_b = put("b", 1);
    let puts = futures::future::join_all(carts.iter().map(|k| run(&store, k, &put_b, None)));
    let (_, puts) = tokio::join!(sweep, puts);
    for (k, put) in carts.iter().zip(puts) {
        let put_version = put.unwrap();
        let types = event_types(&pool, k).await;
        let expired_at = types
            .iter()
            .position(|(t, p)| t == "CartCleared" && p["reason"] == "expired")
            .map(|i| i as i64 + 1);
        let loaded = store.load(k).await.unwrap();
        let projected = store.projection(k).await.unwrap();
        match expired_at {
            // Expired after the put: the put stays in the log, the cart is gone.
            Some(at) if at > put_version => {
                assert_eq!(loaded.cart, Cart::default());
                assert_eq!(projected, None);
            }
            // The put came after the expiry (or no expiry): it is in the cart.
            _ => {
                assert_eq!(loaded.cart.quantity_of(&Sku::parse("b").unwrap()), 1);
                assert_eq!(projected, Some(loaded.clone()));
            }
        }
        let clears = types.iter().filter(|(t, _)| t == "CartCleared").count();
        assert!(clears <= 1, "expired at most once: {types:?}");
    }
    // Nothing is left due that the sweep would still find wrong.
    let report = crate::rebuild_projection(&pool, |_| {}).await.unwrap();
    assert_eq!(report.differences, 0);
}
