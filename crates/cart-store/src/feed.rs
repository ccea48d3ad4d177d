//! The global-order reader of the log, shared by the JetStream relay, the exporter and
//! the asynchronous projections.
//!
//! Order is `(tx_id, global_position)`, and only events whose writing transaction is
//! older than every transaction still in flight are read (`tx_id < pg_snapshot_xmin`).
//! A reader that remembers the last position it saw therefore never skips an event that
//! commits late: until it commits, nothing after it is visible either. A page always ends
//! at a transaction boundary, so no reader ever holds part of a command's events.

use std::fmt;
use std::str::FromStr;

use cart_domain::CartEvent;
use cart_proto::{event, v1};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::store::decode_row;
use crate::StoreError;

mod head;
pub use head::{head, BadLog, Log, HEAD_SQL, ORDER_HEAD_SQL};

/// A position in the global order: the writing transaction, then the row's position.
/// Written `"<tx_id>:<global_position>"`; the default is the start of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Position {
    pub tx_id: u64,
    pub global_position: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.tx_id, self.global_position)
    }
}

/// A position that is not `"<tx_id>:<global_position>"`.
#[derive(Debug, thiserror::Error)]
#[error("a position is written <tx_id>:<global_position>, both non-negative integers")]
pub struct BadPosition;

impl FromStr for Position {
    type Err = BadPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (tx, gp) = s.trim().split_once(':').ok_or(BadPosition)?;
        let global_position: i64 = gp.parse().map_err(|_| BadPosition)?;
        if global_position < 0 {
            return Err(BadPosition);
        }
        Ok(Position {
            tx_id: tx.parse().map_err(|_| BadPosition)?,
            global_position,
        })
    }
}

/// An event as stored, with its place in the log and its cart, upcast to the current
/// schema version of its type.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: Position,
    pub stream_id: Uuid,
    pub version: i64,
    pub event_id: Uuid,
    pub project_id: i64,
    pub user_id: String,
    pub cart_id: String,
    /// RFC 3339, UTC: when the writing transaction started.
    pub recorded_at: String,
    pub event: CartEvent,
    /// The trace context of the command that wrote it (its metadata's `traceparent`),
    /// when traces were exported then.
    pub trace: Option<cart_telemetry::TraceParent>,
}

impl RecordedEvent {
    /// The form readers outside the service see (JetStream, export).
    pub fn envelope(&self) -> v1::EventEnvelope {
        let encoded = event::encode(&self.event);
        v1::EventEnvelope {
            event_id: self.event_id.to_string(),
            position: self.position.to_string(),
            stream_id: self.stream_id.to_string(),
            version: self.version,
            project_id: self.project_id,
            user_id: self.user_id.clone(),
            cart_id: self.cart_id.clone(),
            event_type: encoded.event_type.to_owned(),
            schema_version: i32::from(encoded.schema_version),
            recorded_at: self.recorded_at.clone(),
            event: Some(event::envelope_event(&self.event)),
        }
    }
}

/// Which events a reader wants; every field narrows, the default reads everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub project_id: Option<i64>,
    pub stream_id: Option<Uuid>,
    /// Event type names; empty means all.
    pub event_types: Vec<String>,
    /// Only events recorded at or after this time (anything PostgreSQL reads as a
    /// `timestamptz`, e.g. RFC 3339).
    pub since: Option<String>,
}

impl Filter {
    /// Whether the filter lets every event through (the relay's reads).
    pub fn is_everything(&self) -> bool {
        self.project_id.is_none()
            && self.stream_id.is_none()
            && self.event_types.is_empty()
            && self.since.is_none()
    }
}

// The conditions of a `Filter`, bound as $3 to $6 by `bind_filter` ($1, $2: the position).
macro_rules! filter_sql {
    () => {
        "($3::bigint is null or e.project_id = $3) \
         and ($4::uuid is null or e.stream_id = $4) \
         and (cardinality($5::text[]) = 0 or e.event_type = any($5)) \
         and ($6::timestamptz is null or e.recorded_at >= $6::timestamptz) "
    };
}

