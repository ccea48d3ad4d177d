//! Plans that cannot go stale (ARCHITECTURE.md, "Architecture invariants").
//!
//! PostgreSQL keeps a prepared statement's plan for the session; after five executions
//! it may switch to a generic plan, costed with the table sizes of that moment, and keeps
//! it until the table is analyzed, which with autovacuum off never happens. A custom
//! plan is made per execution but trusts the same stale statistics. Each test here
//! prepares hot statements of the service (their exact text, `cart_store::statements`)
//! on one session of a fresh database whose tables are EMPTY, executes each as the
//! service does (single keys, then full batches) six times, fills the tables with tens of
//! thousands of rows without `ANALYZE`, and runs the statement again under
//! `EXPLAIN (ANALYZE)` on the same session: the plan in use must not scan the table
//! (no `Seq Scan on <table>`) and must read only about the rows it needs.

use cart_store::statements;
use cart_store::testing::TestDb;
use serde_json::Value;
use sqlx::{Executor, PgConnection, Row};
use uuid::Uuid;

/// A fresh, migrated database with empty tables, and the one session the test uses.
async fn fresh() -> (TestDb, PgConnection) {
    cart_store::testing::session().await
}

/// A statement prepared on the test's session, as the service's connection holds it.
struct Prepared {
    name: &'static str,
    /// The service plans it at every execution (`statements::PLANNED_EACH_TIME`).
    each_time: bool,
    /// The service runs it on probe sessions (`statements::ON_PROBE_SESSIONS`).
    probe: bool,
}

/// `PREPARE name AS sql`, on the session, as sqlx does for the service's statements.
async fn prepare(conn: &mut PgConnection, name: &'static str, sql: &str) -> Prepared {
    conn.execute(format!("prepare {name} as {sql}").as_str())
        .await
        .unwrap_or_else(|e| panic!("prepare {name}: {e}"));
    Prepared {
        name,
        each_time: statements::PLANNED_EACH_TIME.contains(&sql),
        probe: statements::ON_PROBE_SESSIONS.contains(&sql),
    }
}

/// The session's plan mode for the next execution of `statement`: a statement the
/// service runs unnamed gets a plan for its parameters every time, as here; one it runs
/// on probe sessions gets their settings (`cart_store::PROBE_SESSION`).
async fn plan_mode(conn: &mut PgConnection, statement: &Prepared) {
    let mode = if statement.each_time {
        "reset all; set plan_cache_mode = force_custom_plan".to_owned()
    } else if statement.probe {
        let settings = cart_store::PROBE_SESSION.map(|(k, v)| format!("set {k} = {v}"));
        format!("reset all; {}", settings.join("; "))
    } else {
        "reset all".to_owned()
    };
    conn.execute(mode.as_str())
        .await
        .expect("set the plan mode");
}

/// `EXECUTE name(args)` once per argument list, in order.
async fn execute(conn: &mut PgConnection, statement: &Prepared, runs: &[String]) {
    let name = statement.name;
    for args in runs {
        plan_mode(conn, statement).await;
        conn.execute(format!("execute {name}({args})").as_str())
            .await
            .unwrap_or_else(|e| panic!("execute {name}({args}): {e}"));
    }
}

/// The plan in use for `EXECUTE name(args)`, run (and rolled back) with `ANALYZE`.
async fn plan_in_use(conn: &mut PgConnection, statement: &Prepared, args: &str) -> Value {
    let name = statement.name;
    plan_mode(conn, statement).await;
    conn.execute("begin").await.expect("begin");
    let plan: Value = sqlx::query_scalar(&format!(
        "explain (analyze, format json) execute {name}({args})"
    ))
    .fetch_one(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("explain execute {name}: {e}"));
    conn.execute("rollback").await.expect("rollback");
    plan[0]["Plan"].clone()
}

/// The plan's nodes, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    for child in plan["Plans"].as_array().into_iter().flatten() {
        all.extend(nodes(child));
    }
    all
}

