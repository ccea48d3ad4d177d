//! PostgreSQL or NATS unavailable, at start or while running: clear errors, reconnection,
//! never an OK for a command that was not made durable. Servers that a test stops are
//! private: a nats-server on a free port, and PostgreSQL behind a proxy the test cuts.

use std::time::{Duration, Instant};

use cart_tests::{config, lines, Client, Proxy, TestDb, TestNats};
use serde_json::json;

use crate::req;

fn pg_address() -> String {
    let opts: sqlx::postgres::PgConnectOptions = cart_tests::database_server_url().parse().unwrap();
    format!("{}:{}", opts.get_host(), opts.get_port())
}

pub(crate) async fn until_ok<F, Fut, T, E>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three commands with ids `<ids>-0..2` on user `u`'s cart: each refused 503/1000 (in the
/// body and the service error header), none answered OK.
pub(crate) async fn commands_get_503(c: &Client, ids: &str) {
    for i in 0..3 {
        let refusal = c
            .json(
                "item.put",
                Some(&format!("{ids}-{i}")),
                req("u", None, json!({"sku": "gold", "quantity": 1})),
            )
            .await
            .expect_err("no OK while PostgreSQL cannot take the write");
        assert_eq!(
            (
                refusal.error.status,
                refusal.error.code,
                refusal.header_status.as_str()
            ),
            (503, 1000, "503"),
            "{}",
            refusal.error
        );
    }
}

#[tokio::test]
async fn postgres_down_gives_errors_never_ok_and_the_service_recovers() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let proxy = Proxy::start(&pg_address()).await;
    let prefix = cart_tests::unique_prefix();
    let mut cfg = config(&db.url_via(proxy.port), &cart_tests::nats_url(), &prefix);
    cfg.db_acquire_timeout_ms = 500;

    // Down at start: the service waits and retries instead of exiting.
    proxy.cut();
    let starting = tokio::spawn(async move { cartd::start(&cfg).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !starting.is_finished(),
        "start must wait for PostgreSQL, not fail"
    );
    proxy.resume().await;
    let server = tokio::time::timeout(Duration::from_secs(30), starting)
        .await
        .expect("started once PostgreSQL answered")
        .unwrap()
        .unwrap();

    let c = Client::connect(&cart_tests::nats_url(), &prefix).await;
    c.json(
        "item.put",
        Some("before"),
        req("u", None, json!({"sku": "cup01", "quantity": 1})),
    )
    .await
    .unwrap();

    // Down while running: commands and queries are refused with 503, never answered OK.
    proxy.cut();
    commands_get_503(&c, "during").await;
    let refusal = c
        .json("get", None, req("u", None, json!({})))
        .await
        .unwrap_err();
    assert_eq!(refusal.error.status, 503);

    // Back: the same instance serves again, and nothing refused was written.
    proxy.resume().await;
    let cart = until_ok("the service after PostgreSQL came back", || {
        c.try_json("get", req("u", None, json!({})))
    })
    .await;
    assert_eq!(lines(&cart), [("cup01".into(), 1)]);
    assert_eq!(db.count_events().await, 2);
    c.json(
        "item.put",
        Some("after"),
        req("u", None, json!({"sku": "gold", "quantity": 1})),
    )
    .await
    .unwrap();
    server.shutdown().await;
    db.drop_now().await;
}

#[tokio::test]
async fn nats_down_and_back_the_service_reconnects_with_state_intact() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let mut nats = TestNats::start().await;
    let prefix = cart_tests::unique_prefix();
    let server = cartd::start(&config(&db.url, &nats.url(), &prefix))
        .await
        .unwrap();
    let c = Client::connect(&nats.url(), &prefix).await;
    c.json(
        "fill",
        None,
        req(
            "u",
            None,
            json!({"items": [{"sku": "cup01", "quantity": 2}]}),
        ),
    )
    .await
    .unwrap();

    nats.restart().await;
    // Both the service and the test's client reconnect by themselves.
    let cart = until_ok("a request after nats-server restarted", || {
        c.try_json("get", req("u", None, json!({})))
    })
    .await;
    assert_eq!(lines(&cart), [("cup01".into(), 2)]);
    let after = c
        .json(
            "item.put",
            None,
            req("u", None, json!({"sku": "gold", "quantity": 3})),
        )
        .await
        .unwrap();
    assert_eq!(lines(&after), [("cup01".into(), 2), ("gold".into(), 3)]);
    server.shutdown().await;
    db.drop_now().await;
}

#[tokio::test]
async fn the_service_started_before_nats_serves_once_nats_is_up() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let mut nats = TestNats::start().await;
    nats.stop();
    let prefix = cart_tests::unique_prefix();
    let cfg = config(&db.url, &nats.url(), &prefix);
    let starting = tokio::spawn(async move { cartd::start(&cfg).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart().await;
    let server = tokio::time::timeout(Duration::from_secs(30), starting)
        .await
        .expect("start completes")
        .unwrap()
        .unwrap();
    let c = Client::connect(&nats.url(), &prefix).await;
    let cart = until_ok("the first request", || {
        c.try_json("get", req("u", None, json!({})))
    })
    .await;
    assert_eq!(lines(&cart), []);
    server.shutdown().await;
    db.drop_now().await;
}

#[tokio::test]
async fn a_misconfigured_database_ends_the_start_with_the_reason() {
    cart_tests::init_logs();
    let prefix = cart_tests::unique_prefix();
    // A malformed URL cannot be cured by waiting: start must fail, promptly, saying why.
    let cfg = config(
        "postgres://postgres@127.0.0.1:5432/x?sslmode=sometimes",
        &cart_tests::nats_url(),
        &prefix,
    );
    let res = tokio::time::timeout(Duration::from_secs(10), cartd::start(&cfg))
        .await
        .expect("start gives up at once");
    let err = res.err().expect("start fails");
    assert!(format!("{err:#}").contains("prepare PostgreSQL"), "{err:#}");
}
