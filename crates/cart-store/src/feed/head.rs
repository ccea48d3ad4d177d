//! The two logs by name, and where each ends for a reader now (`feed.status`'s heads).

use std::fmt;
use std::str::FromStr;

use sqlx::{PgConnection, Row};

use super::Position;
use crate::StoreError;

/// One of the two event logs: `cart_events` or `order_events`. Each has its own
/// positions; both take `tx_id` from the same transaction ids, which is how a combined
/// export interleaves them (`crate::export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Log {
    Carts,
    Orders,
}

impl Log {
    /// The name on the command line and in tagged positions: `carts`, `orders`.
    pub fn name(self) -> &'static str {
        match self {
            Log::Carts => "carts",
            Log::Orders => "orders",
        }
    }

    /// Within one transaction, order events come before cart events in the combined
    /// order: the transactions that write both (a payment, a free checkout) record the
    /// order's event and then clear its cart because of it.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Log::Orders => 0,
            Log::Carts => 1,
        }
    }
}

impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not `carts` or `orders`.
#[derive(Debug, thiserror::Error)]
#[error("a log is carts or orders")]
pub struct BadLog;

impl FromStr for Log {
    type Err = BadLog;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "carts" => Ok(Log::Carts),
            "orders" => Ok(Log::Orders),
            _ => Err(BadLog),
        }
    }
}

/// The newest event below the read barrier, in the order of the `(tx_id,
/// global_position)` index read backwards: one index probe. The order is by the table's
/// columns (`e.`), not by the text the select names `tx_id`, which no index has.
macro_rules! head_sql {
    ($table:literal) => {
        concat!(
            "select e.tx_id::text as tx_id, e.global_position from ",
            $table,
            " e where e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
              order by e.tx_id desc, e.global_position desc limit 1"
        )
    };
}

/// [`head`]'s statement for the cart log.
pub const HEAD_SQL: &str = head_sql!("cart_events");
/// [`head`]'s statement for the order log.
pub const ORDER_HEAD_SQL: &str = head_sql!("order_events");

/// The position of the newest event of `log` a reader can see now (below the read
/// barrier): where an export started now would end. The start of the log (`0:0`) when
/// it has none.
///
/// # Errors
/// Database failures.
pub async fn head(conn: &mut PgConnection, log: Log) -> Result<Position, StoreError> {
    let sql = match log {
        Log::Carts => HEAD_SQL,
        Log::Orders => ORDER_HEAD_SQL,
    };
    let Some(row) = sqlx::query(sql).fetch_optional(&mut *conn).await? else {
        return Ok(Position::default());
    };
    let tx: String = row.try_get("tx_id")?;
    Ok(Position {
        // xid8 is an unsigned 64-bit integer, so its text always parses.
        tx_id: tx.parse().unwrap_or(u64::MAX),
        global_position: row.try_get("global_position")?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use uuid::Uuid;

    use super::*;

    #[test]
    fn logs_print_and_parse() {
        for log in [Log::Carts, Log::Orders] {
            assert_eq!(log.name().parse::<Log>().unwrap(), log);
        }
        assert!("all".parse::<Log>().is_err());
    }

    #[tokio::test]
    async fn each_log_has_its_own_head() {
        let (_db, pool) = crate::testing::database().await;
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(
            head(&mut conn, Log::Carts).await.unwrap(),
            Position::default()
        );
        assert_eq!(
            head(&mut conn, Log::Orders).await.unwrap(),
            Position::default()
        );
        for _ in 0..2 {
            sqlx::query(
                "insert into cart_events (stream_id, version, event_id, project_id, \
                     event_type, schema_version, payload, metadata) \
                 values ($1, 1, $2, 1, 'CartOpened', 1, '{}', '{}')",
            )
            .bind(Uuid::now_v7())
            .bind(Uuid::now_v7())
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        let newest: (String, i64) = sqlx::query_as(
            "select tx_id::text, global_position from cart_events \
             order by tx_id desc, global_position desc limit 1",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let newest = Position {
            tx_id: newest.0.parse().unwrap(),
            global_position: newest.1,
        };
        // Another database's transaction may hold the cluster-wide barrier a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        while head(&mut conn, Log::Carts).await.unwrap() != newest && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(head(&mut conn, Log::Carts).await.unwrap(), newest);
        assert_eq!(
            head(&mut conn, Log::Orders).await.unwrap(),
            Position::default()
        );
    }
}