/// Rows the plan's scans of `table` looked at: returned or removed, over all loops.
fn rows_read(plan: &Value, table: &str) -> f64 {
    nodes(plan)
        .into_iter()
        .filter(|n| n["Relation Name"] == table)
        .map(|n| {
            let per_loop = [
                "Actual Rows",
                "Rows Removed by Filter",
                "Rows Removed by Index Recheck",
            ]
            .iter()
            .filter_map(|k| n[*k].as_f64())
            .sum::<f64>();
            per_loop * n["Actual Loops"].as_f64().unwrap_or(1.0)
        })
        .sum()
}

/// The statement's plan in use scans no part of `table` beyond about `needed` rows.
async fn assert_no_scan(
    conn: &mut PgConnection,
    statement: &Prepared,
    args: &str,
    table: &str,
    needed: usize,
) {
    let name = statement.name;
    let plan = plan_in_use(conn, statement, args).await;
    let pretty = serde_json::to_string_pretty(&plan).unwrap_or_default();
    let seq = nodes(&plan)
        .into_iter()
        .any(|n| n["Node Type"] == "Seq Scan" && n["Relation Name"] == table);
    assert!(
        !seq,
        "{name}: Seq Scan on {table} in the plan in use:\n{pretty}"
    );
    let read = rows_read(&plan, table);
    // Twice what the answer needs, and at least a few: a plan that reads a key's rows
    // passes; one that reads a project's or the whole table's rows does not.
    let bound = (needed * 2).max(16) as f64;
    assert!(
        read <= bound,
        "{name}: read {read} rows of {table} for about {needed}:\n{pretty}"
    );
}

/// A SQL array literal of uuids.
fn uuids(ids: &[Uuid]) -> String {
    let items: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!("'{{{}}}'::uuid[]", items.join(","))
}

/// The stream id of cart `n` in the fills below.
fn stream(n: usize) -> Uuid {
    Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 + n as u128)
}

/// `n` carts' projection rows, each with three lines, and five events per cart.
async fn fill_carts(conn: &mut PgConnection, carts: usize) {
    conn.execute(
        format!(
            "insert into cart_projection (stream_id, project_id, user_id, cart_id, version, lines) \
             select ('5eed0000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 44056, \
               'user' || i, 'cart', 5, \
               '[{{\"sku\":\"cup01\",\"quantity\":2}},{{\"sku\":\"gold\",\"quantity\":10}},{{\"sku\":\"t-shirt01\",\"quantity\":1}}]' \
             from generate_series(0, {last}) i; \
             insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
             select ('5eed0000-0000-0000-0000-' || lpad(to_hex(i / 5), 12, '0'))::uuid, i % 5 + 1, \
               gen_random_uuid(), 44056, 'ItemQuantitySet', 1, '{{\"sku\":\"gold\",\"quantity\":1}}', '{{}}' \
             from generate_series(0, {last_event}) i",
            last = carts - 1,
            last_event = carts * 5 - 1,
        )
        .as_str(),
    )
    .await
    .expect("fill the cart tables");
}

/// Grouped gets: one query for the gets that arrive together, from one cart at idle to
/// a full batch under load (`GroupConfig::max_batch`, 256). Prepared on a session that
/// served only single gets (a service just started), and on one that served both.
#[tokio::test]
async fn grouped_gets_read_only_their_carts_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let idle_get = prepare(&mut conn, "idle_get", statements::GROUPED_GET).await;
    let busy_get = prepare(&mut conn, "busy_get", statements::GROUPED_GET).await;
    // A get whose caller has version 5 rendered, and a batch of callers with none.
    let one = format!("{}, '{{5}}'::int8[]", uuids(&[stream(1)]));
    let ids = uuids(&(0..256).map(|i| stream(i * 37)).collect::<Vec<_>>());
    let batch = format!("{ids}, null::int8[]");
    execute(&mut conn, &idle_get, &[0; 6].map(|_| one.clone())).await;
    let busy = [&one, &one, &one, &batch, &batch, &batch].map(|a| a.to_string());
    execute(&mut conn, &busy_get, &busy).await;
    // The size issue 16 measured: 9,700 rows read per scan of `cart_projection`.
    fill_carts(&mut conn, 10_000).await;
    for get in [&idle_get, &busy_get] {
        assert_no_scan(&mut conn, get, &one, "cart_projection", 1).await;
        assert_no_scan(&mut conn, get, &batch, "cart_projection", 256).await;
    }
}

