//! The logical restore of both logs against real databases: an export of a shop with
//! carts, unpaid, paid, granted, free, expired and refunded orders and an erased user,
//! imported into a fresh database, reads back the same orders, counts the same
//! purchases, notifies only what is still owed and exports the same events again;
//! refusals write nothing.

use super::export::export_everything;
use super::*;
use crate::erasure::erase_user;
use crate::export::{Logs, Stored};
use crate::import::{parse_line, Import, ImportReport, ImportedLine};
use crate::rebuild_projection;

/// What `cartctl events import` does with an export's text.
async fn import(pool: &sqlx::PgPool, text: &str) -> Result<ImportReport, StoreError> {
    let mut import = Import::begin(pool).await?;
    let (mut carts, mut orders) = (Vec::new(), Vec::new());
    for line in text.lines() {
        match parse_line(line)? {
            ImportedLine::Cart(e) => carts.push(e),
            ImportedLine::Order(e) => orders.push(e),
        }
        // Small batches, so that a refusal can come after a batch was written.
        if orders.len() == 3 {
            import.add_orders(&orders).await?;
            orders.clear();
        }
    }
    import.add(&carts).await?;
    import.add_orders(&orders).await?;
    import.commit().await
}

/// A shop: carts, and orders in every state, one user erased.
async fn shop(pool: &sqlx::PgPool) -> (OrderStore, Arc<Catalog>) {
    let store = OrderStore::new(pool.clone());
    let carts = EventStore::new(pool.clone());
    let catalog = catalog();
    // Ann buys her cart with a promo code; the order is granted (done).
    stored_cart(&carts, "ann", "c", &[("sword", 2)], Some("HALF")).await;
    let key = StreamKey::new(project(), user("ann"), CartId::parse("c").unwrap());
    let snap = snapshot(&catalog, &carts.load(&key).await.unwrap().cart);
    let mut req = request("ann", Some("c"), snap);
    req.custom_parameters = Some(r#"{"character":"Ann the Bold"}"#.to_owned());
    let granted = created(checkout(&store, &catalog, req).await).order_id;
    let paid = |order, amount: &str, invoice: &str| payment(order, amount, invoice);
    store
        .confirm_payment(&catalog, paid(granted, "5", "inv-ann"))
        .await
        .unwrap()
        .unwrap();
    store.mark_delivered(P, granted).await.unwrap();
    // Bob pays; his grant is still owed. Cy checks out and does not pay.
    stored_cart(&carts, "bob", "main", &[("potion", 1)], None).await;
    let snap = snapshot(&catalog, &cart_of(&[("potion", 1)], None));
    let mut req = request("bob", Some("main"), snap);
    req.custom_parameters = Some(r#"{"email":"bob@example.org"}"#.to_owned());
    let owed = created(checkout(&store, &catalog, req).await).order_id;
    store
        .confirm_payment(&catalog, paid(owed, "1.50", "inv-bob"))
        .await
        .unwrap()
        .unwrap();
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    created(checkout(&store, &catalog, request("cy", None, snap)).await);
    // Eve's second order of a limited item expires her first; a free gift is done.
    for _ in 0..2 {
        let snap = snapshot(&catalog, &cart_of(&[("potion", 1)], None));
        created(checkout(&store, &catalog, request("eve", None, snap)).await);
    }
    let free = snapshot(&catalog, &cart_of(&[("gift", 1)], None));
    created(checkout(&store, &catalog, request("eve", None, free)).await);
    // Dan pays, is refunded with a reason, and is erased.
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let mut req = request("dan", None, snap);
    req.custom_parameters = Some(r#"{"email":"dan@example.org"}"#.to_owned());
    let refunded = created(checkout(&store, &catalog, req).await).order_id;
    store
        .confirm_payment(&catalog, paid(refunded, "5", "inv-dan"))
        .await
        .unwrap()
        .unwrap();
    store
        .cancel(
            project(),
            refunded,
            "Dan Smith's card was stolen".to_owned(),
        )
        .await
        .unwrap()
        .unwrap();
    erase_user(pool, project(), &user("dan")).await.unwrap();
    (store, catalog)
}

/// Every order of a database as its views show it, and the rows counted from its log.
async fn orders_of(pool: &sqlx::PgPool) -> (Vec<wire::OrderView>, Vec<String>) {
    let store = OrderStore::new(pool.clone());
    let ids: Vec<i64> = sqlx::query_scalar("select order_id from orders order by order_id")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut views = Vec::new();
    for id in ids {
        let loaded = store.load(project(), u64::try_from(id).unwrap()).await;
        let order = loaded.unwrap().unwrap().order;
        views.push(wire::view(&order, cart_proto::view::AmountFormat::default()).unwrap());
    }
    // Units' paid_at is the payment's clock in the source (fixed in these tests) and the
    // payment event's time in the restore: compared as set or not.
    let rows = sqlx::query_scalar(
        "select format('%s', o) from orders o \
         union all select format('unit %s %s %s %s %s %s %s %s', project_id, order_id, user_id, \
           sku, quantity, status, created_at, paid_at is not null) from order_units \
         union all select format('redeemed %s', r) from promo_code_redemptions r \
         union all select format('promotion %s', p) from order_promotions p \
         order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (views, rows)
}

/// An export line compared across a restore: without its position (new transaction
/// ids), and with a personal field sealed again under the restored key blanked.
fn comparable(line: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    let object = v.as_object_mut().unwrap();
    object.remove("position");
    let event_type = object["event_type"].as_str().unwrap().to_owned();
    let live = object.get("order").is_some_and(|o| {
        !o["custom_parameters"].is_null()
            || o["cancel_reason"]
                .as_str()
                .is_some_and(|r| r != sealed::ERASED_REASON)
    });
    if let (Some(field), Some(stored)) = (
        sealed::personal_field(&event_type),
        object.get_mut("stored"),
    ) {
        let slot = &mut stored["payload"][field];
        if live && slot.get("sealed").is_some() {
            *slot = serde_json::json!("sealed again");
        }
    }
    v
}

/// The lines of one log (carts or orders) of an export, in order, comparable.
fn log_lines(export: &str, orders: bool) -> Vec<serde_json::Value> {
    export
        .lines()
        .filter(|l| l.contains("\"order_id\":") == orders)
        .map(comparable)
        .collect()
}

#[tokio::test]
async fn an_export_of_both_logs_restores_the_orders_their_counts_and_notifications() {
    let (_source_db, source) = testing::database().await;
    let (_store, catalog) = shop(&source).await;
    let first = export_everything(&source, Logs::All, Stored::Include).await;
    assert!(first.contains("\"stored\":{"), "{first}");
    assert!(!first.contains("dan@example.org") && !first.contains("Dan Smith"));

    let (_target_db, target) = testing::database().await;
    let report = import(&target, &first).await.unwrap();
    let order_events: i64 = sqlx::query_scalar("select count(*) from order_events")
        .fetch_one(&source)
        .await
        .unwrap();
    assert_eq!(report.order_events, u64::try_from(order_events).unwrap());
    assert_eq!(report.orders, 7, "{report:?}");

    // The log: every stored column as the source's, each log in its order; a live
    // user's sealed field is sealed again under a new key, an erased one's kept as is.
    let log = "select event_id::text, stream_id::text, version, project_id, order_id, user_id, \
         event_type, schema_version, metadata::text, recorded_at::text, payload::text \
       from order_events order by tx_id, global_position";
    type Row = (
        String,
        String,
        i64,
        i64,
        i64,
        String,
        String,
        i16,
        String,
        String,
        String,
    );
    let before: Vec<Row> = sqlx::query_as(log).fetch_all(&source).await.unwrap();
    let after: Vec<Row> = sqlx::query_as(log).fetch_all(&target).await.unwrap();
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        let same_but_payload = |r: &Row| {
            (
                r.0.clone(),
                r.1.clone(),
                r.2,
                r.3,
                r.4,
                r.5.clone(),
                r.6.clone(),
                r.7,
                r.8.clone(),
                r.9.clone(),
            )
        };
        assert_eq!(same_but_payload(b), same_but_payload(a));
        let resealed = a.5 != "dan" && b.10.contains("\"sealed\"");
        assert_eq!(b.10 == a.10, !resealed, "{b:?}\n{a:?}");
    }
    let keys: Vec<String> = sqlx::query_scalar("select user_id from user_keys order by 1")
        .fetch_all(&target)
        .await
        .unwrap();
    assert_eq!(keys, ["ann", "bob"], "no key for the erased user");

    // The orders read back the same, with the same purchases, redemptions and holds.
    let (source_views, source_rows) = orders_of(&source).await;
    let (views, rows) = orders_of(&target).await;
    assert_eq!(views, source_views);
    assert_eq!(rows, source_rows);
    let ann = views.iter().find(|v| v.user_id == "ann").unwrap();
    assert_eq!(
        ann.custom_parameters,
        Some(serde_json::json!({"character": "Ann the Bold"}))
    );
    let dan = views.iter().find(|v| v.user_id == "dan").unwrap();
    assert_eq!(
        (dan.custom_parameters.as_ref(), dan.cancel_reason.as_deref()),
        (None, Some("erased"))
    );

    // Notifications: what the source made is recorded as delivered, except the grant
    // still owed (Bob's paid order), which the restored service delivers.
    let notified: Vec<(String, String, String)> = sqlx::query_as(
        "select o.user_id, d.notification_type, d.status from webhook_deliveries d \
         join orders o using (project_id, order_id) order by 1, 2",
    )
    .fetch_all(&target)
    .await
    .unwrap();
    let delivered =
        |who: &str, kind: &str| (who.to_owned(), kind.to_owned(), "delivered".to_owned());
    assert_eq!(
        notified,
        [
            delivered("ann", "order_paid"),
            delivered("dan", "order_canceled"),
            delivered("dan", "order_paid"),
            delivered("eve", "order_paid"),
        ]
    );

    // The cart projection rebuilds to the source's.
    let carts = "select format('%s', (stream_id, project_id, user_id, cart_id, version, lines)) \
                 from cart_projection order by stream_id";
    let source_carts: Vec<String> = sqlx::query_scalar(carts).fetch_all(&source).await.unwrap();
    let rebuilt = rebuild_projection(&target, |_| {}).await.unwrap();
    assert_eq!(rebuilt.streams, 2);
    let target_carts: Vec<String> = sqlx::query_scalar(carts).fetch_all(&target).await.unwrap();
    assert_eq!(target_carts, source_carts);

    // Exported again: each log's lines as before, in their order, but for positions
    // and the fields sealed again (the combined order puts the one import transaction's
    // order events before its cart events).
    let second = export_everything(&target, Logs::All, Stored::Include).await;
    assert_eq!(log_lines(&second, true), log_lines(&first, true));
    assert_eq!(log_lines(&second, false), log_lines(&first, false));
    assert_eq!(second.lines().count(), first.lines().count());

    // New orders continue the numbering; the owed grant can be delivered.
    let store = OrderStore::new(target.clone());
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let next = created(checkout(&store, &catalog, request("cy", None, snap)).await);
    assert_eq!(next.order_id, 8);
    let bob = views.iter().find(|v| v.user_id == "bob").unwrap().order_id;
    store.mark_delivered(P, bob).await.unwrap();
}

#[tokio::test]
async fn an_order_import_refuses_what_it_cannot_restore_and_then_writes_nothing() {
    let (_source_db, source) = testing::database().await;
    shop(&source).await;
    let orders = export_everything(&source, Logs::Orders, Stored::Include).await;
    let lines: Vec<&str> = orders.lines().collect();
    let edit = |n: usize, change: &dyn Fn(&mut serde_json::Value)| {
        let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        let mut line: serde_json::Value = serde_json::from_str(&out[n]).unwrap();
        change(&mut line);
        out[n] = line.to_string();
        out.join("\n")
    };
    let second_of_first = lines
        .iter()
        .position(|l| l.contains("\"version\":2"))
        .unwrap();
    let mut gap: Vec<&str> = lines.clone();
    gap.remove(second_of_first);
    let last = lines.len() - 1;
    let cases: Vec<(&str, String, &str)> = vec![
        ("a version gap", gap.join("\n"), "after version 1"),
        (
            "no stored form",
            edit(last, &|l| {
                l.as_object_mut().unwrap().remove("stored");
            }),
            "without `stored`",
        ),
        (
            "a malformed time",
            edit(last, &|l| l["recorded_at"] = serde_json::json!("yesterday")),
            "recorded_at \"yesterday\"",
        ),
        (
            "another user's event in an order",
            edit(last, &|l| l["user_id"] = serde_json::json!("mallory")),
            "keeps its user",
        ),
        (
            "a status the event does not lead to",
            edit(last, &|l| l["status"] = serde_json::json!("done")),
            "status \"done\"",
        ),
        (
            "an event the service cannot fold",
            edit(0, &|l| {
                l["stored"]["payload"]["lines"] = serde_json::json!("many")
            }),
            "cannot fold",
        ),
    ];
    let (_target_db, target) = testing::database().await;
    let written = "select (select count(*) from order_events) + (select count(*) from orders) \
         + (select count(*) from user_keys) + (select count(*) from webhook_deliveries) \
         + (select count(*) from order_units)";
    for (what, text, expected) in cases {
        let error = import(&target, &text).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{what}: {error}");
        let n: i64 = sqlx::query_scalar(written)
            .fetch_one(&target)
            .await
            .unwrap();
        assert_eq!(n, 0, "{what}: something was written");
    }
    // The whole export goes in once; a second import is refused and changes nothing.
    import(&target, &orders).await.unwrap();
    let n: i64 = sqlx::query_scalar(written)
        .fetch_one(&target)
        .await
        .unwrap();
    let error = import(&target, &orders).await.unwrap_err();
    assert!(
        error.to_string().contains("already holds orders"),
        "{error}"
    );
    let again: i64 = sqlx::query_scalar(written)
        .fetch_one(&target)
        .await
        .unwrap();
    assert_eq!(again, n);
}
