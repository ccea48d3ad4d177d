//! The order log's gap-safe reader, for the relay: order events in the global order
//! of `order_events`, each with the order as it was right after it.

use std::collections::HashMap;

use cart_domain::{Order, OrderEvent};
use cart_proto::order as wire;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::OrderStoreError;

/// Order events after a position in the gap-safe global order, each with the order as
/// it was right after it (for the relay).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedOrderEvent {
    pub position: crate::Position,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub version: i64,
    pub project_id: u64,
    pub order_id: u64,
    pub user_id: String,
    pub recorded_at: String,
    pub event: OrderEvent,
    pub order: Order,
    /// The trace context of the command that wrote it (its metadata's `traceparent`),
    /// when traces were exported then.
    pub trace: Option<cart_telemetry::TraceParent>,
}

// The statements are shaped so that their generic plans are right whatever the table
// sizes were when they were prepared (`tests/feed_plans.rs`; see `crate::feed`).

/// The relay's page of order events: about `$3` events after `($1, $2)`, read in the
/// order of the `(tx_id, global_position)` index, and the rest of the last transaction.
pub const ORDER_PAGE_SQL: &str = "with page as ( \
       select e.tx_id, e.global_position from order_events e \
       where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         and (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
       order by e.tx_id, e.global_position limit $3), \
     last_tx as (select max(tx_id) as tx from page) \
     select e.tx_id::text as tx_id, e.global_position, e.event_id, e.stream_id, e.version, \
       e.project_id, e.order_id, e.user_id, e.event_type, e.schema_version, e.payload, \
       e.metadata->>'traceparent' as traceparent, e.metadata->>'tracestate' as tracestate, \
       to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as recorded_at \
     from order_events e, last_tx \
     where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
       and (e.tx_id, e.global_position) > ($1::text::xid8, $2) and e.tx_id <= last_tx.tx \
     order by e.tx_id, e.global_position";

/// The whole history of each order of a page: one primary-key range per stream id. The
/// lateral subquery (with its `order by`) is never flattened into a join, so no plan can
/// turn it into a scan of `order_events`, as a plain `= any($1)` became when prepared
/// while the table held a few rows.
pub const ORDER_HISTORIES_SQL: &str = "select h.stream_id, h.order_id, h.version, h.event_type, \
       h.schema_version, h.payload \
     from unnest($1::uuid[]) as ids(id) \
     cross join lateral (select e.stream_id, e.order_id, e.version, e.event_type, \
                                e.schema_version, e.payload \
                         from order_events e where e.stream_id = ids.id order by e.version) h";

/// [`lag`]'s statement (as `crate::feed::LAG_SQL`, over `order_events`).
pub const ORDER_LAG_SQL: &str = crate::feed::lag_sql!("order_events");

/// How far an order reader at `after` is behind: order events after it (visible or not
/// yet), counted up to [`crate::feed::LAG_COUNT_CAP`], and the age in seconds of the
/// oldest of them (0 when there are none).
///
/// # Errors
/// Database failures.
pub async fn lag(
    conn: &mut PgConnection,
    after: crate::Position,
) -> Result<(i64, f64), crate::StoreError> {
    crate::feed::lag_of(conn, ORDER_LAG_SQL, after, crate::feed::LAG_COUNT_CAP).await
}

