//! Graceful drain, with the real binary: two `cartd` processes under a steady load of
//! commands with ids; each in turn gets SIGTERM and is started again (a rolling
//! restart). No request may fail (a timeout, no responders and any refusal count as
//! failures), and every acknowledged command must be in the log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::NATS_SERVICE_ERROR_CODE;
use sqlx::{Connection, PgConnection};

/// The server's maintenance database, from `DATABASE_URL` (any database on the server).
fn server_url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    with_database(&url, "postgres")
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(i) => &base[..authority_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// What the instances share: a database, subjects and streams of this test's own.
struct Setup {
    database: String,
    database_url: String,
    prefix: String,
    unique: String,
}

impl Setup {
    fn new() -> Setup {
        let unique = format!("drain{}", std::process::id());
        let database = format!("cart_{unique}");
        Setup {
            database_url: with_database(&server_url(), &database),
            database,
            prefix: format!("{unique}.cart.v1"),
            unique,
        }
    }

    /// Starts one `cartd` and returns once its endpoints are subscribed (its log says so).
    fn start(&self) -> Child {
        let catalog = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/catalog.json"
        );
        let upper = self.unique.to_uppercase();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cartd"))
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", nats_url())
            .env("CART_CATALOG", catalog)
            .env("CART_SUBJECT_PREFIX", &self.prefix)
            .env("CART_SERVICE_NAME", &self.unique)
            .env("CART_EVENTS_STREAM", format!("CART_EVENTS_{upper}"))
            .env("CART_ORDERS_STREAM", format!("CART_ORDERS_{upper}"))
            .env("CART_ADMIN_ADDR", "off")
            .env("CART_PROJECTIONS", "false")
            .env("RUST_LOG", "warn,cartd=info")
            // The log goes to stdout.
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cartd");
        let log = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so that the pipe never fills and blocks the service.
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(log).lines().map_while(Result::ok) {
                if line.contains("serving cart endpoints") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                if line.contains("WARN") || line.contains("ERROR") || line.contains("drain") {
                    eprintln!("cartd: {line}");
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("cartd serving");
        child
    }
}

/// SIGTERM, then waits for the exit: the drain must end the process by itself, cleanly.
fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "cartd after SIGTERM: {exit}");
}

#[derive(Default)]
struct Tally {
    sent: u64,
    acked: Vec<(String, String)>,
    failed: Vec<String>,
}

/// One writer: item.put commands with ids on its own user's cart until `stop`.
async fn write(
    client: async_nats::Client,
    prefix: String,
    w: usize,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let user = format!("user{w}");
    while !stop.load(Ordering::Relaxed) {
        tally.sent += 1;
        let id = format!("w{w}-{}", tally.sent);
        let body = serde_json::json!({
            "project_id": 44056, "user_id": user, "sku": "cup01", "quantity": tally.sent % 50 + 1,
        });
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Cart-Command-Id", id.as_str());
        let reply = client
            .request_with_headers(
                format!("{prefix}.item.put"),
                headers,
                body.to_string().into(),
            )
            .await;
        match reply {
            Ok(m) => match m
                .headers
                .as_ref()
                .and_then(|h| h.get(NATS_SERVICE_ERROR_CODE))
            {
                None => tally.acked.push((user.clone(), id)),
                Some(code) => tally.failed.push(format!("{id}: status {code}")),
            },
            Err(e) => tally.failed.push(format!("{id}: {e}")),
        }
    }
    tally
}

#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request_and_loses_no_command() {
    let setup = Setup::new();
    let mut a = setup.start();
    let mut b = setup.start();
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(nats_url())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(write(client.clone(), setup.prefix.clone(), w, stop.clone())))
        .collect();

    let pause = || tokio::time::sleep(Duration::from_secs(1));
    pause().await;
    for _round in 0..2 {
        terminate(a);
        a = setup.start();
        pause().await;
        terminate(b);
        b = setup.start();
        pause().await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for writer in writers {
        let t = writer.await.unwrap();
        tally.sent += t.sent;
        tally.acked.extend(t.acked);
        tally.failed.extend(t.failed);
    }
    eprintln!(
        "rolling restart: {} sent, {} acknowledged, {} failed",
        tally.sent,
        tally.acked.len(),
        tally.failed.len()
    );
    let mut db = PgConnection::connect(&setup.database_url).await.unwrap();
    let recorded: Vec<(String, String)> =
        sqlx::query_as("select user_id, command_id from processed_commands")
            .fetch_all(&mut db)
            .await
            .unwrap();
    db.close().await.unwrap();
    terminate(a);
    terminate(b);
    let js = async_nats::jetstream::new(client.clone());
    for kind in ["EVENTS", "ORDERS"] {
        let _ = js
            .delete_stream(format!("CART_{kind}_{}", setup.unique.to_uppercase()))
            .await;
    }
    let mut admin = PgConnection::connect(&server_url()).await.unwrap();
    sqlx::query(&format!(
        "drop database if exists {} with (force)",
        setup.database
    ))
    .execute(&mut admin)
    .await
    .unwrap();

    assert!(
        tally.failed.is_empty(),
        "failed requests: {:?}",
        &tally.failed[..tally.failed.len().min(20)]
    );
    assert!(
        tally.acked.len() > 100,
        "too little load: {}",
        tally.acked.len()
    );
    let recorded: std::collections::HashSet<_> = recorded.into_iter().collect();
    let missing: Vec<_> = tally
        .acked
        .iter()
        .filter(|a| !recorded.contains(*a))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the log: {missing:?}"
    );
}
