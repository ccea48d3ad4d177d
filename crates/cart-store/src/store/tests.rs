//! The store against a real PostgreSQL, one fresh database per test (`testing::database`
//! on the server of DATABASE_URL). These are the event-sourcing pitfalls worth a test each.

use cart_domain::{decide, CartCommand, Quantity, Sku};

use super::*;
use crate::{AsOf, RebuildReport};

fn key(cart: &str) -> StreamKey {
    StreamKey::new(
        ProjectId::parse(1).unwrap(),
        UserId::parse("alice").unwrap(),
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

/// Decides and appends one command the way the service does, retrying on conflict.
async fn run(
    store: &EventStore,
    key: &StreamKey,
    command: &CartCommand,
) -> Result<i64, StoreError> {
    for _ in 0..50 {
        let loaded = store.load(key).await?;
        let events = decide(&loaded.cart, command).unwrap();
        let cart = events.iter().fold(loaded.cart.clone(), cart_domain::apply);
        let append = Append {
            key,
            expected: loaded.version,
            events: &events,
            cart: &cart,
            command: None,
            metadata: serde_json::json!({}),
        };
        match store.append(append).await {
            Ok(outcome) => return Ok(outcome.version),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    panic!("no progress after 50 attempts")
}

#[tokio::test]
async fn append_then_load_round_trips() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool);
    let k = key("c1");
    assert_eq!(
        store.load(&k).await.unwrap(),
        Loaded {
            cart: Cart::default(),
            version: 0
        }
    );
    run(&store, &k, &put("a", 2)).await.unwrap();
    let version = run(&store, &k, &put("b", 1)).await.unwrap();
    let loaded = store.load(&k).await.unwrap();
    assert_eq!(loaded.version, version);
    assert_eq!(version, 3, "CartOpened, a, b");
    let lines: Vec<_> = loaded
        .cart
        .lines()
        .iter()
        .map(|l| (l.sku.to_string(), l.quantity))
        .collect();
    assert_eq!(lines, [("a".to_owned(), 2), ("b".to_owned(), 1)]);
    assert_eq!(store.projection(&k).await.unwrap(), Some(loaded));
}

#[tokio::test]
async fn second_append_at_the_same_version_conflicts_and_writes_nothing() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("c1");
    let events = [CartEvent::CartOpened];
    let cart = Cart::replay(&events);
    let append = |command| Append {
        key: &k,
        expected: 0,
        events: &events,
        cart: &cart,
        command,
        metadata: serde_json::json!({}),
    };
    store.append(append(None)).await.unwrap();
    let ledger = ProcessedCommand {
        command_id: "cmd-1".into(),
        fingerprint: vec![1],
        content_type: "application/json".into(),
        reply: b"{}".to_vec(),
    };
    let err = store.append(append(Some(&ledger))).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected: 0, .. }),
        "{err:?}"
    );
    // The ledger row of the losing attempt rolled back with it.
    assert!(store
        .processed(k.project, &k.user, "cmd-1")
        .await
        .unwrap()
        .is_none());
    let n: i64 = sqlx::query_scalar("select count(*) from cart_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_command_id_is_recorded_once_and_its_events_roll_back_with_a_duplicate() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("c1");
    let ledger = ProcessedCommand {
        command_id: "cmd-1".into(),
        fingerprint: vec![7; 32],
        content_type: "application/json".into(),
        reply: b"first".to_vec(),
    };
    let events = [
        CartEvent::CartOpened,
        CartEvent::ItemQuantitySet {
            sku: Sku::parse("a").unwrap(),
            quantity: 1,
        },
    ];
    let cart = Cart::replay(&events);
    store
        .append(Append {
            key: &k,
            expected: 0,
            events: &events,
            cart: &cart,
            command: Some(&ledger),
            metadata: serde_json::json!({}),
        })
        .await
        .unwrap();
    // A second attempt with three events at the right version still fails as a whole.
    let more = [
        CartEvent::ItemQuantitySet {
            sku: Sku::parse("b").unwrap(),
            quantity: 1,
        },
        CartEvent::ItemQuantitySet {
            sku: Sku::parse("c").unwrap(),
            quantity: 1,
        },
        CartEvent::ItemQuantitySet {
            sku: Sku::parse("d").unwrap(),
            quantity: 1,
        },
    ];
    let err = store
        .append(Append {
            key: &k,
            expected: 2,
            events: &more,
            cart: &cart,
            command: Some(&ledger),
            metadata: serde_json::json!({}),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateCommand { .. }),
        "{err:?}"
    );
    assert_eq!(
        store.load(&k).await.unwrap().version,
        2,
        "none of the three events landed"
    );
    let stored = store
        .processed(k.project, &k.user, "cmd-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.reply, b"first");
    // Another user's ledger is separate.
    let bob = UserId::parse("bob").unwrap();
    assert!(store
        .processed(k.project, &bob, "cmd-1")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn twenty_concurrent_writers_on_one_cart_lose_nothing() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool);
    let k = key("hot");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let k = k.clone();
            tokio::spawn(async move { run(&store, &k, &put(&format!("sku-{i}"), i + 1)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let loaded = store.load(&k).await.unwrap();
    assert_eq!(loaded.version, 21, "CartOpened plus one event per writer");
    assert_eq!(loaded.cart.lines().len(), 20);
    for i in 0..20 {
        assert_eq!(
            loaded
                .cart
                .quantity_of(&Sku::parse(format!("sku-{i}")).unwrap()),
            u32::try_from(i + 1).unwrap()
        );
    }
    assert_eq!(store.projection(&k).await.unwrap(), Some(loaded));
}

/// Waits until some session of the test's database waits for a lock.
async fn until_a_session_waits_for_a_lock(pool: &PgPool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity \
             where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no session ever waited for a lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn raw_insert(conn: &mut PgConnection, stream: Uuid, version: i64) {
    raw_event(conn, stream, version, "CartOpened", 1, "{}").await;
}

/// Stores an event row as given, bypassing the encoder: old versions, bad payloads.
async fn raw_event(
    conn: &mut PgConnection,
    stream: Uuid,
    version: i64,
    event_type: &str,
    schema_version: i16,
    payload: &str,
) {
    sqlx::query(
        "insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
         values ($1, $2, $3, 1, $4, $5, $6::jsonb, '{}')",
    )
    .bind(stream)
    .bind(version)
    .bind(Uuid::now_v7())
    .bind(event_type)
    .bind(schema_version)
    .bind(payload)
    .execute(conn)
    .await
    .unwrap();
}

async fn read_streams(store: &EventStore, after: Position) -> Vec<Uuid> {
    store
        .read_all(after, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.stream_id)
        .collect()
}

#[tokio::test]
async fn a_late_commit_is_never_skipped_by_the_global_reader() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    // A takes its position first and stays open; B takes a later one and commits.
    let mut tx_a = pool.begin().await.unwrap();
    raw_insert(&mut tx_a, a, 1).await;
    let mut tx_b = pool.begin().await.unwrap();
    raw_insert(&mut tx_b, b, 1).await;
    tx_b.commit().await.unwrap();

    // A sequence-ordered reader would see B now, remember its position and skip A
    // forever. This reader sees nothing until A is decided.
    assert_eq!(
        read_streams(&store, Position::default()).await,
        Vec::<Uuid>::new()
    );
    tx_a.commit().await.unwrap();
    // Transactions of other tests on the same server share the barrier (it is the
    // cluster's oldest running transaction), so one may hold it between A and B for a
    // while: then A shows alone first. Read on from the last position until both showed;
    // whatever the pace, the order is A then B and nothing comes twice.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    while seen.len() < 2 && std::time::Instant::now() < deadline {
        let after = seen
            .last()
            .map_or(Position::default(), |e: &RecordedEvent| e.position);
        let page = store.read_all(after, 100).await.unwrap();
        if page.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|e| e.stream_id).collect::<Vec<_>>(), [a, b]);

    // Resuming after the last position delivers nothing twice.
    let last = seen.last().unwrap().position;
    assert_eq!(read_streams(&store, last).await, Vec::<Uuid>::new());
}

#[tokio::test]
async fn a_rolled_back_append_leaves_a_hole_the_reader_passes() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = pool.begin().await.unwrap();
    raw_insert(&mut tx, a, 1).await;
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    raw_insert(&mut tx, b, 1).await;
    tx.commit().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = read_streams(&store, Position::default()).await;
    while seen.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        seen = read_streams(&store, Position::default()).await;
    }
    assert_eq!(seen, [b]);
}

