//! The event store proper: load, append (with the command ledger's rows and the
//! projection's), projection reads, time travel and the global-order reader.

mod one_trip;
mod projection;
mod writes;

use std::collections::{HashMap, HashSet};

use cart_domain::{Cart, CartEvent, CartId, ProjectId, UserId};
use cart_proto::event;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::feed::{self, Filter, Position, RecordedEvent};
use crate::ledger::{self, LedgerKey};
use crate::locks;
pub use crate::StoreError;
pub use one_trip::APPEND_ONE_TRIP;
use projection::cart_from_lines;
pub(crate) use projection::lines_json;
pub use writes::APPEND_WRITES;

// Batches of keys are `unnest`ed and each key is looked up in a `lateral` subquery the
// planner cannot turn into a join (`offset 0`, `limit`): the only plan for a key is then
// a probe of the primary key, in a generic plan made on an empty table as in a custom
// plan of 256 keys on a table without statistics. `= any($1)` and a plain join leave the
// planner free to scan the whole table, and it does: a custom plan of a full batch on
// 10,000 carts seq-scanned `cart_projection` (issue 16), and the generic plan of the
// versions hashed all of `cart_events`. ARCHITECTURE.md, "Plans that cannot go stale".

/// The projected carts of a batch of gets (`$1`: their stream ids, without repeats;
/// `$2`: the version each caller already has rendered, or null). A cart still at the
/// version its caller knows comes back without its lines (null): neither sent nor
/// decoded, the caller's copy serves.
pub const GROUPED_GET: &str = "select s.id as stream_id, p.version, \
       case when p.version = s.known then null else p.lines end as lines \
     from unnest($1::uuid[], $2::int8[]) as s(id, known) \
     cross join lateral (select version, lines from cart_projection p \
       where p.stream_id = s.id offset 0) as p";

/// A cart's whole stream, to fold (`$1`: the stream id).
pub const LOAD_STREAM: &str =
    "select version, event_type, schema_version, payload from cart_events \
     where stream_id = $1 order by version";

/// The latest version of each stream of an append batch that has one (`$1`: the ids).
pub const CURRENT_VERSIONS: &str = "select s.id, v.version from unnest($1::uuid[]) as s(id) \
     cross join lateral (select e.version from cart_events e where e.stream_id = s.id \
       order by e.version desc limit 1) as v";

/// A cart's identity: one user's cart in one project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub project: ProjectId,
    pub user: UserId,
    pub cart: CartId,
    // Invariant: derived from the three fields above, once, by `new`.
    stream_id: Uuid,
}

// A fixed namespace so that stream ids are the same on every instance and every run.
pub(crate) const STREAM_NAMESPACE: Uuid =
    Uuid::from_u128(0x6a0f_2c1e_9b7d_4c3a_8e51_0d2f_7b94_c615);

impl StreamKey {
    /// Derives the stream id from the key, so that no lookup is needed to find a stream.
    /// Stream ids are stored in the log: this derivation must never change.
    pub fn new(project: ProjectId, user: UserId, cart: CartId) -> Self {
        // Lengths go first so that no two keys share a name ("a" + "bc" vs "ab" + "c").
        let name = format!(
            "{project}:{}:{user}:{}:{cart}",
            user.as_str().len(),
            cart.as_str().len()
        );
        let stream_id = Uuid::new_v5(&STREAM_NAMESPACE, name.as_bytes());
        Self {
            project,
            user,
            cart,
            stream_id,
        }
    }

    pub fn stream_id(&self) -> Uuid {
        self.stream_id
    }
}

/// A cart folded from its log, with the version the next append must expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub cart: Cart,
    pub version: i64,
}

/// A projection read's answer to a caller that knew a version of the cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projected {
    /// The cart is at another version than the one known: here it is.
    Cart(Loaded),
    /// The cart is still at the version the caller knows.
    Unchanged { version: i64 },
}

