//! The logical backup and the migration step of a rollout, against a real service and
//! real databases: `cartctl events export` -> `cartctl events import` into an empty
//! database -> `cartctl projections rebuild` gives the same log and the same carts, and
//! with `--log all` the same orders (an erased user's staying erased);
//! import refuses what it cannot restore and then changes nothing; `cartctl migrate`
//! applies the migrations once and `--check` tells whether they are applied.

use std::time::{Duration, Instant};

use cart_tests::*;
use serde_json::{json, Value};

use crate::{req, PROJECT};

async fn ok(w: &World, endpoint: &str, body: Value) -> Value {
    w.client
        .json(endpoint, None, body)
        .await
        .unwrap_or_else(|e| panic!("{endpoint} refused: {e:?}"))
}

/// The cart log and projection of a database, in a comparable form.
async fn contents(url: &str) -> (Vec<(String, i64, String, String, String)>, Vec<String>) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let events = sqlx::query_as(
        "select event_id::text, version, stream_id::text, event_type, payload::text \
         from cart_events order by tx_id, global_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let carts = sqlx::query_scalar(
        "select stream_id::text || ' ' || project_id || ' ' || user_id || ' ' || cart_id || ' v' \
           || version || ' ' || lines::text from cart_projection order by stream_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (events, carts)
}

