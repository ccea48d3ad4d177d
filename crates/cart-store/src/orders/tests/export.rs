//! Both logs in one export: the combined order, resumes from any line, filters, and
//! the protobuf records, over orders made and paid by the real store.

use std::time::{Duration, Instant};

use cart_proto::v1;
use prost::Message;

use super::*;
use crate::export::{export_logs, Format, LogPosition, Logs, Start, Stored};
use crate::feed::Log;
use crate::Filter;

/// A JSON line's event type and its place in the combined order (an order envelope has
/// `order_id`, a cart envelope `stream_id`).
fn placed(line: &serde_json::Value) -> (String, LogPosition) {
    let log = if line.get("order_id").is_some() {
        Log::Orders
    } else {
        Log::Carts
    };
    let position = line["position"].as_str().unwrap().parse().unwrap();
    (
        line["event_type"].as_str().unwrap().to_owned(),
        LogPosition { log, position },
    )
}

/// The JSON Lines export of `logs` once it holds every event of the database (the read barrier
/// may hold the latest transactions back while another database's transaction is open).
pub(super) async fn export_everything(pool: &sqlx::PgPool, logs: Logs, stored: Stored) -> String {
    let sql = match logs {
        Logs::Orders => "select count(*) from order_events",
        Logs::Carts => "select count(*) from cart_events",
        Logs::All => {
            "select (select count(*) from cart_events) + (select count(*) from order_events)"
        }
    };
    let want: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
    let start = match logs {
        Logs::All => Start::AfterEvent(LogPosition {
            log: Log::Orders,
            position: crate::Position::default(),
        }),
        _ => Start::After(crate::Position::default()),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut out = Vec::new();
        let amounts = cart_proto::view::AmountFormat::default();
        let filter = Filter::default();
        let exported = export_logs(
            pool,
            logs,
            &start,
            &filter,
            (Format::JsonLines, amounts, stored),
            &mut out,
            |_| {},
        )
        .await
        .unwrap();
        if i64::try_from(exported.events).unwrap() == want {
            return String::from_utf8(out).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{exported:?} of {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn export_json(
    pool: &sqlx::PgPool,
    logs: Logs,
    start: &Start,
    filter: &Filter,
) -> (Vec<(String, LogPosition)>, LogPosition) {
    let mut out = Vec::new();
    let amounts = cart_proto::view::AmountFormat::default();
    let exported = export_logs(
        pool,
        logs,
        start,
        filter,
        (Format::JsonLines, amounts, Stored::Omit),
        &mut out,
        |_| {},
    )
    .await
    .unwrap();
    let lines: Vec<_> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| placed(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(exported.events, lines.len() as u64);
    if let Some((_, last)) = lines.last() {
        assert_eq!(exported.last, *last, "resume from the last line written");
    }
    (lines, exported.last)
}

/// Ann's cart of one sword, then her order of it.
async fn ann_checks_out(
    store: &OrderStore,
    carts: &EventStore,
    catalog: &cart_domain::Catalog,
) -> Created {
    stored_cart(carts, "ann", "c", &[("sword", 1)], None).await;
    let key = StreamKey::new(project(), user("ann"), CartId::parse("c").unwrap());
    let cart = carts.load(&key).await.unwrap().cart;
    created(
        checkout(
            store,
            catalog,
            request("ann", Some("c"), snapshot(catalog, &cart)),
        )
        .await,
    )
}

fn types(lines: &[(String, LogPosition)]) -> Vec<&str> {
    lines.iter().map(|(t, _)| t.as_str()).collect()
}

#[tokio::test]
async fn a_combined_export_interleaves_both_logs_by_transaction_orders_first() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let carts = EventStore::new(pool.clone());
    let catalog = catalog();
    // Ann's cart, her order and its payment (which clears the cart in its transaction),
    // then Bob's cart: five transactions, one after the other.
    let c = ann_checks_out(&store, &carts, &catalog).await;
    store
        .confirm_payment(&catalog, payment(c.order_id, "5", "inv-1"))
        .await
        .unwrap()
        .unwrap();
    stored_cart(&carts, "bob", "c", &[("sword", 2)], None).await;

    let everything = Start::AfterEvent(LogPosition {
        log: Log::Orders,
        position: crate::Position::default(),
    });
    let expected = [
        "CartOpened",
        "ItemQuantitySet",
        "OrderCreated",
        "OrderPaid",
        "CartCleared",
        "CartOpened",
        "ItemQuantitySet",
    ];
    // Another database's transaction may hold the cluster-wide barrier a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (all, last) = loop {
        let (all, last) = export_json(&pool, Logs::All, &everything, &Filter::default()).await;
        if all.len() == expected.len() || Instant::now() > deadline {
            break (all, last);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(types(&all), expected);
    // The payment's two events share a transaction: the order's first.
    let (paid, cleared) = (all[3].1, all[4].1);
    assert_eq!(paid.position.tx_id, cleared.position.tx_id);
    assert_eq!((paid.log, cleared.log), (Log::Orders, Log::Carts));
    // The combined order is the order of the places written.
    assert!(all.windows(2).all(|w| w[0].1 < w[1].1), "{all:?}");

    // A resume from any line brings exactly the lines after it.
    for (i, (_, at)) in all.iter().enumerate() {
        let (rest, _) = export_json(
            &pool,
            Logs::All,
            &Start::AfterEvent(*at),
            &Filter::default(),
        )
        .await;
        assert_eq!(rest, all[i + 1..], "resumed after line {i}");
    }
    let (nothing, still) = export_json(
        &pool,
        Logs::All,
        &Start::AfterEvent(last),
        &Filter::default(),
    )
    .await;
    assert!(nothing.is_empty());
    assert_eq!(still, last, "an empty export prints where it started");

    // By time: from before everything, the same lines; from the future, none, and a
    // start that repeats nothing.
    let long_ago = Start::Since("2000-01-01T00:00:00Z".to_owned());
    let (since, _) = export_json(&pool, Logs::All, &long_ago, &Filter::default()).await;
    assert_eq!(since, all);
    let future = Start::Since("2999-01-01T00:00:00Z".to_owned());
    let (none, start) = export_json(&pool, Logs::All, &future, &Filter::default()).await;
    assert!(none.is_empty());
    let (after_start, _) = export_json(
        &pool,
        Logs::All,
        &Start::AfterEvent(start),
        &Filter::default(),
    )
    .await;
    assert!(after_start.is_empty(), "{start}: {after_start:?}");

    // One log alone: its own events, in the same relative order.
    let start = Start::After(crate::Position::default());
    let (orders_only, _) = export_json(&pool, Logs::Orders, &start, &Filter::default()).await;
    assert_eq!(types(&orders_only), ["OrderCreated", "OrderPaid"]);
    let (carts_only, _) = export_json(&pool, Logs::Carts, &start, &Filter::default()).await;
    assert_eq!(carts_only.len(), 5);
    assert!(carts_only.iter().all(|(_, at)| at.log == Log::Carts));
    // An untagged position cannot start a combined export.
    let untagged = export_logs(
        &pool,
        Logs::All,
        &start,
        &Filter::default(),
        (Format::JsonLines, Default::default(), Stored::Omit),
        &mut Vec::new(),
        |_| {},
    )
    .await;
    assert!(matches!(
        untagged,
        Err(crate::export::ExportError::Untagged)
    ));

    // Filters narrow both logs.
    let types_filter = Filter {
        event_types: vec!["OrderPaid".into(), "CartCleared".into()],
        ..Filter::default()
    };
    let (some, _) = export_json(&pool, Logs::All, &everything, &types_filter).await;
    assert_eq!(types(&some), ["OrderPaid", "CartCleared"]);
    let one_order = Filter {
        stream_id: Some(order_stream_id(project(), c.order_id)),
        ..Filter::default()
    };
    let (order, _) = export_json(&pool, Logs::Orders, &start, &one_order).await;
    assert_eq!(types(&order), ["OrderCreated", "OrderPaid"]);
    let elsewhere = Filter {
        project_id: Some(999),
        ..Filter::default()
    };
    assert!(export_json(&pool, Logs::All, &everything, &elsewhere)
        .await
        .0
        .is_empty());

    // Protobuf: a combined export is ExportRecords, an order export OrderEventEnvelopes.
    let mut out = Vec::new();
    let protobuf = (Format::Protobuf, Default::default(), Stored::Omit);
    export_logs(
        &pool,
        Logs::All,
        &everything,
        &Filter::default(),
        protobuf,
        &mut out,
        |_| {},
    )
    .await
    .unwrap();
    let mut buf = out.as_slice();
    let mut records = Vec::new();
    while !buf.is_empty() {
        let record = v1::ExportRecord::decode_length_delimited(&mut buf).unwrap();
        records.push(match record.record.unwrap() {
            v1::export_record::Record::CartEvent(e) => e.event_type,
            v1::export_record::Record::OrderEvent(e) => {
                let order = e.order.unwrap();
                if e.event_type == "OrderPaid" {
                    assert_eq!(order.price.unwrap().amount, "5.00");
                    assert_eq!(order.invoice_id.as_deref(), Some("inv-1"));
                }
                e.event_type
            }
        });
    }
    assert_eq!(records, expected);
    let mut out = Vec::new();
    export_logs(
        &pool,
        Logs::Orders,
        &start,
        &Filter::default(),
        protobuf,
        &mut out,
        |_| {},
    )
    .await
    .unwrap();
    let mut buf = out.as_slice();
    let first = v1::OrderEventEnvelope::decode_length_delimited(&mut buf).unwrap();
    assert_eq!(
        (first.event_type.as_str(), first.version),
        ("OrderCreated", 1)
    );
}

/// The stored form (payment tokens, sealed fields) is written only when asked for: an
/// export for analytics carries the envelopes alone, a backup the same envelopes, byte
/// for byte, with `stored` after them.
#[tokio::test]
async fn order_lines_carry_the_stored_event_only_in_a_backup() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let carts = EventStore::new(pool.clone());
    let catalog = catalog();
    let c = ann_checks_out(&store, &carts, &catalog).await;
    let token = c.token;
    let parse = |text: String| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let analytics = parse(export_everything(&pool, Logs::All, Stored::Omit).await);
    let backup = parse(export_everything(&pool, Logs::All, Stored::Include).await);
    assert_eq!(analytics.len(), backup.len());
    let mut orders = 0;
    for (plain, mut full) in analytics.into_iter().zip(backup) {
        assert!(plain.get("stored").is_none(), "{plain}");
        assert!(!plain.to_string().contains(&token), "a token in {plain}");
        if plain.get("order_id").is_some() {
            orders += 1;
            let stored = full.as_object_mut().unwrap().remove("stored");
            assert!(stored.is_some_and(|s| s.get("payload").is_some()));
        }
        assert_eq!(plain, full);
    }
    assert_eq!(orders, 1, "one OrderCreated");
}