// The columns every page read returns. Owners (user, cart) are looked up once per page
// and stream rather than joined per row: the per-row join cost more than the rest of the
// read.
macro_rules! select_sql {
    () => {
        "select e.tx_id::text as tx_id, e.global_position, e.stream_id, e.version, e.event_id, \
            e.project_id, \
            to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as recorded_at, \
            e.event_type, e.schema_version, e.payload, \
            e.metadata->>'traceparent' as traceparent, e.metadata->>'tracestate' as tracestate \
         from cart_events e \
         where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) and "
    };
}

// Plans that cannot go stale. PostgreSQL may keep one generic plan per prepared statement
// for the connection's life, made from the table sizes of the first executions; with
// autovacuum off nothing ever invalidates it. Each statement below is shaped so that its
// generic plan is right whatever the sizes were: `tests/feed_plans.rs` prepares them on
// empty tables, fills the tables and checks the plan still in use.

/// The relay's page (no filter): the next `$3` events after `($1, $2)`, read in the order
/// of the `(tx_id, global_position)` index. The filter's "`$n` is null or ..." conditions
/// are left out on purpose: their estimate of one row made the generic plan a bitmap scan
/// of everything after the position, then a sort, which under a backlog reads the whole
/// backlog for every page.
pub const PAGE_SQL: &str = concat!(
    select_sql!(),
    "(e.tx_id, e.global_position) > ($1::text::xid8, $2) \
     order by e.tx_id, e.global_position limit $3"
);

/// The rest of a page's last transaction, after `($1, $2)`.
pub const PAGE_REST_SQL: &str = concat!(
    select_sql!(),
    "e.tx_id = $1::text::xid8 and e.global_position > $2 order by e.global_position"
);

/// The owners of a page's streams: one primary-key probe per stream id. A lateral
/// subquery with `limit` is never flattened into a join, so no plan can turn it into a
/// scan of `cart_streams` (a plain `= any($1)` or a join on `unnest($1)` can be).
pub const OWNERS_SQL: &str = "select o.stream_id, o.user_id, o.cart_id \
     from unnest($1::uuid[]) as ids(id) \
     cross join lateral (select s.stream_id, s.user_id, s.cart_id from cart_streams s \
                         where s.stream_id = ids.id limit 1) o";

// The exporter's filtered page and rest; the filter is bound as $3 to $6.
const FILTERED_PAGE_SQL: &str = concat!(
    select_sql!(),
    filter_sql!(),
    "and (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
     order by e.tx_id, e.global_position limit $7"
);
const FILTERED_REST_SQL: &str = concat!(
    select_sql!(),
    filter_sql!(),
    "and e.tx_id = $1::text::xid8 and e.global_position > $2 order by e.global_position"
);

/// The number of events after `after` that match `filter`, visible or not yet (for a
/// progress bar).
pub async fn count(
    conn: &mut PgConnection,
    after: Position,
    filter: &Filter,
) -> Result<u64, StoreError> {
    let sql = concat!(
        "select count(*) from cart_events e \
         where (e.tx_id, e.global_position) > ($1::text::xid8, $2) and ",
        filter_sql!()
    );
    let n: i64 = bind_filter(sqlx::query(sql), after, filter)
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::from_query)?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Reads the events after `after` in the global order: about `limit` of them, more when
/// the last transaction on the page holds more events (a page never splits one).
///
/// # Errors
/// A database error, an event that cannot be decoded (an unknown type stops the reader
/// here instead of being skipped), or a `since` PostgreSQL cannot read as a time.
pub async fn read_page(
    conn: &mut PgConnection,
    after: Position,
    limit: i64,
    filter: &Filter,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = read_page_without_owners(conn, after, limit, filter).await?;
    fill_owners(conn, &mut events).await?;
    Ok(events)
}

