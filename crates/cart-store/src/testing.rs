//! A database of its own for each store test: named uniquely for the run, migrated, and
//! dropped when the test ends, whether it passed or panicked (`#[sqlx::test]` reuses one
//! name per test path, so two runs on one server collide, and keeps a failed test's
//! database for ever).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use uuid::Uuid;

/// Drops the database when dropped, on a thread and runtime of its own: the test's
/// runtime may be gone or unwinding by then.
pub struct TestDb {
    name: String,
    admin: PgConnectOptions,
}

impl TestDb {
    /// The database's URL, for a process of its own (a binary under test).
    pub fn url(&self) -> String {
        self.admin
            .clone()
            .database(&self.name)
            .to_url_lossy()
            .to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let drop = async {
                    let mut conn = admin.connect().await?;
                    sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                };
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(30), drop).await {
                    eprintln!("could not drop test database {name}: {e}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Creates and migrates a fresh database on the server of `DATABASE_URL` (default: the
/// local server's maintenance database). Keep the `TestDb` alive for the test's length.
pub async fn database() -> (TestDb, PgPool) {
    let (db, options) = create().await;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await
        .expect("connect to the test database");
    crate::MIGRATOR
        .run(&pool)
        .await
        .expect("migrate the test database");
    (db, pool)
}

/// A fresh, migrated database and one session on it: for tests that look at what one
/// session holds (its prepared statements and their plans).
pub async fn session() -> (TestDb, PgConnection) {
    let (db, options) = create().await;
    let mut conn = options
        .connect()
        .await
        .expect("connect to the test database");
    crate::MIGRATOR
        .run(&mut conn)
        .await
        .expect("migrate the test database");
    (db, conn)
}

/// Creates an empty database of a unique name; its connect options.
async fn create() -> (TestDb, PgConnectOptions) {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
    let name = format!("cart_store_test_{}", Uuid::new_v4().simple());
    let mut conn = admin
        .connect()
        .await
        .expect("connect to the PostgreSQL server of DATABASE_URL");
    sqlx::query(&format!("create database {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    conn.close().await.ok();
    let options = admin.clone().database(&name);
    (TestDb { name, admin }, options)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    async fn exists(name: &str) -> bool {
        let (_db, pool) = database().await;
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_test_database_is_dropped_when_its_test_passes_or_panics() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        for fail in [false, true] {
            let seen = seen.clone();
            let outcome = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let (db, pool) = database().await;
                    sqlx::query("select 1").execute(&pool).await.unwrap();
                    seen.lock().unwrap().push(db.name.clone());
                    assert!(!fail, "a test body that fails on purpose");
                });
            })
            .join();
            assert_eq!(outcome.is_err(), fail);
        }
        let names = seen.lock().unwrap().clone();
        assert_eq!(names.len(), 2);
        assert_ne!(names[0], names[1], "names are unique to the run");
        for name in names {
            assert!(!exists(&name).await, "{name} is left behind");
        }
    }
}