#[tokio::test]
async fn the_global_position_sequence_has_cache_one() {
    let (_db, pool) = crate::testing::database().await;
    let cache: i64 = sqlx::query_scalar(
        "select cache_size from pg_sequences where sequencename = pg_get_serial_sequence('cart_events', 'global_position')::regclass::text \
            or schemaname || '.' || sequencename = pg_get_serial_sequence('cart_events', 'global_position')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(cache, 1);
}

#[tokio::test]
async fn a_corrupt_stored_event_is_an_error_not_a_panic() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("c1");
    let mut conn = pool.acquire().await.unwrap();
    raw_event(
        &mut conn,
        k.stream_id(),
        1,
        "ItemQuantitySet",
        1,
        r#"{"sku": 42}"#,
    )
    .await;
    assert!(matches!(
        store.load(&k).await,
        Err(StoreError::Decode { version: 1, .. })
    ));
}

#[tokio::test]
async fn the_rebuilt_projection_equals_the_live_one() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    for (i, cart) in ["c1", "c2", "c3"].into_iter().enumerate() {
        let k = key(cart);
        run(&store, &k, &put("a", 1)).await.unwrap();
        run(&store, &k, &put("b", 2)).await.unwrap();
        if i == 1 {
            run(&store, &k, &CartCommand::Clear).await.unwrap();
        }
        if i == 2 {
            run(&store, &k, &put("a", 0)).await.unwrap();
        }
    }
    let report = crate::rebuild_projection(&pool, |_| {}).await.unwrap();
    assert_eq!(
        report,
        RebuildReport {
            streams: 3,
            events: 11,
            differences: 0
        }
    );

    // The comparison is real: a damaged live row shows up as a difference.
    sqlx::query("update cart_projection set lines = '[]' where stream_id = $1")
        .bind(key("c1").stream_id())
        .execute(&pool)
        .await
        .unwrap();
    let report = crate::rebuild_projection(&pool, |_| {}).await.unwrap();
    assert_eq!(report.differences, 2);
    // The switch put the rebuilt rows live: the damage is repaired.
    assert_eq!(
        store.projection(&key("c1")).await.unwrap(),
        Some(store.load(&key("c1")).await.unwrap())
    );
}

