//! The event feed against real PostgreSQL and nats-server: the relay to JetStream, the
//! exporter, and the failure scenarios of the log reader (docs/events.md).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cart_relay::{Relay, RelayConfig};
use cart_store::export::{self, Format, Start};
use cart_store::{subscription, Filter, Position};
use cart_tests::*;
use serde_json::json;
use sqlx::Connection;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub(crate) fn relay_config(w: &World) -> RelayConfig {
    RelayConfig {
        stream: w.stream(),
        subject_prefix: w.prefix.clone(),
        max_age: TEST_STREAM_MAX_AGE,
        duplicate_window: Duration::from_secs(120),
        batch: 100,
        poll: Duration::from_millis(20),
        log: cart_relay::Log::Carts,
        placement: cart_nats::StreamPlacement::default(),
        verify_every: Duration::from_secs(30),
    }
}

/// The first event of a cart, written by hand inside the caller's transaction.
async fn open_cart(conn: &mut sqlx::PgConnection, stream: Uuid) {
    sqlx::query(
        "insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
         values ($1, 1, $2, 44056, 'CartOpened', 1, '{}', '{}')",
    )
    .bind(stream)
    .bind(Uuid::now_v7())
    .execute(conn)
    .await
    .unwrap();
}

pub(crate) fn spawn(relay: Relay) -> JoinHandle<()> {
    tokio::spawn(relay.run(std::future::pending()))
}

pub(crate) async fn put(w: &World, user: &str, sku: &str, quantity: i64) {
    w.client
        .json(
            "item.put",
            None,
            json!({"project_id": 44056, "user_id": user, "sku": sku, "quantity": quantity}),
        )
        .await
        .unwrap_or_else(|e| panic!("put for {user}: {e:?}"));
}

/// Every committed event id in the log, in the global order.
pub(crate) async fn log_ids(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("select event_id::text from cart_events order by tx_id, global_position")
        .fetch_all(pool)
        .await
        .unwrap()
}

pub(crate) async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the global reader sees `n` events: transactions of other tests on the same
/// PostgreSQL server hold the visibility barrier back for moments.
async fn visible(pool: &sqlx::PgPool, n: usize) -> Vec<cart_store::RecordedEvent> {
    let store = cart_store::EventStore::new(pool.clone());
    wait_for(
        "events to be visible",
        Duration::from_secs(20),
        async || {
            let events = store.read_all(Position::default(), 1000).await.unwrap();
            (events.len() >= n).then_some(events)
        },
    )
    .await
}

/// Waits until the stream holds as many messages as the log has events, then checks the
/// stream holds each event exactly once and each cart's events in version order.
pub(crate) async fn assert_stream_matches_log(
    nats: &async_nats::Client,
    stream: &str,
    pool: &sqlx::PgPool,
) {
    let expected = log_ids(pool).await;
    let streamed = wait_for(
        "the stream to catch up",
        Duration::from_secs(60),
        async || {
            let s = stream_contents(nats, stream).await;
            (s.len() >= expected.len()).then_some(s)
        },
    )
    .await;
    let ids: Vec<&str> = streamed.iter().map(|m| m.msg_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event is in the stream twice");
    let expected_set: HashSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(unique, expected_set, "the stream and the log differ");
    let mut last: HashMap<&str, i64> = HashMap::new();
    for m in &streamed {
        let before = last.insert(&m.stream_id, m.version).unwrap_or(0);
        assert_eq!(m.version, before + 1, "cart {} out of order", m.stream_id);
        assert_eq!(m.envelope["event_id"], m.msg_id.as_str());
    }
}

/// Exports everything after `after`; the event ids written, and what the export reports.
async fn export_ids(pool: &sqlx::PgPool, after: Position) -> (Vec<String>, export::Exported) {
    let mut out = Vec::new();
    let exported = export::export(
        pool,
        &Start::After(after),
        &Filter::default(),
        Format::JsonLines,
        &mut out,
        |_| {},
    )
    .await
    .unwrap();
    let ids = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["position"].as_str().is_some());
            v["event_id"].as_str().unwrap().to_owned()
        })
        .collect();
    (ids, exported)
}

