//! `cartctl users erase` against the whole path: orders made through the real cartd,
//! published by its order relay on real NATS, delivered by the real webhook worker to
//! `cartctl webhook listen`, exported by `cartctl events export --log all`. Before the
//! erasure the personal data shows everywhere; after it, nowhere this service can reach.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROJECT: u64 = 44056;
const SECRET: &str = "winter-ann@example.org";
const QUEUED_SECRET: &str = "queued-ann@example.org";
const BOB_SECRET: &str = "bob@example.org";
const REASON: &str = "refund asked by Ann Smith";

struct World {
    db: cart_store::testing::TestDb,
    pool: sqlx::PgPool,
    client: async_nats::Client,
    prefix: String,
}

impl World {
    async fn request(&self, endpoint: &str, body: serde_json::Value) -> serde_json::Value {
        let reply = self
            .client
            .request(
                format!("{}.{endpoint}", self.prefix),
                serde_json::to_vec(&body).unwrap().into(),
            )
            .await
            .unwrap();
        let failed = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error-Code"));
        assert!(failed.is_none(), "{endpoint}: {:?}", reply.payload);
        serde_json::from_slice(&reply.payload).unwrap()
    }

    async fn paid_order(&self, user: &str, custom: &str) -> u64 {
        let created = self
            .request(
                "order.checkout_item",
                serde_json::json!({"project_id": PROJECT, "user_id": user, "sku": "gold",
                    "quantity": 1, "currency": "USD", "custom_parameters": {"email": custom}}),
            )
            .await;
        let order_id = created["order_id"].as_u64().unwrap();
        self.request(
            "payment.confirm",
            serde_json::json!({"project_id": PROJECT, "order_id": order_id,
                "invoice_id": format!("inv-{order_id}"), "amount": "0.99", "currency": "USD",
                "mode": "sandbox"}),
        )
        .await;
        order_id
    }

