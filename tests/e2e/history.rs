//! Reading the past: time travel through the service, the export for analysts, the
//! asynchronous projection and the example analytics consumer over the real relay.

use std::time::{Duration, Instant};

use cart_store::export::{self, Format, Start};
use cart_store::{Filter, Position, StreamKey};
use cart_tests::*;
use prost::Message;
use serde_json::json;

use crate::{req, PROJECT};

async fn put(w: &World, user: &str, cart: Option<&str>, sku: &str, quantity: i64) {
    w.client
        .json(
            "item.put",
            None,
            req(user, cart, json!({"sku": sku, "quantity": quantity})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn get_shows_a_cart_as_it_was_at_a_version_or_a_time() {
    let w = World::start().await;
    put(&w, "tt", None, "cup01", 1).await; // versions 1, 2
    put(&w, "tt", None, "gold", 5).await; // 3
    w.client
        .json("clear", None, req("tt", None, json!({})))
        .await
        .unwrap(); // 4
    let at = |v: i64| {
        w.client
            .json("get", None, req("tt", None, json!({"at_version": v})))
    };
    assert_eq!(lines(&at(2).await.unwrap()), [("cup01".into(), 1)]);
    assert_eq!(
        lines(&at(3).await.unwrap()),
        [("cup01".into(), 1), ("gold".into(), 5)]
    );
    assert!(lines(&at(4).await.unwrap()).is_empty());
    let now = w
        .client
        .json(
            "get",
            None,
            req("tt", None, json!({"at_time": "2999-01-01T00:00:00Z"})),
        )
        .await
        .unwrap();
    assert!(lines(&now).is_empty());
    let before = w
        .client
        .json(
            "get",
            None,
            req("tt", None, json!({"at_time": "2001-01-01T00:00:00Z"})),
        )
        .await
        .unwrap();
    assert!(
        lines(&before).is_empty(),
        "the current cart before its first event is empty"
    );

    // Protobuf callers have the same fields.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/protobuf");
    let body = cart_proto::v1::GetCartRequest {
        project_id: PROJECT,
        user_id: "tt".into(),
        at_version: Some(3),
        ..Default::default()
    }
    .encode_to_vec();
    let reply = w.client.send("get", headers, body).await.unwrap();
    let cart = cart_proto::v1::Cart::decode(reply.as_slice()).unwrap();
    assert_eq!(cart.items.len(), 2);

    // Bad requests are refused and say why.
    for (body, status, needle) in [
        (json!({"at_version": 0}), 422, "at_version"),
        (
            json!({"at_version": 9}),
            422,
            "no version 9; its latest is 4",
        ),
        (json!({"at_time": "not a time"}), 422, "at_time"),
        (
            json!({"at_version": 2, "at_time": "2026-01-01T00:00:00Z"}),
            422,
            "at most one",
        ),
    ] {
        let e = w
            .client
            .json("get", None, req("tt", None, body.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.error.status, status, "{body}");
        assert!(
            e.error.message().contains(needle),
            "{body}: {}",
            e.error.message()
        );
    }
    let e = w
        .client
        .json("clear", None, req("tt", None, json!({"at_version": 2})))
        .await
        .unwrap_err();
    assert_eq!(e.error.status, 422);
    // Another user's cart has no past to show either.
    put(&w, "owner", Some("mine"), "cup01", 1).await;
    let e = w
        .client
        .json(
            "get",
            None,
            req("intruder", Some("mine"), json!({"at_version": 1})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.error.status, 404);
    w.finish().await;
}

async fn export_all(
    pool: &sqlx::PgPool,
    start: &Start,
    filter: &Filter,
    format: Format,
) -> (Vec<u8>, export::Exported) {
    let mut out = Vec::new();
    let exported = export::export(pool, start, filter, format, &mut out, |_| {})
        .await
        .unwrap();
    (out, exported)
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_export_filters_resumes_and_writes_both_formats() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    put(&w, "a", None, "cup01", 1).await;
    put(&w, "a", Some("second"), "gold", 2).await;
    put(&w, "b", None, "cup01", 3).await;
    w.client
        .json("clear", None, req("b", None, json!({})))
        .await
        .unwrap();
    let total: i64 = sqlx::query_scalar("select count(*) from cart_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 7);
    let everything = Start::After(Position::default());
    let deadline = Instant::now() + Duration::from_secs(20);
    let (out, all) = loop {
        let (out, all) =
            export_all(&pool, &everything, &Filter::default(), Format::JsonLines).await;
        if all.events == 7 || Instant::now() > deadline {
            break (out, all);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[6]["event_type"], "CartCleared");
    assert_eq!(lines[6]["cart_cleared"]["reason"], "shopper");
    assert_eq!(lines[6]["schema_version"], 2);
    assert_eq!(all.last.to_string(), lines[6]["position"].as_str().unwrap());

    // One cart of one user.
    let key = StreamKey::new(
        cart_domain::ProjectId::parse(PROJECT).unwrap(),
        cart_domain::UserId::parse("a").unwrap(),
        cart_domain::CartId::parse("second").unwrap(),
    );
    let only = Filter {
        stream_id: Some(key.stream_id()),
        ..Filter::default()
    };
    let (out, _) = export_all(&pool, &everything, &only, Format::JsonLines).await;
    let cart: Vec<_> = json_lines(&out)
        .iter()
        .map(|l| l["cart_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cart, ["second", "second"]);
    // One event type, and another project (nothing).
    let types = Filter {
        event_types: vec!["ItemQuantitySet".into()],
        ..Filter::default()
    };
    assert_eq!(
        export_all(&pool, &everything, &types, Format::JsonLines)
            .await
            .1
            .events,
        3
    );
    let other = Filter {
        project_id: Some(1),
        ..Filter::default()
    };
    assert_eq!(
        export_all(&pool, &everything, &other, Format::JsonLines)
            .await
            .1
            .events,
        0
    );

    // Protobuf: length-delimited envelopes with the same content.
    let (out, _) = export_all(&pool, &everything, &Filter::default(), Format::Protobuf).await;
    let mut buf = out.as_slice();
    let mut decoded = vec![];
    while !buf.is_empty() {
        decoded.push(cart_proto::v1::EventEnvelope::decode_length_delimited(&mut buf).unwrap());
    }
    assert_eq!(decoded.len(), 7);
    assert_eq!(serde_json::to_value(&decoded[3]).unwrap(), lines[3]);

    // Resuming after the printed position gives only what came later.
    put(&w, "c", None, "gold", 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let later = loop {
        let (out, e) = export_all(
            &pool,
            &Start::After(all.last),
            &Filter::default(),
            Format::JsonLines,
        )
        .await;
        if e.events == 2 || Instant::now() > deadline {
            break json_lines(&out);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|l| l["user_id"] == "c"));
    // By time: nothing recorded in the future; everything since long ago.
    let future = Start::Since("2999-01-01T00:00:00Z".into());
    assert_eq!(
        export_all(&pool, &future, &Filter::default(), Format::JsonLines)
            .await
            .1
            .events,
        0
    );
    let past = Start::Since("2001-01-01T00:00:00Z".into());
    assert_eq!(
        export_all(&pool, &past, &Filter::default(), Format::JsonLines)
            .await
            .1
            .events,
        9
    );
    let mut sink = Vec::new();
    let bad = export::export(
        &pool,
        &Start::Since("soon".into()),
        &Filter::default(),
        Format::JsonLines,
        &mut sink,
        |_| {},
    )
    .await;
    assert!(matches!(
        bad,
        Err(export::ExportError::Store(cart_store::StoreError::Invalid(
            _
        )))
    ));
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn the_service_keeps_sku_activity_and_analytics_replays_the_live_stream() {
    let w = World::start_with(|c| {
        c.relay = true;
        c.projections = true;
    })
    .await;
    put(&w, "x", None, "cup01", 2).await;
    put(&w, "x", None, "gold", 1).await;
    put(&w, "y", None, "cup01", 1).await;
    w.client
        .json("clear", None, req("y", None, json!({})))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = w.client.try_json("feed.status", json!({})).await.unwrap();
        let done =
            s["relay"]["lag_events"] == 0 && s["projections"]["sku_activity"]["lag_events"] == 0;
        if done || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["relay"]["lag_events"], 0, "{status}");
    assert_eq!(status["this_instance"]["relay_active"], true, "{status}");

    let pool = w.db.pool().await;
    let cup: (i64, i64, i64, i64) = sqlx::query_as(
        "select carts_holding, units_held, times_added, times_removed from sku_activity where sku = 'cup01'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(cup, (1, 2, 2, 1));

    let js = async_nats::jetstream::new(w.client.nats.clone());
    let source = cart_analytics::Source {
        stream: w.stream(),
        subject_prefix: w.prefix.clone(),
        project: Some(44056),
    };
    let report = cart_analytics::replay(&js, &source).await.unwrap();
    let summary = report.summary(None, Duration::from_secs(3600));
    assert_eq!(summary.carts_seen, 2);
    assert_eq!(summary.events_applied, 6);
    assert_eq!(summary.open_carts, 1);
    assert_eq!(summary.emptied_by_shopper, 1);
    let cup = summary.skus.iter().find(|s| s.sku == "cup01").unwrap();
    assert_eq!(
        (cup.carts_added, cup.carts_holding, cup.units_held),
        (2, 1, 2)
    );
    pool.close().await;
    w.finish().await;
}

/// Every committed event id in the log, in the global order.
async fn log_ids(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("select event_id::text from cart_events order by tx_id, global_position")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Waits until the gap-safe reader sees all `n` events of the log: another test's open
/// transaction may hold the cluster-wide read barrier back a while.
async fn all_visible(pool: &sqlx::PgPool, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let everything = Start::After(Position::default());
        let (_, e) = export_all(pool, &everything, &Filter::default(), Format::JsonLines).await;
        if e.events == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} events visible",
            e.events
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `cartctl events export` printed on stderr: the count and the resume position.
/// Stderr is not a terminal here, so it must hold that one summary line and nothing a
/// progress bar draws.
fn export_summary(stderr: &[u8]) -> (u64, Position) {
    let stderr = String::from_utf8(stderr.to_vec()).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "more than the summary: {stderr:?}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "drawn on a stderr that is no terminal: {stderr:?}"
    );
    let events = stderr
        .strip_prefix("exported ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {stderr:?}"));
    let position = |marker: &str| -> Position {
        let (_, rest) = stderr
            .split_once(marker)
            .unwrap_or_else(|| panic!("{stderr:?}"));
        let end = rest.find([' ', ')']).unwrap_or(rest.len());
        rest[..end].trim().parse().unwrap()
    };
    let after = position("resume with --after ");
    assert_eq!(position("last position "), after, "{stderr:?}");
    (events, after)
}

fn event_ids(jsonl: &[u8]) -> Vec<String> {
    json_lines(jsonl)
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_owned())
        .collect()
}

fn temp_path(ext: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "cart-e2e-export-{}.{ext}",
        uuid::Uuid::new_v4().simple()
    ))
}

#[tokio::test]
async fn cartctl_exports_to_stdout_or_a_file_and_resumes_from_the_position_it_prints() {
    let w = World::start_with(|c| c.relay = true).await;
    let pool = w.db.pool().await;
    put(&w, "a", None, "cup01", 1).await;
    put(&w, "b", None, "gold", 2).await;
    let first = log_ids(&pool).await;
    assert_eq!(first.len(), 4);
    all_visible(&pool, 4).await;
    let url = w.db.url.as_str();

    // To standard output: the envelopes in the global order, the summary on stderr.
    let out = cartctl(&["events", "export", "--database-url", url]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(event_ids(&out.stdout), first);
    let (events, after) = export_summary(&out.stderr);
    assert_eq!(events, 4);
    let last_line = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(after.to_string(), last_line["position"].as_str().unwrap());

    // To a file: the same bytes there, nothing on standard output.
    let path = temp_path("jsonl");
    let path_arg = path.to_str().unwrap();
    let to_file = cartctl(&[
        "events",
        "export",
        "--database-url",
        url,
        "--output",
        path_arg,
    ])
    .await;
    let written = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert!(to_file.status.success(), "{to_file:?}");
    assert!(to_file.stdout.is_empty(), "{to_file:?}");
    assert_eq!(written, out.stdout);
    assert_eq!(export_summary(&to_file.stderr), (4, after));
    // And as length-delimited protobuf.
    let path = temp_path("bin");
    let path_arg = path.to_str().unwrap();
    let binary = cartctl(&[
        "events",
        "export",
        "--database-url",
        url,
        "--format",
        "protobuf",
        "-o",
        path_arg,
    ])
    .await;
    let written = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert!(binary.status.success(), "{binary:?}");
    let mut buf = written.as_slice();
    let mut ids = vec![];
    while !buf.is_empty() {
        let envelope = cart_proto::v1::EventEnvelope::decode_length_delimited(&mut buf).unwrap();
        ids.push(envelope.event_id);
    }
    assert_eq!(ids, first);

    // Resuming from the printed position delivers what came later, once. Another test's
    // transaction may hold the barrier between the two new events: resume from each
    // printed position until both showed.
    put(&w, "c", None, "cup01", 3).await;
    let rest: Vec<String> = log_ids(&pool).await.split_off(4);
    assert_eq!(rest.len(), 2);
    let (mut seen, mut from) = (Vec::new(), after);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < rest.len() && Instant::now() < deadline {
        let out = cartctl(&[
            "events",
            "export",
            "--database-url",
            url,
            "--after",
            &from.to_string(),
        ])
        .await;
        assert!(out.status.success(), "{out:?}");
        let ids = event_ids(&out.stdout);
        let (events, next) = export_summary(&out.stderr);
        assert_eq!(events, ids.len() as u64);
        if ids.is_empty() {
            assert_eq!(next, from, "an empty export prints where it started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen.extend(ids);
        from = next;
    }
    assert_eq!(seen, rest);
    let again = cartctl(&[
        "events",
        "export",
        "--database-url",
        url,
        "--after",
        &from.to_string(),
    ])
    .await;
    assert!(again.stdout.is_empty(), "{again:?}");
    assert_eq!(export_summary(&again.stderr), (0, from));

    // `cartctl events status`: the relay caught up, no lag.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = cartctl(&[
            "--nats-url",
            &nats_url(),
            "--subject-prefix",
            &w.prefix,
            "events",
            "status",
        ])
        .await;
        assert!(out.status.success(), "{out:?}");
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if status["relay"]["lag_events"] == 0 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["stream"], w.stream(), "{status}");
    assert_eq!(status["relay"]["lag_events"], 0, "{status}");
    assert_eq!(
        status["relay"]["lag_seconds"].as_f64(),
        Some(0.0),
        "{status}"
    );
    assert_eq!(status["relay"]["checkpoint"], from.to_string(), "{status}");
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn cartctl_draws_its_progress_bar_on_a_terminal_only() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    put(&w, "a", None, "cup01", 1).await;
    all_visible(&pool, 2).await;
    let path = temp_path("jsonl");
    let path_arg = path.to_str().unwrap().to_owned();
    let args = [
        "events",
        "export",
        "--database-url",
        w.db.url.as_str(),
        "--output",
        &path_arg,
    ];

    // Stderr a pipe: the summary line alone (export_summary checks).
    let piped = cartctl(&args).await;
    assert!(piped.status.success(), "{piped:?}");
    assert_eq!(export_summary(&piped.stderr).0, 2);

    // Stderr a terminal (a pseudo-terminal of `script`, from util-linux): the bar is
    // drawn, so the pipe's single line above is the bar left out, not a bar never made.
    let binary = tokio::task::spawn_blocking(cartctl_binary).await.unwrap();
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let command = std::iter::once(binary.to_str().unwrap())
        .chain(args)
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    match tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
    {
        Ok(tty) => {
            let shown = String::from_utf8_lossy(&tty.stdout);
            assert!(tty.status.success(), "{tty:?}");
            assert!(
                shown.contains("exporting"),
                "no bar on a terminal: {shown:?}"
            );
            assert!(shown.contains("exported 2 events"), "{shown:?}");
        }
        Err(e) => eprintln!(
            "no `script` to give cartctl a terminal ({e}); the bar on a terminal is not checked"
        ),
    }
    std::fs::remove_file(&path).ok();
    pool.close().await;
    w.finish().await;
}

/// `cartctl get | head -0`: the reader is gone before cartctl writes. `println!` would
/// panic ("failed printing to stdout: Broken pipe"); cartctl ends quietly instead.
#[tokio::test]
async fn cartctl_ends_quietly_when_its_reader_is_gone() {
    let w = World::start().await;
    let binary = tokio::task::spawn_blocking(cart_tests::cartctl_binary)
        .await
        .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = tokio::process::Command::new(&binary)
        .args(["--nats-url", &nats_url(), "--subject-prefix", &w.prefix])
        .args(["--user", "pipe-user", "get"])
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        // Not `output()`: tokio's would replace the closed pipe with one of its own.
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{out:?}");
    w.finish().await;
}
