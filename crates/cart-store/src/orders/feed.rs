//! The order log's gap-safe reader, for the relay and the export: order events in the
//! global order of `order_events`, each with the order as it was right after it.

use std::collections::HashMap;

use cart_domain::{Order, OrderEvent};
use cart_proto::order as wire;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{sealed, OrderStoreError};
use crate::{Filter, StoreError};

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
    /// The event as `order_events` holds it (personal fields sealed): what a JSON Lines
    /// export carries as `stored`, so that `cartctl events import` can write it back.
    pub stored: StoredOrderEvent,
}

/// An order event in its stored form: the row's `schema_version`, `payload` (with its
/// personal field sealed, `orders::sealed`) and `metadata`, unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrderEvent {
    pub schema_version: i16,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
}

impl StoredOrderEvent {
    /// The `stored` member of an export line (docs/events.md, "Both logs in one export").
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "schema_version": self.schema_version,
            "payload": self.payload,
            "metadata": self.metadata,
        })
    }
}

impl RecordedOrderEvent {
    /// The form readers outside see (the `CART_ORDERS` message body, the export), with
    /// money at `format`'s scale.
    pub fn envelope(&self, format: cart_proto::view::AmountFormat) -> wire::OrderEventEnvelope {
        let status = wire::status_after(&self.event);
        wire::OrderEventEnvelope {
            event_id: self.event_id.to_string(),
            position: self.position.to_string(),
            project_id: self.project_id,
            order_id: self.order_id,
            user_id: self.user_id.clone(),
            version: self.version,
            event_type: self.event.event_type().to_owned(),
            status: status.name().to_owned(),
            recorded_at: self.recorded_at.clone(),
            // Every stored order starts with OrderCreated, so the view exists.
            order: wire::view(&self.order, format).unwrap_or_else(|| wire::OrderView {
                order_id: self.order_id,
                project_id: self.project_id,
                status: status.name().to_owned(),
                user_id: self.user_id.clone(),
                cart_id: None,
                date_created: self.recorded_at.clone(),
                mode: None,
                invoice_id: None,
                is_free: false,
                promo_code: None,
                expired_by: None,
                cancel_reason: None,
                custom_parameters: None,
                content: wire::OrderContent::default(),
            }),
        }
    }
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
       e.project_id, e.order_id, e.user_id, e.event_type, e.schema_version, e.payload, e.metadata, \
       e.metadata->>'traceparent' as traceparent, e.metadata->>'tracestate' as tracestate, \
       to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as recorded_at \
     from order_events e, last_tx \
     where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
       and (e.tx_id, e.global_position) > ($1::text::xid8, $2) and e.tx_id <= last_tx.tx \
     order by e.tx_id, e.global_position";

// The export's conditions of a `Filter`, bound as $3 to $6 ($1, $2: the position).
macro_rules! order_filter_sql {
    () => {
        "and ($3::bigint is null or e.project_id = $3) \
         and ($4::uuid is null or e.stream_id = $4) \
         and (cardinality($5::text[]) = 0 or e.event_type = any($5)) \
         and ($6::timestamptz is null or e.recorded_at >= $6::timestamptz) "
    };
}

/// The export's filtered page of order events: about `$7` matching events after
/// `($1, $2)`, and the rest of the last transaction's matching events.
const ORDER_FILTERED_PAGE_SQL: &str = concat!(
    "with page as ( \
       select e.tx_id, e.global_position from order_events e \
       where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         and (e.tx_id, e.global_position) > ($1::text::xid8, $2) ",
    order_filter_sql!(),
    "order by e.tx_id, e.global_position limit $7), \
     last_tx as (select max(tx_id) as tx from page) \
     select e.tx_id::text as tx_id, e.global_position, e.event_id, e.stream_id, e.version, \
       e.project_id, e.order_id, e.user_id, e.event_type, e.schema_version, e.payload, e.metadata, \
       e.metadata->>'traceparent' as traceparent, e.metadata->>'tracestate' as tracestate, \
       to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as recorded_at \
     from order_events e, last_tx \
     where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
       and (e.tx_id, e.global_position) > ($1::text::xid8, $2) and e.tx_id <= last_tx.tx ",
    order_filter_sql!(),
    "order by e.tx_id, e.global_position"
);

/// The number of order events after `($1, $2)` matching the filter (a progress bar's
/// total), visible or not yet.
const ORDER_COUNT_SQL: &str = concat!(
    "select count(*) from order_events e \
     where (e.tx_id, e.global_position) > ($1::text::xid8, $2) ",
    order_filter_sql!()
);

/// Where a read of the order events recorded at or after `$1` starts (as
/// `crate::feed::position_at` for the cart log): just before the first such event below
/// the read barrier, else after the last event below it.
const ORDER_POSITION_AT_SQL: &str = "with first_since as ( \
       select tx_id, global_position - 1 as global_position from order_events \
       where tx_id < pg_snapshot_xmin(pg_current_snapshot()) and recorded_at >= $1::timestamptz \
       order by tx_id, global_position limit 1), \
     last_visible as ( \
       select tx_id, global_position from order_events \
       where tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
       order by tx_id desc, global_position desc limit 1) \
     select tx_id::text as tx_id, global_position from first_since \
     union all \
     select tx_id::text, global_position from last_visible \
     where not exists (select 1 from first_since)";