    /// The relay's last message on an order's subject in the orders stream (`CART_ORDERS`),
    /// once there is one.
    async fn published(&self, stream: &str, order_id: u64, status: &str) -> String {
        let js = async_nats::jetstream::new(self.client.clone());
        let subject = format!("{}.orders.{PROJECT}.{order_id}.{status}", self.prefix);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(stream) = js.get_stream(stream).await {
                if let Ok(m) = stream.get_last_raw_message_by_subject(&subject).await {
                    return String::from_utf8_lossy(&m.payload).into_owned();
                }
            }
            assert!(Instant::now() < deadline, "nothing on {subject}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn order(&self, user: &str, order_id: u64) -> String {
        self.request(
            "order.get",
            serde_json::json!({"project_id": PROJECT, "user_id": user, "order_id": order_id}),
        )
        .await
        .to_string()
    }

    /// `cartctl` with the test's database; its exit code and stdout.
    fn cartctl(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_cartctl"))
            .args(args)
            .env("DATABASE_URL", self.db.url())
            .env_remove("CART_USER")
            .env_remove("CART_PROJECT")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    }

    /// The export of both logs once it holds every event the database holds now: the
    /// read barrier holds back events while another transaction of the server is open.
    async fn export(&self) -> String {
        let events: i64 = sqlx::query_scalar(
            "select (select count(*) from order_events) + (select count(*) from cart_events)",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // A backup's export (with the stored events): the strictest for erasure.
            let (_, out) = self.cartctl(&["events", "export", "--restorable", "--log", "all"]);
            if out.lines().count() >= usize::try_from(events).unwrap() || Instant::now() > deadline
            {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A child process killed when dropped, so a failed test leaves no listener behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// `cartctl webhook listen` on a port of this test's range, its stdout in a pipe.
fn listener(secret: &str) -> (Killed, u16) {
    let port = (16400..16500)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 16400-16499");
    let child = Command::new(env!("CARGO_BIN_EXE_cartctl"))
        .args([
            "webhook",
            "listen",
            "--port",
            &port.to_string(),
            "--secret",
            secret,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Killed(child), port)
}

/// Everything the listener prints, gathered by a thread (a read never blocks the test).
fn gather(mut out: std::process::ChildStdout) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let into = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}

/// What the listener printed, once it holds `needle` (else when the deadline passed).
async fn received_until(seen: &Mutex<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = seen.lock().unwrap().clone();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_webhook(pool: &sqlx::PgPool, port: u16, enabled: bool) {
    sqlx::query(
        "insert into webhook_settings (project_id, url, secret, enabled, version) \
         values ($1, $2, 'erase-secret', $3, 2) \
         on conflict (project_id) do update set enabled = excluded.enabled",
    )
    .bind(i64::try_from(PROJECT).unwrap())
    .bind(format!("http://127.0.0.1:{port}/"))
    .bind(enabled)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erased_users_personal_data_is_gone_from_views_exports_and_queued_webhooks() {
    let (db, pool) = cart_store::testing::database().await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let prefix = format!("erasetest_{tag}");
    let mut service = cartd::Config::from_env();
    service.database_url = db.url();
    service.catalog = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/catalog.json"
    )
    .into();
    service.subject_prefix = prefix.clone();
    service.service_name = format!("erase-test-{tag}");
    service.events_stream = format!("ERASETEST_EVENTS_{tag}");
    service.orders_stream = format!("ERASETEST_ORDERS_{tag}");
    service.projections = false;
    service.admin_addr = "127.0.0.1:0".parse().unwrap();
    let server = cartd::start(&service).await.expect("start cartd");
    let mut hooks = cart_webhook::Config::from_env();
    hooks.database_url = db.url();
    hooks.prefix = prefix.clone();
    hooks.orders_stream = service.orders_stream.clone();
    hooks.dead_stream = format!("ERASETEST_DEAD_{tag}");
    hooks.consumer = format!("erasetest-{tag}");
    hooks.poll = Duration::from_millis(50);
    hooks.unconfigured_delay = Duration::from_millis(100);
    hooks.cancel_grace = Duration::from_millis(100);
    hooks.admin_addr = "127.0.0.1:0".parse().unwrap();
    let worker_pool = cart_webhook::connect(&hooks).await.unwrap();
    let mark = cart_webhook::order_store_marker(worker_pool.clone());
    let worker = tokio::spawn(cart_webhook::run_with(
        hooks,
        worker_pool,
        mark,
        std::future::pending(),
    ));
    let (mut receiver, port) = listener("erase-secret");
    let seen = gather(receiver.0.stdout.take().unwrap());
    let client = async_nats::connect(&service.nats_url).await.unwrap();
    let w = World {
        db,
        pool,
        client,
        prefix,
    };

    // Before: the view, the webhook and the export show Ann's data.
    set_webhook(&w.pool, port, true).await;
    let first = w.paid_order("ann", SECRET).await;
    let bobs = w.paid_order("bob", BOB_SECRET).await;
    assert!(w.order("ann", first).await.contains(SECRET));
    let got = received_until(&seen, SECRET).await;
    assert!(got.contains(SECRET), "{got}");
    // Nothing in clear in the log itself.
    let raw: Vec<String> = sqlx::query_scalar("select payload::text from order_events")
        .fetch_all(&w.pool)
        .await
        .unwrap();
    assert!(!raw.concat().contains(SECRET), "{raw:?}");
    assert!(w.export().await.contains(SECRET));
    let orders_stream = service.orders_stream.clone();
    assert!(w
        .published(&orders_stream, first, "paid")
        .await
        .contains(SECRET));

    // A delivery of Ann's still queued at the erasure (the webhook is off meanwhile).
    set_webhook(&w.pool, port, false).await;
    let queued = w.paid_order("ann", QUEUED_SECRET).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sqlx::query_scalar::<_, i64>(
        "select count(*) from webhook_deliveries where order_id = $1",
    )
    .bind(i64::try_from(queued).unwrap())
    .fetch_one(&w.pool)
    .await
    .unwrap()
        == 0
    {
        assert!(Instant::now() < deadline, "order {queued} never queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (_, report) = w.cartctl(&["users", "erase", "--project", "44056", "--user", "ann"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["key_deleted"], true, "{report}");
    assert_eq!(report["sealed_events_unreadable"], 2, "{report}");
    assert_eq!(report["clear_events_not_rewritten"], serde_json::json!({}));
    assert_eq!(report["webhook_deliveries_scrubbed"], 2, "{report}");
    let outbox: Vec<String> = sqlx::query_scalar("select envelope::text from webhook_deliveries")
        .fetch_all(&w.pool)
        .await
        .unwrap();
    let outbox = outbox.concat();
    assert!(
        !outbox.contains(SECRET) && !outbox.contains(QUEUED_SECRET),
        "{outbox}"
    );
    assert!(outbox.contains(BOB_SECRET), "{outbox}");

    // After: the queued delivery goes, without Ann's data; views and the export hold none.
    set_webhook(&w.pool, port, true).await;
    let key = format!("{PROJECT}:{queued}:order_paid");
    let got = received_until(&seen, &key).await;
    let queued_body = &got[got.find(&key).expect(&got)..];
    assert!(!queued_body.contains(QUEUED_SECRET), "{queued_body}");
    assert!(
        queued_body.contains(r#""custom_parameters": {}"#),
        "{queued_body}"
    );
    // A refund after the erasure: its reason is new data, sealed under a fresh key.
    w.request(
        "payment.cancel",
        serde_json::json!({"project_id": PROJECT, "order_id": first, "reason": REASON}),
    )
    .await;
    let canceled = w.published(&orders_stream, first, "canceled").await;
    assert!(
        !canceled.contains(SECRET) && canceled.contains(REASON),
        "{canceled}"
    );
    assert!(
        canceled.contains(r#""custom_parameters":null"#),
        "{canceled}"
    );
    for order in [first, queued] {
        let view = w.order("ann", order).await;
        assert!(
            !view.contains(SECRET) && !view.contains(QUEUED_SECRET),
            "{view}"
        );
    }
    let export = w.export().await;
    assert!(
        !export.contains(SECRET) && !export.contains(QUEUED_SECRET),
        "{export}"
    );
    assert!(export.contains(BOB_SECRET), "other users are untouched");
    assert!(
        export.contains(REASON),
        "data given after the erasure is kept"
    );
    assert!(w.order("bob", bobs).await.contains(BOB_SECRET));

    // A repeat is fine; a new order of Ann's is readable under her fresh key.
    let (_, again) = w.cartctl(&["users", "erase", "--project", "44056", "--user", "ann"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        again["key_deleted"], true,
        "the refund made a fresh key: {again}"
    );
    let (_, third) = w.cartctl(&["users", "erase", "--project", "44056", "--user", "ann"]);
    assert!(third.contains(r#""key_deleted": false"#), "{third}");
    let later = w.paid_order("ann", "spring-ann@example.org").await;
    assert!(w
        .order("ann", later)
        .await
        .contains("spring-ann@example.org"));

    drop(receiver);
    worker.abort();
    server.shutdown().await;
    let js = async_nats::jetstream::new(w.client.clone());
    let _ = js.delete_stream(&service.events_stream).await;
    let _ = js.delete_stream(&service.orders_stream).await;
}