/// A command's ledger entry, to be written with its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedCommand {
    pub command_id: String,
    /// A digest of what was asked (endpoint, encoding, body); the same id with another
    /// fingerprint is a different command and is refused.
    pub fingerprint: Vec<u8>,
    pub content_type: String,
    pub reply: Vec<u8>,
}

/// Everything one accepted command writes.
#[derive(Debug)]
pub struct Append<'a> {
    pub key: &'a StreamKey,
    /// The version the decision was made on.
    pub expected: i64,
    pub events: &'a [CartEvent],
    /// The cart after the events, for the projection.
    pub cart: &'a Cart,
    pub command: Option<&'a ProcessedCommand>,
    /// Correlation data stored with each event (never used by the fold).
    pub metadata: serde_json::Value,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub version: i64,
}

/// The append-only store of cart events.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Folds a cart's whole stream. A cart with no events is the empty, unopened cart at
    /// version 0.
    #[tracing::instrument(skip_all, fields(stream_id = %key.stream_id()))]
    pub async fn load(&self, key: &StreamKey) -> Result<Loaded, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_in(&mut conn, key).await
    }

    /// The ledger entry of a command id, if that command was answered OK before.
    pub async fn processed(
        &self,
        project: ProjectId,
        user: &UserId,
        command_id: &str,
    ) -> Result<Option<ProcessedCommand>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let key = (project_id(project), user.as_str(), command_id);
        Ok(ledger::lookup(&mut conn, key).await?)
    }

    /// Appends a command's events, its projection row and its ledger entry in one
    /// transaction, and returns only after the commit is durable.
    ///
    /// # Errors
    /// `Conflict` when the stream moved past `expected`; `DuplicateCommand` when the same
    /// command id committed concurrently; `Database` otherwise.
    #[tracing::instrument(skip_all, fields(stream_id = %append.key.stream_id(), expected = append.expected, n_events = append.events.len()))]
    pub async fn append(&self, append: Append<'_>) -> Result<AppendOutcome, StoreError> {
        let mut outcomes = self.append_batch(std::slice::from_ref(&append)).await?;
        outcomes
            .pop()
            .unwrap_or(Err(StoreError::Database(sqlx::Error::Protocol(
                "an append batch answered nothing".to_owned(),
            ))))
    }

    /// Appends several commands in one transaction (group commit: one fsync for all),
    /// each still all or nothing on its own. A command that loses its version guard or
    /// repeats a recorded command id gets its own error and leaves no row behind, and
    /// its batch-mates commit regardless. The outer error is the transaction's: then
    /// nothing of the batch was written.
    ///
    /// # Errors
    /// `Database` when the transaction itself fails; per command, as [`Self::append`].
    #[tracing::instrument(skip_all, fields(n_commands = appends.len()))]
    pub async fn append_batch(
        &self,
        appends: &[Append<'_>],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        // Batches take their keys in key order, so they wait for each other rather than
        // deadlock; another writer can still meet a batch in another order (a free
        // checkout holds its command id, then wants the cart's stream). PostgreSQL
        // breaks that by aborting one, and nothing of an aborted batch was written.
        locks::retry_on_deadlock("append batch", || self.try_append_batch(appends)).await
    }

    async fn try_append_batch(
        &self,
        appends: &[Append<'_>],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        if appends.is_empty() {
            return Ok(Vec::new());
        }
        if one_trip::fits(appends) {
            // One statement, its own transaction: committed when it answers.
            let mut conn = self.pool.acquire().await?;
            return Ok(one_trip::append(&mut conn, appends).await?);
        }
        let mut tx = self.pool.begin().await?;
        let outcomes = append_in(&mut tx, appends).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// The projected cart and its version, or None when the cart has no events.
    pub async fn projection(&self, key: &StreamKey) -> Result<Option<Loaded>, StoreError> {
        let stream_id = key.stream_id();
        let found = self
            .projections(&[(stream_id, None)])
            .await?
            .remove(&stream_id);
        Ok(match found.transpose()? {
            Some(Projected::Cart(loaded)) => Some(loaded),
            Some(Projected::Unchanged { .. }) | None => None,
        })
    }

    /// The projected carts among `reads` (stream id, version the caller knows), in one
    /// query; a cart without events is absent, one still at its known version is
    /// `Unchanged`. A row that cannot be decoded is that cart's error alone.
    pub async fn projections(
        &self,
        reads: &[(Uuid, Option<i64>)],
    ) -> Result<HashMap<Uuid, Result<Projected, StoreError>>, StoreError> {
        grouped_get(&self.pool, reads, false).await
    }

    /// The pool the store runs on.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// [`EventStore::projections`] on `pool`: `prepared` only on a probe session
/// (`crate::probe`), where the plan is a probe per key whatever it was made on;
/// elsewhere the statement is planned for each batch.
pub(crate) async fn grouped_get(
    pool: &PgPool,
    reads: &[(Uuid, Option<i64>)],
    prepared: bool,
) -> Result<HashMap<Uuid, Result<Projected, StoreError>>, StoreError> {
    // Each key is a probe: a cart asked twice in a batch is probed once, with its
    // lines unless both callers knew the same version.
    let mut sorted = reads.to_vec();
    sorted.sort_unstable();
    let mut ids: Vec<Uuid> = Vec::with_capacity(sorted.len());
    let mut known: Vec<Option<i64>> = Vec::with_capacity(sorted.len());
    for (id, version) in sorted {
        if ids.last() == Some(&id) {
            if let Some(last) = known.last_mut() {
                if *last != version {
                    *last = None;
                }
            }
            continue;
        }
        ids.push(id);
        known.push(version);
    }
    let rows = sqlx::query(GROUPED_GET)
        .persistent(prepared)
        .bind(&ids)
        .bind(&known)
        .fetch_all(pool)
        .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let stream_id: Uuid = row.try_get("stream_id")?;
        let version: i64 = row.try_get("version")?;
        let Some(lines) = row.try_get::<Option<serde_json::Value>, _>("lines")? else {
            found.insert(stream_id, Ok(Projected::Unchanged { version }));
            continue;
        };
        let loaded = cart_from_lines(&lines)
            .map(|cart| Projected::Cart(Loaded { cart, version }))
            .map_err(|source| StoreError::Decode {
                stream_id,
                version,
                source,
            });
        found.insert(stream_id, loaded);
    }
    Ok(found)
}

impl EventStore {
    /// Reads about `limit` events after `after` in the global order (see [`crate::feed`]).
    pub async fn read_all(
        &self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        feed::read_page(&mut conn, after, limit, &Filter::default()).await
    }

    /// The cart as it was after `version`, or after the last event recorded at or before
    /// a time (time travel). None when the cart had no events by then.
    ///
    /// # Errors
    /// `Invalid` for a time PostgreSQL cannot read.
    pub async fn load_as_of(
        &self,
        key: &StreamKey,
        as_of: &AsOf,
    ) -> Result<Option<Loaded>, StoreError> {
        let stream_id = key.stream_id();
        // A prefix of the stream by version, so the fold is one the cart really had.
        let (version, time) = match as_of {
            AsOf::Version(v) => (Some(*v), None),
            AsOf::Time(t) => (None, Some(t.as_str())),
        };
        let rows = sqlx::query(
            "select version, event_type, schema_version, payload from cart_events \
             where stream_id = $1 and version <= coalesce($2, \
               (select max(version) from cart_events where stream_id = $1 and recorded_at <= $3::timestamptz), 0) \
             order by version",
        )
        .bind(stream_id)
        .bind(version)
        .bind(time)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from_query)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut cart = Cart::default();
        let mut version = 0;
        for row in rows {
            version = row.try_get("version")?;
            cart = cart_domain::apply(cart, &decode_row(&row, stream_id, version)?);
        }
        Ok(Some(Loaded { cart, version }))
    }
}

