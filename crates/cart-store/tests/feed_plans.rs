//! Plans that cannot go stale: the feed's statements (the relay's page reads, the owner
//! lookup, the order histories and both lags) keep a plan that does not scan their table
//! however small the tables were when the statement was prepared.
//!
//! PostgreSQL plans a prepared statement per execution ("custom") for five executions,
//! then may switch for the connection's life to one generic plan made from the table
//! sizes of that moment. With autovacuum off nothing re-analyzes the tables, so nothing
//! invalidates that plan: a statement first run on an empty table can seq-scan it forever.
//! Each test prepares the statements with `plan_cache_mode = force_generic_plan` (the plan
//! `auto` switches to whenever it estimates it no dearer than the custom ones, which on a
//! small table it does), runs them six times, fills the tables without `ANALYZE`, and
//! checks with `EXPLAIN EXECUTE` on the same session that the cached plan reads through
//! an index. The statements are the library's own constants, so they cannot drift.

use cart_store::{feed, orders};
use sqlx::PgConnection;
use uuid::Uuid;

/// Each statement under test: its name, text, the arguments of its executions (SQL
/// literals), and whether its rows must come in index order (no `Sort` of the page).
struct Statement {
    name: &'static str,
    sql: &'static str,
    args: String,
    ordered: bool,
}

fn statements(cart: Uuid, order: Uuid) -> Vec<Statement> {
    let start = "'0', 0".to_owned();
    vec![
        Statement {
            name: "cart_page",
            sql: feed::PAGE_SQL,
            args: format!("{start}, 1000"),
            ordered: true,
        },
        Statement {
            name: "cart_page_rest",
            sql: feed::PAGE_REST_SQL,
            args: start.clone(),
            // The rest of one transaction (`tx_id = $1`): a sort is bounded by one batch.
            // PostgreSQL may plan it again at any time (a cache reset when other sessions'
            // DDL overflows the invalidation queue, as a busy test server does) on filled
            // tables without statistics, and then a bitmap scan and a sort of those few
            // rows is its honest choice; a scan of the table would not be.
            ordered: false,
        },
        Statement {
            name: "cart_owners",
            sql: feed::OWNERS_SQL,
            args: format!("'{{{cart}}}'"),
            ordered: false,
        },
        Statement {
            name: "cart_lag",
            sql: feed::LAG_SQL,
            args: format!("{start}, 100000"),
            ordered: true,
        },
        Statement {
            name: "order_page",
            sql: orders::ORDER_PAGE_SQL,
            args: format!("{start}, 200"),
            // Sorts what it read up to the page's last transaction: bounded by the page.
            ordered: false,
        },
        Statement {
            name: "order_histories",
            sql: orders::ORDER_HISTORIES_SQL,
            args: format!("'{{{order}}}'"),
            ordered: false,
        },
        Statement {
            name: "order_lag",
            sql: orders::ORDER_LAG_SQL,
            args: format!("{start}, 100000"),
            ordered: true,
        },
        // feed.status's heads: no parameters, so their one plan is made at preparation.
        Statement {
            name: "cart_head",
            sql: feed::HEAD_SQL,
            args: String::new(),
            ordered: true,
        },
        Statement {
            name: "order_head",
            sql: feed::ORDER_HEAD_SQL,
            args: String::new(),
            ordered: true,
        },
    ]
}

/// `execute <name>(<args>)`, or without parentheses for a statement without parameters.
fn execute(s: &Statement) -> String {
    if s.args.is_empty() {
        format!("execute {}", s.name)
    } else {
        format!("execute {}({})", s.name, s.args)
    }
}

/// Inserts `carts` cart streams with `per_cart` events each, and as many order streams
/// and events, in a few statements; no `ANALYZE`. Returns one cart and one order stream.
async fn fill(conn: &mut PgConnection, tag: &str, carts: i64, per_cart: i64) -> (Uuid, Uuid) {
    let events = carts * per_cart;
    for sql in [
        "insert into cart_streams (stream_id, project_id, user_id, cart_id) \
         select md5($1 || 'cart' || i)::uuid, 1, $1 || 'u' || i, 'c' \
         from generate_series(1, $2) i",
        "insert into cart_events (stream_id, version, event_id, project_id, event_type, \
             schema_version, payload, metadata) \
         select md5($1 || 'cart' || (i % $2 + 1))::uuid, i / $2 + 1, gen_random_uuid(), 1, \
             'CartOpened', 1, '{}', '{}' \
         from generate_series(0, $3 - 1) i",
        "insert into order_events (stream_id, version, event_id, project_id, order_id, \
             user_id, event_type, schema_version, payload, metadata) \
         select md5($1 || 'order' || (i % $2 + 1))::uuid, i / $2 + 1, gen_random_uuid(), 1, \
             hashtext($1) % 1000 * 100000 + i % $2, 'u', 'OrderCreated', 1, '{}', '{}' \
         from generate_series(0, $3 - 1) i",
    ] {
        sqlx::query(sql)
            .bind(tag)
            .bind(carts)
            .bind(events)
            .execute(&mut *conn)
            .await
            .expect("fill the tables");
    }
    let (cart, order): (Uuid, Uuid) =
        sqlx::query_as("select md5($1 || 'cart1')::uuid, md5($1 || 'order1')::uuid")
            .bind(tag)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    (cart, order)
}

async fn plan(conn: &mut PgConnection, sql: &str) -> String {
    let lines: Vec<String> = sqlx::query_scalar(sql)
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    lines.join("\n")
}

/// Prepares every statement with `before` rows per table already there, runs each six
/// times, fills the tables to 50,000 events across 5,000 streams, and checks the plans.
async fn plans_stay_good(before: i64) {
    let (_db, mut conn) = cart_store::testing::session().await;
    let (cart, order) = if before > 0 {
        fill(&mut conn, "seed", before, 1).await
    } else {
        (Uuid::now_v7(), Uuid::now_v7())
    };
    sqlx::query("set plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    let early = statements(cart, order);
    for s in &early {
        sqlx::query(&format!("prepare {} as {}", s.name, s.sql))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("prepare {}: {e}", s.name));
        for _ in 0..6 {
            sqlx::query(&execute(s))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("execute {}: {e}", s.name));
        }
    }
    let (cart, order) = fill(&mut conn, "load", 5_000, 10).await;
    for s in statements(cart, order) {
        let shown = plan(&mut conn, &format!("explain {}", execute(&s))).await;
        for table in ["cart_events", "cart_streams", "order_events"] {
            assert!(
                !shown.contains(&format!("Seq Scan on {table}")),
                "{} (prepared with {before} rows per table) scans {table}:\n{shown}",
                s.name
            );
        }
        if s.ordered {
            assert!(
                !shown.contains("Sort"),
                "{} (prepared with {before} rows per table) sorts instead of reading in \
                 index order:\n{shown}",
                s.name
            );
        }
    }
}

#[tokio::test]
async fn feed_statements_prepared_on_empty_tables_keep_index_plans_once_filled() {
    plans_stay_good(0).await;
}

#[tokio::test]
async fn feed_statements_prepared_on_nearly_empty_tables_keep_index_plans_once_filled() {
    plans_stay_good(3).await;
}