#[tokio::test]
async fn a_late_commit_is_published_and_exported_exactly_once() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    let relay = Relay::new(pool.clone(), w.client.nats.clone(), relay_config(&w));
    let task = spawn(relay.clone());
    // The relay leads and its stream exists: an empty stream below means it held back,
    // not that it had not started.
    let js = async_nats::jetstream::new(w.client.nats.clone());
    wait_for("the relay to lead", Duration::from_secs(30), async || {
        (relay.status().leader && js.get_stream(w.stream()).await.is_ok()).then_some(())
    })
    .await;

    // Transaction A takes its position first and stays open...
    let mut a = pool.begin().await.unwrap();
    let stream = Uuid::new_v4();
    sqlx::query("insert into cart_streams (stream_id, project_id, user_id, cart_id) values ($1, 44056, 'late', 'c1')")
        .bind(stream)
        .execute(&mut *a)
        .await
        .unwrap();
    open_cart(&mut a, stream).await;
    let a_tx: String = sqlx::query_scalar("select pg_current_xact_id()::text")
        .fetch_one(&mut *a)
        .await
        .unwrap();
    let before_a = Position {
        tx_id: a_tx.parse().unwrap(),
        global_position: 0,
    };
    // ...while a command takes later positions and commits.
    put(&w, "early", "cup01", 1).await;

    // An export now delivers nothing past the barrier, and the position it prints to
    // resume from is still before A.
    let (held, exported) = export_ids(&pool, Position::default()).await;
    assert_eq!(
        held,
        Vec::<String>::new(),
        "exported past an open transaction"
    );
    assert_eq!(exported.events, 0);
    assert!(
        exported.last < before_a,
        "resume position {} past A",
        exported.last
    );
    // The relay sees the command's two events waiting, and publishes none of them.
    let status = wait_for("the relay's lag", Duration::from_secs(30), async || {
        let s = relay.status();
        (s.lag_events >= 2).then_some(s)
    })
    .await;
    assert!(status.lag_seconds > 0.0, "{status:?}");
    assert!(
        stream_contents(&w.client.nats, &w.stream())
            .await
            .is_empty(),
        "nothing may pass an open transaction that holds an earlier position"
    );

    a.commit().await.unwrap();
    assert_stream_matches_log(&w.client.nats, &w.stream(), &pool).await;
    let first = &stream_contents(&w.client.nats, &w.stream()).await[0];
    assert_eq!(first.envelope["user_id"], "late");

    // The export resumed from its printed position delivers A and the command, once
    // each, in the global order. Another test's transaction may hold the cluster-wide
    // barrier between them: read on from each printed position until all three showed.
    let expected = log_ids(&pool).await;
    assert_eq!(expected.len(), 3);
    let (mut seen, mut last) = (Vec::new(), exported.last);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < expected.len() && Instant::now() < deadline {
        let (ids, exported) = export_ids(&pool, last).await;
        if ids.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen.extend(ids);
        last = exported.last;
    }
    assert_eq!(seen, expected);
    assert_eq!(export_ids(&pool, last).await.0, Vec::<String>::new());

    // Caught up, the relay's lag returns to nothing.
    wait_for(
        "the relay's lag to clear",
        Duration::from_secs(30),
        async || {
            let s = relay.status();
            (s.lag_events == 0 && s.lag_seconds == 0.0).then_some(())
        },
    )
    .await;

    task.abort();
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn a_rolled_back_append_leaves_a_hole_nobody_waits_for() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    let mut tx = pool.begin().await.unwrap();
    open_cart(&mut tx, Uuid::new_v4()).await;
    tx.rollback().await.unwrap();
    put(&w, "u1", "cup01", 1).await;
    put(&w, "u2", "gold", 3).await;
    let relay = spawn(Relay::new(
        pool.clone(),
        w.client.nats.clone(),
        relay_config(&w),
    ));
    assert_stream_matches_log(&w.client.nats, &w.stream(), &pool).await;
    assert_eq!(stream_contents(&w.client.nats, &w.stream()).await.len(), 4);
    relay.abort();
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn a_long_open_transaction_holds_readers_back_and_they_resume_losing_nothing() {
    let w = World::start_with(|c| c.relay = true).await;
    let pool = w.db.pool().await;
    put(&w, "u0", "cup01", 1).await;
    assert_stream_matches_log(&w.client.nats, &w.stream(), &pool).await;

    // A session that took a transaction id and sits idle in its transaction.
    let mut held = pool.begin().await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *held)
        .await
        .unwrap();
    for user in ["u1", "u2", "u3"] {
        put(&w, user, "gold", 2).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(stream_contents(&w.client.nats, &w.stream()).await.len(), 2);
    // Operators see the lag: the events held back, and how long the oldest has waited
    // (at least the 800 ms above).
    let status = wait_for("the lag to show", Duration::from_secs(30), async || {
        let s = w.client.try_json("feed.status", json!({})).await.ok()?;
        (s["relay"]["lag_events"].as_i64()? >= 6).then_some(s)
    })
    .await;
    assert_eq!(status["stream"], w.stream());
    let held_for = status["relay"]["lag_seconds"].as_f64().unwrap();
    assert!(held_for >= 0.5, "lag_seconds {held_for} while held back");

    held.commit().await.unwrap();
    assert_stream_matches_log(&w.client.nats, &w.stream(), &pool).await;
    assert_eq!(stream_contents(&w.client.nats, &w.stream()).await.len(), 8);
    let status = wait_for("the lag to clear", Duration::from_secs(30), async || {
        let s = w.client.try_json("feed.status", json!({})).await.ok()?;
        (s["relay"]["lag_events"].as_i64()? == 0).then_some(s)
    })
    .await;
    assert_eq!(
        status["relay"]["lag_seconds"].as_f64(),
        Some(0.0),
        "{status}"
    );
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn a_relay_killed_between_the_ack_and_its_checkpoint_publishes_again_and_the_stream_keeps_one_copy(
) {
    let w = World::start().await;
    let pool = w.db.pool().await;
    put(&w, "u1", "cup01", 1).await;
    put(&w, "u2", "gold", 2).await;
    let relay = Relay::new(pool.clone(), w.client.nats.clone(), relay_config(&w));
    relay.ensure_stream().await.unwrap();
    // What a relay does before it dies: publish a page and get every ack...
    let events = visible(&pool, 4).await;
    assert_eq!(relay.publish(&events).await.unwrap().stored, 4);
    // ...and never write the checkpoint.
    let mut conn = pool.acquire().await.unwrap();
    let name = relay_config(&w).checkpoint_name();
    assert_eq!(
        subscription::checkpoint(&mut conn, &name).await.unwrap(),
        Position::default()
    );

    let restarted = relay.clone();
    let task = spawn(restarted);
    let last = events.last().unwrap().position;
    wait_for("the checkpoint", Duration::from_secs(20), async || {
        (relay.status().checkpoint == last).then_some(())
    })
    .await;
    assert_eq!(relay.status().duplicates, 4, "the restart published again");
    assert_stream_matches_log(&w.client.nats, &w.stream(), &pool).await;
    assert_eq!(stream_contents(&w.client.nats, &w.stream()).await.len(), 4);
    task.abort();
    drop(conn);
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn a_failed_publish_never_moves_the_checkpoint() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    put(&w, "u1", "cup01", 1).await;
    let relay = Relay::new(pool.clone(), w.client.nats.clone(), relay_config(&w));
    let name = relay_config(&w).checkpoint_name();
    let mut conn = pool.acquire().await.unwrap();
    visible(&pool, 2).await;
    // No stream listens on the subjects yet: every publish fails.
    assert!(relay.step(&mut conn).await.is_err());
    assert_eq!(
        subscription::checkpoint(&mut conn, &name).await.unwrap(),
        Position::default()
    );
    relay.ensure_stream().await.unwrap();
    assert_eq!(relay.step(&mut conn).await.unwrap(), 2);
    assert_ne!(
        subscription::checkpoint(&mut conn, &name).await.unwrap(),
        Position::default()
    );
    assert_stream_matches_log(&w.client.nats, &w.stream(), &pool).await;
    drop(conn);
    pool.close().await;
    w.finish().await;
}

/// Puts for `users` carts in a loop until told to stop; every command must succeed.
fn load(w: &World, users: usize) -> (JoinHandle<usize>, tokio::sync::watch::Sender<bool>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let client = w.client.clone();
    let task = tokio::spawn(async move {
        let mut n = 0;
        while !*stopped.borrow() {
            let user = format!("load{}", n % users);
            let body = json!({"project_id": 44056, "user_id": user, "sku": "gold", "quantity": n % 50 + 1});
            client
                .json("item.put", None, body)
                .await
                .unwrap_or_else(|e| panic!("a command failed while the broker was away: {e:?}"));
            n += 1;
        }
        n
    });
    (task, stop)
}

#[tokio::test]
async fn nats_stopped_and_started_under_load_loses_and_duplicates_nothing() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    // The relay's broker is a private nats-server this test may stop; commands keep
    // arriving through the shared one.
    let mut broker = TestNats::start().await;
    let relay_client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(broker.url())
        .await
        .unwrap();
    let relay = Relay::new(pool.clone(), relay_client.clone(), relay_config(&w));
    let task = spawn(relay.clone());
    let (load, stop) = load(&w, 8);
    // The relay publishes before the outage (another test's open transaction may hold
    // the read barrier a while).
    wait_for(
        "a publish before the outage",
        Duration::from_secs(60),
        async || (relay.status().published > 0).then_some(()),
    )
    .await;
    broker.stop();
    let committed = async || -> i64 {
        sqlx::query_scalar("select count(*) from cart_events")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let at_stop = committed().await;
    // The outage is really hit: commands keep committing while the broker is away, and
    // the relay's publishes of them fail (a JetStream ack times out after 5 s).
    let error = wait_for(
        "commands and a failed publish during the outage",
        Duration::from_secs(60),
        async || {
            let error = relay.status().last_error?;
            (committed().await > at_stop).then_some(error)
        },
    )
    .await;
    assert!(error.contains("JetStream"), "{error}");
    let during = committed().await - at_stop;
    broker.restart().await;
    assert!(during > 0, "no command committed while NATS was down");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.send(true).unwrap();
    let commands = load.await.unwrap();
    assert!(commands > 10, "the load ran ({commands} commands)");
    let reader = async_nats::connect(broker.url()).await.unwrap();
    assert_stream_matches_log(&reader, &w.stream(), &pool).await;
    assert!(relay.status().published > 0);
    wait_for(
        "the relay to recover",
        Duration::from_secs(30),
        async || relay.status().last_error.is_none().then_some(()),
    )
    .await;
    task.abort();
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn of_two_relays_one_publishes_and_the_other_takes_over_when_it_dies() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    let first = Relay::new(pool.clone(), w.client.nats.clone(), relay_config(&w));
    let second = Relay::new(pool.clone(), w.client.nats.clone(), relay_config(&w));
    let (t1, t2) = (spawn(first.clone()), spawn(second.clone()));
    let (load, stop) = load(&w, 6);
    let leader = wait_for("a leader", Duration::from_secs(30), async || {
        match (first.status().leader, second.status().leader) {
            (true, true) => panic!("two active relays"),
            (true, false) => Some(1),
            (false, true) => Some(2),
            _ => None,
        }
    })
    .await;
    let (dead, survivor, dead_task, survivor_task) = if leader == 1 {
        (&first, &second, t1, t2)
    } else {
        (&second, &first, t2, t1)
    };
    // Kill the leader only once it has published: the read barrier is the cluster's
    // oldest transaction, so another test's open transaction may hold it back a while.
    wait_for(
        "the leader's first publish",
        Duration::from_secs(30),
        async || (dead.status().published > 0).then_some(()),
    )
    .await;
    assert!(!survivor.status().leader);
    assert_eq!(survivor.status().published, 0, "the standby published");
    // Killed mid-flight: its session closes and its lock with it.
    dead_task.abort();
    let _ = dead_task.await;
    wait_for("the takeover", Duration::from_secs(15), async || {
        survivor.status().leader.then_some(())
    })
    .await;
    stop.send(true).unwrap();
    load.await.unwrap();
    assert_stream_matches_log(&w.client.nats, &w.stream(), &pool).await;
    assert!(survivor.status().published > 0);
    survivor_task.abort();
    pool.close().await;
    w.finish().await;
}

#[test]
fn a_test_that_fails_leaves_neither_its_database_nor_its_stream_behind() {
    // A test body that panics with its world running, the relay's stream made.
    let (names, received) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let w = World::start_with(|c| c.relay = true).await;
            let js = async_nats::jetstream::new(w.client.nats.clone());
            wait_for("the relay's stream", Duration::from_secs(30), async || {
                js.get_stream(w.stream()).await.ok()
            })
            .await;
            names.send((w.db.name.clone(), w.stream())).unwrap();
            panic!("a deliberate failure, to see the harness clean up");
        });
    })
    .join();
    assert!(failed.is_err(), "the test body failed");
    let (database, stream) = received.recv().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin = sqlx::PgPool::connect(&database_server_url()).await.unwrap();
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(&database)
                .fetch_one(&admin)
                .await
                .unwrap();
        assert!(!exists, "database {database} outlived its failed test");
        let nats = async_nats::connect(nats_url()).await.unwrap();
        let js = async_nats::jetstream::new(nats);
        assert!(
            js.get_stream(&stream).await.is_err(),
            "stream {stream} outlived its failed test"
        );
    });
}

