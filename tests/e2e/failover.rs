//! What a cluster asks of the service (issue 13): NATS seed lists, a PostgreSQL that
//! turns read-only or drops every session, and the answers meanwhile (503, never OK for
//! what is not durable). Servers a test stops are private to it.

use std::time::{Duration, Instant};

use cart_tests::{config, lines, Client, TestDb, TestNats};
use serde_json::json;

use crate::req;

/// Retries `f` until it succeeds, for at most 60 s (a bound for a broken build, not a
/// measurement: a loaded machine only makes the loop run longer).
async fn until_ok<F, Fut, T, E>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "{what}: still failing: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
            req("u", None, json!({"items": [{"sku": "cup01", "quantity": 2}]})),
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
