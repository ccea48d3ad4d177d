//! The PostgreSQL side of the service: the cart event log, the command ledger and the
//! cart projection. Knows SQL; knows nothing about NATS.
//!
//! Every accepted command's events (guarded by the `(stream_id, version)` primary key),
//! the stream's owner row, the projection row and the ledger row commit together or not
//! at all. Commands of different carts share a transaction (group commit, `group`), each
//! still all or nothing on its own.

pub mod catalog;
mod database;
mod error;
pub mod export;
pub mod feed;
mod group;
mod ledger;
mod locks;
pub mod orders;
mod rebuild;
mod store;
pub mod subscription;
#[cfg(test)]
mod testing;

pub use database::{connect, ensure_database, DbConfig};
pub use error::{InvalidText, InvalidTextKind, StoreError};
pub use feed::{Filter, Position, RecordedEvent};
pub use group::{GroupCommit, GroupConfig, GroupRead, PendingAppend};
pub use ledger::Replay;
pub use rebuild::{rebuild_projection, Progress, RebuildReport};
pub use store::{Append, AppendOutcome, AsOf, EventStore, Loaded, ProcessedCommand, StreamKey};

/// An error and its causes on one line, for logs: `StoreError::Database` alone says only
/// "database error", the cause says what PostgreSQL answered.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The schema migrations, applied at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
