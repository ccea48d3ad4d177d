//! The store's error, and how a PostgreSQL error is sorted into it: the caller's bad
//! input apart from the store's own failures, so that bad input is never a 500.

use cart_proto::event::DecodeError;
use uuid::Uuid;

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
    Database(sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value from the caller that PostgreSQL refused, such as a malformed time.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Text from the caller that PostgreSQL cannot hold; nothing was written.
    #[error(transparent)]
    InvalidText(#[from] InvalidText),
    /// Another projection rebuild holds the rebuild lock.
    #[error("another projection rebuild is running")]
    RebuildRunning,
    /// A failure shared by a batch of commands or reads (group commit): for a command,
    /// the shared transaction failed and nothing of it was written.
    #[error("a batch of the store failed")]
    Batch(#[source] std::sync::Arc<StoreError>),
}

/// Text PostgreSQL refuses to store or compare: the caller's input, not a fault of the
/// store. The edge refuses such text first; this is the defence behind it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text the database cannot hold (SQLSTATE {}): {message}", .kind.sqlstate())]
pub struct InvalidText {
    pub kind: InvalidTextKind,
    /// PostgreSQL's message, which names the offending byte or escape.
    pub message: String,
}

/// Which of PostgreSQL's invalid-text errors it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidTextKind {
    /// 22021 `character_not_in_repertoire`: a NUL (or invalid UTF-8) in a text value.
    NotInRepertoire,
    /// 22P05 `untranslatable_character`: a `\u0000` escape in a JSON string.
    Untranslatable,
}

impl InvalidTextKind {
    pub fn sqlstate(self) -> &'static str {
        match self {
            InvalidTextKind::NotInRepertoire => "22021",
            InvalidTextKind::Untranslatable => "22P05",
        }
    }
}

impl InvalidText {
    /// The invalid-text error an sqlx error is, if it is one.
    pub(crate) fn of(error: &sqlx::Error) -> Option<Self> {
        let sqlx::Error::Database(db) = error else {
            return None;
        };
        let kind = match db.code().as_deref()? {
            "22021" => InvalidTextKind::NotInRepertoire,
            "22P05" => InvalidTextKind::Untranslatable,
            _ => return None,
        };
        Some(Self {
            kind,
            message: db.message().to_owned(),
        })
    }
}

/// Every database error passes here: invalid text is the caller's, the rest the store's.
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        // A session found read-only or broken makes the pool check its connections for
        // a while (`primary.rs`): the others may be on the same server.
        crate::primary::note_if_trouble(&error);
        match InvalidText::of(&error) {
            Some(invalid) => StoreError::InvalidText(invalid),
            None => StoreError::Database(error),
        }
    }
}

impl StoreError {
    /// A query error, with data exceptions (SQLSTATE class 22, e.g. a time PostgreSQL
    /// cannot read) reported as the caller's invalid input.
    pub(crate) fn from_query(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            if InvalidText::of(&error).is_none()
                && db.code().is_some_and(|code| code.starts_with("22"))
            {
                return StoreError::Invalid(db.message().to_owned());
            }
        }
        StoreError::from(error)
    }

    /// Whether the caller's input was refused (a 4xx, not a failure of the store).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            StoreError::Invalid(_) | StoreError::InvalidText(_) => true,
            StoreError::Batch(cause) => cause.is_invalid_input(),
            _ => false,
        }
    }

    /// Whether the database could not be reached or answered in time.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Batch(cause) => cause.is_unavailable(),
            StoreError::Database(e) => unavailable(e),
            _ => false,
        }
    }

    /// Whether the pool gave no connection within its acquire timeout (every connection
    /// busy, or PostgreSQL away): one cause of [`Self::is_unavailable`], counted apart.
    pub fn is_pool_timeout(&self) -> bool {
        match self {
            StoreError::Batch(cause) => cause.is_pool_timeout(),
            StoreError::Database(e) => matches!(e, sqlx::Error::PoolTimedOut),
            _ => false,
        }
    }

    /// Whether PostgreSQL aborted the transaction to break a deadlock.
    pub(crate) fn is_deadlock(&self) -> bool {
        matches!(self, StoreError::Database(e) if deadlock(e))
    }
}

/// Whether the database could not be reached or answered in time.
pub(crate) fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        // Connection exceptions (08), a server shutting down or still starting (57P0x),
        // a statement timeout (57014) and a write on a server that turned read-only
        // (25006: a demoted primary or a standby; the pool drops that connection,
        // `primary.rs`) are passing states, not faults of the request.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57") || code == "25006"
        }),
        _ => false,
    }
}

/// Whether PostgreSQL aborted the transaction to break a deadlock (40P01).
pub(crate) fn deadlock(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
}
