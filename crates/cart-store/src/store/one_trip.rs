//! An append batch in one statement (issue 17): the locks, the versions, the ledger
//! rows, the events, the owners and the projection rows, sent once; outside an
//! explicit transaction the statement is its own transaction, so its commit rides in
//! the same round trip. The stepwise path (`append_in`) took six: `BEGIN`, locks,
//! versions, ledger, writes, `COMMIT`.
//!
//! It decides nothing the stepwise path would decide otherwise, and only takes batches
//! where that is simple to see ([`fits`]): every stream and every command id at most
//! once. Then each append stands alone: it wins when its stream is still at the version
//! it was decided on and its command id (if any) goes into the ledger; it is a conflict
//! when the version moved, a duplicate when the ledger held its id. Group commit forms
//! such batches (one command per cart); a batch that appends to one stream twice still
//! takes the stepwise path, which chains them.

use std::collections::HashSet;

use cart_proto::event;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::projection::lines_json;
use super::{batch_locks, ledger_key, project_id, Append, AppendOutcome, StoreError};

/// The batch (`$1`..`$12`: per append, its stream, the version it was decided on, the
/// version after it, project, user, cart, command id (null without), fingerprint,
/// content type, reply, projection lines and event metadata; `$13`/`$14`: the lock
/// keys in lock order; `$15`..`$20`: per event, its append's ordinal, version, id, type,
/// schema version and payload). Answers each append's ordinal and outcome: 0 written,
/// 1 conflict (the stream moved), 2 duplicate (the ledger held the command id).
///
/// `cart_locked_versions` (migration `0016`) takes the locks, then reads the versions
/// with a snapshot taken after them; this statement's own snapshot predates the locks,
/// so nothing here reads a table but through that function. The writes need no
/// snapshot: the ledger's `on conflict do nothing` and the projection's upsert meet the
/// latest committed row, and the locks keep every other writer of these keys out.
/// Every write reads the appends that won, so none runs before the function has
/// answered. The writes are those of `APPEND_WRITES`, the projection row moving only
/// forward and its `updated_at` only when an hour old (`writes.rs` says why).
pub const APPEND_ONE_TRIP: &str = "with a as ( \
       select * from unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
         $7::text[], $8::bytea[], $9::text[], $10::bytea[], $11::jsonb[], $12::text[]) with ordinality \
         as a(stream_id, expected, next, project_id, user_id, cart_id, command_id, fingerprint, \
           content_type, reply, lines, metadata, i)), \
     hopeful as ( \
       select a.* from a left join cart_locked_versions($13::int4[], $14::int4[], $1::uuid[]) as v \
         on v.locked_stream = a.stream_id \
       where coalesce(v.locked_version, 0) = a.expected), \
     ledger as ( \
       insert into processed_commands (project_id, user_id, command_id, fingerprint, stream_id, content_type, reply) \
       select project_id, user_id, command_id, fingerprint, stream_id, content_type, reply \
       from hopeful where command_id is not null \
       on conflict (project_id, user_id, command_id) do nothing \
       returning stream_id), \
     winners as ( \
       select * from hopeful h \
       where h.command_id is null or h.stream_id in (select stream_id from ledger)), \
     events as ( \
       insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
       select w.stream_id, e.v, e.id, w.project_id, e.t, e.sv, e.p::jsonb, w.metadata::jsonb \
       from unnest($15::int8[], $16::int8[], $17::uuid[], $18::text[], $19::int2[], $20::text[]) \
         as e(i, v, id, t, sv, p) \
       join winners w on w.i = e.i), \
     streams as ( \
       insert into cart_streams (stream_id, project_id, user_id, cart_id) \
       select stream_id, project_id, user_id, cart_id from winners where expected = 0 and next > 0 \
       on conflict (stream_id) do nothing), \
     projection as ( \
       insert into cart_projection (stream_id, project_id, user_id, cart_id, version, lines) \
       select stream_id, project_id, user_id, cart_id, next, lines from winners where next > expected \
       on conflict (stream_id) do update set version = excluded.version, lines = excluded.lines, \
         updated_at = case when cart_projection.updated_at < now() - interval '1 hour' \
           then now() else cart_projection.updated_at end \
       where cart_projection.version < excluded.version) \
     select a.i, case when w.i is not null then 0 when h.i is not null then 2 else 1 end as outcome \
     from a left join hopeful h on h.i = a.i left join winners w on w.i = a.i \
     order by a.i";

/// Whether `appends` can go in one statement: no stream and no command id twice.
pub(super) fn fits(appends: &[Append<'_>]) -> bool {
    let mut streams = HashSet::with_capacity(appends.len());
    let mut ids = HashSet::new();
    appends.iter().all(|a| {
        streams.insert(a.key.stream_id()) && ledger_key(a).is_none_or(|key| ids.insert(key))
    })
}

/// Appends a batch that [`fits`] in one statement on `conn`: outside a transaction,
/// committed when it answers; inside one, the caller's commit. Per append, as
/// [`super::EventStore::append_batch`].
pub(super) async fn append(
    conn: &mut PgConnection,
    appends: &[Append<'_>],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, sqlx::Error> {
    let n = appends.len();
    let next = |a: &Append<'_>| a.expected + i64::try_from(a.events.len()).unwrap_or(i64::MAX);
    let mut event_of = Vec::new();
    let mut versions = Vec::new();
    let mut ids = Vec::new();
    let mut types = Vec::new();
    let mut schema_versions = Vec::new();
    let mut payloads = Vec::new();
    for (ordinal, a) in (1_i64..).zip(appends) {
        for (version, e) in (a.expected + 1..).zip(a.events) {
            let encoded = event::encode(e);
            event_of.push(ordinal);
            versions.push(version);
            ids.push(Uuid::now_v7());
            types.push(encoded.event_type);
            schema_versions.push(encoded.schema_version);
            payloads.push(encoded.payload.to_string());
        }
    }
    // The same locks as the stepwise path, in the same order.
    let keys = batch_locks(appends);
    let rows = sqlx::query(APPEND_ONE_TRIP)
        .bind(
            appends
                .iter()
                .map(|a| a.key.stream_id())
                .collect::<Vec<_>>(),
        )
        .bind(appends.iter().map(|a| a.expected).collect::<Vec<_>>())
        .bind(appends.iter().map(next).collect::<Vec<_>>())
        .bind(
            appends
                .iter()
                .map(|a| project_id(a.key.project))
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| a.key.user.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| a.key.cart.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| a.command.map(|c| c.command_id.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| a.command.map(|c| c.fingerprint.as_slice()))
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| a.command.map(|c| c.content_type.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| a.command.map(|c| c.reply.as_slice()))
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| lines_json(a.cart))
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .map(|a| a.metadata.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(&event_of)
        .bind(&versions)
        .bind(&ids)
        .bind(&types)
        .bind(&schema_versions)
        .bind(&payloads)
        .fetch_all(conn)
        .await?;
    if rows.len() != n {
        return Err(sqlx::Error::Protocol(format!(
            "an append batch of {n} answered {} outcomes",
            rows.len()
        )));
    }
    rows.iter()
        .zip(appends)
        .map(|(row, a)| {
            let outcome: i32 = row.try_get("outcome")?;
            Ok(match outcome {
                0 => Ok(AppendOutcome { version: next(a) }),
                2 => Err(StoreError::DuplicateCommand {
                    command_id: a.command.map(|c| c.command_id.clone()).unwrap_or_default(),
                }),
                _ => Err(StoreError::Conflict {
                    stream_id: a.key.stream_id(),
                    expected: a.expected,
                }),
            })
        })
        .collect()
}