/// A folder of its own under the system's temporary folder, removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Dir {
        let path =
            std::env::temp_dir().join(format!("cart-backup-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = cartctl(args).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cartctl events export` of `log` into `file`, repeated until it holds every event the
/// database has: another test's open transaction may hold the cluster-wide read barrier
/// (below which the export reads) back a while.
async fn export_everything(url: &str, log: &str, file: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let sql = match log {
        "carts" => "select count(*) from cart_events",
        _ => "select (select count(*) from cart_events) + (select count(*) from order_events)",
    };
    let want: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let args = [
            "events",
            "export",
            "--restorable",
            "--log",
            log,
            "--database-url",
            url,
            "-o",
            file,
        ];
        let (code, stderr) = run(&args).await;
        assert_eq!(code, Some(0), "{stderr}");
        let got = std::fs::read_to_string(file).unwrap().lines().count();
        if got == usize::try_from(want).unwrap() {
            return;
        }
        assert!(Instant::now() < deadline, "{got} of {want} events exported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A few carts with every kind of cart event, one of them bought (its clear is
/// "purchased", written by the payment's transaction).
async fn shop(w: &World) {
    let fill = |items: Value| json!({"items": items});
    ok(
        w,
        "fill",
        req("ann", None, fill(json!([{"sku": "cup01", "quantity": 2}]))),
    )
    .await;
    ok(
        w,
        "fill",
        req("bob", None, fill(json!([{"sku": "cup01", "quantity": 1}]))),
    )
    .await;
    ok(
        w,
        "item.put",
        req("bob", Some("wish"), json!({"sku": "cup01", "quantity": 3})),
    )
    .await;
    ok(
        w,
        "item.delete",
        req("bob", Some("wish"), json!({"sku": "cup01"})),
    )
    .await;
    ok(w, "clear", req("bob", None, json!({}))).await;
    ok(w, "order.checkout", req("ann", None, json!({}))).await;
    pay(w, "ann", 1).await;
    // Cy checks out with personal data and does not pay; Dan pays and is erased.
    for (who, order_id) in [("cy", 2), ("dan", 3)] {
        ok(
            w,
            "fill",
            req(who, None, fill(json!([{"sku": "cup01", "quantity": 1}]))),
        )
        .await;
        let email = json!({"custom_parameters": {"email": format!("{who}@example.org")}});
        let created = ok(w, "order.checkout", req(who, None, email)).await;
        assert_eq!(created["order_id"], order_id);
    }
    pay(w, "dan", 3).await;
    let project = PROJECT.to_string();
    let erase = [
        "users",
        "erase",
        "--project",
        &project,
        "--user",
        "dan",
        "--database-url",
        &w.db.url,
    ];
    let (code, stderr) = run(&erase).await;
    assert_eq!(code, Some(0), "{stderr}");
}

async fn pay(w: &World, who: &str, order_id: u64) {
    let order = ok(
        w,
        "order.get",
        req(who, None, json!({"order_id": order_id})),
    )
    .await;
    let total = order["content"]["price"]["amount"].as_str().unwrap();
    let pay = json!({"project_id": PROJECT, "order_id": order_id,
                     "invoice_id": format!("inv-{order_id}"), "amount": total, "currency": "USD"});
    ok(w, "payment.confirm", pay).await;
}

/// The orders of a database, in a comparable form: each order's view (as the service
/// shows it, folded from the log) and the rows the order store counts from the log
/// (`paid_at` compared as set or not: the restore takes it from the paying event's time,
/// to the second, where the source kept the payment's clock).
async fn orders(url: &str) -> (Vec<Value>, Vec<String>) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let store = cart_store::orders::OrderStore::new(pool.clone());
    let ids: Vec<i64> = sqlx::query_scalar("select order_id from orders order by order_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut views = Vec::new();
    let project = cart_domain::ProjectId::parse(PROJECT).unwrap();
    for id in ids {
        let loaded = store.load(project, u64::try_from(id).unwrap()).await;
        let order = loaded.unwrap().unwrap().order;
        let view = cart_proto::order::view(&order, cart_proto::view::AmountFormat::default());
        views.push(serde_json::to_value(view).unwrap());
    }
    let rows = sqlx::query_scalar(
        "select format('%s', o) from orders o \
         union all select format('unit %s %s %s %s %s %s', order_id, user_id, sku, quantity, \
           status, paid_at is not null) from order_units \
         union all select format('redeemed %s', r) from promo_code_redemptions r \
         order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (views, rows)
}

/// One log's lines of an export, comparable across a restore: without `position` (new
/// transaction ids) and with a personal field the import sealed again under the
/// restored user's key blanked in `stored` (the envelope shows it opened, equal).
fn log_lines(export: &str, order_log: bool) -> Vec<Value> {
    export
        .lines()
        .filter(|l| l.contains("\"order_id\":") == order_log)
        .map(|l| {
            let mut line: Value = serde_json::from_str(l).unwrap();
            line.as_object_mut().unwrap().remove("position");
            if line["order"]["custom_parameters"].is_object() {
                line["stored"]["payload"]["custom_parameters"] = json!("sealed again");
            }
            line
        })
        .collect()
}

#[tokio::test]
async fn an_export_imported_into_an_empty_database_and_rebuilt_gives_the_same_carts() {
    let w = World::start().await;
    shop(&w).await;
    let dir = Dir::new();
    let file = dir.path().join("carts.jsonl");
    let file = file.to_str().unwrap();
    let url = w.db.url.as_str();
    export_everything(url, "carts", file).await;

    let fresh = TestDb::create().await;
    let args = [
        "events",
        "import",
        "--database-url",
        &fresh.url,
        "--input",
        file,
    ];
    let (code, stderr) = run(&args).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (source_events, source_carts) = contents(url).await;
    assert!(
        stderr.contains(&format!("imported {} events", source_events.len())),
        "{stderr}"
    );
    let (code, stderr) = run(&["projections", "rebuild", "--database-url", &fresh.url]).await;
    assert_eq!(code, Some(0), "{stderr}");

    let (events, carts) = contents(&fresh.url).await;
    assert_eq!(
        events, source_events,
        "the imported log is the source's, in its order"
    );
    assert_eq!(
        carts, source_carts,
        "the rebuilt projection is the source's"
    );
    assert!(carts.len() >= 3 && events.iter().any(|e| e.4.contains("purchased")));

    // A second import into the now non-empty database is refused and changes nothing.
    let (code, stderr) = run(&args).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("already holds cart events"), "{stderr}");
    assert_eq!(contents(&fresh.url).await.0, source_events);
    fresh.drop_now().await;
    w.finish().await;
}

#[tokio::test]
async fn an_export_of_both_logs_imported_gives_the_same_orders_and_exports_the_same_again() {
    let w = World::start().await;
    shop(&w).await;
    let dir = Dir::new();
    let file = dir.path().join("all.jsonl");
    let file = file.to_str().unwrap();
    let url = w.db.url.as_str();
    export_everything(url, "all", file).await;
    let first = std::fs::read_to_string(file).unwrap();
    assert!(first.contains("cy@example.org") && !first.contains("dan@example.org"));

    let fresh = TestDb::create().await;
    let args = [
        "events",
        "import",
        "--database-url",
        &fresh.url,
        "--input",
        file,
    ];
    let (code, stderr) = run(&args).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("order events of 3 orders"), "{stderr}");
    let (code, stderr) = run(&["projections", "rebuild", "--database-url", &fresh.url]).await;
    assert_eq!(code, Some(0), "{stderr}");

    assert_eq!(contents(&fresh.url).await, contents(url).await);
    let source = orders(url).await;
    let (views, rows) = orders(&fresh.url).await;
    assert_eq!((&views, &rows), (&source.0, &source.1));
    assert_eq!(
        views[1]["custom_parameters"],
        json!({"email": "cy@example.org"})
    );
    assert_eq!(
        views[2]["custom_parameters"],
        Value::Null,
        "Dan stays erased"
    );

    // Exported again: each log's lines as before and in their order (the combined
    // order puts the import transaction's order events before its cart events).
    let again = dir.path().join("again.jsonl");
    export_everything(&fresh.url, "all", again.to_str().unwrap()).await;
    let second = std::fs::read_to_string(&again).unwrap();
    assert_eq!(log_lines(&second, true), log_lines(&first, true));
    assert_eq!(log_lines(&second, false), log_lines(&first, false));

    // A second import is refused and changes nothing.
    let (code, stderr) = run(&args).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("already holds"), "{stderr}");
    assert_eq!(orders(&fresh.url).await.1, rows);
    fresh.drop_now().await;
    w.finish().await;
}

#[tokio::test]
async fn import_refuses_gaps_bad_lines_and_order_lines_without_their_stored_event() {
    let w = World::start().await;
    shop(&w).await;
    let dir = Dir::new();
    let all = dir.path().join("all.jsonl");
    let all = all.to_str().unwrap();
    let url = w.db.url.as_str();
    export_everything(url, "all", all).await;
    let carts = dir.path().join("carts.jsonl");
    export_everything(url, "carts", carts.to_str().unwrap()).await;
    let lines: Vec<String> = std::fs::read_to_string(&carts)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // ann's cart events are versions 1, 2, ...: leave out her second.
    let second = lines
        .iter()
        .position(|l| l.contains("\"user_id\":\"ann\"") && l.contains("\"version\":2"))
        .unwrap_or_else(|| panic!("no second event of ann in {lines:#?}"));
    let mut gap = lines.clone();
    gap.remove(second);
    let mut bad_time = lines.clone();
    let last = bad_time.len() - 1;
    let mut line: Value = serde_json::from_str(&bad_time[last]).unwrap();
    // A word PostgreSQL would read as a time: the import must refuse it itself.
    line["recorded_at"] = json!("yesterday");
    bad_time[last] = line.to_string();
    let mut not_json = lines.clone();
    not_json.push("{\"event_id\":".to_owned());
    // An order line as an export older than order import wrote it: no stored event.
    let mut unstored: Vec<String> = std::fs::read_to_string(all)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let order_line = unstored
        .iter()
        .rposition(|l| l.contains("\"order_id\":"))
        .unwrap();
    let mut line: Value = serde_json::from_str(&unstored[order_line]).unwrap();
    line.as_object_mut().unwrap().remove("stored");
    unstored[order_line] = line.to_string();

    let truncated = format!("line {}", lines.len() + 1);
    let cases: Vec<(&str, Option<Vec<String>>, &str)> = vec![
        (
            "an order line without stored",
            Some(unstored),
            "without `stored`",
        ),
        ("a version gap", Some(gap), "after version 1"),
        (
            "a malformed time",
            Some(bad_time),
            "recorded_at \"yesterday\"",
        ),
        ("a truncated line", Some(not_json), &truncated),
    ];
    for (what, content, expected) in cases {
        let file = match content {
            None => all.to_owned(),
            Some(lines) => {
                let path = dir.path().join("case.jsonl");
                std::fs::write(&path, lines.join("\n") + "\n").unwrap();
                path.to_str().unwrap().to_owned()
            }
        };
        let fresh = TestDb::create().await;
        let (code, stderr) = run(&[
            "events",
            "import",
            "--database-url",
            &fresh.url,
            "--input",
            &file,
        ])
        .await;
        assert_eq!(code, Some(2), "{what}: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
        assert!(stderr.contains("nothing imported"), "{what}: {stderr}");
        assert_eq!(
            fresh.count_events().await,
            0,
            "{what}: something was imported"
        );
        let pool = sqlx::PgPool::connect(&fresh.url).await.unwrap();
        let orders: i64 = sqlx::query_scalar(
            "select (select count(*) from order_events) + (select count(*) from orders)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        assert_eq!(orders, 0, "{what}: orders were imported");
        fresh.drop_now().await;
    }
    w.finish().await;
}

#[tokio::test]
async fn cartctl_migrate_applies_the_migrations_once_and_check_tells_whether_they_are() {
    let fresh = TestDb::create().await;
    let url = fresh.url.as_str();
    let (code, stderr) = run(&["migrate", "--check", "--database-url", url]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pending (0001, 0002"), "{stderr}");
    let (code, stderr) = run(&["migrate", "--database-url", url]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let count = cart_store::MIGRATOR.iter().count();
    assert!(
        stderr.contains(&format!("applied {count} (0001")),
        "{stderr}"
    );
    let (code, stderr) = run(&["migrate", "--check", "--database-url", url]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("all {count} of this build are applied")),
        "{stderr}"
    );
    let (code, stderr) = run(&["migrate", "--database-url", url]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("none to apply"), "{stderr}");
    fresh.drop_now().await;
}
