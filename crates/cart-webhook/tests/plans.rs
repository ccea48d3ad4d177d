//! Plans that cannot go stale (issue 16): the worker's hot statements keep index plans
//! whatever the tables held when they were prepared, with no ANALYZE ever (autovacuum
//! off, as on the machine where the stale claim stopped every delivery).
//!
//! Each statement is the exact text the worker runs (the `pub const`s of
//! `cart_webhook::store`), PREPAREd on one session of a fresh database with EMPTY
//! tables and executed there, then the tables are filled and `EXPLAIN EXECUTE` on the
//! same session shows the plan that session would go on using. The session forces the
//! generic plan: in the worker's default mode PostgreSQL uses either a custom plan
//! (made at each execution, with the tables' current size: it cannot go stale) or,
//! after five executions, this generic one, kept until the table is analyzed, so the
//! generic plan made on empty tables is the one that must be right.

mod common;

use cart_webhook::store::{self, order_queue};
use cart_webhook::Config;
use common::TestDb;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

async fn fresh() -> (TestDb, PgPool) {
    let db = TestDb::new().await;
    let mut config = Config::from_env();
    config.database_url = db.url.clone();
    let pool = cart_webhook::connect(&config).await.unwrap();
    (db, pool)
}

/// (name, SQL, arguments of EXECUTE): every statement the claim (with its lease), the
/// outcome, intake's queue and the follow-up run against `webhook_deliveries` per
/// delivery.
fn statements() -> [(&'static str, &'static str, &'static str); 5] {
    [
        ("claim", store::CLAIM_SQL, "('00000000-0000-0000-0000-000000000002', 30.0, 60.0)"),
        ("follow_up", store::FOLLOW_UP_SQL, ""),
        ("sibling", order_queue::SIBLING_SQL, "(1, 5, 'order_paid')"),
        ("lock_order_of", order_queue::LOCK_ORDER_OF_SQL, "('00000000-0000-0000-0000-000000000001')"),
        ("finish", store::FINISH_SQL, "('00000000-0000-0000-0000-000000000001', 'delivered', 1, 5.0, true, '00000000-0000-0000-0000-000000000002', 1.0e9, 204, 5, 'success', null)"),
    ]
}

/// The session's statements, prepared and run six times on the empty tables (but for
/// the one finished delivery the outcome's attempt row refers to).
async fn prepare_on_empty_tables(pool: &PgPool) -> PoolConnection<Postgres> {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(
        "insert into webhook_deliveries (event_id, project_id, order_id, version,
           notification_type, envelope, status, finished_at, followed_up_at)
         values ('00000000-0000-0000-0000-000000000001', 2, 1, 2, 'order_paid', '{}',
           'delivered', now(), now())",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("set plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (name, sql, args) in statements() {
        sqlx::raw_sql(&format!("prepare {name} as {sql}"))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("prepare {name}: {e}"));
        for _ in 0..6 {
            sqlx::raw_sql(&format!("execute {name}{args}"))
                .execute(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("execute {name}: {e}"));
        }
    }
    conn
}

/// 20,000 orders, no ANALYZE: most delivered and followed up, 2,000 order_paid due and
/// ready (the first 8 in flight), 1,000 paid orders' cancels waiting for them, 500
/// finished deliveries whose follow-up is to do, 500 retries due in an hour.
async fn fill(pool: &PgPool) {
    sqlx::raw_sql(
        "insert into webhook_deliveries (event_id, project_id, order_id, version,
           notification_type, envelope, status, ready, next_attempt_at, finished_at,
           followed_up_at, attempts, leased_until, leased_by)
         select gen_random_uuid(), 1, g, 2, 'order_paid', '{\"event_type\": \"OrderPaid\"}',
           case when g <= 2500 then 'pending' when g <= 3000 then 'failed' else 'delivered' end,
           g <= 2500,
           case when g <= 2000 then now() - interval '1 minute' * (2000 - g)
                when g <= 2500 then now() + interval '1 hour' else now() end,
           case when g > 2500 then now() end,
           case when g > 3000 then now() end,
           case when g <= 2000 then 0 else 1 end,
           case when g <= 8 then now() + interval '1 minute' end,
           case when g <= 8 then gen_random_uuid() end
         from generate_series(1, 20000) g;
         insert into webhook_deliveries (event_id, project_id, order_id, version,
           notification_type, envelope)
         select gen_random_uuid(), 1, g, 3, 'order_canceled', '{}'
         from generate_series(1, 1000) g;",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Every scan of a table in a JSON plan: (node type, relation, index).
fn scans(plan: &serde_json::Value, out: &mut Vec<(String, String, String)>) {
    let text = |key: &str| plan[key].as_str().unwrap_or_default().to_owned();
    // ModifyTable names its table too, but reads through the scan below it.
    if plan.get("Relation Name").is_some() && text("Node Type").ends_with("Scan") {
        out.push((text("Node Type"), text("Relation Name"), text("Index Name")));
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        scans(child, out);
    }
}

async fn explain(
    conn: &mut PoolConnection<Postgres>,
    options: &str,
    name: &str,
    args: &str,
) -> serde_json::Value {
    let plan: serde_json::Value = sqlx::query_scalar(&format!(
        "explain ({options} format json) execute {name}{args}"
    ))
    .fetch_one(&mut **conn)
    .await
    .unwrap_or_else(|e| panic!("explain {name}: {e}"));
    plan[0].clone()
}

#[tokio::test]
async fn the_workers_statements_keep_index_plans_made_on_empty_tables() {
    let (_db, pool) = fresh().await;
    let mut conn = prepare_on_empty_tables(&pool).await;
    fill(&pool).await;
    for (name, _, args) in statements() {
        let plan = explain(&mut conn, "", name, args).await;
        let mut found = Vec::new();
        scans(&plan["Plan"], &mut found);
        let deliveries: Vec<_> = found
            .iter()
            .filter(|(_, relation, _)| relation == "webhook_deliveries")
            .collect();
        assert!(!deliveries.is_empty(), "{name}: {plan:#}");
        for (node, _, index) in &deliveries {
            assert!(
                node.starts_with("Index") && !index.is_empty(),
                "{name} must read webhook_deliveries through an index, not {node}: {plan:#}"
            );
        }
        // And they are the plans that were made on the empty tables.
        let generic: i64 =
            sqlx::query_scalar("select generic_plans from pg_prepared_statements where name = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert!(generic >= 6, "{name}: the generic plan is the one in use");
    }
    let (_, _, args) = statements()[0];
    let claim = explain(&mut conn, "", "claim", args).await;
    let mut found = Vec::new();
    scans(&claim["Plan"], &mut found);
    let deliveries: Vec<_> = found
        .into_iter()
        .filter(|(_, relation, _)| relation == "webhook_deliveries")
        .collect();
    assert_eq!(
        deliveries,
        [
            (
                "Index Scan".to_owned(),
                "webhook_deliveries".to_owned(),
                "webhook_deliveries_ready".to_owned()
            ),
            (
                "Index Scan".to_owned(),
                "webhook_deliveries".to_owned(),
                "webhook_deliveries_pkey".to_owned()
            )
        ],
        "the claim is one range scan of the ready index, its lease one row by key: {claim:#}"
    );
}

/// The first node of the plan that `is` says is the one.
fn find<'p>(
    plan: &'p serde_json::Value,
    is: &dyn Fn(&serde_json::Value) -> bool,
) -> Option<&'p serde_json::Value> {
    if is(plan) {
        return Some(plan);
    }
    plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|child| find(child, is))
}