#[test]
fn stream_ids_are_stable_and_distinct() {
    let project = ProjectId::parse(1).unwrap();
    let a = StreamKey::new(
        project,
        UserId::parse("ab").unwrap(),
        CartId::parse("c").unwrap(),
    );
    let b = StreamKey::new(
        project,
        UserId::parse("a").unwrap(),
        CartId::parse("bc").unwrap(),
    );
    assert_ne!(a.stream_id(), b.stream_id());
    // Stream ids are stored in the log, so the derivation is pinned: a change here would
    // orphan every existing cart.
    assert_eq!(
        a.stream_id().to_string(),
        "58795c8c-565d-56d6-a92c-3f97c4182623"
    );
}

fn fill(skus: &[&str]) -> CartCommand {
    CartCommand::Fill {
        items: skus
            .iter()
            .map(|s| cart_domain::FillItem {
                sku: Sku::parse(*s).unwrap(),
                quantity: Quantity::parse(1).unwrap(),
                listed: true,
                unavailable: None,
            })
            .collect(),
        replace: false,
    }
}

/// Reads everything visible, waiting out transactions of other tests on the server.
async fn read_visible(store: &EventStore, n: usize, limit: i64) -> Vec<RecordedEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = store.read_all(Position::default(), limit).await.unwrap();
        if seen.len() >= n || std::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_page_never_ends_inside_a_command() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool);
    // CartOpened and three lines: four events of one transaction.
    run(&store, &key("c1"), &fill(&["a", "b", "c"]))
        .await
        .unwrap();
    let page = read_visible(&store, 1, 1).await;
    assert_eq!(
        page.len(),
        4,
        "a reader asking for one event gets the whole command"
    );
    assert_eq!(
        page.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(page[0].user_id, "alice");
    assert_eq!(page[0].cart_id, "c1");
}