/// [`read_page`] without the owners' lookup: the events' `user_id` and `cart_id` are
/// empty. For readers that need neither (the `sku_activity` projection), one statement
/// a page less.
pub(crate) async fn read_page_without_owners(
    conn: &mut PgConnection,
    after: Position,
    limit: i64,
    filter: &Filter,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let limit = limit.max(1);
    let rows = if filter.is_everything() {
        sqlx::query(PAGE_SQL)
            .bind(after.tx_id.to_string())
            .bind(after.global_position)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
    } else {
        bind_filter(sqlx::query(FILTERED_PAGE_SQL), after, filter)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
    }
    .map_err(StoreError::from_query)?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let mut events = rows.iter().map(recorded).collect::<Result<Vec<_>, _>>()?;
    if let (true, Some(last)) = (full, events.last().map(|e| e.position)) {
        // Finish the last transaction so that its events are delivered together.
        let rows = if filter.is_everything() {
            sqlx::query(PAGE_REST_SQL)
                .bind(last.tx_id.to_string())
                .bind(last.global_position)
                .fetch_all(&mut *conn)
                .await
        } else {
            bind_filter(sqlx::query(FILTERED_REST_SQL), last, filter)
                .fetch_all(&mut *conn)
                .await
        }
        .map_err(StoreError::from_query)?;
        for row in &rows {
            events.push(recorded(row)?);
        }
    }
    Ok(events)
}

/// Sets each event's user and cart from `cart_streams`, one query per page.
async fn fill_owners(
    conn: &mut PgConnection,
    events: &mut [RecordedEvent],
) -> Result<(), StoreError> {
    let mut ids: Vec<Uuid> = events.iter().map(|e| e.stream_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let owners: std::collections::HashMap<Uuid, (String, String)> = sqlx::query_as(OWNERS_SQL)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(id, user, cart)| (id, (user, cart)))
        .collect();
    for event in events {
        // A stream always has its owner row (written with its first event); a log
        // edited by hand may not, and its events still go out, with empty owners.
        if let Some((user, cart)) = owners.get(&event.stream_id) {
            event.user_id.clone_from(user);
            event.cart_id.clone_from(cart);
        }
    }
    Ok(())
}

/// Where a read of the events recorded at or after `since` starts: just before the
/// first such event the gap-safe reader can deliver now, or, when there is none, after
/// the last event it can deliver. Either way the position is below the read barrier
/// (`tx_id < pg_snapshot_xmin`), so no transaction still in flight can commit an event
/// before it, and a resume from it misses nothing.
///
/// A committed event past the barrier is no start: a transaction still in flight with an
/// earlier `tx_id` would then commit behind the start and be skipped for good.
pub async fn position_at(conn: &mut PgConnection, since: &str) -> Result<Position, StoreError> {
    // One statement, so both branches see the same snapshot: an event that becomes
    // visible between two statements could otherwise fall behind the "last" branch.
    let row = sqlx::query(
        "with first_since as ( \
             select tx_id, global_position - 1 as global_position from cart_events \
             where tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
               and recorded_at >= $1::timestamptz \
             order by tx_id, global_position limit 1), \
         last_visible as ( \
             select tx_id, global_position from cart_events \
             where tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             order by tx_id desc, global_position desc limit 1) \
         select tx_id::text as tx_id, global_position from first_since \
         union all \
         select tx_id::text, global_position from last_visible \
         where not exists (select 1 from first_since)",
    )
    .bind(since)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::from_query)?;
    // An empty log: its start.
    row.map_or(Ok(Position::default()), |row| position_of(&row))
}

/// The lag statement of a log table (`cart_events`, `order_events`), bound as [`lag_of`]
/// binds it.
macro_rules! lag_sql {
    ($table:literal) => {
        concat!(
            "select count(*) as n, \
                    coalesce(extract(epoch from now() - min(recorded_at))::float8, 0) as age \
             from (select recorded_at from ",
            $table,
            " where (tx_id, global_position) > ($1::text::xid8, $2) \
               order by tx_id, global_position limit $3) ahead"
        )
    };
}
pub(crate) use lag_sql;

/// The most events [`lag`] counts. Counting a large backlog row by row would take
/// longer the further a reader falls behind; a figure equal to the cap means "at least".
pub const LAG_COUNT_CAP: i64 = 100_000;

