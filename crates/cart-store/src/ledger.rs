//! The command ledger (`processed_commands`): one row per command id a user's request
//! carried, with the fingerprint of what was asked and the reply given, written in the
//! transaction of what the command did. Cart appends and checkouts share it, and the
//! command-id lock ([`crate::locks::command`]), so one id is one command whichever
//! endpoint it came to.

use std::collections::HashSet;

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::store::ProcessedCommand;

/// A command id as the ledger keys it: (project, user, command id).
pub(crate) type LedgerKey<'k> = (i64, &'k str, &'k str);

/// What the ledger says of a command id that came again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The same request again: its first reply.
    Answered(ProcessedCommand),
    /// Another request under a used id.
    IdReused,
}

impl ProcessedCommand {
    /// What this ledger row says to a request with `fingerprint` and its id.
    pub fn replay_for(self, fingerprint: &[u8]) -> Replay {
        if self.fingerprint == fingerprint {
            Replay::Answered(self)
        } else {
            Replay::IdReused
        }
    }
}

/// A command id's ledger row (`$1` project, `$2` user, `$3` command id).
pub const LOOKUP: &str = "select fingerprint, content_type, reply from processed_commands \
     where project_id = $1 and user_id = $2 and command_id = $3";

/// The ledger row of a command id.
pub(crate) async fn lookup(
    conn: &mut PgConnection,
    (project, user, command_id): LedgerKey<'_>,
) -> Result<Option<ProcessedCommand>, sqlx::Error> {
    let row = sqlx::query(LOOKUP)
        .bind(project)
        .bind(user)
        .bind(command_id)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(ProcessedCommand {
            command_id: command_id.to_owned(),
            fingerprint: row.try_get("fingerprint")?,
            content_type: row.try_get("content_type")?,
            reply: row.try_get("reply")?,
        })
    })
    .transpose()
}

/// A ledger row to write: the key, the command, and the stream it wrote to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'k> {
    pub key: LedgerKey<'k>,
    pub command: &'k ProcessedCommand,
    pub stream_id: Uuid,
}

/// Records `entries` in one statement; returns the keys that went in. A key the ledger
/// holds already does not go in: under the command-id lock, that is how a repeated id
/// is told (the primary key as the probe, so no race is hidden).
pub(crate) async fn record<'k>(
    conn: &mut PgConnection,
    entries: &[Entry<'k>],
) -> Result<HashSet<(i64, String, String)>, sqlx::Error> {
    if entries.is_empty() {
        return Ok(HashSet::new());
    }
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "insert into processed_commands (project_id, user_id, command_id, fingerprint, stream_id, content_type, reply) \
         select * from unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::uuid[], $6::text[], $7::bytea[]) \
         on conflict (project_id, user_id, command_id) do nothing \
         returning project_id, user_id, command_id",
    )
    .bind(entries.iter().map(|e| e.key.0).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.key.1).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.key.2).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.command.fingerprint.as_slice()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.stream_id).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.command.content_type.as_str()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.command.reply.as_slice()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// Whether `key` is among the keys [`record`] returned.
pub(crate) fn was_recorded(recorded: &HashSet<(i64, String, String)>, key: LedgerKey<'_>) -> bool {
    recorded.contains(&(key.0, key.1.to_owned(), key.2.to_owned()))
}

/// The ledger rows of the keys (`$1` projects, `$2` users, `$3` command ids), found by
/// one primary-key probe per key and deleted by their row ids: a `delete ... using`
/// join may be planned as a scan of the whole ledger (ARCHITECTURE.md, "Plans that
/// cannot go stale").
pub const REMOVE: &str = "delete from processed_commands where ctid = any(array( \
       select p.ctid from unnest($1::bigint[], $2::text[], $3::text[]) as k(pr, u, c) \
       cross join lateral (select ctid from processed_commands p \
         where p.project_id = k.pr and p.user_id = k.u and p.command_id = k.c offset 0) as p))";

/// Takes back rows this transaction recorded for commands that lost after all.
pub(crate) async fn remove(
    conn: &mut PgConnection,
    keys: &[LedgerKey<'_>],
) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(REMOVE)
        .persistent(crate::statements::prepared(REMOVE))
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}
