//! Connecting: creating the database when missing and checking durability settings.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::StoreError;

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    pub max_connections: u32,
    /// How long a command waits for a pooled connection before it is answered 503.
    pub acquire_timeout: Duration,
}

fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url)?
        // Durability is a promise: a command is answered OK only after its commit is
        // flushed, whatever the server's default says.
        .options([
            ("synchronous_commit", "on"),
            // A stuck transaction would stall every reader of the global order.
            ("idle_in_transaction_session_timeout", "10s"),
            ("statement_timeout", "10s"),
        ]);
    Ok(options)
}

/// Creates the database named in `url` when it does not exist yet.
///
/// # Errors
/// The server cannot be reached, or the database cannot be created.
pub async fn ensure_database(url: &str) -> Result<(), StoreError> {
    let target = options(url)?;
    let Some(name) = target.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = target.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("create database {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it first: 42P04 when its commit came before our
            // check, 23505 (pg_database's unique index) when both were creating at once,
            // as cartd and cart-webhook do when `make run` starts them on a fresh server.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Opens a pool, applies the migrations and checks that the server flushes commits.
///
/// # Errors
/// The database is unreachable, a migration fails, or `fsync` is off.
pub async fn connect(config: &DbConfig) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options(&config.url)?)
        .await?;
    let fsync: String = sqlx::query_scalar("show fsync").fetch_one(&pool).await?;
    if fsync != "on" {
        return Err(StoreError::NotDurable {
            setting: "fsync",
            value: fsync,
        });
    }
    crate::MIGRATOR.run(&pool).await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn processes_creating_the_same_database_at_once_all_succeed() {
        let server = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("cart_store_race_{}", uuid::Uuid::new_v4().simple());
        let admin = PgConnectOptions::from_str(&server).unwrap();
        let url = admin.clone().database(&name).to_url_lossy().to_string();
        let results = futures::future::join_all((0..6).map(|_| ensure_database(&url))).await;
        let mut conn = admin.connect().await.unwrap();
        sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&mut conn)
            .await
            .unwrap();
        for result in results {
            result.unwrap();
        }
    }
}
