//! The event store proper: load, append, the command ledger, the projection and the
//! global-order reader.

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
        let stream_id = append.key.stream_id();
        let version = append.expected + i64::try_from(append.events.len()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        // A no-op command with a command id writes only its ledger row.
        if !append.events.is_empty() {
            // The event insert is the transaction's first write, so its xid is taken here
            // and the global order stays close to commit order.
            insert_events(&mut tx, &append, stream_id)
                .await
                .map_err(|e| on_constraint(e, &append, stream_id))?;
            if append.expected == 0 {
                insert_stream(&mut tx, append.key, stream_id).await?;
            }
            upsert_projection(&mut tx, append.key, stream_id, version, append.cart).await?;
        }
        if let Some(command) = append.command {
            insert_command(&mut tx, append.key, stream_id, command)
                .await
                .map_err(|e| on_constraint(e, &append, stream_id))?;
        }
        tx.commit().await?;
        Ok(AppendOutcome { version })
    }

    /// The projected cart and its version, or None when the cart has no events.
    pub async fn projection(&self, key: &StreamKey) -> Result<Option<Loaded>, StoreError> {
        let row = sqlx::query("select version, lines from cart_projection where stream_id = $1")
            .bind(key.stream_id())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get("version")?;
        let lines: serde_json::Value = row.try_get("lines")?;
        let cart = cart_from_lines(&lines).map_err(|source| StoreError::Decode {
            stream_id: key.stream_id(),
            version,
            source,
        })?;
        Ok(Some(Loaded { cart, version }))
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

async fn insert_events(
    conn: &mut PgConnection,
    append: &Append<'_>,
    stream_id: Uuid,
) -> Result<(), sqlx::Error> {
    let n = append.events.len();
    let mut versions = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for (i, e) in append.events.iter().enumerate() {
        let encoded = event::encode(e);
        versions.push(append.expected + 1 + i64::try_from(i).unwrap_or(i64::MAX));
        event_ids.push(Uuid::now_v7());
        types.push(encoded.event_type);
        schema_versions.push(encoded.schema_version);
        payloads.push(encoded.payload.to_string());
    }
    // One statement for all of a command's events: all or nothing, one round trip.
    sqlx::query(
        "insert into cart_events (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
         select $1, v, id, $2, t, sv, p::jsonb, $3 \
         from unnest($4::bigint[], $5::uuid[], $6::text[], $7::int2[], $8::text[]) as e(v, id, t, sv, p)",
    )
    .bind(stream_id)
    .bind(project_id(append.key.project))
    .bind(&append.metadata)
    .bind(&versions)
    .bind(&event_ids)
    .bind(&types)
    .bind(&schema_versions)
    .bind(&payloads)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_stream(
    conn: &mut PgConnection,
    key: &StreamKey,
    stream_id: Uuid,
) -> Result<(), sqlx::Error> {
    // The events' primary key already decided who created the stream; this row only
    // records its owner, so a second insert of the same row is harmless.
    sqlx::query(
        "insert into cart_streams (stream_id, project_id, user_id, cart_id) values ($1, $2, $3, $4) \
         on conflict (stream_id) do nothing",
    )
    .bind(stream_id)
    .bind(project_id(key.project))
    .bind(key.user.as_str())
    .bind(key.cart.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_projection(
    conn: &mut PgConnection,
    key: &StreamKey,
    stream_id: Uuid,
    version: i64,
    cart: &Cart,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into cart_projection (stream_id, project_id, user_id, cart_id, version, lines) \
         values ($1, $2, $3, $4, $5, $6) \
         on conflict (stream_id) do update set version = excluded.version, lines = excluded.lines, updated_at = now() \
         where cart_projection.version < excluded.version",
    )
    .bind(stream_id)
    .bind(project_id(key.project))
    .bind(key.user.as_str())
    .bind(key.cart.as_str())
    .bind(version)
    .bind(lines_json(cart))
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_command(
    conn: &mut PgConnection,
    key: &StreamKey,
    stream_id: Uuid,
    command: &ProcessedCommand,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into processed_commands (project_id, user_id, command_id, fingerprint, stream_id, content_type, reply) \
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(project_id(key.project))
    .bind(key.user.as_str())
    .bind(&command.command_id)
    .bind(&command.fingerprint)
    .bind(stream_id)
    .bind(&command.content_type)
    .bind(&command.reply)
    .execute(conn)
    .await?;
    Ok(())
}

/// Maps the two unique violations that mean "someone else got there first" to their own
/// errors, matching on the constraint name so that no other violation is mistaken for them.
fn on_constraint(error: sqlx::Error, append: &Append<'_>, stream_id: Uuid) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            match db.constraint() {
                Some("cart_events_pkey") => {
                    return StoreError::Conflict {
                        stream_id,
                        expected: append.expected,
                    };
                }
                Some("processed_commands_pkey") => {
                    let command_id = append
                        .command
                        .map(|c| c.command_id.clone())
                        .unwrap_or_default();
                    return StoreError::DuplicateCommand { command_id };
                }
                _ => {}
            }
        }
    }
    StoreError::Database(error)
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
