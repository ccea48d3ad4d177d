//! What a cluster asks of the service (issue 13): NATS seed lists, a PostgreSQL that
//! turns read-only or drops every session, and the answers meanwhile (503, never OK for
//! what is not durable). Servers a test stops are private to it.

use std::time::Duration;

use cart_tests::{config, lines, Client, TestDb, TestNats};
use serde_json::json;

use crate::faults::{commands_get_503, until_ok};
use crate::req;

#[tokio::test]
async fn a_seed_list_with_a_dead_server_works_and_cartd_moves_to_a_surviving_server() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let mut first = TestNats::start().await;
    // Listed first and dead at start: the client must get past it.
    let mut second = TestNats::unstarted();
    let seeds = format!("{}, {}", second.url(), first.url());
    let prefix = cart_tests::unique_prefix();
    let server = cartd::start(&config(&db.url, &seeds, &prefix))
        .await
        .unwrap();
    let via_first = Client::connect(&first.url(), &prefix).await;
    via_first
        .json(
            "fill",
            Some("seed-1"),
            req(
                "u",
                None,
                json!({"items": [{"sku": "cup01", "quantity": 2}]}),
            ),
        )
        .await
        .unwrap();

    // cartctl reads the same list (one parser for every binary).
    let out = cart_tests::cartctl(&[
        "--nats-url",
        &seeds,
        "--subject-prefix",
        &prefix,
        "--user",
        "u",
        "get",
    ])
    .await;
    assert!(
        out.status.success(),
        "cartctl with a dead seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("cup01"));

    // The two servers are not clustered: once the first stops, cartd is reachable
    // through the second only if it reconnected there by itself.
    second.restart().await;
    first.stop();
    let via_second = Client::connect(&second.url(), &prefix).await;
    let cart = until_ok("cartd through the surviving server", || {
        via_second.try_json("get", req("u", None, json!({})))
    })
    .await;
    assert_eq!(lines(&cart), [("cup01".into(), 2)]);
    let after = via_second
        .json(
            "item.put",
            Some("seed-2"),
            req("u", None, json!({"sku": "gold", "quantity": 1})),
        )
        .await
        .unwrap();
    assert_eq!(lines(&after), [("cup01".into(), 2), ("gold".into(), 1)]);
    server.shutdown().await;
    db.drop_now().await;
}

/// A session on the server's maintenance database, for what a test does to the server.
async fn admin_session() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&cart_tests::database_server_url())
        .await
        .unwrap()
}

/// Ends every session on `db` but the caller's: what a failover does to a pool.
async fn terminate_sessions(admin: &mut sqlx::PgConnection, db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = $1 and pid <> pg_backend_pid()) t",
    )
    .bind(&db.name)
    .fetch_one(admin)
    .await
    .unwrap()
}

/// Makes every new session on `db` read-only (as on a standby or a fenced primary), or
/// writable again.
async fn set_read_only(admin: &mut sqlx::PgConnection, db: &TestDb, on: bool) {
    let quoted = format!("\"{}\"", db.name);
    let sql = if on {
        format!("alter database {quoted} set default_transaction_read_only = on")
    } else {
        format!("alter database {quoted} reset default_transaction_read_only")
    };
    sqlx::query(&sql).execute(admin).await.unwrap();
}