#[tokio::test]
async fn events_stored_by_an_older_schema_version_are_upcast_on_every_read() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("c1");
    run(&store, &k, &put("a", 2)).await.unwrap();
    // A clear as the first version of the schema stored it: no reason.
    let mut conn = pool.acquire().await.unwrap();
    raw_event(&mut conn, k.stream_id(), 3, "CartCleared", 1, "{}").await;
    let cleared = CartEvent::CartCleared {
        reason: cart_domain::ClearReason::Shopper,
    };
    let loaded = store.load(&k).await.unwrap();
    assert_eq!(loaded.version, 3);
    assert!(loaded.cart.lines().is_empty());
    let events = read_visible(&store, 3, 100).await;
    assert_eq!(events[2].event, cleared);
    let envelope = serde_json::to_value(events[2].envelope()).unwrap();
    assert_eq!(envelope["schema_version"], 2);
    assert_eq!(envelope["cart_cleared"]["reason"], "shopper");

    // New clears are written in the current version.
    run(&store, &k, &put("a", 1)).await.unwrap();
    run(&store, &k, &CartCommand::Clear).await.unwrap();
    let (sv, payload): (i16, serde_json::Value) = sqlx::query_as(
        "select schema_version, payload from cart_events where stream_id = $1 and version = 5",
    )
    .bind(k.stream_id())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((sv, payload), (2, serde_json::json!({"reason": "shopper"})));
}