/// Reads about `limit` order events after `after`, ending at a transaction boundary.
///
/// # Errors
/// Database failures and undecodable events.
pub async fn read_page(
    conn: &mut PgConnection,
    after: crate::Position,
    limit: i64,
) -> Result<Vec<RecordedOrderEvent>, OrderStoreError> {
    let rows = sqlx::query(ORDER_PAGE_SQL)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Fold each order of the page from its start, to give each event the order after it.
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get("stream_id"))
        .collect::<Result<_, _>>()?;
    let streams = histories(&mut *conn, &ids).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let stream_id: Uuid = row.try_get("stream_id")?;
        let version: i64 = row.try_get("version")?;
        let tx: String = row.try_get("tx_id")?;
        let history = streams.get(&stream_id).map(Vec::as_slice).unwrap_or(&[]);
        let order = Order::replay(
            history
                .iter()
                .filter(|(v, _)| *v <= version)
                .map(|(_, e)| e),
        );
        let Some((_, event)) = history.iter().find(|(v, _)| *v == version) else {
            continue;
        };
        out.push(RecordedOrderEvent {
            position: crate::Position {
                tx_id: tx.parse().unwrap_or(0),
                global_position: row.try_get("global_position")?,
            },
            event_id: row.try_get("event_id")?,
            stream_id,
            version,
            project_id: u64::try_from(row.try_get::<i64, _>("project_id")?).unwrap_or(0),
            order_id: u64::try_from(row.try_get::<i64, _>("order_id")?).unwrap_or(0),
            user_id: row.try_get("user_id")?,
            recorded_at: row.try_get("recorded_at")?,
            event: event.clone(),
            order,
            trace: crate::feed::trace_of(&row)?,
        });
    }
    Ok(out)
}

/// The whole stream of each of `ids`, decoded, by stream id.
async fn histories(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(i64, OrderEvent)>>, OrderStoreError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let history = sqlx::query(ORDER_HISTORIES_SQL)
        .bind(&ids)
        .fetch_all(conn)
        .await?;
    let mut streams: HashMap<Uuid, Vec<(i64, OrderEvent)>> = HashMap::new();
    for row in history {
        let version: i64 = row.try_get("version")?;
        let order_id: i64 = row.try_get("order_id")?;
        let event = wire::decode(
            row.try_get("event_type")?,
            row.try_get("schema_version")?,
            row.try_get("payload")?,
        )
        .map_err(|source| OrderStoreError::Decode {
            order_id,
            version,
            source,
        })?;
        streams
            .entry(row.try_get("stream_id")?)
            .or_default()
            .push((version, event));
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `OrderCreated` row written by hand, recorded `age` ago (the payload is never
    /// decoded by the lag).
    async fn created(conn: &mut PgConnection, order_id: i64, age: &str) {
        sqlx::query(
            "insert into order_events (stream_id, version, event_id, project_id, order_id, \
                 user_id, event_type, schema_version, payload, metadata, recorded_at) \
             values ($1, 1, $2, 1, $3, 'u', 'OrderCreated', 1, '{}', '{}', \
                     now() - $4::interval)",
        )
        .bind(Uuid::now_v7())
        .bind(Uuid::now_v7())
        .bind(order_id)
        .bind(age)
        .execute(conn)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn the_order_lag_counts_the_order_events_after_the_checkpoint_and_ages_by_the_oldest() {
        let (_db, pool) = crate::testing::database().await;
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(
            lag(&mut conn, crate::Position::default()).await.unwrap(),
            (0, 0.0)
        );
        created(&mut conn, 1, "1 hour").await;
        for order_id in 2..5 {
            created(&mut conn, order_id, "0 s").await;
        }
        let (events, seconds) = lag(&mut conn, crate::Position::default()).await.unwrap();
        assert_eq!(events, 4);
        assert!((3599.0..3700.0).contains(&seconds), "{seconds}");
        // After the oldest: the others, a few seconds old at most.
        let first: (String, i64) = sqlx::query_as(
            "select tx_id::text, global_position from order_events where order_id = 1",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let after = crate::Position {
            tx_id: first.0.parse().unwrap(),
            global_position: first.1,
        };
        let (events, seconds) = lag(&mut conn, after).await.unwrap();
        assert_eq!(events, 3);
        assert!(seconds < 60.0, "{seconds}");
        // Cart events are not order events.
        assert_eq!(crate::feed::lag(&mut conn, after).await.unwrap().0, 0);
    }
}