/// How far a reader at `after` is behind: events it has not read (including those not
/// yet visible), counted up to [`LAG_COUNT_CAP`], and the age in seconds of the oldest of
/// the events counted (0 when there are none).
pub async fn lag(conn: &mut PgConnection, after: Position) -> Result<(i64, f64), StoreError> {
    lag_capped(conn, after, LAG_COUNT_CAP).await
}

async fn lag_capped(
    conn: &mut PgConnection,
    after: Position,
    cap: i64,
) -> Result<(i64, f64), StoreError> {
    lag_of(conn, LAG_SQL, after, cap).await
}

/// [`lag`]'s statement: counts at most `$3` events after `($1, $2)` in the order of the
/// `(tx_id, global_position)` index, and the age of the oldest of them.
pub const LAG_SQL: &str = lag_sql!("cart_events");

/// The lag of a log, by its [`lag_sql`] statement.
pub(crate) async fn lag_of(
    conn: &mut PgConnection,
    sql: &'static str,
    after: Position,
    cap: i64,
) -> Result<(i64, f64), StoreError> {
    let row = sqlx::query(sql)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(cap.max(1))
        .fetch_one(&mut *conn)
        .await?;
    Ok((row.try_get("n")?, row.try_get("age")?))
}

fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    after: Position,
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

fn position_of(row: &PgRow) -> Result<Position, StoreError> {
    let tx_id: String = row.try_get("tx_id")?;
    Ok(Position {
        // xid8 is an unsigned 64-bit integer, so its text always parses.
        tx_id: tx_id.parse().unwrap_or(u64::MAX),
        global_position: row.try_get("global_position")?,
    })
}

fn recorded(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let stream_id: Uuid = row.try_get("stream_id")?;
    let version: i64 = row.try_get("version")?;
    Ok(RecordedEvent {
        position: position_of(row)?,
        stream_id,
        version,
        event_id: row.try_get("event_id")?,
        project_id: row.try_get("project_id")?,
        user_id: String::new(),
        cart_id: String::new(),
        recorded_at: row.try_get("recorded_at")?,
        event: decode_row(row, stream_id, version)?,
        trace: trace_of(row)?,
    })
}