#[tokio::test]
async fn the_relay_lock_session_has_the_server_probe_a_dead_peer_within_seconds() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    let relay = Relay::new(pool.clone(), w.client.nats.clone(), relay_config(&w));
    let task = spawn(relay.clone());
    wait_for("the relay to lead", Duration::from_secs(30), async || {
        relay.status().leader.then_some(())
    })
    .await;
    // The session that holds the relay lock is one made by `lock_session_options`...
    let holder: Vec<String> = sqlx::query_scalar(
        "select a.application_name from pg_locks l \
         join pg_stat_activity a on a.pid = l.pid \
         where l.locktype = 'advisory' and l.granted and l.database = \
             (select oid from pg_database where datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(holder, ["cart-relay"]);
    // ...and the server applies their keepalives to such a session (over TCP; a Unix
    // socket would read 0), where a plain session has the system's defaults.
    let base: sqlx::postgres::PgConnectOptions = w.db.url.parse().unwrap();
    let show = async |options: &sqlx::postgres::PgConnectOptions| {
        let mut conn = sqlx::PgConnection::connect_with(options).await.unwrap();
        let mut settings = vec![];
        for name in [
            "tcp_keepalives_idle",
            "tcp_keepalives_interval",
            "tcp_keepalives_count",
            "tcp_user_timeout",
        ] {
            let value: String = sqlx::query_scalar(&format!("show {name}"))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            settings.push(value);
        }
        conn.close().await.unwrap();
        settings
    };
    assert_eq!(
        show(&cart_relay::lock_session_options(&base)).await,
        ["5", "2", "3", "10000"]
    );
    assert_ne!(show(&base).await[0], "5");
    task.abort();
    pool.close().await;
    w.finish().await;
}