#[tokio::test]
async fn an_unknown_event_type_stops_the_reader_instead_of_being_skipped() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    run(&store, &key("c1"), &put("a", 1)).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    raw_event(
        &mut conn,
        key("c1").stream_id(),
        3,
        "CartGiftWrapped",
        1,
        "{}",
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let error = loop {
        match store.read_all(Position::default(), 100).await {
            Err(e) => break e,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(events) => panic!("read {} events past an unknown type", events.len()),
        }
    };
    assert!(
        matches!(&error, StoreError::Decode { version: 3, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn time_travel_gives_the_cart_at_a_version_or_a_time() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("c1");
    run(&store, &k, &put("a", 1)).await.unwrap(); // versions 1, 2
    run(&store, &k, &put("b", 2)).await.unwrap(); // 3
    run(&store, &k, &put("a", 0)).await.unwrap(); // 4
    sqlx::query(
        "update cart_events set recorded_at = '2026-01-01T00:00:00Z'::timestamptz + version * interval '1 minute' \
         where stream_id = $1",
    )
    .bind(k.stream_id())
    .execute(&pool)
    .await
    .unwrap();
    let lines = |l: &Option<Loaded>| {
        l.as_ref().map(|l| {
            l.cart
                .lines()
                .iter()
                .map(|x| (x.sku.to_string(), x.quantity))
                .collect::<Vec<_>>()
        })
    };
    let at = store.load_as_of(&k, &AsOf::Version(3)).await.unwrap();
    assert_eq!(at.as_ref().map(|l| l.version), Some(3));
    assert_eq!(lines(&at), Some(vec![("a".into(), 1), ("b".into(), 2)]));
    let at = store
        .load_as_of(&k, &AsOf::Time("2026-01-01T00:02:30Z".into()))
        .await
        .unwrap();
    assert_eq!(at.as_ref().map(|l| l.version), Some(2));
    assert_eq!(lines(&at), Some(vec![("a".into(), 1)]));
    let before = store
        .load_as_of(&k, &AsOf::Time("2025-12-31T23:00:00Z".into()))
        .await
        .unwrap();
    assert_eq!(before, None);
    let now = store
        .load_as_of(&k, &AsOf::Time("2030-01-01T00:00:00Z".into()))
        .await
        .unwrap();
    assert_eq!(now, Some(store.load(&k).await.unwrap()));
    assert!(matches!(
        store
            .load_as_of(&k, &AsOf::Time("yesterday-ish".into()))
            .await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_rebuild_under_live_writes_switches_without_losing_a_write() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let carts: Vec<StreamKey> = (0..12).map(|i| key(&format!("live{i}"))).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (store, carts, stop) = (store.clone(), carts.clone(), stop.clone());
        writers.spawn(async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = &carts[usize::try_from(n * 5 + w).unwrap() % carts.len()];
                let sku = ["a", "b", "c"][usize::try_from(n % 3).unwrap()];
                run(&store, k, &put(sku, n % 4)).await.unwrap();
                n += 1;
            }
            n
        });
    }
    // Readers of the live projection never fail, also during a switch.
    let reader = {
        let (store, carts, stop) = (store.clone(), carts.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.projection(&carts[reads % carts.len()]).await.unwrap();
                reads += 1;
            }
            reads
        })
    };
    let mut progress = vec![];
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let report = crate::rebuild_projection(&pool, |p| progress.push(p))
            .await
            .unwrap();
        assert_eq!(report.differences, 0, "{report:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut commands = 0;
    while let Some(n) = writers.join_next().await {
        commands += n.unwrap();
    }
    assert!(reader.await.unwrap() > 0);
    assert!(commands > 20, "the writers ran ({commands} commands)");
    assert!(progress.last().is_some_and(|p| p.events == p.total));
    for k in &carts {
        let folded = store.load(k).await.unwrap();
        if folded.version > 0 {
            assert_eq!(store.projection(k).await.unwrap(), Some(folded), "{k:?}");
        }
    }
}

#[tokio::test]
async fn only_one_rebuild_runs_at_a_time() {
    let (_db, pool) = crate::testing::database().await;
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("select pg_advisory_lock($1)")
        .bind(0x6361_7274_7265_6231_i64)
        .execute(&mut *holder)
        .await
        .unwrap();
    assert!(matches!(
        crate::rebuild_projection(&pool, |_| {}).await,
        Err(StoreError::RebuildRunning)
    ));
}

#[tokio::test]
async fn a_writer_blocked_by_the_switch_writes_into_the_new_table() {
    let (_db, pool) = crate::testing::database().await;
    // One connection, so the writer's statements are already prepared (and planned
    // against the old table) when the switch happens.
    let single = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let store = EventStore::new(single);
    let k = key("c1");
    run(&store, &k, &put("a", 1)).await.unwrap();
    run(&store, &k, &put("a", 2)).await.unwrap();

    sqlx::query("create table cart_projection_next (like cart_projection including all)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("insert into cart_projection_next select * from cart_projection")
        .execute(&pool)
        .await
        .unwrap();
    let mut switch = pool.begin().await.unwrap();
    sqlx::query("lock table cart_projection in exclusive mode")
        .execute(&mut *switch)
        .await
        .unwrap();
    let writer = {
        let (store, k) = (store.clone(), k.clone());
        tokio::spawn(async move { run(&store, &k, &put("b", 1)).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the writer waits for the switch");
    // Exactly the switch a rebuild runs.
    for statement in crate::rebuild::SWITCH {
        sqlx::query(statement).execute(&mut *switch).await.unwrap();
    }
    switch.commit().await.unwrap();
    writer.await.unwrap().unwrap();
    let folded = store.load(&k).await.unwrap();
    assert_eq!(folded.cart.lines().len(), 2);
    assert_eq!(store.projection(&k).await.unwrap(), Some(folded));
}

/// Group commit: one transaction, each command judged on its own.
#[tokio::test]
async fn a_batch_commits_its_winners_and_leaves_nothing_of_its_losers() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let (fresh, stale, repeated, partial) =
        (key("fresh"), key("stale"), key("repeated"), key("partial"));
    // Someone else already wrote version 1 of `stale` and `partial`, and recorded cmd-r.
    run(&store, &stale, &put("x", 1)).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    raw_insert(&mut conn, partial.stream_id(), 1).await;
    drop(conn);
    let ledger = |id: &str| ProcessedCommand {
        command_id: id.into(),
        fingerprint: vec![1],
        content_type: "application/json".into(),
        reply: id.as_bytes().to_vec(),
    };
    let (old_r, new_r, new_f) = (ledger("cmd-r"), ledger("cmd-r"), ledger("cmd-f"));
    store
        .append(Append {
            key: &repeated,
            expected: 0,
            events: &[CartEvent::CartOpened],
            cart: &Cart::replay(&[CartEvent::CartOpened]),
            command: Some(&old_r),
            metadata: serde_json::json!({}),
        })
        .await
        .unwrap();

    let opened = [CartEvent::CartOpened, line("a", 2)];
    let cart = Cart::replay(&opened);
    let two = [line("b", 1), line("c", 1)];
    let appends = [
        Append {
            key: &fresh,
            expected: 0,
            events: &opened,
            cart: &cart,
            command: Some(&new_f),
            metadata: serde_json::json!({}),
        },
        // Decided on version 0, but version 1 exists: the guard refuses it.
        Append {
            key: &stale,
            expected: 0,
            events: &opened,
            cart: &cart,
            command: None,
            metadata: serde_json::json!({}),
        },
        // Right version, but its command id was recorded before: a retry.
        Append {
            key: &repeated,
            expected: 1,
            events: &two,
            cart: &cart,
            command: Some(&new_r),
            metadata: serde_json::json!({}),
        },
        // Version 1 was written by a writer outside the batch: none of the two lands.
        Append {
            key: &partial,
            expected: 0,
            events: &two,
            cart: &cart,
            command: None,
            metadata: serde_json::json!({}),
        },
    ];
    let outcomes = store.append_batch(&appends).await.unwrap();
    assert!(
        matches!(outcomes[0], Ok(AppendOutcome { version: 2 })),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], Err(StoreError::Conflict { expected: 0, .. })),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(&outcomes[2], Err(StoreError::DuplicateCommand { command_id }) if command_id == "cmd-r"),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Err(StoreError::Conflict { expected: 0, .. })),
        "{:?}",
        outcomes[3]
    );

    let versions = |k: &StreamKey| {
        let pool = pool.clone();
        let id = k.stream_id();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select version from cart_events where stream_id = $1 order by version",
            )
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(versions(&fresh).await, [1, 2]);
    assert_eq!(
        versions(&stale).await,
        [1, 2],
        "CartOpened and x, as before"
    );
    assert_eq!(versions(&repeated).await, [1]);
    assert_eq!(
        versions(&partial).await,
        [1],
        "version 2 of the loser is gone"
    );
    assert_eq!(
        store.projection(&fresh).await.unwrap(),
        Some(store.load(&fresh).await.unwrap())
    );
    assert!(store.projection(&partial).await.unwrap().is_none());
    assert_eq!(
        store.projection(&repeated).await.unwrap().unwrap().version,
        1
    );
    assert_eq!(
        store
            .processed(fresh.project, &fresh.user, "cmd-f")
            .await
            .unwrap()
            .unwrap()
            .reply,
        b"cmd-f"
    );
    // Nothing else was written: 2 before the batch (stale), 1 each (repeated, partial),
    // and the winner's 2.
    let n: i64 = sqlx::query_scalar("select count(*) from cart_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2 + 2 + 1 + 1);
}

/// Two commands of one cart in one batch, each decided on the version the other one
/// writes: the store keeps both straight (the service never batches a cart twice, but
/// the store does not rely on it).
#[tokio::test]
async fn one_cart_twice_in_a_batch_keeps_versions_and_projection_straight() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool);
    let k = key("twice");
    let first = [CartEvent::CartOpened, line("a", 1)];
    let after_first = Cart::replay(&first);
    let second = [line("b", 2)];
    let after_second = Cart::replay(&[CartEvent::CartOpened, line("a", 1), line("b", 2)]);
    let same_version = [line("c", 3)];
    let appends = [
        Append {
            key: &k,
            expected: 0,
            events: &first,
            cart: &after_first,
            command: None,
            metadata: serde_json::json!({}),
        },
        Append {
            key: &k,
            expected: 2,
            events: &second,
            cart: &after_second,
            command: None,
            metadata: serde_json::json!({}),
        },
        Append {
            key: &k,
            expected: 2,
            events: &same_version,
            cart: &after_second,
            command: None,
            metadata: serde_json::json!({}),
        },
    ];
    let outcomes = store.append_batch(&appends).await.unwrap();
    assert!(matches!(outcomes[0], Ok(AppendOutcome { version: 2 })));
    assert!(matches!(outcomes[1], Ok(AppendOutcome { version: 3 })));
    assert!(matches!(
        outcomes[2],
        Err(StoreError::Conflict { expected: 2, .. })
    ));
    let loaded = store.load(&k).await.unwrap();
    assert_eq!(loaded.cart, after_second);
    assert_eq!(store.projection(&k).await.unwrap(), Some(loaded));
}

