//! The writes of an append batch's winners, in one statement (issue 17): their events,
//! the owner rows of the streams they open, and the projection rows. They run after
//! the locks, the versions and the ledger (`append_in`), so nothing here decides
//! anything: one round trip instead of three.

use std::collections::HashMap;

use cart_proto::event;
use sqlx::PgConnection;
use uuid::Uuid;

use super::projection::lines_json;
use super::{project_id, Append, StreamKey};

/// Every event of the batch's winners (`$1`..`$8`), the owners of the streams they open
/// (`$9`..`$12`), and one projection row per stream (`$13`..`$18`), never moving a row
/// back. The parts of a `with` run as one statement, in no set order, so none may read
/// what another writes; none does.
///
/// The projection's `updated_at` (the cart expiry's clock, indexed by
/// `cart_projection_by_age`) moves only when it is over an hour old: an update that
/// leaves every indexed column as it was is a HOT update (no new index entries, the new
/// row on the same page, kept free by the table's fillfactor, migration `0015`), and
/// carts expire after days, so an hour of precision costs nothing (docs/operations.md,
/// "Abandoned carts").
pub const APPEND_WRITES: &str = "with events as ( \
       insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
       select s, v, id, pr, t, sv, p::jsonb, m::jsonb \
       from unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::bigint[], $5::text[], $6::int2[], $7::text[], $8::text[]) \
         as e(s, v, id, pr, t, sv, p, m)), \
     streams as ( \
       insert into cart_streams (stream_id, project_id, user_id, cart_id) \
       select * from unnest($9::uuid[], $10::bigint[], $11::text[], $12::text[]) \
       on conflict (stream_id) do nothing) \
     insert into cart_projection (stream_id, project_id, user_id, cart_id, version, lines) \
     select * from unnest($13::uuid[], $14::bigint[], $15::text[], $16::text[], $17::bigint[], $18::jsonb[]) \
     on conflict (stream_id) do update set version = excluded.version, lines = excluded.lines, \
       updated_at = case when cart_projection.updated_at < now() - interval '1 hour' \
         then now() else cart_projection.updated_at end \
     where cart_projection.version < excluded.version";

/// Writes what the winners of a batch append ([`APPEND_WRITES`]); nothing when none
/// has events.
pub(super) async fn write_winners(
    conn: &mut PgConnection,
    winners: &[(&Append<'_>, i64)],
) -> Result<(), sqlx::Error> {
    let n: usize = winners.iter().map(|(a, _)| a.events.len()).sum();
    if n == 0 {
        return Ok(());
    }
    let mut streams = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut projects = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    for (append, _) in winners {
        let meta = append.metadata.to_string();
        for (i, e) in append.events.iter().enumerate() {
            let encoded = event::encode(e);
            streams.push(append.key.stream_id());
            versions.push(append.expected + 1 + i64::try_from(i).unwrap_or(i64::MAX));
            event_ids.push(Uuid::now_v7());
            projects.push(project_id(append.key.project));
            types.push(encoded.event_type);
            schema_versions.push(encoded.schema_version);
            payloads.push(encoded.payload.to_string());
            metadata.push(meta.clone());
        }
    }
    // The events' primary key already decides who opened a stream; the owner row only
    // records its owner, so a second insert of the same row is harmless.
    let opened: Vec<&StreamKey> = winners
        .iter()
        .filter(|(a, _)| a.expected == 0)
        .map(|(a, _)| a.key)
        .collect();
    // One projection row per stream, the latest: an upsert may not touch a row twice.
    let mut latest: HashMap<Uuid, (&Append<'_>, i64)> = HashMap::new();
    for &(a, version) in winners {
        let entry = latest.entry(a.key.stream_id()).or_insert((a, version));
        if version > entry.1 {
            *entry = (a, version);
        }
    }
    let mut rows: Vec<_> = latest.into_iter().collect();
    rows.sort_by_key(|(id, _)| *id);
    sqlx::query(APPEND_WRITES)
        .bind(&streams)
        .bind(&versions)
        .bind(&event_ids)
        .bind(&projects)
        .bind(&types)
        .bind(&schema_versions)
        .bind(&payloads)
        .bind(&metadata)
        .bind(opened.iter().map(|k| k.stream_id()).collect::<Vec<_>>())
        .bind(
            opened
                .iter()
                .map(|k| project_id(k.project))
                .collect::<Vec<_>>(),
        )
        .bind(opened.iter().map(|k| k.user.as_str()).collect::<Vec<_>>())
        .bind(opened.iter().map(|k| k.cart.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, (a, _))| project_id(a.key.project))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(_, (a, _))| a.key.user.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(_, (a, _))| a.key.cart.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, (_, v))| *v).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, (a, _))| lines_json(a.cart))
                .collect::<Vec<_>>(),
        )
        .execute(conn)
        .await?;
    Ok(())
}
