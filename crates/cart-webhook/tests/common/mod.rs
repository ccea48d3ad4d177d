//! The test harness: a database per test, a JetStream stream and prefix per test, a
//! scriptable local webhook receiver, and a worker started in-process.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cart_proto::order::{
    OrderContent, OrderEventEnvelope, OrderItemView, OrderView, PriceView, PromotionStepView,
};
use cart_webhook::{Config, MarkDelivered, MarkError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};

/// A database of the test's own, dropped at the end (as cart-store's test helper does).
pub struct TestDb {
    pub url: String,
    name: String,
    admin: PgConnectOptions,
}

impl TestDb {
    pub async fn new() -> Self {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin = PgConnectOptions::from_str(&base)
            .unwrap()
            .database("postgres");
        let name = format!("cart_webhook_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.expect("connect to PostgreSQL");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let url = match base.rsplit_once('/') {
            Some((server, _)) if base.starts_with("postgres") => format!("{server}/{name}"),
            _ => url,
        };
        Self { url, name, admin }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Sleep, then answer.
    After(Duration, u16),
}

#[derive(Debug, Clone)]
pub struct Call {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Call {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
    pub fn key(&self) -> String {
        self.header("idempotency-key")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<Call>>,
    script: Mutex<VecDeque<Answer>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight_per_order: AtomicUsize,
    /// TLS handshakes the receiver refused or that failed (https receivers only).
    tls_failures: AtomicUsize,
}

/// A local webhook receiver: answers from its script (then 204), records every call
/// and the most requests in flight at once for one order.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    pub url: String,
}

impl Receiver {
    pub async fn start(script: Vec<Answer>) -> Self {
        let inner = Arc::new(Inner::default());
        inner.script.lock().unwrap().extend(script);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { inner, url }
    }

    /// The receiver over TLS, as `https://localhost:<port>/hook`, with the certificate
    /// of `tests/fixtures/localhost.pem` (signed by `tests/fixtures/ca.pem`).
    pub async fn start_tls(script: Vec<Answer>) -> Self {
        let inner = Arc::new(Inner::default());
        inner.script.lock().unwrap().extend(script);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(inner.clone());
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/hook",
            tcp.local_addr().unwrap().port()
        );
        let listener = TlsListener {
            tcp,
            acceptor: tls_acceptor(),
            inner: inner.clone(),
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { inner, url }
    }

    pub fn tls_failures(&self) -> usize {
        self.inner.tls_failures.load(Ordering::SeqCst)
    }

    /// The calls so far. Every webhook a test looks at is checked here, in the test's
    /// thread: no null where Xsolla's schema has a type (`cart_proto::nulls`).
    pub fn calls(&self) -> Vec<Call> {
        let calls = self.inner.calls.lock().unwrap().clone();
        for call in &calls {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&call.body) else {
                continue;
            };
            let paths = cart_proto::nulls::XSOLLA_TYPED_WEBHOOK_PATHS;
            let nulls = cart_proto::nulls::nulls_at(&body, paths);
            assert!(nulls.is_empty(), "a webhook with null at {nulls:?}: {body}");
        }
        calls
    }

    pub fn max_in_flight_per_order(&self) -> usize {
        self.inner.max_in_flight_per_order.load(Ordering::SeqCst)
    }