fn line(sku: &str, quantity: u32) -> CartEvent {
    CartEvent::ItemQuantitySet {
        sku: Sku::parse(sku).unwrap(),
        quantity,
    }
}

/// Grouped reads: every reader gets its own cart back, never a batch-mate's; a cart
/// without events is absent; a row that cannot be decoded fails only its own reader.
#[tokio::test]
async fn grouped_projection_reads_answer_each_reader_with_its_own_cart() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let keys: Vec<StreamKey> = (0..40).map(|i| key(&format!("r{i}"))).collect();
    for (i, k) in keys.iter().enumerate().take(30) {
        run(
            &store,
            k,
            &put(&format!("sku-{i}"), i64::try_from(i).unwrap() + 1),
        )
        .await
        .unwrap();
    }
    sqlx::query("update cart_projection set lines = '[{\"sku\": 7}]' where stream_id = $1")
        .bind(keys[29].stream_id())
        .execute(&pool)
        .await
        .unwrap();
    let reader = crate::GroupRead::start(
        store.clone(),
        crate::GroupConfig {
            max_batch: 8,
            max_in_flight: 2,
            overlap_after: std::time::Duration::ZERO,
        },
    );
    let reads = keys.iter().map(|k| {
        let reader = reader.clone();
        async move { reader.projection(k).await }
    });
    let results = futures::future::join_all(reads).await;
    for (i, result) in results.into_iter().enumerate() {
        match i {
            0..=28 => {
                let loaded = result.unwrap().unwrap();
                let sku = Sku::parse(format!("sku-{i}")).unwrap();
                assert_eq!(loaded.cart.lines().len(), 1);
                assert_eq!(loaded.cart.quantity_of(&sku), u32::try_from(i).unwrap() + 1);
            }
            29 => assert!(result.is_err(), "the corrupt row is its reader's error"),
            _ => assert!(result.unwrap().is_none(), "cart {i} has no events"),
        }
    }
}