/// The append path: the batch's stream versions, a cart's load, the batch's writes
/// (events, owners, projection rows in one statement).
#[tokio::test]
async fn appends_and_loads_read_only_their_streams_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let current_versions =
        prepare(&mut conn, "current_versions", statements::CURRENT_VERSIONS).await;
    let load_stream = prepare(&mut conn, "load_stream", statements::LOAD_STREAM).await;
    let writes = prepare(&mut conn, "writes", statements::APPEND_WRITES).await;
    let one = uuids(&[stream(1)]);
    let batch = uuids(&(0..256).map(|i| stream(i * 37)).collect::<Vec<_>>());
    let runs = [&one, &one, &one, &batch, &batch, &batch].map(|a| a.to_string());
    execute(&mut conn, &current_versions, &runs).await;
    let loads: Vec<String> = (0..6).map(|i| format!("'{}'", stream(i))).collect();
    execute(&mut conn, &load_stream, &loads).await;
    // A new cart's first event, its owner row and its projection row.
    let writes_args = |n: usize| {
        let id = stream(1_000_000 + n);
        format!(
            "array['{id}']::uuid[], '{{1}}', array['{}']::uuid[], '{{44056}}', '{{CartOpened}}', '{{1}}', \
             '{{\"{{}}\"}}', '{{\"{{}}\"}}', \
             array['{id}']::uuid[], '{{44056}}', '{{u{n}}}', '{{c}}', \
             array['{id}']::uuid[], '{{44056}}', '{{u{n}}}', '{{c}}', '{{{n}}}', array['[]']::jsonb[]",
            Uuid::new_v4()
        )
    };
    let writes_runs: Vec<String> = (1..=6).map(writes_args).collect();
    execute(&mut conn, &writes, &writes_runs).await;
    fill_carts(&mut conn, 10_000).await;
    assert_no_scan(&mut conn, &current_versions, &one, "cart_events", 1).await;
    assert_no_scan(&mut conn, &current_versions, &batch, "cart_events", 256).await;
    let load = format!("'{}'", stream(7));
    assert_no_scan(&mut conn, &load_stream, &load, "cart_events", 5).await;
    assert_no_scan(&mut conn, &writes, &writes_args(7), "cart_projection", 1).await;
    assert_no_scan(&mut conn, &writes, &writes_args(8), "cart_events", 1).await;
}

/// `EXECUTE one_trip(...)` arguments: one append per stream, each decided on version
/// `expected`, with one event and a command id, each of its own user; a lock key each.
fn one_trip_args(streams: &[Uuid], expected: i64, tag: usize) -> String {
    let n = streams.len();
    let each = |item: String| format!("'{{{}}}'", vec![item; n].join(","));
    let ordinals: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let event_ids: Vec<String> = (0..n).map(|_| Uuid::new_v4().to_string()).collect();
    let commands: Vec<String> = (0..n).map(|i| format!("c{tag}-{i}")).collect();
    let users: Vec<String> = (0..n).map(|i| format!("u{tag}-{i}")).collect();
    let lock_keys: Vec<String> = (0..n).map(|i| (tag * 1000 + i).to_string()).collect();
    [
        uuids(streams),
        each(expected.to_string()),
        each((expected + 1).to_string()),
        each("44056".into()),
        format!("'{{{}}}'", users.join(",")),
        each("cart".into()),
        format!("'{{{}}}'", commands.join(",")),
        format!("array_fill(decode('01', 'hex'), array[{n}])"),
        each("application/json".into()),
        format!("array_fill(decode('7b7d', 'hex'), array[{n}])"),
        format!("array_fill('[]'::jsonb, array[{n}])"),
        each("\"{}\"".into()),
        each("1".into()),
        format!("'{{{}}}'", lock_keys.join(",")),
        format!("'{{{}}}'", ordinals.join(",")),
        each((expected + 1).to_string()),
        format!("'{{{}}}'::uuid[]", event_ids.join(",")),
        each("CartOpened".into()),
        each("1".into()),
        each("\"{}\"".into()),
    ]
    .join(", ")
}