/// [`EventStore::load`] on the caller's connection or transaction.
pub async fn load_in(conn: &mut PgConnection, key: &StreamKey) -> Result<Loaded, StoreError> {
    let stream_id = key.stream_id();
    let rows = sqlx::query(LOAD_STREAM)
        .bind(stream_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut cart = Cart::default();
    let mut version = 0;
    for row in rows {
        version = row.try_get("version")?;
        let decoded = decode_row(&row, stream_id, version)?;
        cart = cart_domain::apply(cart, &decoded);
    }
    Ok(Loaded { cart, version })
}

/// [`EventStore::append_batch`] inside a transaction the caller owns (the order store
/// clears a bought cart in the payment's transaction). Takes the same locks; the caller
/// commits.
///
/// # Errors
/// As [`EventStore::append_batch`], without the deadlock retry.
pub async fn append_in(
    conn: &mut PgConnection,
    appends: &[Append<'_>],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    if one_trip::fits(appends) {
        return Ok(one_trip::append(conn, appends).await?);
    }
    // Lock every stream and command id of the batch, then check versions and the
    // ledger: under these locks nobody else can append to the streams or record the
    // ids, so the plain event insert below cannot meet a unique violation. One that
    // does anyway (a writer that skipped the locks) fails the whole transaction: a
    // lost race is never turned into a silent skip.
    lock_keys(&mut *conn, appends).await?;
    let versions = current_versions(&mut *conn, appends).await?;
    // The ledger rows go in first, and a command id recorded before is told by its row
    // not going in (the primary key as the probe, under the lock: no race is hidden).
    let hopeful = judge(appends, &versions, &HashSet::new());
    let (recorded, duplicates) = insert_commands(&mut *conn, appends, &hopeful).await?;
    let outcomes = if duplicates.is_empty() {
        hopeful
    } else {
        // A retry in the batch: judge again without it. A later append of its stream
        // in the same batch was decided on the version it would have written.
        let outcomes = judge(appends, &versions, &duplicates);
        let lost: Vec<usize> = recorded
            .into_iter()
            .filter(|&i| outcomes[i].is_err())
            .collect();
        remove_commands(&mut *conn, appends, &lost).await?;
        outcomes
    };
    let winners: Vec<(&Append<'_>, i64)> = appends
        .iter()
        .zip(&outcomes)
        .filter_map(|(a, o)| o.as_ref().ok().map(|o| (a, o.version)))
        .filter(|(a, _)| !a.events.is_empty())
        .collect();
    writes::write_winners(&mut *conn, &winners).await?;
    Ok(outcomes)
}

/// A point in a cart's past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsOf {
    /// After the event with this version.
    Version(i64),
    /// After the last event recorded at or before this time (RFC 3339 or anything
    /// PostgreSQL reads as a `timestamptz`).
    Time(String),
}

/// Decodes the event columns of a stored row; a failure names the stream and version.
pub(crate) fn decode_row(
    row: &PgRow,
    stream_id: Uuid,
    version: i64,
) -> Result<CartEvent, StoreError> {
    event::decode(
        row.try_get("event_type")?,
        row.try_get("schema_version")?,
        row.try_get("payload")?,
    )
    .map_err(|source| StoreError::Decode {
        stream_id,
        version,
        source,
    })
}

/// A project id as the tables store it.
pub(crate) fn project_id(project: ProjectId) -> i64 {
    // ProjectId::parse refuses values above i64::MAX, so this never saturates.
    i64::try_from(project.get()).unwrap_or(i64::MAX)
}

fn ledger_key<'k>(append: &Append<'k>) -> Option<LedgerKey<'k>> {
    let command = append.command?;
    Some((
        project_id(append.key.project),
        append.key.user.as_str(),
        command.command_id.as_str(),
    ))
}