/// The `traceparent` and `tracestate` columns of a page row.
pub(crate) fn trace_of(row: &PgRow) -> Result<Option<cart_telemetry::TraceParent>, sqlx::Error> {
    let traceparent: Option<String> = row.try_get("traceparent")?;
    Ok(traceparent.map(|traceparent| cart_telemetry::TraceParent {
        traceparent,
        tracestate: row.try_get("tracestate").ok().flatten(),
    }))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use sqlx::PgPool;

    use super::*;
    use crate::export::{self, Format, Start};

    /// A `CartOpened` written by hand in the caller's transaction, recorded `age` ago.
    async fn opened(conn: &mut PgConnection, stream: Uuid, age: &str) {
        sqlx::query(
            "insert into cart_events (stream_id, version, event_id, project_id, event_type, \
                 schema_version, payload, metadata, recorded_at) \
             values ($1, 1, $2, 1, 'CartOpened', 1, '{}', '{}', now() - $3::interval)",
        )
        .bind(stream)
        .bind(Uuid::now_v7())
        .bind(age)
        .execute(conn)
        .await
        .unwrap();
    }

    async fn export_after(pool: &PgPool, after: Position) -> (Vec<Uuid>, export::Exported) {
        let mut out = Vec::new();
        let exported = export::export(
            pool,
            &Start::After(after),
            &Filter::default(),
            Format::JsonLines,
            &mut out,
            |_| {},
        )
        .await
        .unwrap();
        let streams = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["stream_id"].as_str().unwrap().parse().unwrap()
            })
            .collect();
        (streams, exported)
    }

    #[tokio::test]
    async fn a_start_by_time_never_passes_a_transaction_still_in_flight() {
        let (_db, pool) = crate::testing::database().await;
        // A time before both transactions.
        let since: String = sqlx::query_scalar("select now()::text")
            .fetch_one(&pool)
            .await
            .unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        // A takes its position first and stays open; B takes a later one and commits.
        let mut tx_a = pool.begin().await.unwrap();
        opened(&mut tx_a, a, "0 s").await;
        let a_tx: String = sqlx::query_scalar("select pg_current_xact_id()::text")
            .fetch_one(&mut *tx_a)
            .await
            .unwrap();
        let before_a = Position {
            tx_id: a_tx.parse().unwrap(),
            global_position: 0,
        };
        let mut tx_b = pool.begin().await.unwrap();
        opened(&mut tx_b, b, "0 s").await;
        tx_b.commit().await.unwrap();

        // B is committed and recorded after `since`, but a start at B would leave A,
        // still open with an earlier tx_id, behind it for good.
        let mut conn = pool.acquire().await.unwrap();
        let start = position_at(&mut conn, &since).await.unwrap();
        assert!(start < before_a, "start {start} is past A ({before_a})");
        drop(conn);

        // An export by time while A is open delivers nothing past the barrier, and the
        // position it prints to resume from is still before A.
        let mut out = Vec::new();
        let first = export::export(
            &pool,
            &Start::Since(since.clone()),
            &Filter::default(),
            Format::JsonLines,
            &mut out,
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!((first.events, out.len()), (0, 0));
        assert!(first.last < before_a, "printed {} past A", first.last);

        tx_a.commit().await.unwrap();
        // Resumed from the printed position: A and B, once each, in the global order.
        // Another database's transaction may hold the cluster-wide barrier between A and
        // B, so read on from each printed position until both showed.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut seen, mut last) = (Vec::new(), first.last);
        while seen.len() < 2 && Instant::now() < deadline {
            let (streams, exported) = export_after(&pool, last).await;
            if streams.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen.extend(streams);
            last = exported.last;
        }
        assert_eq!(seen, [a, b]);
        assert_eq!(export_after(&pool, last).await.0, Vec::<Uuid>::new());
    }

    #[tokio::test]
    async fn a_start_by_time_starts_before_the_first_visible_event_recorded_since() {
        let (_db, pool) = crate::testing::database().await;
        let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
        let mut conn = pool.acquire().await.unwrap();
        opened(&mut conn, old, "2 hours").await;
        opened(&mut conn, new, "0 s").await;
        let since: String = sqlx::query_scalar("select (now() - interval '1 hour')::text")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Both visible (another database's transaction may hold the barrier a while).
        let mut all = vec![];
        while all.len() < 2 && Instant::now() < deadline {
            all = read_page(&mut conn, Position::default(), 10, &Filter::default())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(all.len(), 2);
        let start = position_at(&mut conn, &since).await.unwrap();
        assert_eq!(
            start,
            Position {
                global_position: all[1].position.global_position - 1,
                ..all[1].position
            }
        );
        // Nothing recorded since: after the last visible event.
        let start = position_at(&mut conn, "2999-01-01T00:00:00Z")
            .await
            .unwrap();
        assert_eq!(start, all[1].position);
    }

    #[tokio::test]
    async fn the_feed_lag_counts_up_to_its_cap_and_ages_by_the_oldest() {
        let (_db, pool) = crate::testing::database().await;
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(lag(&mut conn, Position::default()).await.unwrap(), (0, 0.0));
        opened(&mut conn, Uuid::now_v7(), "1 hour").await;
        for _ in 0..4 {
            opened(&mut conn, Uuid::now_v7(), "0 s").await;
        }
        let (events, seconds) = lag(&mut conn, Position::default()).await.unwrap();
        assert_eq!(events, 5);
        assert!((3599.0..3700.0).contains(&seconds), "{seconds}");
        let (events, _) = lag_capped(&mut conn, Position::default(), 3).await.unwrap();
        assert_eq!(events, 3, "counted past the cap");
    }

    #[test]
    fn positions_print_and_parse() {
        let p = Position {
            tx_id: 812,
            global_position: 40,
        };
        assert_eq!(p.to_string(), "812:40");
        assert_eq!("812:40".parse::<Position>().unwrap(), p);
        for bad in ["", "812", "a:1", "1:-1", "1:2:3", "-1:2"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }
}
