//! Writing only to a primary: pooled connections that find a read-only server are
//! dropped, so that after a failover the pool reconnects (through whatever routes
//! clients to the primary, docs/operations.md "PostgreSQL failover") instead of
//! failing every write with SQLSTATE 25006.
//!
//! A server is read-only when it is a standby (in recovery), a demoted primary, or when
//! an operator fenced it with `default_transaction_read_only`. In each case
//! `transaction_read_only` reads `on` outside a transaction. The check runs when a
//! connection is made (`after_connect`: a read-only server never enters the pool; sqlx
//! keeps trying until the acquire timeout, so a command meanwhile is answered 503).
//!
//! When a pooled connection is taken (`before_acquire`, in place of sqlx's ping) it is
//! checked only when it sat idle for over [`IDLE_CHECK`], or when this process saw a
//! server turn unusable within the last [`TROUBLE_WINDOW`] (a read-only session, a
//! 25006, a terminated session or a broken connection: [`note_trouble`]). A check is a
//! round trip, and one per acquire was the most frequent statement of the whole service
//! (issue 17). A busy connection that was just returned is as alive as the transaction
//! it ran (sqlx pings each one on release and closes it when that fails), and a server
//! that turns read-only under it makes the next write fail with 25006, which is then
//! noted: from there on every acquire checks, so the pool sheds its stale connections
//! within one use each, and the failed command was answered 503 (nothing committed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnection, PgPoolOptions};

/// The answer of a session on a server that takes no writes.
pub const READ_ONLY: &str = "PostgreSQL session is read-only (a standby, a demoted primary, \
     or default_transaction_read_only = on); looking for the primary";

/// A pooled connection idle for longer than this is checked before it is handed out: a
/// failover or a fence may have happened while nobody used it.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// For this long after a server turned unusable, every acquire checks its connection.
pub const TROUBLE_WINDOW: Duration = Duration::from_secs(30);

/// When this process last saw a server turn unusable: milliseconds since [`epoch`],
/// plus one (0: never).
static TROUBLE_AT: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX - 1)
}

/// Records that a session was found read-only or broken: for [`TROUBLE_WINDOW`] from
/// now, every pooled connection is checked before use.
pub fn note_trouble() {
    let now = millis_since_epoch(Instant::now()).saturating_add(1);
    TROUBLE_AT.fetch_max(now, Ordering::Relaxed);
}

/// Whether `error` says the session's server turned unusable (read-only, shutting down,
/// or the connection broke), so that other pooled sessions may be stale too; notes it
/// when it does ([`note_trouble`]). Called where every database error of the store
/// passes (`StoreError::from`).
pub(crate) fn note_if_trouble(error: &sqlx::Error) {
    let trouble = match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // 25006 read_only_sql_transaction, 08 connection exceptions, 57P01..57P03 the
        // server shutting down or starting. Not 57014: a statement timeout leaves the
        // session as good as it was.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code == "25006" || code.starts_with("08") || code.starts_with("57P")
        }),
        _ => false,
    };
    if trouble {
        note_trouble();
    }
}

/// Whether a pooled connection idle for `idle_for` is checked before use, at `now`, with
/// trouble last noted at `trouble_at` (as stored in `TROUBLE_AT`).
fn needs_check(idle_for: Duration, trouble_at: u64, now: Instant) -> bool {
    if idle_for > IDLE_CHECK {
        return true;
    }
    if trouble_at == 0 {
        return false;
    }
    let since = millis_since_epoch(now).saturating_sub(trouble_at - 1);
    u128::from(since) <= TROUBLE_WINDOW.as_millis()
}

/// Whether the session's server takes writes now.
///
/// # Errors
/// The session is broken.
pub async fn is_writable(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let read_only: String =
        sqlx::query_scalar("select pg_catalog.current_setting('transaction_read_only')")
            .fetch_one(conn)
            .await?;
    Ok(read_only != "on")
}

/// `Ok` when the session's server takes writes; [`READ_ONLY`] as a connection error
/// (which callers already treat as "PostgreSQL unavailable, retry") when it does not.
///
/// # Errors
/// The session is broken or read-only.
pub async fn require_writable(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    if is_writable(conn).await? {
        Ok(())
    } else {
        note_trouble();
        Err(sqlx::Error::Io(std::io::Error::other(READ_ONLY)))
    }
}

/// `options` with the checks: new connections to a read-only server are refused, and a
/// pooled connection is checked (alive and writable) before use when it sat idle or
/// when a server turned unusable lately.
pub fn primary_only(options: PgPoolOptions) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .after_connect(|conn, _| Box::pin(require_writable(conn)))
        .before_acquire(|conn, meta: PoolConnectionMetadata| {
            Box::pin(async move {
                let trouble_at = TROUBLE_AT.load(Ordering::Relaxed);
                if !needs_check(meta.idle_for, trouble_at, Instant::now()) {
                    return Ok(true);
                }
                let writable = match is_writable(conn).await {
                    Ok(writable) => writable,
                    Err(error) => {
                        // A dead session: its siblings may have gone with the server.
                        note_trouble();
                        return Err(error);
                    }
                };
                if !writable {
                    note_trouble();
                    tracing::warn!("{READ_ONLY}: pooled connection dropped");
                }
                Ok(writable)
            })
        })
}

#[cfg(test)]
mod tests;