#[tokio::test]
async fn a_claim_reads_a_handful_of_pages_at_a_backlog_of_thousands() {
    let (_db, pool) = fresh().await;
    let mut conn = prepare_on_empty_tables(&pool).await;
    fill(&pool).await;
    // Run for real (in a transaction rolled back): the pages it touched, the rows it
    // passed over. The 8 leased rows at the head of the index are passed over; the
    // 1,992 other due rows and the 18,000 others are not read.
    sqlx::query("begin").execute(&mut *conn).await.unwrap();
    let (_, _, args) = statements()[0];
    let plan = explain(&mut conn, "analyze, buffers,", "claim", args).await;
    sqlx::query("rollback").execute(&mut *conn).await.unwrap();
    let top = &plan["Plan"];
    assert_eq!(top["Actual Rows"], 1, "{plan:#}");
    // The choice of the row (its lease then writes one row version, with its index
    // entries: a cost that does not depend on the backlog either).
    let claimed = find(top, &|n| n["Subplan Name"] == "CTE claimed").expect("CTE claimed");
    let pages = claimed["Shared Hit Blocks"].as_i64().unwrap()
        + claimed["Shared Read Blocks"].as_i64().unwrap();
    assert!(pages <= 12, "the claim read {pages} pages: {plan:#}");
    let ready = find(top, &|n| n["Index Name"] == "webhook_deliveries_ready").expect("ready");
    assert_eq!(ready["Actual Rows"], 1, "{plan:#}");
    assert_eq!(ready["Rows Removed by Filter"], 8, "{plan:#}");
}

/// The reconciliation against the order log (`cart_webhook::reconcile`) costs what is new
/// since its watermark, not the log: its page is the order relay's reader
/// (`ORDER_PAGE_SQL`), prepared here on an empty `order_events`, then run after 20,000
/// events were written (no ANALYZE) from a watermark 100 events before the end.
#[tokio::test]
async fn the_reconciliation_reads_only_the_order_events_after_its_watermark() {
    let (_db, pool) = fresh().await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("set plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    let page = cart_store::orders::ORDER_PAGE_SQL;
    sqlx::raw_sql(&format!("prepare reconcile_page as {page}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    for _ in 0..6 {
        sqlx::raw_sql("execute reconcile_page('0', 0, 500)")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql(
        "insert into order_events (stream_id, version, event_id, project_id, order_id, user_id,
           event_type, schema_version, payload, metadata)
         select gen_random_uuid(), 1, gen_random_uuid(), 1, g, 'u', 'OrderCreated', 1, '{}', '{}'
         from generate_series(1, 20000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (tx, position): (String, i64) = sqlx::query_as(
        "select tx_id::text, global_position from order_events
         order by tx_id, global_position offset 19899 limit 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let args = format!("('{tx}', {position}, 500)");
    let plan = explain(&mut conn, "analyze,", "reconcile_page", &args).await;
    let mut found = Vec::new();
    scans(&plan["Plan"], &mut found);
    assert!(
        found
            .iter()
            .filter(|(_, relation, _)| relation == "order_events")
            .all(|(node, _, _)| node != "Seq Scan"),
        "the page reads order_events through its index (an index or bitmap scan): {plan:#}"
    );
    let read = rows_read(&plan["Plan"], "order_events");
    assert!(
        read <= 1000.0,
        "read {read} order_events rows for the last 100: {plan:#}"
    );
}

/// Rows the scans of `relation` returned, over all their loops.
fn rows_read(plan: &serde_json::Value, relation: &str) -> f64 {
    let own = if plan["Relation Name"] == relation {
        plan["Actual Rows"].as_f64().unwrap_or(0.0) * plan["Actual Loops"].as_f64().unwrap_or(1.0)
    } else {
        0.0
    };
    own + plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| rows_read(p, relation))
        .sum::<f64>()
}