/// What this transaction's statements read of `table` so far: sequential scans and
/// rows fetched by them and by index scans (`pg_stat_xact_user_tables`).
async fn read_in_transaction(conn: &mut PgConnection, table: &str) -> (i64, i64) {
    sqlx::query_as(
        "select seq_scan, seq_tup_read + coalesce(idx_tup_fetch, 0) \
         from pg_stat_xact_user_tables where relname = $1",
    )
    .bind(table)
    .fetch_one(conn)
    .await
    .expect("read the transaction's table statistics")
}

/// The append batch in one statement (`APPEND_ONE_TRIP`): its own plan (the writes and
/// their arbiter indexes) and that of the version read inside `cart_locked_versions`,
/// which PL/pgSQL prepares per session like any statement, may go generic after five
/// runs on empty tables; once the tables are full, neither may scan.
#[tokio::test]
async fn one_statement_appends_read_only_their_streams_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let one_trip = prepare(&mut conn, "one_trip", statements::APPEND_ONE_TRIP).await;
    let runs: Vec<String> = (1..=6)
        .map(|tag| {
            let n = if tag > 3 { 256 } else { 1 };
            let ids: Vec<Uuid> = (0..n).map(|i| stream(1_000_000 + tag * 1000 + i)).collect();
            one_trip_args(&ids, 0, tag)
        })
        .collect();
    execute(&mut conn, &one_trip, &runs).await;
    fill_carts(&mut conn, 10_000).await;
    let batch: Vec<Uuid> = (0..256).map(|i| stream(i * 37)).collect();
    let full = one_trip_args(&batch, 5, 7);
    for table in ["cart_projection", "processed_commands", "cart_streams"] {
        assert_no_scan(&mut conn, &one_trip, &full, table, 256).await;
    }
    // The version read runs inside the function, out of EXPLAIN's sight: the
    // transaction's table statistics see it. Every append finds its cart at version 5.
    plan_mode(&mut conn, &one_trip).await;
    conn.execute("begin").await.expect("begin");
    let (scans_before, read_before) = read_in_transaction(&mut conn, "cart_events").await;
    let rows = conn
        .fetch_all(format!("execute one_trip({full})").as_str())
        .await
        .expect("execute one_trip");
    let (scans, read) = read_in_transaction(&mut conn, "cart_events").await;
    conn.execute("rollback").await.expect("rollback");
    let written = rows
        .iter()
        .filter(|row| row.try_get::<i32, _>("outcome").ok() == Some(0))
        .count();
    assert_eq!(written, 256, "each append saw its cart's version");
    assert_eq!(scans, scans_before, "a sequential scan of cart_events");
    assert!(
        read - read_before <= 2 * 256,
        "read {} rows of cart_events for 256 versions",
        read - read_before
    );
}