/// A writer that bypasses the batch's locks and takes a version between the check and
/// the insert makes the whole batch fail, never a silent skip that answers OK.
#[tokio::test]
async fn a_version_taken_behind_the_locks_fails_the_batch_and_writes_nothing() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let (raced, other) = (key("raced"), key("other"));
    let mut outsider = pool.begin().await.unwrap();
    raw_insert(&mut outsider, raced.stream_id(), 1).await;
    let events = [CartEvent::CartOpened];
    let cart = Cart::replay(&events);
    let batch = {
        let store = store.clone();
        let (raced, other, cart) = (raced.clone(), other.clone(), cart.clone());
        tokio::spawn(async move {
            let append = |k| Append {
                key: k,
                expected: 0,
                events: &events,
                cart: &cart,
                command: None,
                metadata: serde_json::json!({}),
            };
            store
                .append_batch(&[append(&other), append(&raced)])
                .await
                .map(|outcomes| outcomes.len())
        })
    };
    // The batch saw no version 1 and now waits on the outsider's row.
    until_a_session_waits_for_a_lock(&pool).await;
    outsider.commit().await.unwrap();
    let result = batch.await.unwrap();
    assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
    assert_eq!(
        store.load(&other).await.unwrap().version,
        0,
        "its batch-mate rolled back too"
    );
    assert_eq!(store.load(&raced).await.unwrap().version, 1);
}

