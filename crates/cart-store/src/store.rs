//! The event store proper: load, append, the command ledger, the projection and the
//! global-order reader.

use std::collections::{HashMap, HashSet};

use cart_domain::{Cart, CartEvent, CartId, ProjectId, UserId};
use cart_proto::event::{self, DecodeError};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::feed::{self, Filter, Position, RecordedEvent};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first; reload and decide again.
    #[error("cart stream {stream_id} changed concurrently: expected version {expected}")]
    Conflict { stream_id: Uuid, expected: i64 },
    /// A concurrent attempt with the same command id committed first.
    #[error("command {command_id} was recorded concurrently")]
    DuplicateCommand { command_id: String },
    #[error("cannot decode stored event at version {version} of stream {stream_id}")]
    Decode {
        stream_id: Uuid,
        version: i64,
        #[source]
        source: DecodeError,
    },
    #[error("the database does not flush commits: {setting} = {value}")]
    NotDurable {
        setting: &'static str,
        value: String,
    },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value from the caller that PostgreSQL refused, such as a malformed time.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Another projection rebuild holds the rebuild lock.
    #[error("another projection rebuild is running")]
    RebuildRunning,
    /// A failure shared by a batch of commands or reads (group commit): for a command,
    /// the shared transaction failed and nothing of it was written.
    #[error("a batch of the store failed")]
    Batch(#[source] std::sync::Arc<StoreError>),
}

impl StoreError {
    /// A query error, with data exceptions (SQLSTATE class 22, e.g. a time PostgreSQL
    /// cannot read) reported as the caller's invalid input.
    pub(crate) fn from_query(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            if db.code().is_some_and(|code| code.starts_with("22")) {
                return StoreError::Invalid(db.message().to_owned());
            }
        }
        StoreError::Database(error)
    }

    /// Whether the database could not be reached or answered in time.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Batch(cause) => cause.is_unavailable(),
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_),
            ) => true,
            // Connection exceptions (08), a server shutting down or still starting (57P0x)
            // and a statement timeout (57014) are passing states, not faults of the request.
            StoreError::Database(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
            _ => false,
        }
    }
}

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
const STREAM_NAMESPACE: Uuid = Uuid::from_u128(0x6a0f_2c1e_9b7d_4c3a_8e51_0d2f_7b94_c615);

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

