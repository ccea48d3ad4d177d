//! The worker's admin port over real HTTP: attempts by outcome, the paid-to-delivered
//! time, dead letters, postponed deliveries and the sampled backlog in `/metrics`
//! (parsed as Prometheus text); `/healthz` and `/readyz`.
//!
//! The meter provider is one per process and tests run side by side, so counters are
//! compared as "grew by at least".

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cart_metrics::testing::{get, scrape, Metrics};
use common::{paid, Answer, Receiver, World};
use sqlx::postgres::PgConnectOptions;

fn grew(before: &Metrics, after: &Metrics, metric: &str, labels: &[(&str, &str)]) -> f64 {
    after.total(metric, labels) - before.total(metric, labels)
}

/// Scrapes until `done` holds (follow-ups and the backlog sample run in the background).
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
    // The backlog is sampled every 10 s: one sample period and some.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let m = scrape(addr).await;
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}:\n{}", m.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_attempts_deliveries_dead_letters_and_the_backlog() {
    let w = World::new().await;
    let receiver = Receiver::start(vec![Answer::Status(422)]).await;
    let admin = cart_webhook::bind_admin(&w.config)
        .await
        .unwrap()
        .expect("the admin port is on");
    let addr = admin.local_addr().unwrap();
    let (config, mark) = (w.config.clone(), w.marker());
    let worker = tokio::spawn(async move {
        let pool = cart_webhook::connect(&config).await.unwrap();
        cart_webhook::run_bound(config, pool, mark, Some(admin), std::future::pending())
            .await
            .unwrap();
    });
    let before = scrape(addr).await;
    assert_eq!(get(addr, "/healthz").await.unwrap().0, 200);

    w.set_webhook(1, &receiver.url, "s", 1).await;
    // Refused for good (422): one permanent attempt, then a dead letter.
    w.publish(&paid(1, 61)).await;
    w.wait_status(61, "order_paid", "failed").await;
    // Delivered (the receiver's 204): a success and its paid-to-delivered time.
    w.publish(&paid(1, 62)).await;
    w.wait_status(62, "order_paid", "delivered").await;
    // A project without settings: its delivery is postponed and it is counted.
    w.publish(&paid(2, 63)).await;

    let paid_attempts = |outcome| [("type", "order_paid"), ("outcome", outcome)];
    let after = scrape_until(addr, "attempts, dead letter and postponement", |m| {
        grew(
            &before,
            m,
            "cart_webhook_dead_letters_total",
            &[("reason", "permanent")],
        ) >= 1.0
            && grew(&before, m, "cart_webhook_postponed_unconfigured_total", &[]) >= 1.0
    })
    .await;
    let permanent = paid_attempts("permanent");
    assert!(grew(&before, &after, "cart_webhook_attempts_total", &permanent) >= 1.0);
    let success = paid_attempts("success");
    assert!(grew(&before, &after, "cart_webhook_attempts_total", &success) >= 1.0);
    assert!(
        grew(
            &before,
            &after,
            "cart_webhook_paid_to_delivered_seconds",
            &[]
        ) >= 1.0
    );

    // The backlog sample: order 63 waits for its project's settings.
    let sampled = scrape_until(addr, "the backlog sample", |m| {
        m.total("cart_webhook_projects_without_settings", &[]) >= 1.0
    })
    .await;
    for state in ["pending", "leased", "due"] {
        assert!(
            sampled
                .samples("cart_webhook_deliveries", &[("state", state)])
                .next()
                .is_some(),
            "cart_webhook_deliveries{{state={state}}}:\n{}",
            sampled.text
        );
    }
    assert!(sampled.total("cart_webhook_deliveries", &[("state", "pending")]) >= 1.0);
    assert!(sampled.has("cart_db_pool_connections"));
    sampled.assert_catalogued();

    let (status, body) = get(addr, "/readyz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ready": true, "checks": {"postgres": "ok", "migrations": "ok", "nats": "ok", "endpoints": "ok"}})
    );
    worker.abort();
}

async fn until_status(addr: SocketAddr, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(addr, "/readyz").await.expect("the admin port answers");
        if status == want {
            return serde_json::from_str(&body).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stays {status}, not {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_is_503_while_postgres_is_cut_and_200_after() {
    let w = World::new().await;
    let db: PgConnectOptions = w.db.url.parse().unwrap();
    let proxy = cart_tests::Proxy::start(&format!("{}:{}", db.get_host(), db.get_port())).await;
    let mut config = w.config.clone();
    config.database_url = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        db.get_username(),
        proxy.port,
        db.get_database().unwrap()
    );
    let admin = cart_webhook::bind_admin(&config).await.unwrap().unwrap();
    let addr = admin.local_addr().unwrap();
    let mark = w.marker();
    let worker = tokio::spawn(async move {
        let pool = cart_webhook::connect(&config).await.unwrap();
        cart_webhook::run_bound(config, pool, mark, Some(admin), std::future::pending()).await
    });
    until_status(addr, 200).await;

    proxy.cut();
    let body = until_status(addr, 503).await;
    assert_ne!(body["checks"]["postgres"], "ok", "{body}");
    assert_eq!(body["checks"]["nats"], "ok");
    assert_eq!(get(addr, "/healthz").await.unwrap().0, 200);

    proxy.resume().await;
    until_status(addr, 200).await;
    assert!(!worker.is_finished(), "the worker outlives the outage");
    worker.abort();
}