/// Paid orders of 1,000 users over 500 SKUs (one unit line each, 100 per SKU), their
/// events (two per order) and a redemption of one of 50 codes per order.
async fn fill_orders(conn: &mut PgConnection, orders: usize) {
    conn.execute(
        format!(
            "insert into orders (project_id, order_id, stream_id, user_id, cart_id, payment_token, status, promo_code, version, created_at) \
             select 44056, i, ('0dde0000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 'user' || (i % 1000), \
               'cart', md5(i::text), 'paid', null, 2, now() from generate_series(1, {orders}) i; \
             insert into order_units (project_id, order_id, user_id, sku, quantity, status, created_at, paid_at) \
             select 44056, i, 'user' || (i % 1000), 'sku' || (i % 500), 1, 'paid', now(), now() \
             from generate_series(1, {orders}) i; \
             insert into order_events (stream_id, version, event_id, project_id, order_id, user_id, event_type, schema_version, payload, metadata) \
             select ('0dde0000-0000-0000-0000-' || lpad(to_hex(i / 2), 12, '0'))::uuid, i % 2 + 1, gen_random_uuid(), \
               44056, i / 2, 'user', 'OrderPaid', 1, '{{}}', '{{}}' from generate_series(2, {events}) i; \
             insert into promo_code_redemptions (project_id, order_id, user_id, code) \
             select 44056, i, 'user' || (i % 1000), 'code' || (i % 50) from generate_series(1, {orders}) i; \
             insert into order_promotions (project_id, order_id, user_id, promotion_id, used_at) \
             select 44056, i, 'user' || (i % 1000), i % 50, now() from generate_series(1, {orders}) i; \
             insert into processed_commands (project_id, user_id, command_id, fingerprint, stream_id, content_type, reply) \
             select 44056, 'user' || (i % 1000), 'command' || i, '\\x00', gen_random_uuid(), 'application/json', '\\x00' \
             from generate_series(1, {orders}) i",
            events = orders * 2 + 1,
        )
        .as_str(),
    )
    .await
    .expect("fill the order tables");
}

/// Purchase counts (cart views, fills, checkouts and payments of limited items),
/// redemption counts of limited promo codes and uses of limited promotions.
#[tokio::test]
async fn purchase_counts_read_only_their_skus_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let purchases = prepare(&mut conn, "purchases", statements::PURCHASES).await;
    let redemptions = prepare(&mut conn, "redemptions", statements::REDEMPTIONS).await;
    let paid = "'{paid,done,canceled}'";
    let view = format!("44056, 'user7', '{{sku7,sku8,sku9}}', null, 0, {paid}, '{{0,0,0}}'");
    let checkout = format!("44056, 'user7', '{{sku7}}', 0, 0, {paid}, '{{0}}'");
    let payment = format!("44056, 'user7', '{{sku7,sku8}}', null, 7, {paid}, '{{0,0}}'");
    let runs = [&view, &view, &checkout, &checkout, &payment, &payment].map(|a| a.to_string());
    execute(&mut conn, &purchases, &runs).await;
    let code = "44056, '{code7}', 'user7', 'code7'".to_owned();
    execute(&mut conn, &redemptions, &[0; 6].map(|_| code.clone())).await;
    let promotion_uses = prepare(&mut conn, "promotion_uses", statements::PROMOTION_USES).await;
    let uses = "44056, 'user7', '{7,8}', 0".to_owned();
    execute(&mut conn, &promotion_uses, &[0; 6].map(|_| uses.clone())).await;
    fill_orders(&mut conn, 50_000).await;
    assert_no_scan(&mut conn, &purchases, &view, "order_units", 300).await;
    assert_no_scan(&mut conn, &purchases, &checkout, "order_units", 100).await;
    assert_no_scan(&mut conn, &purchases, &payment, "order_units", 200).await;
    assert_no_scan(
        &mut conn,
        &redemptions,
        &code,
        "promo_code_redemptions",
        1_000,
    )
    .await;
    // The user's 50 uses of promotion 7, none of 8.
    assert_no_scan(&mut conn, &promotion_uses, &uses, "order_promotions", 100).await;
}

/// Orders by id (every payment, cancel and done folds its order), the expiry of a user's
/// older unpaid orders at checkout, and the command ledger's lookup.
#[tokio::test]
async fn order_and_ledger_lookups_read_only_their_rows_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let load_order = prepare(&mut conn, "load_order", statements::LOAD_ORDER).await;
    let expiring = prepare(&mut conn, "expiring", statements::EXPIRING).await;
    let ledger = prepare(&mut conn, "ledger", statements::LEDGER_LOOKUP).await;
    let order = |n: usize| format!("'0dde0000-0000-0000-0000-{n:012x}'");
    execute(
        &mut conn,
        &load_order,
        &(1..=6).map(order).collect::<Vec<_>>(),
    )
    .await;
    let expiring_args =
        |n: usize| format!("44056, 'user{n}', 100000, null, '{{sku1,sku2}}', '{{{n}}}'");
    execute(
        &mut conn,
        &expiring,
        &(1..=6).map(expiring_args).collect::<Vec<_>>(),
    )
    .await;
    let command = |n: usize| format!("44056, 'user{}', 'command{n}'", n % 1000);
    execute(
        &mut conn,
        &ledger,
        &(1..=6).map(command).collect::<Vec<_>>(),
    )
    .await;
    fill_orders(&mut conn, 50_000).await;
    assert_no_scan(&mut conn, &load_order, &order(77), "order_events", 2).await;
    // A user's 50 orders, all paid: the status is checked on each.
    assert_no_scan(&mut conn, &expiring, &expiring_args(7), "orders", 50).await;
    assert_no_scan(&mut conn, &ledger, &command(77), "processed_commands", 1).await;
}

