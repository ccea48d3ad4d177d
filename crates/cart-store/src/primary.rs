//! Writing only to a primary: pooled connections that find a read-only server are
//! dropped, so that after a failover the pool reconnects (through whatever routes
//! clients to the primary, docs/operations.md "PostgreSQL failover") instead of
//! failing every write with SQLSTATE 25006.
//!
//! A server is read-only when it is a standby (in recovery), a demoted primary, or when
//! an operator fenced it with `default_transaction_read_only`. In each case
//! `transaction_read_only` reads `on` outside a transaction. The check runs when a
//! connection is made (`after_connect`: a read-only server never enters the pool; sqlx
//! keeps trying until the acquire timeout, so a command meanwhile is answered 503) and
//! each time one is taken from the pool (`before_acquire`, in place of sqlx's ping: one
//! round trip either way), so a connection whose server turned read-only under it, or
//! whose session was terminated, is closed instead of handed out.

use sqlx::postgres::{PgConnection, PgPoolOptions};

/// The answer of a session on a server that takes no writes.
pub const READ_ONLY: &str = "PostgreSQL session is read-only (a standby, a demoted primary, \
     or default_transaction_read_only = on); looking for the primary";

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
        Err(sqlx::Error::Io(std::io::Error::other(READ_ONLY)))
    }
}

/// `options` with the checks: new connections to a read-only server are refused, and a
/// pooled connection is checked (alive and writable) before each use.
pub fn primary_only(options: PgPoolOptions) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .after_connect(|conn, _| Box::pin(require_writable(conn)))
        .before_acquire(|conn, _| {
            Box::pin(async move {
                let writable = is_writable(conn).await?;
                if !writable {
                    tracing::warn!("{READ_ONLY}: pooled connection dropped");
                }
                Ok(writable)
            })
        })
}