/// The whole history of each order of a page: one primary-key range per stream id. The
/// lateral subquery (with its `order by`) is never flattened into a join, so no plan can
/// turn it into a scan of `order_events`, as a plain `= any($1)` became when prepared
/// while the table held a few rows.
pub const ORDER_HISTORIES_SQL: &str = "select h.stream_id, h.order_id, h.version, h.event_type, \
       h.schema_version, h.payload, h.project_id, h.user_id \
     from unnest($1::uuid[]) as ids(id) \
     cross join lateral (select e.stream_id, e.order_id, e.version, e.event_type, \
                                e.schema_version, e.payload, e.project_id, e.user_id \
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
    with_orders(conn, rows).await
}

/// Reads about `limit` order events after `after` that match `filter`, ending at a
/// transaction boundary (the export's reader; without a filter, the relay's).
///
/// # Errors
/// Database failures, undecodable events, and a `since` PostgreSQL cannot read as a time
/// (`StoreError::Invalid`).
pub async fn read_filtered_page(
    conn: &mut PgConnection,
    after: crate::Position,
    limit: i64,
    filter: &Filter,
) -> Result<Vec<RecordedOrderEvent>, OrderStoreError> {
    if filter.is_everything() {
        return read_page(conn, after, limit).await;
    }
    let rows = bind_filter(sqlx::query(ORDER_FILTERED_PAGE_SQL), after, filter)
        .bind(limit.max(1))
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from_query)?;
    with_orders(conn, rows).await
}

/// The number of order events after `after` matching `filter`, visible or not yet.
///
/// # Errors
/// Database failures, and a `since` PostgreSQL cannot read as a time.
pub async fn count_after(
    conn: &mut PgConnection,
    after: crate::Position,
    filter: &Filter,
) -> Result<u64, StoreError> {
    let n: i64 = bind_filter(sqlx::query(ORDER_COUNT_SQL), after, filter)
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::from_query)?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Where a read of the order events recorded at or after `since` starts, below the read
/// barrier (see `crate::feed::position_at`); the start of the log when it is empty.
///
/// # Errors
/// Database failures, and a `since` PostgreSQL cannot read as a time.
pub async fn position_at(
    conn: &mut PgConnection,
    since: &str,
) -> Result<crate::Position, StoreError> {
    let row = sqlx::query(ORDER_POSITION_AT_SQL)
        .bind(since)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from_query)?;
    let Some(row) = row else {
        return Ok(crate::Position::default());
    };
    let tx: String = row.try_get("tx_id")?;
    Ok(crate::Position {
        // xid8 is an unsigned 64-bit integer, so its text always parses.
        tx_id: tx.parse().unwrap_or(u64::MAX),
        global_position: row.try_get("global_position")?,
    })
}

fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    after: crate::Position,
    filter: &'q Filter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(filter.project_id)
        .bind(filter.stream_id)
        .bind(&filter.event_types)
        .bind(filter.since.as_deref())
}

/// The page's events, each with its order folded up to it.
async fn with_orders(
    conn: &mut PgConnection,
    rows: Vec<sqlx::postgres::PgRow>,
) -> Result<Vec<RecordedOrderEvent>, OrderStoreError> {
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
            stored: StoredOrderEvent {
                schema_version: row.try_get("schema_version")?,
                payload: row.try_get("payload")?,
                metadata: row.try_get("metadata")?,
            },
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
        .fetch_all(&mut *conn)
        .await?;
    // The keys of the users with sealed fields on this page, in one query.
    let mut sealed_users = Vec::new();
    for row in &history {
        let payload: serde_json::Value = row.try_get("payload")?;
        if sealed::is_sealed(row.try_get("event_type")?, &payload) {
            sealed_users.push((row.try_get("project_id")?, row.try_get("user_id")?));
        }
    }
    sealed_users.sort_unstable();
    sealed_users.dedup();
    let keys = sealed::keys_of(&mut *conn, &sealed_users).await?;
    let mut streams: HashMap<Uuid, Vec<(i64, OrderEvent)>> = HashMap::new();
    for row in history {
        let version: i64 = row.try_get("version")?;
        let order_id: i64 = row.try_get("order_id")?;
        let event_type: &str = row.try_get("event_type")?;
        let mut payload: serde_json::Value = row.try_get("payload")?;
        if sealed::is_sealed(event_type, &payload) {
            let user: (i64, String) = (row.try_get("project_id")?, row.try_get("user_id")?);
            sealed::open(event_type, &mut payload, keys.get(&user), user.0, &user.1);
        }
        let event = wire::decode(event_type, row.try_get("schema_version")?, payload).map_err(
            |source| OrderStoreError::Decode {
                order_id,
                version,
                source,
            },
        )?;
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