/// A user's key (order commands with personal data, order loads with sealed fields) and
/// a page's keys (the order relay and the export).
#[tokio::test]
async fn user_key_lookups_read_only_their_keys_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let key_of = prepare(&mut conn, "key_of", statements::KEY_OF).await;
    let keys_of = prepare(&mut conn, "keys_of", statements::KEYS_OF).await;
    let one = |n: usize| format!("44056, 'user{n}'");
    let page = |n: usize| {
        let users: Vec<String> = (n..n + 100).map(|i| format!("user{i}")).collect();
        format!(
            "array_fill(44056::int8, array[100]), '{{{}}}'::text[]",
            users.join(",")
        )
    };
    execute(&mut conn, &key_of, &(1..=6).map(one).collect::<Vec<_>>()).await;
    execute(&mut conn, &keys_of, &(1..=6).map(page).collect::<Vec<_>>()).await;
    conn.execute(
        "insert into user_keys (project_id, user_id, key) \
         select 44056, 'user' || i, decode(md5(i::text) || md5(i::text), 'hex') \
         from generate_series(1, 50000) i",
    )
    .await
    .expect("fill user_keys");
    assert_no_scan(&mut conn, &key_of, &one(77), "user_keys", 1).await;
    assert_no_scan(&mut conn, &keys_of, &page(700), "user_keys", 100).await;
}

/// The statements the service plans at every execution, and those it runs on probe
/// sessions with the plan made at their first execution, keep a good plan even when
/// their session prepared them on tables known to be empty: vacuumed and analyzed while
/// empty, where any cached plan of an ordinary session would scan (once per key, for a
/// batch).
#[tokio::test]
async fn batches_planned_each_time_or_on_probe_sessions_probe_tables_that_were_analyzed_empty() {
    let (_db, mut conn) = fresh().await;
    conn.execute("vacuum analyze cart_projection, cart_events, order_units")
        .await
        .expect("analyze the empty tables");
    let get = prepare(&mut conn, "get", statements::GROUPED_GET).await;
    let purchases = prepare(&mut conn, "purchases", statements::PURCHASES).await;
    assert!(get.probe && purchases.each_time);
    let one = format!("{}, null::int8[]", uuids(&[stream(1)]));
    let ids = uuids(&(0..256).map(|i| stream(i * 37)).collect::<Vec<_>>());
    let batch = format!("{ids}, null::int8[]");
    let runs = [&one, &one, &one, &batch, &batch, &batch].map(|a| a.to_string());
    execute(&mut conn, &get, &runs).await;
    let view = "44056, 'user7', '{sku7,sku8,sku9}', null, 0, '{paid,done,canceled}', '{0,0,0}'";
    execute(&mut conn, &purchases, &[0; 6].map(|_| view.to_owned())).await;
    fill_carts(&mut conn, 10_000).await;
    fill_orders(&mut conn, 50_000).await;
    assert_no_scan(&mut conn, &get, &batch, "cart_projection", 256).await;
    assert_no_scan(&mut conn, &purchases, view, "order_units", 300).await;
}