#[tokio::test]
async fn a_read_only_primary_gets_503s_and_no_writes_then_the_same_cartd_serves_again() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let prefix = cart_tests::unique_prefix();
    let mut cfg = config(&db.url, &cart_tests::nats_url(), &prefix);
    cfg.db_acquire_timeout_ms = 500;
    cfg.relay = true;
    let stream = cfg.events_stream.clone();
    let server = cartd::start(&cfg).await.unwrap();
    let admin_addr = server.admin_addr().expect("an admin port");
    let c = Client::connect(&cart_tests::nats_url(), &prefix).await;
    c.json(
        "item.put",
        Some("before"),
        req("u", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await
    .unwrap();
    let written = db.count_events().await;

    let mut admin = admin_session().await;
    set_read_only(&mut admin, &db, true).await;
    terminate_sessions(&mut admin, &db).await;
    commands_get_503(&c, "read-only").await;
    let (status, body) = cart_metrics::testing::get(admin_addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(
        status, 503,
        "/readyz while only a read-only server answers: {body}"
    );

    set_read_only(&mut admin, &db, false).await;
    until_ok("a command after the server takes writes again", || {
        c.try_json(
            "item.put",
            req("u", None, json!({"sku": "gold", "quantity": 2})),
        )
    })
    .await;
    // Nothing refused was written: only the command after the recovery.
    assert_eq!(db.count_events().await, written + 1);
    let (status, _) = cart_metrics::testing::get(admin_addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(status, 200);
    // The relay's lock session moved too: every event reaches the stream.
    let nats = c.nats.clone();
    until_ok("the relay after the server takes writes again", || {
        let (nats, stream) = (nats.clone(), stream.clone());
        async move {
            let n = cart_tests::stream_contents(&nats, &stream).await.len() as i64;
            if n == written + 1 {
                Ok(())
            } else {
                Err(format!("{n} of {} events in the stream", written + 1))
            }
        }
    })
    .await;
    server.shutdown().await;
    cart_tests::delete_stream(&c.nats, &stream).await;
    cart_tests::delete_stream(&c.nats, &cfg.orders_stream).await;
    db.drop_now().await;
}

#[tokio::test]
async fn sessions_terminated_under_load_lose_no_ok_and_fail_only_with_503() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let prefix = cart_tests::unique_prefix();
    let mut cfg = config(&db.url, &cart_tests::nats_url(), &prefix);
    cfg.db_acquire_timeout_ms = 2000;
    let server = cartd::start(&cfg).await.unwrap();
    let c = Client::connect(&cart_tests::nats_url(), &prefix).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (c, stop) = (c.clone(), stop.clone());
        writers.spawn(async move {
            let (mut acked, mut unavailable) = (Vec::new(), 0u32);
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = format!("w{w}-{n}");
                let body = req(
                    &format!("user{w}"),
                    None,
                    json!({"sku": "cup01", "quantity": n}),
                );
                match c.json("item.put", Some(&id), body).await {
                    Ok(_) => acked.push((format!("user{w}"), id)),
                    Err(refusal) => {
                        assert_eq!(
                            (refusal.error.status, refusal.error.code),
                            (503, 1000),
                            "only 503 while sessions die: {}",
                            refusal.error
                        );
                        unavailable += 1;
                    }
                }
            }
            (acked, unavailable)
        });
    }
    let mut admin = admin_session().await;
    let mut terminated = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        terminated += terminate_sessions(&mut admin, &db).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut acked, mut unavailable) = (Vec::new(), 0);
    while let Some(done) = writers.join_next().await {
        let (a, u) = done.unwrap();
        acked.extend(a);
        unavailable += u;
    }
    assert!(terminated > 0, "the test ended no session");
    assert!(!acked.is_empty());
    let pool = db.pool().await;
    let recorded: Vec<(String, String)> =
        sqlx::query_as("select user_id, command_id from processed_commands")
            .fetch_all(&pool)
            .await
            .unwrap();
    let recorded: std::collections::HashSet<_> = recorded.into_iter().collect();
    let missing: Vec<_> = acked.iter().filter(|a| !recorded.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged commands missing from the log: {missing:?} ({} acked, {unavailable} 503)",
        acked.len()
    );
    // The same instance serves once the sessions are back, without a restart.
    c.json(
        "item.put",
        Some("after"),
        req("user0", None, json!({"sku": "gold", "quantity": 1})),
    )
    .await
    .unwrap();
    pool.close().await;
    server.shutdown().await;
    db.drop_now().await;
}