/// A command's ledger entry, to be written with its events.
#[derive(Debug, Clone)]
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
        let stream_id = key.stream_id();
        let rows = sqlx::query(
            "select version, event_type, schema_version, payload from cart_events \
             where stream_id = $1 order by version",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
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

    /// The ledger entry of a command id, if that command was answered OK before.
    pub async fn processed(
        &self,
        project: ProjectId,
        user: &UserId,
        command_id: &str,
    ) -> Result<Option<ProcessedCommand>, StoreError> {
        let row = sqlx::query(
            "select fingerprint, content_type, reply from processed_commands \
             where project_id = $1 and user_id = $2 and command_id = $3",
        )
        .bind(project_id(project))
        .bind(user.as_str())
        .bind(command_id)
        .fetch_optional(&self.pool)
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

    /// Appends a command's events, its projection row and its ledger entry in one
    /// transaction, and returns only after the commit is durable.
    ///
    /// # Errors
    /// `Conflict` when the stream moved past `expected`; `DuplicateCommand` when the same
    /// command id committed concurrently; `Database` otherwise.
    #[tracing::instrument(skip_all, fields(stream_id = %append.key.stream_id(), expected = append.expected, n_events = append.events.len()))]
    pub async fn append(&self, append: Append<'_>) -> Result<AppendOutcome, StoreError> {
        let mut outcomes = self.append_batch(std::slice::from_ref(&append)).await?;
        outcomes.pop().unwrap_or(Err(StoreError::Invalid(
            "an append batch answered nothing".to_owned(),
        )))
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
        // Two batches of different instances that lock the same keys in another order
        // deadlock; PostgreSQL aborts one, and running it again is safe: nothing of it
        // was written.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_append_batch(appends).await {
                Err(StoreError::Database(sqlx::Error::Database(db)))
                    if attempt < 3 && db.code().as_deref() == Some("40P01") =>
                {
                    tracing::debug!(attempt, "append batch deadlocked; running it again");
                }
                other => return other,
            }
        }
    }

    async fn try_append_batch(
        &self,
        appends: &[Append<'_>],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        let mut outcomes: Vec<Result<AppendOutcome, StoreError>> = appends
            .iter()
            .map(|a| {
                Ok(AppendOutcome {
                    version: a.expected + i64::try_from(a.events.len()).unwrap_or(i64::MAX),
                })
            })
            .collect();
        if appends.is_empty() {
            return Ok(outcomes);
        }
        let mut tx = self.pool.begin().await?;
        // The event insert is the transaction's first write, so its xid is taken here
        // and the global order stays close to commit order.
        let written = insert_events(&mut tx, appends).await?;
        let mut doomed: Vec<Uuid> = Vec::new();
        for (i, append) in appends.iter().enumerate() {
            let ids = &written.planned[i];
            if ids.iter().any(|id| !written.inserted.contains(id)) {
                outcomes[i] = Err(StoreError::Conflict {
                    stream_id: append.key.stream_id(),
                    expected: append.expected,
                });
                doomed.extend(ids.iter().filter(|id| written.inserted.contains(id)));
            }
        }
        let recorded = insert_commands(&mut tx, appends, &outcomes).await?;
        for (i, append) in appends.iter().enumerate() {
            if let (Ok(_), Some(command)) = (&outcomes[i], append.command) {
                if !recorded.contains(&i) {
                    outcomes[i] = Err(StoreError::DuplicateCommand {
                        command_id: command.command_id.clone(),
                    });
                    doomed.extend(&written.planned[i]);
                }
            }
        }
        if !doomed.is_empty() {
            // A losing command's events that did land (a later version than the one that
            // clashed) go again, inside the transaction: nobody ever sees them.
            sqlx::query("delete from cart_events where event_id = any($1)")
                .bind(&doomed)
                .execute(&mut *tx)
                .await?;
        }
        let winners: Vec<(&Append<'_>, i64)> = appends
            .iter()
            .zip(&outcomes)
            .filter(|(a, _)| !a.events.is_empty())
            .filter_map(|(a, o)| o.as_ref().ok().map(|o| (a, o.version)))
            .collect();
        insert_streams(&mut tx, &winners).await?;
        upsert_projections(&mut tx, &winners).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// The projected cart and its version, or None when the cart has no events.
    pub async fn projection(&self, key: &StreamKey) -> Result<Option<Loaded>, StoreError> {
        let stream_id = key.stream_id();
        self.projections(&[stream_id])
            .await?
            .remove(&stream_id)
            .transpose()
    }

    /// The projected carts among `stream_ids`, in one query; a cart without events is
    /// absent. A row that cannot be decoded is that cart's error alone.
    pub async fn projections(
        &self,
        stream_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Result<Loaded, StoreError>>, StoreError> {
        let rows = sqlx::query(
            "select stream_id, version, lines from cart_projection where stream_id = any($1)",
        )
        .bind(stream_ids)
        .fetch_all(&self.pool)
        .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let stream_id: Uuid = row.try_get("stream_id")?;
            let version: i64 = row.try_get("version")?;
            let lines: serde_json::Value = row.try_get("lines")?;
            let loaded = cart_from_lines(&lines)
                .map(|cart| Loaded { cart, version })
                .map_err(|source| StoreError::Decode {
                    stream_id,
                    version,
                    source,
                });
            found.insert(stream_id, loaded);
        }
        Ok(found)
    }

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

fn project_id(project: ProjectId) -> i64 {
    // ProjectId::parse refuses values above i64::MAX, so this never saturates.
    i64::try_from(project.get()).unwrap_or(i64::MAX)
}

/// The event ids each append was given, and those that landed.
struct Written {
    planned: Vec<Vec<Uuid>>,
    inserted: HashSet<Uuid>,
}

/// One statement for every event of the batch. A row whose `(stream_id, version)` is
/// taken is skipped rather than failing the statement, so one command's lost race does
/// not abort its batch-mates; the caller tells who lost from the ids that came back.
async fn insert_events(
    conn: &mut PgConnection,
    appends: &[Append<'_>],
) -> Result<Written, sqlx::Error> {
    let n: usize = appends.iter().map(|a| a.events.len()).sum();
    let mut rows = Vec::with_capacity(n);
    let mut planned = Vec::with_capacity(appends.len());
    for append in appends {
        let stream_id = append.key.stream_id();
        let metadata = append.metadata.to_string();
        let mut ids = Vec::with_capacity(append.events.len());
        for (i, e) in append.events.iter().enumerate() {
            let encoded = event::encode(e);
            let id = Uuid::now_v7();
            ids.push(id);
            rows.push((
                stream_id,
                append.expected + 1 + i64::try_from(i).unwrap_or(i64::MAX),
                id,
                project_id(append.key.project),
                encoded.event_type,
                encoded.schema_version,
                encoded.payload.to_string(),
                metadata.clone(),
            ));
        }
        planned.push(ids);
    }
    // Rows go in key order, so two batches that touch the same streams wait for each
    // other instead of deadlocking. Within a stream, versions stay ascending, so the
    // global order of a cart's events follows its versions.
    rows.sort_by_key(|r| (r.0, r.1));
    let mut streams = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut projects = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    for (stream, version, id, project, ty, sv, payload, meta) in rows {
        streams.push(stream);
        versions.push(version);
        event_ids.push(id);
        projects.push(project);
        types.push(ty);
        schema_versions.push(sv);
        payloads.push(payload);
        metadata.push(meta);
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
         select s, v, id, pr, t, sv, p::jsonb, m::jsonb \
         from unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::bigint[], $5::text[], $6::int2[], $7::text[], $8::text[]) \
           with ordinality as e(s, v, id, pr, t, sv, p, m, n) \
         order by n \
         on conflict (stream_id, version) do nothing \
         returning event_id",
    )
    .bind(&streams)
    .bind(&versions)
    .bind(&event_ids)
    .bind(&projects)
    .bind(&types)
    .bind(&schema_versions)
    .bind(&payloads)
    .bind(&metadata)
    .fetch_all(conn)
    .await?;
    Ok(Written {
        planned,
        inserted: inserted.into_iter().collect(),
    })
}

/// Records the ledger rows of the commands still standing; returns the indexes of those
/// recorded. A command id recorded before (by a retry that raced this one, here or in
/// another instance) is not recorded again.
async fn insert_commands(
    conn: &mut PgConnection,
    appends: &[Append<'_>],
    outcomes: &[Result<AppendOutcome, StoreError>],
) -> Result<HashSet<usize>, sqlx::Error> {
    type LedgerKey<'k> = (i64, &'k str, &'k str);
    let mut rows: Vec<(LedgerKey<'_>, usize)> = appends
        .iter()
        .enumerate()
        .filter(|(i, _)| outcomes[*i].is_ok())
        .filter_map(|(i, a)| {
            let command = a.command?;
            let key = (
                project_id(a.key.project),
                a.key.user.as_str(),
                command.command_id.as_str(),
            );
            Some((key, i))
        })
        .collect();
    // Key order against deadlocks; of two uses of one id in a batch the first counts.
    rows.sort();
    rows.dedup_by_key(|(key, _)| *key);
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let command = |i: usize| {
        appends[i]
            .command
            .unwrap_or_else(|| unreachable!("filtered on command"))
    };
    let returned: Vec<(i64, String, String)> = sqlx::query_as(
        "insert into processed_commands (project_id, user_id, command_id, fingerprint, stream_id, content_type, reply) \
         select * from unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::uuid[], $6::text[], $7::bytea[]) \
         on conflict (project_id, user_id, command_id) do nothing \
         returning project_id, user_id, command_id",
    )
    .bind(rows.iter().map(|((p, ..), _)| *p).collect::<Vec<_>>())
    .bind(rows.iter().map(|((_, u, _), _)| *u).collect::<Vec<_>>())
    .bind(rows.iter().map(|((.., c), _)| *c).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, i)| command(*i).fingerprint.as_slice()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, i)| appends[*i].key.stream_id()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, i)| command(*i).content_type.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, i)| command(*i).reply.as_slice()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    let returned: HashSet<(i64, &str, &str)> = returned
        .iter()
        .map(|(p, u, c)| (*p, u.as_str(), c.as_str()))
        .collect();
    Ok(rows
        .into_iter()
        .filter(|(key, _)| returned.contains(key))
        .map(|(_, i)| i)
        .collect())
}

async fn insert_streams(
    conn: &mut PgConnection,
    winners: &[(&Append<'_>, i64)],
) -> Result<(), sqlx::Error> {
    let new: Vec<&StreamKey> = winners
        .iter()
        .filter(|(a, _)| a.expected == 0)
        .map(|(a, _)| a.key)
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    // The events' primary key already decided who created the stream; this row only
    // records its owner, so a second insert of the same row is harmless.
    sqlx::query(
        "insert into cart_streams (stream_id, project_id, user_id, cart_id) \
         select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[]) \
         on conflict (stream_id) do nothing",
    )
    .bind(new.iter().map(|k| k.stream_id()).collect::<Vec<_>>())
    .bind(
        new.iter()
            .map(|k| project_id(k.project))
            .collect::<Vec<_>>(),
    )
    .bind(new.iter().map(|k| k.user.as_str()).collect::<Vec<_>>())
    .bind(new.iter().map(|k| k.cart.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_projections(
    conn: &mut PgConnection,
    winners: &[(&Append<'_>, i64)],
) -> Result<(), sqlx::Error> {
    // One row per stream, the latest: an upsert may not touch a row twice.
    let mut latest: HashMap<Uuid, (&Append<'_>, i64)> = Default::default();
    for &(a, version) in winners {
        let entry = latest.entry(a.key.stream_id()).or_insert((a, version));
        if version > entry.1 {
            *entry = (a, version);
        }
    }
    if latest.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<_> = latest.into_iter().collect();
    rows.sort_by_key(|(id, _)| *id);
    sqlx::query(
        "insert into cart_projection (stream_id, project_id, user_id, cart_id, version, lines) \
         select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::jsonb[]) \
         on conflict (stream_id) do update set version = excluded.version, lines = excluded.lines, updated_at = now() \
         where cart_projection.version < excluded.version",
    )
    .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, (a, _))| project_id(a.key.project)).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, (a, _))| a.key.user.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, (a, _))| a.key.cart.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, (_, v))| *v).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, (a, _))| lines_json(a.cart)).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) fn lines_json(cart: &Cart) -> serde_json::Value {
    cart.lines()
        .iter()
        .map(|l| serde_json::json!({"sku": l.sku.as_str(), "quantity": l.quantity}))
        .collect()
}

fn cart_from_lines(lines: &serde_json::Value) -> Result<Cart, DecodeError> {
    // The projection stores what ItemQuantitySet events would rebuild, so it is read back
    // by replaying exactly those.
    let mut events = vec![CartEvent::CartOpened];
    for line in lines.as_array().into_iter().flatten() {
        let payload = serde_json::json!({"sku": line.get("sku"), "quantity": line.get("quantity")});
        events.push(event::decode("ItemQuantitySet", 1, payload)?);
    }
    Ok(Cart::replay(&events))
}

#[cfg(test)]
mod tests;