/// Asynchronous projection batches (`sku_activity`): the versions applied of a page's
/// streams, their stored lines, and the lines a batch took away; and the command
/// ledger's take-back of a batch's repeated ids.
#[tokio::test]
async fn projection_batches_and_ledger_takebacks_touch_only_their_keys() {
    let (_db, mut conn) = fresh().await;
    let claim = prepare(&mut conn, "claim", statements::CLAIM_VERSIONS).await;
    let stored = prepare(&mut conn, "stored", statements::STORED_LINES).await;
    let gone = prepare(&mut conn, "gone", statements::GONE_LINES).await;
    let remove = prepare(&mut conn, "remove", statements::LEDGER_REMOVE).await;
    let one = uuids(&[stream(1)]);
    let page = uuids(&(0..500).map(|i| stream(i * 17)).collect::<Vec<_>>());
    let versions = |n: usize| format!("'{{{}}}'::bigint[]", vec!["3"; n].join(","));
    let runs = [
        (&one, 1),
        (&one, 1),
        (&one, 1),
        (&page, 500),
        (&page, 500),
        (&page, 500),
    ];
    // The claims write: warmed up under another projection's name, so that the fill
    // below does not meet their rows.
    execute(
        &mut conn,
        &claim,
        &runs.map(|(ids, n)| format!("'warm-up', {ids}, {}", versions(n))),
    )
    .await;
    let lines = |n: usize| {
        let ids = uuids(&(0..n).map(|i| stream(i * 17)).collect::<Vec<_>>());
        format!("{ids}, '{{{}}}'", vec!["gold"; n].join(","))
    };
    // Lines of `n` (cart, SKU) pairs and of `cleared` whole carts.
    let needed = |n: usize, cleared: usize| {
        let ids = uuids(&(0..cleared).map(|i| stream(i * 17 + 1)).collect::<Vec<_>>());
        format!("{}, {ids}", lines(n))
    };
    execute(
        &mut conn,
        &stored,
        &[(1, 0), (1, 0), (1, 1), (400, 100), (400, 100), (400, 100)].map(|(n, c)| needed(n, c)),
    )
    .await;
    execute(&mut conn, &gone, &[1, 1, 1, 200, 200, 200].map(lines)).await;
    let keys = |n: usize| {
        let users: Vec<String> = (0..n).map(|i| format!("user{i}")).collect();
        let commands: Vec<String> = (0..n).map(|i| format!("command{i}")).collect();
        format!(
            "'{{{}}}', '{{{}}}', '{{{}}}'",
            vec!["44056"; n].join(","),
            users.join(","),
            commands.join(",")
        )
    };
    execute(&mut conn, &remove, &[1, 1, 1, 2, 2, 2].map(keys)).await;
    conn.execute(
        "insert into projection_versions (projection, stream_id, version) \
         select 'sku_activity', ('5eed0000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 5 \
         from generate_series(0, 49999) i; \
         insert into sku_activity_lines (stream_id, sku, quantity) \
         select ('5eed0000-0000-0000-0000-' || lpad(to_hex(i / 2), 12, '0'))::uuid, \
           case i % 2 when 0 then 'gold' else 'cup01' end, 1 \
         from generate_series(0, 99999) i",
    )
    .await
    .expect("fill the projection tables");
    fill_orders(&mut conn, 50_000).await;
    let page_args = format!("'sku_activity', {page}, {}", versions(500));
    assert_no_scan(&mut conn, &claim, &page_args, "projection_versions", 500).await;
    // 400 lines, and two lines of each of 100 carts.
    assert_no_scan(
        &mut conn,
        &stored,
        &needed(400, 100),
        "sku_activity_lines",
        600,
    )
    .await;
    assert_no_scan(&mut conn, &gone, &lines(200), "sku_activity_lines", 200).await;
    assert_no_scan(&mut conn, &remove, &keys(2), "processed_commands", 2).await;
}