/// The advisory locks of a batch: its streams and command ids, in key order so that
/// two batches that share keys wait for each other instead of deadlocking.
fn batch_locks(appends: &[Append<'_>]) -> Vec<locks::LockKey> {
    locks::in_key_order(appends.iter().flat_map(|append| {
        let command = ledger_key(append).map(|(p, u, c)| locks::command(p, u, c));
        std::iter::once(locks::stream(append.key)).chain(command)
    }))
}

/// Takes the transaction's advisory locks on the batch ([`batch_locks`]).
async fn lock_keys(conn: &mut PgConnection, appends: &[Append<'_>]) -> Result<(), sqlx::Error> {
    locks::take(conn, &batch_locks(appends)).await
}

/// The latest version of each of the batch's streams that has one.
async fn current_versions(
    conn: &mut PgConnection,
    appends: &[Append<'_>],
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    let mut ids: Vec<Uuid> = appends.iter().map(|a| a.key.stream_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(CURRENT_VERSIONS)
        .persistent(crate::statements::prepared(CURRENT_VERSIONS))
        .bind(&ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Each append's outcome, in batch order, so that two appends of one stream chain up:
/// the version it was decided on must be the stream's version by then, and its command
/// id must be neither in `duplicates` nor used by an earlier append of the batch.
fn judge(
    appends: &[Append<'_>],
    versions: &HashMap<Uuid, i64>,
    duplicates: &HashSet<usize>,
) -> Vec<Result<AppendOutcome, StoreError>> {
    let mut versions = versions.clone();
    let mut ids: HashSet<LedgerKey<'_>> = HashSet::new();
    appends
        .iter()
        .enumerate()
        .map(|(i, append)| {
            let stream_id = append.key.stream_id();
            let key = ledger_key(append);
            if duplicates.contains(&i) || key.is_some_and(|k| ids.contains(&k)) {
                return Err(StoreError::DuplicateCommand {
                    command_id: key.map(|k| k.2.to_owned()).unwrap_or_default(),
                });
            }
            if versions.get(&stream_id).copied().unwrap_or(0) != append.expected {
                return Err(StoreError::Conflict {
                    stream_id,
                    expected: append.expected,
                });
            }
            let version = append.expected + i64::try_from(append.events.len()).unwrap_or(i64::MAX);
            versions.insert(stream_id, version);
            ids.extend(key);
            Ok(AppendOutcome { version })
        })
        .collect()
}

/// Records the ledger rows of the appends judged OK; returns the indexes recorded and
/// those whose command id the ledger held already. Being the transaction's first
/// write, this takes its xid, right after the locks, so the global order stays close
/// to commit order.
async fn insert_commands(
    conn: &mut PgConnection,
    appends: &[Append<'_>],
    outcomes: &[Result<AppendOutcome, StoreError>],
) -> Result<(Vec<usize>, HashSet<usize>), sqlx::Error> {
    let rows: Vec<(usize, ledger::Entry<'_>)> = appends
        .iter()
        .enumerate()
        .filter(|(i, _)| outcomes[*i].is_ok())
        .filter_map(|(i, a)| {
            let entry = ledger::Entry {
                key: ledger_key(a)?,
                command: a.command?,
                stream_id: a.key.stream_id(),
            };
            Some((i, entry))
        })
        .collect();
    let entries: Vec<ledger::Entry<'_>> = rows.iter().map(|(_, e)| *e).collect();
    let inserted = ledger::record(conn, &entries).await?;
    let mut recorded = Vec::new();
    let mut duplicates = HashSet::new();
    for (i, entry) in &rows {
        if ledger::was_recorded(&inserted, entry.key) {
            recorded.push(*i);
        } else {
            duplicates.insert(*i);
        }
    }
    Ok((recorded, duplicates))
}

/// Takes back ledger rows this transaction wrote for appends that lost after all.
async fn remove_commands(
    conn: &mut PgConnection,
    appends: &[Append<'_>],
    lost: &[usize],
) -> Result<(), sqlx::Error> {
    let keys: Vec<LedgerKey<'_>> = lost
        .iter()
        .filter_map(|&i| ledger_key(&appends[i]))
        .collect();
    ledger::remove(conn, &keys).await
}

#[cfg(test)]
mod tests;
