//! `cartctl events export` over the order log and both logs, the flags it refuses, the
//! order log's head in `feed.status`, and the analytics replay of `CART_ORDERS`, against
//! a real service.

use std::time::{Duration, Instant};

use cart_tests::*;
use prost::Message;
use serde_json::{json, Value};

use crate::{req, PROJECT};

async fn ok(w: &World, endpoint: &str, body: Value) -> Value {
    w.client
        .json(endpoint, None, body)
        .await
        .unwrap_or_else(|e| panic!("{endpoint} refused: {e:?}"))
}

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn types(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["event_type"].as_str().unwrap())
        .collect()
}

/// A line's place in the combined order, as a resume names it.
fn tagged(line: &Value) -> String {
    let log = if line.get("order_id").is_some() {
        "orders"
    } else {
        "carts"
    };
    format!("{log}:{}", line["position"].as_str().unwrap())
}

/// `cartctl events export` with `args`, on the world's database.
async fn export(w: &World, args: &[&str]) -> std::process::Output {
    let mut all = vec!["events", "export", "--database-url", w.db.url.as_str()];
    all.extend_from_slice(args);
    cartctl(&all).await
}

/// A refused command line: exit code 2, nothing on stdout, `expected` on stderr.
async fn refused(args: &[&str], expected: &str) {
    let out = cartctl(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

#[tokio::test]
async fn cartctl_exports_orders_and_both_logs_and_refuses_flags_it_does_not_take() {
    let w = World::start_with(|c| c.relay = true).await;
    let items = json!({"items": [{"sku": "cup01", "quantity": 2}]});
    ok(&w, "fill", req("ann", None, items)).await;
    ok(&w, "order.checkout", req("ann", None, json!({}))).await;
    let order = ok(&w, "order.get", req("ann", None, json!({"order_id": 1}))).await;
    let total = order["content"]["price"]["amount"]
        .as_str()
        .unwrap()
        .to_owned();
    let pay = json!({"project_id": PROJECT, "order_id": 1, "invoice_id": "inv-1",
                     "amount": total, "currency": "USD"});
    ok(&w, "payment.confirm", pay).await;

    // Both logs, by transaction, the order's event first within the payment's.
    let expected = [
        "CartOpened",
        "ItemQuantitySet",
        "OrderCreated",
        "OrderPaid",
        "CartCleared",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let (all, out) = loop {
        let out = export(&w, &["--log", "all"]).await;
        assert!(out.status.success(), "{out:?}");
        let all = lines(&out.stdout);
        if all.len() == expected.len() || Instant::now() > deadline {
            break (all, out);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(types(&all), expected);
    assert_eq!(
        all[3]["order"]["content"]["price"]["amount"],
        total.as_str()
    );
    assert_eq!(all[3]["status"], "paid");
    assert_eq!(all[4]["cart_cleared"]["reason"], "purchased");
    // The summary names the last line, tagged with its log.
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last = tagged(&all[4]);
    assert!(
        stderr.contains(&format!("resume with --after {last})")),
        "{stderr}"
    );
    // A resume after the payment's order event: the rest of its transaction.
    let paid = tagged(&all[3]);
    let rest = export(&w, &["--log", "all", "--after", &paid]).await;
    assert_eq!(types(&lines(&rest.stdout)), ["CartCleared"], "{rest:?}");
    let one_type = export(&w, &["--log", "all", "--event-type", "OrderPaid"]).await;
    assert_eq!(types(&lines(&one_type.stdout)), ["OrderPaid"]);

    // One log alone; the cart log, the default, without order events as before.
    let orders = export(&w, &["--log", "orders"]).await;
    assert_eq!(types(&lines(&orders.stdout)), ["OrderCreated", "OrderPaid"]);
    let one = export(
        &w,
        &[
            "--log",
            "orders",
            "--project-id",
            "44056",
            "--order-id",
            "1",
        ],
    )
    .await;
    assert_eq!(lines(&one.stdout).len(), 2, "{one:?}");
    let carts = export(&w, &[]).await;
    assert_eq!(
        types(&lines(&carts.stdout)),
        ["CartOpened", "ItemQuantitySet", "CartCleared"]
    );

    // Protobuf: OrderEventEnvelopes alone, ExportRecords combined.
    let orders = export(&w, &["--log", "orders", "--format", "protobuf"]).await;
    let mut buf = orders.stdout.as_slice();
    let created = cart_proto::v1::OrderEventEnvelope::decode_length_delimited(&mut buf).unwrap();
    let paid = cart_proto::v1::OrderEventEnvelope::decode_length_delimited(&mut buf).unwrap();
    assert!(buf.is_empty());
    assert_eq!((created.version, paid.version), (1, 2));
    assert_eq!(paid.order.unwrap().price.unwrap().amount, total);
    let both = export(&w, &["--log", "all", "--format", "protobuf"]).await;
    let mut buf = both.stdout.as_slice();
    let mut records = vec![];
    while !buf.is_empty() {
        let record = cart_proto::v1::ExportRecord::decode_length_delimited(&mut buf).unwrap();
        records.push(match record.record.unwrap() {
            cart_proto::v1::export_record::Record::CartEvent(e) => e.event_type,
            cart_proto::v1::export_record::Record::OrderEvent(e) => e.event_type,
        });
    }
    assert_eq!(records, expected);

    // Flags that do not apply are refused, before or after the subcommand.
    let url = w.db.url.as_str();
    let export_args = ["events", "export", "--database-url", url];
    let with = |extra: &[&'static str]| {
        let mut args = export_args.to_vec();
        args.extend_from_slice(extra);
        args
    };
    refused(&with(&["--project", "999"]), "use --project-id").await;
    refused(
        &[
            "--project",
            "999",
            "events",
            "export",
            "--database-url",
            url,
        ],
        "--project does not apply to `cartctl events export`",
    )
    .await;
    refused(&with(&["--user", "bob"]), "--user does not apply").await;
    refused(
        &with(&["--nats-url", "nats://x"]),
        "--nats-url does not apply",
    )
    .await;
    refused(&with(&["--user-id", "ann"]), "--cart-id").await;
    refused(&with(&["--project-id", "1", "--cart-id", "c"]), "--user-id").await;
    refused(
        &with(&[
            "--log",
            "orders",
            "--project-id",
            "1",
            "--user-id",
            "a",
            "--cart-id",
            "c",
        ]),
        "--log carts",
    )
    .await;
    refused(
        &with(&["--project-id", "1", "--order-id", "1"]),
        "--log orders",
    )
    .await;
    refused(&with(&["--event-type", "OrderPaid"]), "OrderPaid").await;
    refused(&with(&["--log", "all", "--after", "1:2"]), "carts:1:2").await;
    refused(
        &["projections", "rebuild", "--cart", "c"],
        "--cart does not apply",
    )
    .await;
    refused(
        &["events", "status", "--project", "1"],
        "--project does not apply",
    )
    .await;

    // Its help: its own flags, each described, none of the requests' flags.
    let help = cartctl(&["events", "export", "--help"]).await;
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--log",
        "--project-id",
        "--cart-id",
        "--order-id",
        "--amount-scale",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    for flag in [
        "--project ",
        "--user ",
        "--cart ",
        "--nats-url",
        "--currency",
        "--protobuf",
    ] {
        assert!(!help.contains(flag), "{flag}: {help}");
    }
    for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
        let described = line
            .trim()
            .split("  ")
            .filter(|p| !p.trim().is_empty())
            .count()
            >= 2;
        assert!(
            described,
            "an option without a description: {line:?}\n{help}"
        );
    }

    // feed.status: where each log ends, the order log's at the payment.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = w.client.try_json("feed.status", json!({})).await.unwrap();
        if s["orders_relay"]["lag_events"] == 0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["heads"]["orders"], all[3]["position"], "{status}");
    assert_eq!(status["heads"]["carts"], all[4]["position"], "{status}");
    assert_eq!(
        status["orders_relay"]["checkpoint"], all[3]["position"],
        "{status}"
    );

    // The analytics replay of CART_ORDERS: one checkout, paid, its total as revenue.
    let js = async_nats::jetstream::new(w.client.nats.clone());
    let source = cart_analytics::Source {
        stream: w.stream(),
        subject_prefix: w.prefix.clone(),
        project: Some(44056),
    };
    let orders = cart_analytics::replay_orders(&js, &source, &orders_stream_name(&w.prefix))
        .await
        .unwrap()
        .summary();
    assert_eq!((orders.counts.checkouts, orders.counts.payments), (1, 1));
    assert_eq!(orders.revenue["USD"].paid, total);
    assert_eq!(orders.revenue["USD"].net, total);
    w.finish().await;
}