/// The retention sweeps' batches (`cart_store::retention`, `OrderStore::expire_unpaid`):
/// the ledger's oldest rows, the carts untouched longest and the orders left unpaid,
/// each found through its index of `0012_retention.sql`, oldest first, reading only
/// the rows a batch takes however big the table is. Here a handful are due among tens
/// of thousands that are not.
#[tokio::test]
async fn retention_sweeps_read_only_the_rows_they_take_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let prune = prepare(&mut conn, "prune_ledger", statements::PRUNE_LEDGER).await;
    let carts = prepare(&mut conn, "due_carts", statements::DUE_CARTS).await;
    let orders = prepare(&mut conn, "due_orders", statements::DUE_ORDERS).await;
    let drop = prepare(&mut conn, "drop_projection", statements::DROP_PROJECTION).await;
    // A cut-off a week back, batches of 10.
    let due = "extract(epoch from now() - interval '7 days')::float8, 10".to_owned();
    for statement in [&prune, &carts, &orders] {
        execute(&mut conn, statement, &[0; 6].map(|_| due.clone())).await;
    }
    let row = |n: usize| format!("'{}', 5", stream(n));
    execute(&mut conn, &drop, &(1..=6).map(row).collect::<Vec<_>>()).await;
    fill_orders(&mut conn, 50_000).await;
    fill_carts(&mut conn, 50_000).await;
    conn.execute(
        "update processed_commands set created_at = now() - interval '30 days' where command_id in ('command1', 'command2', 'command3'); \
         update cart_projection set updated_at = now() - interval '30 days' where user_id in ('user1', 'user2', 'user3'); \
         update orders set status = 'new', created_at = now() - interval '30 days' where order_id in (1, 2, 3)",
    )
    .await
    .expect("age a few rows");
    assert_no_scan(&mut conn, &prune, &due, "processed_commands", 3).await;
    assert_no_scan(&mut conn, &carts, &due, "cart_projection", 3).await;
    assert_no_scan(&mut conn, &orders, &due, "orders", 3).await;
    assert_no_scan(&mut conn, &drop, &row(77), "cart_projection", 1).await;
}

/// The grouped purchase counts of the cart endpoints (`GroupPurchases`): a batch of
/// users' SKUs, promotions and codes, from one ask at idle to many under load.
#[tokio::test]
async fn grouped_purchase_counts_read_only_their_keys_whatever_the_table_held_when_prepared() {
    let (_db, mut conn) = fresh().await;
    let grouped = prepare(&mut conn, "grouped", statements::GROUPED_PURCHASES).await;
    // Ask `a` of user `a`: SKU sku`a` (window from the epoch), promotion `a`, code`a`.
    let asks = |users: &[usize]| {
        let list =
            |f: &dyn Fn(usize) -> String| users.iter().map(|u| f(*u)).collect::<Vec<_>>().join(",");
        let n = users.len();
        let index = (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let projects = vec!["44056"; n].join(",");
        let zeros = vec!["0"; n].join(",");
        let users_list = list(&|u| format!("user{u}"));
        format!(
            "'{{{index}}}', '{{{projects}}}', '{{{users_list}}}', '{{{}}}', '{{{zeros}}}', \
             '{{{index}}}', '{{{projects}}}', '{{{users_list}}}', '{{{}}}', \
             '{{{index}}}', '{{{projects}}}', '{{{users_list}}}', '{{{}}}', \
             '{{paid,done,canceled}}'",
            list(&|u| format!("sku{u}")),
            list(&|u| (u % 50).to_string()),
            list(&|u| format!("code{}", u % 50)),
        )
    };
    let one = asks(&[7]);
    let batch = asks(&(0..100).map(|i| i * 3).collect::<Vec<_>>());
    let runs = [&one, &one, &one, &batch, &batch, &batch].map(|a| a.to_string());
    execute(&mut conn, &grouped, &runs).await;
    fill_orders(&mut conn, 50_000).await;
    // Per ask: its SKU's 100 units, the user's 50 uses of the promotion, the code's
    // 1,000 redemptions (each counted in all, as `REDEMPTIONS` does).
    assert_no_scan(&mut conn, &grouped, &one, "order_units", 100).await;
    assert_no_scan(&mut conn, &grouped, &one, "order_promotions", 50).await;
    assert_no_scan(&mut conn, &grouped, &one, "promo_code_redemptions", 1_000).await;
    assert_no_scan(&mut conn, &grouped, &batch, "order_units", 100 * 100).await;
}
