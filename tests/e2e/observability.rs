//! The admin port of a running cartd, over real HTTP: `/metrics` parsed as Prometheus
//! text moves as requests, a version conflict, a ledger replay and relay publishes
//! happen; `/healthz` and `/readyz` through a PostgreSQL cut and a NATS restart.
//!
//! The meter provider is one per process and tests run side by side, so counters are
//! compared as "grew by at least": another test's requests can only add.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cart_domain::{CartCommand, CartId, ProjectId, UserId};
use cart_metrics::testing::{get, scrape, Metrics};
use cart_store::{Append, EventStore, StreamKey};
use cart_tests::{config, Client, Proxy, TestDb, TestNats, World};
use serde_json::json;

use crate::{req, PROJECT};

fn pg_address() -> String {
    let opts: sqlx::postgres::PgConnectOptions = cart_tests::database_server_url().parse().unwrap();
    format!("{}:{}", opts.get_host(), opts.get_port())
}

fn grew(before: &Metrics, after: &Metrics, metric: &str, labels: &[(&str, &str)]) -> f64 {
    after.total(metric, labels) - before.total(metric, labels)
}

/// Scrapes until `done` holds of the scrape (the relay publishes in the background).
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = scrape(addr).await;
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}:\n{}", m.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Appends a clear to the cart behind the service's back, so that the state its cache
/// holds is stale and its next command meets the version guard.
async fn clear_behind_the_cache(w: &World, user: &str, cart: &str) {
    let store = EventStore::new(w.db.pool().await);
    let key = StreamKey::new(
        ProjectId::parse(PROJECT).unwrap(),
        UserId::parse(user).unwrap(),
        CartId::parse(cart).unwrap(),
    );
    let loaded = store.load(&key).await.unwrap();
    let events = cart_domain::decide(&loaded.cart, &CartCommand::Clear).unwrap();
    let cleared = events.iter().fold(loaded.cart.clone(), cart_domain::apply);
    store
        .append(Append {
            key: &key,
            expected: loaded.version,
            events: &events,
            cart: &cleared,
            command: None,
            metadata: json!({}),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn metrics_move_with_requests_conflicts_replays_and_relay_publishes() {
    let w = World::start_with(|c| {
        c.relay = true;
        c.projections = true;
    })
    .await;
    let addr = w.servers[0].admin_addr().expect("the admin port is on");
    let before = scrape(addr).await;
    let put = |q: u64| req("obs", Some("c1"), json!({"sku": "cup01", "quantity": q}));

    let first = w
        .client
        .json("item.put", Some("obs-1"), put(1))
        .await
        .unwrap();
    // A stale cache: the next command loses the version guard once, then succeeds.
    clear_behind_the_cache(&w, "obs", "c1").await;
    w.client
        .json("item.put", Some("obs-2"), put(2))
        .await
        .unwrap();
    // The first command id again: answered with its first reply, from the ledger.
    let again = w
        .client
        .json("item.put", Some("obs-1"), put(1))
        .await
        .unwrap();
    assert_eq!(again, first);
    // A get in another currency than the puts' replies: rendered (a miss), then the same
    // get again, answered from the reply cache (a hit).
    let eur = || req("obs", Some("c1"), json!({"currency": "EUR"}));
    let rendered = w.client.json("get", None, eur()).await.unwrap();
    assert_eq!(w.client.json("get", None, eur()).await.unwrap(), rendered);
    // A refusal: counted with its status and Xsolla code.
    let refusal = w
        .client
        .json("get", None, json!({"project_id": PROJECT}))
        .await
        .expect_err("a get without a user is refused");
    let (status, code) = (
        refusal.error.status.to_string(),
        refusal.error.code.to_string(),
    );
    // An order: created from the cart (2 cups at 5.99), paid, refunded.
    let created = w
        .client
        .json("order.checkout", None, req("obs", Some("c1"), json!({})))
        .await
        .unwrap();
    let id = created["order_id"].as_u64().unwrap();
    let pay = json!({"project_id": PROJECT, "order_id": id, "invoice_id": "inv-obs", "amount": "11.98", "currency": "USD"});
    w.client
        .json("payment.confirm", None, pay.clone())
        .await
        .unwrap();
    // The same invoice again: answered again, not counted again.
    w.client.json("payment.confirm", None, pay).await.unwrap();
    let cancel = json!({"project_id": PROJECT, "order_id": id, "reason": "chargeback"});
    w.client.json("payment.cancel", None, cancel).await.unwrap();

    // cart_events: the two puts' and the clear's events, published by the relay.
    let after = scrape_until(addr, "the relay's publishes are counted", |m| {
        grew(
            &before,
            m,
            "cart_relay_published_total",
            &[("log", "carts")],
        ) >= 3.0
    })
    .await;
    let ok = [("endpoint", "item.put"), ("status", "200"), ("code", "0")];
    assert!(grew(&before, &after, "cart_requests_total", &ok) >= 3.0);
    let refused = [
        ("endpoint", "get"),
        ("status", status.as_str()),
        ("code", code.as_str()),
    ];
    assert!(grew(&before, &after, "cart_requests_total", &refused) >= 1.0);
    let latency = [("endpoint", "item.put"), ("outcome", "ok")];
    assert!(grew(&before, &after, "cart_request_duration_seconds", &latency) >= 3.0);
    assert!(grew(&before, &after, "cart_version_conflicts_total", &[]) >= 1.0);
    assert!(grew(&before, &after, "cart_command_retries_total", &[]) >= 1.0);
    assert!(
        grew(
            &before,
            &after,
            "cart_ledger_replays_total",
            &[("kind", "cart")]
        ) >= 1.0
    );
    assert!(grew(&before, &after, "cart_cache_misses_total", &[]) >= 1.0);
    assert!(grew(&before, &after, "cart_cache_hits_total", &[]) >= 1.0);
    assert!(grew(&before, &after, "cart_reply_cache_misses_total", &[]) >= 1.0);
    assert!(grew(&before, &after, "cart_reply_cache_hits_total", &[]) >= 1.0);
    // Group commit: at least the two appends that wrote (the conflict's retry included).
    for histogram in [
        "cart_group_commit_batch_size",
        "cart_group_commit_queue_wait_seconds",
        "cart_group_commit_transaction_seconds",
    ] {
        assert!(
            grew(&before, &after, histogram, &[]) >= 2.0,
            "{histogram}:\n{}",
            after.text
        );
    }
    let project = PROJECT.to_string();
    for event in ["created", "paid", "canceled"] {
        let labels = [("project", project.as_str()), ("event", event)];
        assert_eq!(
            grew(&before, &after, "cart_orders_total", &labels),
            1.0,
            "{event}"
        );
    }
    // The pool, observed at the scrape.
    assert!(after.total("cart_db_pool_max_connections", &[("pool", "cartd")]) >= 16.0);
    assert!(after.has("cart_db_pool_connections"));
    // The grouped reads' probe sessions, beside it: twice `--batch-in-flight` (2) each.
    for probes in ["cartd-gets", "cartd-counts"] {
        let limit = after.total("cart_db_pool_max_connections", &[("pool", probes)]);
        assert!(limit >= 4.0, "{probes}: {limit}");
    }
    // The relay measured its lag at least once (a gauge per log).
    let lag = scrape_until(addr, "the relay's lag is reported", |m| {
        m.samples("cart_relay_lag_events", &[("log", "carts")])
            .next()
            .is_some()
    })
    .await;
    assert!(lag.has("cart_relay_lag_seconds"));
    // The projection folded the events and reports its lag.
    let folded = scrape_until(addr, "the projection's events are counted", |m| {
        let sku = [("projection", "sku_activity")];
        grew(&before, m, "cart_projection_events_applied_total", &sku) >= 3.0
            && m.samples("cart_projection_lag_events", &sku)
                .next()
                .is_some()
    })
    .await;
    folded.assert_catalogued();
    w.finish().await;
}

async fn until_status(addr: SocketAddr, path: &str, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(addr, path).await.expect("the admin port answers");
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} stays {status}, not {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readyz_is_503_while_postgres_is_cut_and_200_after() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let proxy = Proxy::start(&pg_address()).await;
    let prefix = cart_tests::unique_prefix();
    let mut cfg = config(&db.url_via(proxy.port), &cart_tests::nats_url(), &prefix);
    cfg.db_acquire_timeout_ms = 500;
    let server = cartd::start(&cfg).await.unwrap();
    let addr = server.admin_addr().unwrap();
    assert_eq!(get(addr, "/healthz").await.unwrap().0, 200);
    let ready = until_status(addr, "/readyz", 200).await;
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        ready,
        json!({"ready": true, "checks": {"postgres": "ok", "migrations": "ok", "nats": "ok", "endpoints": "ok"}})
    );

    let before = scrape(addr).await;
    proxy.cut();
    let body = until_status(addr, "/readyz", 503).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ready"], false);
    assert_ne!(body["checks"]["postgres"], "ok", "{body}");
    assert_eq!(body["checks"]["nats"], "ok");
    // A command meanwhile is answered 503 and counted with its cause.
    let c = Client::connect(&cart_tests::nats_url(), &prefix).await;
    let put = req("cut", None, json!({"sku": "cup01", "quantity": 1}));
    let refusal = c.json("item.put", None, put).await.expect_err("503");
    assert_eq!(refusal.error.status, 503);
    let after = scrape(addr).await;
    assert!(grew(&before, &after, "cart_db_unavailable_total", &[]) >= 1.0);
    let failed = [
        ("endpoint", "item.put"),
        ("status", "503"),
        ("code", "1000"),
    ];
    assert!(grew(&before, &after, "cart_requests_total", &failed) >= 1.0);
    // Alive all the same: a restart would not bring PostgreSQL back.
    assert_eq!(get(addr, "/healthz").await.unwrap().0, 200);

    proxy.resume().await;
    until_status(addr, "/readyz", 200).await;
    server.shutdown().await;
    db.drop_now().await;
}

#[tokio::test]
async fn readyz_is_503_while_nats_is_down_and_200_after_its_restart() {
    cart_tests::init_logs();
    let db = TestDb::create().await;
    let mut nats = TestNats::start().await;
    let prefix = cart_tests::unique_prefix();
    let server = cartd::start(&config(&db.url, &nats.url(), &prefix))
        .await
        .unwrap();
    let addr = server.admin_addr().unwrap();
    until_status(addr, "/readyz", 200).await;

    nats.stop();
    let body = until_status(addr, "/readyz", 503).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(body["checks"]["nats"], "ok", "{body}");
    assert_eq!(body["checks"]["postgres"], "ok");

    nats.restart().await;
    until_status(addr, "/readyz", 200).await;
    // Serving again, through the restarted server.
    let c = Client::connect(&nats.url(), &prefix).await;
    c.json("get", None, req("n", None, json!({})))
        .await
        .unwrap();
    server.shutdown().await;
    db.drop_now().await;
}
