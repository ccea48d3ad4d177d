//! A relay's checkpoint as JetStream sees it: the position in the log, the highest stream
//! sequence JetStream acknowledged for it and the `Nats-Msg-Id` stored there, and the
//! marks that say where to publish again from when the stream lost its tail
//! (migration 0010; the relay's `heal` module uses them).
//!
//! Everything here runs on the relay's locked session, like the checkpoint itself, so a
//! relay that lost its lock can neither move nor rewind it.

use sqlx::{PgConnection, Row};

use crate::feed::Position;
use crate::StoreError;

/// A relay's checkpoint and what JetStream acknowledged for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelayCheckpoint {
    pub position: Position,
    /// The highest stream sequence acknowledged (stored, not a duplicate) up to
    /// `position`, and the message id JetStream stored there; `None` before the first
    /// publish (or for a checkpoint written before migration 0010).
    pub stored: Option<StoredAt>,
    /// Seconds since the checkpoint last moved (PostgreSQL's clock).
    pub age_secs: f64,
}

/// A message JetStream acknowledged: its stream sequence and `Nats-Msg-Id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAt {
    pub sequence: u64,
    pub msg_id: String,
}

/// The relay's checkpoint, or the start of the log with nothing stored.
pub async fn checkpoint(
    conn: &mut PgConnection,
    name: &str,
) -> Result<RelayCheckpoint, StoreError> {
    let row = sqlx::query(
        "select tx_id::text as tx_id, global_position, stream_sequence, stream_msg_id, \
                extract(epoch from now() - updated_at)::float8 as age \
         from feed_checkpoints where name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(RelayCheckpoint::default());
    };
    let tx_id: String = row.try_get("tx_id")?;
    let sequence: Option<i64> = row.try_get("stream_sequence")?;
    let msg_id: Option<String> = row.try_get("stream_msg_id")?;
    Ok(RelayCheckpoint {
        position: Position {
            tx_id: tx_id.parse().unwrap_or(u64::MAX),
            global_position: row.try_get("global_position")?,
        },
        stored: match (sequence, msg_id) {
            (Some(s), Some(msg_id)) => Some(StoredAt {
                sequence: u64::try_from(s).unwrap_or(0),
                msg_id,
            }),
            _ => None,
        },
        age_secs: row.try_get("age")?,
    })
}

fn sequence_param(stored: Option<&StoredAt>) -> Option<i64> {
    stored.map(|s| i64::try_from(s.sequence).unwrap_or(i64::MAX))
}

/// Writes the checkpoint with what JetStream acknowledged; `forward` only moves it ahead.
async fn write(
    conn: &mut PgConnection,
    name: &str,
    position: Position,
    stored: Option<&StoredAt>,
    forward: bool,
) -> Result<(), StoreError> {
    const UPSERT: &str = "insert into feed_checkpoints (name, tx_id, global_position, stream_sequence, stream_msg_id) \
         values ($1, $2::text::xid8, $3, $4, $5) \
         on conflict (name) do update set tx_id = excluded.tx_id, \
           global_position = excluded.global_position, stream_sequence = excluded.stream_sequence, \
           stream_msg_id = excluded.stream_msg_id, updated_at = now()";
    const FORWARD: &str = " where (feed_checkpoints.tx_id, feed_checkpoints.global_position) \
         < (excluded.tx_id, excluded.global_position)";
    let sql = if forward {
        format!("{UPSERT}{FORWARD}")
    } else {
        UPSERT.to_owned()
    };
    sqlx::query(&sql)
        .bind(name)
        .bind(position.tx_id.to_string())
        .bind(position.global_position)
        .bind(sequence_param(stored))
        .bind(stored.map(|s| s.msg_id.as_str()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves the checkpoint forward (never back) with what JetStream acknowledged; with
/// `mark`, also records a mark of it (the caller rate-limits them).
pub async fn advance(
    conn: &mut PgConnection,
    name: &str,
    position: Position,
    stored: Option<&StoredAt>,
    mark: bool,
) -> Result<(), StoreError> {
    write(conn, name, position, stored, true).await?;
    if let (true, Some(stored)) = (mark, stored) {
        sqlx::query(
            "insert into relay_marks (name, stream_sequence, stream_msg_id, tx_id, global_position) \
             values ($1, $2, $3, $4::text::xid8, $5) on conflict (name, stream_sequence) do nothing",
        )
        .bind(name)
        .bind(sequence_param(Some(stored)))
        .bind(stored.msg_id.as_str())
        .bind(position.tx_id.to_string())
        .bind(position.global_position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Sets the checkpoint back to `position` (what the stream still holds) and forgets the
/// marks above `kept_sequence`: the stream numbers its next messages from there again.
pub async fn rewind(
    conn: &mut PgConnection,
    name: &str,
    position: Position,
    stored: Option<&StoredAt>,
    kept_sequence: u64,
) -> Result<(), StoreError> {
    write(conn, name, position, stored, false).await?;
    sqlx::query("delete from relay_marks where name = $1 and stream_sequence > $2")
        .bind(name)
        .bind(i64::try_from(kept_sequence).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The latest mark at or below `sequence`: every event up to its position was stored at
/// or below its sequence, the last of them at the mark's [`StoredAt`]. `None` when no mark
/// is that low (then only the start of the log is safe).
pub async fn mark_at_or_below(
    conn: &mut PgConnection,
    name: &str,
    sequence: u64,
) -> Result<Option<(Position, StoredAt)>, StoreError> {
    let row = sqlx::query(
        "select tx_id::text as tx_id, global_position, stream_sequence, stream_msg_id from relay_marks \
         where name = $1 and stream_sequence <= $2 order by stream_sequence desc limit 1",
    )
    .bind(name)
    .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let tx_id: String = row.try_get("tx_id")?;
    let sequence: i64 = row.try_get("stream_sequence")?;
    Ok(Some((
        Position {
            tx_id: tx_id.parse().unwrap_or(u64::MAX),
            global_position: row.try_get("global_position")?,
        },
        StoredAt {
            sequence: u64::try_from(sequence).unwrap_or(0),
            msg_id: row.try_get("stream_msg_id")?,
        },
    )))
}

/// Deletes a relay's marks older than `keep_secs`, except the newest, so that one is
/// always left to rewind to.
pub async fn prune_marks(
    conn: &mut PgConnection,
    name: &str,
    keep_secs: f64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "delete from relay_marks where name = $1 \
           and recorded_at < now() - make_interval(secs => $2) \
           and stream_sequence < (select max(stream_sequence) from relay_marks where name = $1)",
    )
    .bind(name)
    .bind(keep_secs)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