/// A retry found in the ledger takes down what the batch chained on it: the append of
/// its cart decided on the version the retry would have written is a conflict, and its
/// ledger row, already written, is taken back.
#[tokio::test]
async fn an_append_chained_on_a_retry_in_its_batch_is_a_conflict_and_leaves_no_ledger_row() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("chained");
    let ledger = |id: &str| ProcessedCommand {
        command_id: id.into(),
        fingerprint: vec![2],
        content_type: "application/json".into(),
        reply: id.as_bytes().to_vec(),
    };
    let (retry, fresh) = (ledger("retry"), ledger("fresh"));
    let opened = [CartEvent::CartOpened];
    let cart = Cart::replay(&opened);
    store
        .append(Append {
            key: &k,
            expected: 0,
            events: &opened,
            cart: &cart,
            command: Some(&retry),
            metadata: serde_json::json!({}),
        })
        .await
        .unwrap();
    let (a, b) = ([line("a", 1)], [line("b", 1)]);
    let appends = [
        Append {
            key: &k,
            expected: 1,
            events: &a,
            cart: &cart,
            command: Some(&retry),
            metadata: serde_json::json!({}),
        },
        Append {
            key: &k,
            expected: 2,
            events: &b,
            cart: &cart,
            command: Some(&fresh),
            metadata: serde_json::json!({}),
        },
    ];
    let outcomes = store.append_batch(&appends).await.unwrap();
    assert!(
        matches!(&outcomes[0], Err(StoreError::DuplicateCommand { command_id }) if command_id == "retry"),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], Err(StoreError::Conflict { expected: 2, .. })),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(store.load(&k).await.unwrap().version, 1);
    assert!(store
        .processed(k.project, &k.user, "fresh")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .processed(k.project, &k.user, "retry")
            .await
            .unwrap()
            .unwrap()
            .reply,
        b"retry"
    );
}

#[test]
fn the_projection_keeps_the_promo_code_and_old_rows_read_without_one() {
    let sku = |s: &str| cart_domain::Sku::parse(s).unwrap();
    let events = [
        CartEvent::CartOpened,
        CartEvent::ItemQuantitySet {
            sku: sku("cup01"),
            quantity: 2,
        },
        CartEvent::PromoCodeRedeemed {
            code: "BOOSTER50".into(),
            selected_unit_items: [(sku("game_1"), sku("game_1_steam"))].into_iter().collect(),
        },
    ];
    let cart = Cart::replay(&events);
    let stored = super::lines_json(&cart);
    assert_eq!(super::cart_from_lines(&stored).unwrap(), cart);
    // The code is kept with the schema version it was written in, so that a later
    // version of PromoCodeRedeemed still reads (upcasts) rows written by this one.
    assert_eq!(stored[1]["schema_version"], 1);
    let unknown = serde_json::json!([{"promo_code": {"code": "X"}, "schema_version": 99}]);
    assert!(
        super::cart_from_lines(&unknown).is_err(),
        "an unknown version is an error, not a guess"
    );
    // A row written before promo codes existed: lines only.
    let old = serde_json::json!([{"sku": "cup01", "quantity": 2}]);
    let read = super::cart_from_lines(&old).unwrap();
    assert_eq!(read.promo_code(), None);
    assert_eq!(read.lines(), cart.lines());
}

mod hot;

mod ledger_storage;

mod one_statement;
