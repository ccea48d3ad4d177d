//! The PostgreSQL side of the service: the cart event log, the command ledger and the
//! cart projection. Knows SQL; knows nothing about NATS.
//!
//! Every accepted command's events (guarded by the `(stream_id, version)` primary key),
//! the stream's owner row, the projection row and the ledger row commit together or not
//! at all. Commands of different carts share a transaction (group commit, `group`), each
//! still all or nothing on its own.

pub mod catalog;
mod database;
pub mod erasure;
mod error;
pub mod export;
pub mod feed;
mod group;
pub mod import;
mod ledger;
mod locks;
mod metrics;
pub mod orders;
mod primary;
mod probe;
mod rebuild;
pub mod relay;
pub mod retention;
mod store;
pub mod subscription;
/// Fresh databases for tests (this crate's and its integration tests'); not for services.
#[doc(hidden)]
pub mod testing;

pub use database::{connect, ensure_database, migrate, readiness, DbConfig, Readiness};
pub use error::{InvalidText, InvalidTextKind, StoreError};
pub use feed::{Filter, Position, RecordedEvent};
pub use group::{GroupCommit, GroupConfig, GroupRead, PendingAppend};
pub use ledger::Replay;
pub use primary::{is_writable, primary_only, require_writable, READ_ONLY};
pub use probe::PROBE_SESSION;
pub use rebuild::{rebuild_projection, Progress, RebuildReport};
pub use store::{
    Append, AppendOutcome, AsOf, EventStore, Loaded, ProcessedCommand, Projected, StreamKey,
};

/// The SQL text of every hot or background statement outside the feed, as the code runs
/// it, so that `tests/plans.rs` checks the plans of exactly these (ARCHITECTURE.md,
/// "Plans that cannot go stale").
pub mod statements {
    pub use crate::ledger::{LOOKUP as LEDGER_LOOKUP, REMOVE as LEDGER_REMOVE};
    pub use crate::orders::statements::{
        DUE_ORDERS, EXPIRING, GROUPED_PURCHASES, KEYS_OF, KEY_OF, LOAD_ORDER, PROMOTION_USES,
        PURCHASES, REDEMPTIONS,
    };
    pub use crate::retention::{DROP_PROJECTION, DUE_CARTS, PRUNE_LEDGER};
    pub use crate::store::{
        APPEND_ONE_TRIP, APPEND_WRITES, CURRENT_VERSIONS, GROUPED_GET, LOAD_STREAM,
    };
    pub use crate::subscription::{CLAIM_VERSIONS, GONE_LINES, STORED_LINES};

    /// The batch statements the service plans at every execution (sqlx `persistent(false)`:
    /// an unnamed statement, which PostgreSQL always plans for its parameters, on the
    /// tables' sizes of that moment). Every other statement is prepared once per
    /// connection and may run a generic plan. A batch's plan is worth a parse: a cached
    /// plan made while a table was known empty (vacuumed then) probes nothing, it scans,
    /// once per key of the batch. The append batch's versions are not among them: the
    /// hottest statement keeps its prepared plan, a probe per key unless `cart_events` was
    /// analyzed while empty (docs/operations.md). The retention sweeps' batches run
    /// once a minute at most: a parse each is nothing, and their row-id delete needs
    /// the table's size of the moment to be a TID scan.
    pub const PLANNED_EACH_TIME: [&str; 8] = [
        PURCHASES,
        LEDGER_REMOVE,
        CLAIM_VERSIONS,
        STORED_LINES,
        GONE_LINES,
        PRUNE_LEDGER,
        DUE_CARTS,
        DUE_ORDERS,
    ];

    /// The grouped reads of gets and commands: prepared once per session and planned
    /// once, on probe sessions only (`crate::probe`: seq scans off, the generic plan at
    /// once), where the plan probes the indexes whatever the tables held when it was
    /// made. Run elsewhere (`EventStore::projections`), they are planned each time.
    pub const ON_PROBE_SESSIONS: [&str; 2] = [GROUPED_GET, GROUPED_PURCHASES];

    /// Whether sqlx may keep `sql` prepared on the connection (see [`PLANNED_EACH_TIME`]).
    pub(crate) fn prepared(sql: &str) -> bool {
        !PLANNED_EACH_TIME.contains(&sql) && !ON_PROBE_SESSIONS.contains(&sql)
    }
}

/// An error and its causes on one line, for logs: `StoreError::Database` alone says only
/// "database error", the cause says what PostgreSQL answered.
/// A cause whose text the message already holds is left out: async-nats and std's I/O
/// errors repeat their source in their own message (`no responders: no responders`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    // Some errors also print their source inside their own message; say each part once.
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// The schema migrations, applied at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(text: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn a_cause_the_message_already_holds_is_said_once() {
        let repeated = layer(
            "no responders",
            Some(layer("no responders", Some(layer("no responders", None)))),
        );
        assert_eq!(error_chain(&repeated), "no responders");
        let nested = layer(
            "request cart.get: no responders",
            Some(layer("no responders", None)),
        );
        assert_eq!(error_chain(&nested), "request cart.get: no responders");
        let inside = layer(
            "no responders: no responders",
            Some(layer("no responders", None)),
        );
        assert_eq!(error_chain(&inside), "no responders");
        let distinct = layer("database error", Some(layer("connection refused", None)));
        assert_eq!(error_chain(&distinct), "database error: connection refused");
    }
}