    pub async fn wait_calls(&self, n: usize) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {n} calls, got {}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The test CA's certificate (trusted through `--ca-file`).
pub fn ca_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ca.pem")
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let chain = CertificateDer::pem_file_iter(fixtures.join("localhost.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixtures.join("localhost.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A TCP listener that hands axum TLS streams; a failed handshake is counted and the
/// connection dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    inner: Arc<Inner>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            match tokio::time::timeout(Duration::from_secs(5), handshake).await {
                Ok(Ok(tls)) => return (tls, addr),
                _ => {
                    self.inner.tls_failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn hook(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let call = Call {
        headers,
        body,
        at: Instant::now(),
    };
    let key = call.key();
    let order = key
        .rsplit_once(':')
        .map(|(o, _)| o.to_owned())
        .unwrap_or_default();
    inner.calls.lock().unwrap().push(call);
    {
        let mut in_flight = inner.in_flight.lock().unwrap();
        let n = in_flight.entry(order.clone()).or_default();
        *n += 1;
        inner
            .max_in_flight_per_order
            .fetch_max(*n, Ordering::SeqCst);
    }
    let answer = inner
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(204));
    let status = match answer {
        Answer::Status(s) => s,
        Answer::After(d, s) => {
            tokio::time::sleep(d).await;
            s
        }
    };
    *inner.in_flight.lock().unwrap().entry(order).or_default() -= 1;
    StatusCode::from_u16(status).unwrap()
}

/// Names unique to one test: prefix, streams, consumer.
pub struct World {
    pub db: TestDb,
    pub pool: PgPool,
    pub config: Config,
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub marked: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl World {
    /// Records an `order_paid` of project 1's `order` straight into the outbox, as an
    /// intake (this process's or another's) would; its event id.
    #[allow(dead_code)] // not every test file records deliveries directly
    pub async fn insert_paid(&self, order: u64) -> uuid::Uuid {
        let e = paid(1, order);
        let event_id = uuid::Uuid::parse_str(&e.event_id).unwrap();
        let inserted = cart_webhook::store::insert_delivery(
            &self.pool,
            &cart_webhook::store::NewDelivery {
                event_id,
                project_id: 1,
                order_id: order,
                version: e.version,
                kind: cart_webhook::payload::NotificationType::OrderPaid,
                envelope: serde_json::to_value(&e).unwrap(),
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert!(inserted);
        event_id
    }

    pub async fn new() -> Self {
        let w = Self::new_without_orders_stream().await;
        // The order relay's stream, as the relay would create it.
        w.jetstream
            .create_stream(stream::Config {
                name: w.config.orders_stream.clone(),
                subjects: vec![format!("{}.orders.>", w.config.prefix)],
                storage: stream::StorageType::Memory,
                ..Default::default()
            })
            .await
            .unwrap();
        w
    }

    /// A world whose orders stream is left to the real order relay.
    pub async fn new_without_orders_stream() -> Self {
        let db = TestDb::new().await;
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut config = Config::from_env();
        config.database_url = db.url.clone();
        config.prefix = format!("whtest_{tag}");
        config.orders_stream = format!("WHTEST_ORDERS_{tag}");
        config.dead_stream = format!("WHTEST_DEAD_{tag}");
        config.consumer = format!("whtest-{tag}");
        config.poll = Duration::from_millis(50);
        config.timeout = Duration::from_secs(2);
        // Leases end soon after the timeout, so a killed worker is replaced quickly.
        config.lease_margin = Duration::from_secs(1);
        config.retry_schedule = "5x100ms".parse().unwrap();
        config.cancel_grace = Duration::from_secs(5);
        // Workers of tests running side by side: each admin port on a free port.
        config.admin_addr = "127.0.0.1:0".parse().unwrap();
        let client = async_nats::connect(&config.nats_url).await.unwrap();
        let jetstream = jetstream::new(client.clone());
        let pool = cart_webhook::connect(&config).await.unwrap();
        Self {
            db,
            pool,
            config,
            client,
            jetstream,
            marked: Arc::default(),
        }
    }

    /// A cartd on the world's database and subjects, its order relay on the world's
    /// stream.
    pub fn cartd_config(&self) -> cartd::Config {
        let mut service = cartd::Config::from_env();
        service.database_url = self.config.database_url.clone();
        service.catalog = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/catalog.json"
        )
        .into();
        service.subject_prefix = self.config.prefix.clone();
        service.service_name = "cart-webhook-test".into();
        service.events_stream = format!("{}_EVENTS", self.config.orders_stream);
        service.orders_stream = self.config.orders_stream.clone();
        service.projections = false;
        service.admin_addr = "127.0.0.1:0".parse().unwrap();
        service
    }

    pub fn marker(&self) -> MarkDelivered {
        let marked = self.marked.clone();
        Arc::new(move |project, order| {
            marked.lock().unwrap().push((project, order));
            Box::pin(async { Ok::<(), MarkError>(()) })
        })
    }

    /// Starts a worker on its own pool (so that aborting it closes its connections, as
    /// a dead process would).
    pub fn start_worker(&self) -> tokio::task::JoinHandle<()> {
        self.start_worker_with(self.config.clone())
    }

    pub fn start_worker_with(&self, config: Config) -> tokio::task::JoinHandle<()> {
        let mark = self.marker();
        tokio::spawn(async move {
            let pool = cart_webhook::connect(&config).await.unwrap();
            cart_webhook::run_with(config, pool, mark, std::future::pending())
                .await
                .unwrap();
        })
    }

    /// Sets a project's webhook through the admin endpoint; returns the reply.
    pub async fn admin(&self, verb: &str, body: serde_json::Value) -> async_nats::Message {
        let subject = format!("{}.admin.webhook.{verb}", self.config.prefix);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self
                .client
                .request(subject.clone(), serde_json::to_vec(&body).unwrap().into())
                .await
            {
                Ok(reply) => return reply,
                // The worker's endpoints may not be up yet.
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("admin {verb}: {e}"),
            }
        }
    }

    pub async fn set_webhook(&self, project: u64, url: &str, secret: &str, version: i16) {
        let reply = self
            .admin(
                "set",
                serde_json::json!({"project_id": project, "url": url, "secret": secret, "enabled": true, "version": version}),
            )
            .await;
        assert!(reply
            .headers
            .is_none_or(|h| h.get("Nats-Service-Error-Code").is_none()));
    }

    pub async fn publish(&self, envelope: &OrderEventEnvelope) {
        let subject = format!(
            "{}.orders.{}.{}.{}",
            self.config.prefix, envelope.project_id, envelope.order_id, envelope.status
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.event_id.as_str());
        self.jetstream
            .publish_with_headers(
                subject,
                headers,
                serde_json::to_vec(envelope).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Waits until the delivery of `(order, type)` has `status`.
    pub async fn wait_status(&self, order: u64, kind: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now: Option<String> = sqlx::query_scalar(
                "select status from webhook_deliveries where order_id = $1 and notification_type = $2",
            )
            .bind(i64::try_from(order).unwrap())
            .bind(kind)
            .fetch_optional(&self.pool)
            .await
            .unwrap();
            if now.as_deref() == Some(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "order {order} {kind}: {now:?}, not {status}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sessions of the test's database inside a transaction that has an xid (one that
    /// wrote or locked rows): the ones that hold the event relays back.
    pub async fn transactions_with_xid(&self) -> i64 {
        sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where backend_xid is not null and datname = current_database()",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// The attempts of a delivery: (attempt, status code, outcome).
    pub async fn attempts(&self, order: u64, kind: &str) -> Vec<(i32, Option<i16>, String)> {
        sqlx::query_as(
            "select a.attempt, a.status_code, a.outcome from webhook_attempts a
             join webhook_deliveries d using (event_id)
             where d.order_id = $1 and d.notification_type = $2 order by a.attempt",
        )
        .bind(i64::try_from(order).unwrap())
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let (js, names) = (
            self.jetstream.clone(),
            [
                self.config.orders_stream.clone(),
                self.config.dead_stream.clone(),
            ],
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for name in names {
                    let _ = js.delete_stream(name).await;
                }
            });
        }
    }
}

/// An order event as the relay publishes it: a paid or canceled order of two lines,
/// one discounted and one bonus, with a promo code and custom parameters.
pub fn envelope(
    project: u64,
    order: u64,
    event_type: &str,
    status: &str,
    version: i64,
) -> OrderEventEnvelope {
    OrderEventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        position: "1:1".into(),
        project_id: project,
        order_id: order,
        user_id: "user-1".into(),
        version,
        event_type: event_type.into(),
        status: status.into(),
        recorded_at: "2026-12-04T10:00:00Z".into(),
        order: OrderView {
            order_id: order,
            project_id: project,
            status: status.into(),
            user_id: "user-1".into(),
            cart_id: None,
            date_created: "2026-12-04T09:59:00Z".into(),
            mode: Some("sandbox".into()),
            invoice_id: Some("inv-1".into()),
            is_free: false,
            promo_code: Some("WINTER".into()),
            expired_by: None,
            cancel_reason: None,
            custom_parameters: Some(serde_json::json!({"a": 1})),
            content: OrderContent {
                price: Some(PriceView {
                    amount: "18.00".into(),
                    amount_without_discount: "20.00".into(),
                    currency: "USD".into(),
                }),
                is_free: false,
                items: vec![
                    OrderItemView {
                        sku: "big_rocket".into(),
                        item_type: Some("virtual_good".into()),
                        quantity: 2,
                        is_free: false,
                        is_bonus: false,
                        is_bundle_content: false,
                        price: Some(PriceView {
                            amount: "9.00".into(),
                            amount_without_discount: "10.00".into(),
                            currency: "USD".into(),
                        }),
                        amount: Some("18.00".into()),
                        // Line totals: 2 x 10.00 -> 2 x 9.00.
                        promotions: vec![PromotionStepView {
                            amount_without_discount: "20.00".into(),
                            amount_with_discount: "18.00".into(),
                            sequence: 1,
                        }],
                    },
                    OrderItemView {
                        sku: "bonus_gem".into(),
                        item_type: Some("virtual_currency".into()),
                        quantity: 1,
                        is_free: true,
                        is_bonus: true,
                        is_bundle_content: false,
                        price: Some(PriceView {
                            amount: "0.00".into(),
                            amount_without_discount: "0.00".into(),
                            currency: "USD".into(),
                        }),
                        amount: Some("0.00".into()),
                        promotions: vec![],
                    },
                ],
                promotions: vec![],
            },
        },
    }
}

pub fn paid(project: u64, order: u64) -> OrderEventEnvelope {
    envelope(project, order, "OrderPaid", "paid", 2)
}

pub fn canceled(project: u64, order: u64) -> OrderEventEnvelope {
    envelope(project, order, "OrderCanceled", "canceled", 3)
}

/// A free order's envelope as relayed before order views gave free orders a zero price:
/// no invoice, no price, every line free.
pub fn free(
    project: u64,
    order: u64,
    event_type: &str,
    status: &str,
    version: i64,
) -> OrderEventEnvelope {
    let mut e = envelope(project, order, event_type, status, version);
    e.order.invoice_id = None;
    e.order.is_free = true;
    e.order.promo_code = None;
    e.order.mode = None;
    e.order.content.is_free = true;
    e.order.content.price = None;
    for item in &mut e.order.content.items {
        item.is_free = true;
        item.price = None;
        item.amount = None;
        item.promotions = vec![];
    }
    e
}
