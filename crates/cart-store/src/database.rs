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
    let pool = crate::primary_only(PgPoolOptions::new())
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
    for warning in setting_warnings(&read_settings(&pool).await?) {
        tracing::warn!(
            setting = warning.setting,
            value = %warning.value,
            "PostgreSQL runs with {} = {}: {}",
            warning.setting,
            warning.value,
            warning.cost
        );
    }
    migrate(&options(&config.url)?).await?;
    Ok(pool)
}

/// Applies the migrations (`MIGRATOR`) on a connection of their own, which reports no
/// PostgreSQL notices (`client_min_messages = warning`): sqlx's `create table if not
/// exists _sqlx_migrations` draws a NOTICE that the table already exists on every start
/// but the first, and sqlx logs notices at info level. Warnings and errors still show.
///
/// # Errors
/// The database is unreachable or a migration fails.
pub async fn migrate(options: &PgConnectOptions) -> Result<(), StoreError> {
    // A pool of one rather than a bare connection: `Migrator::run` on `&mut PgConnection`
    // makes a future that is not `Send` (a higher-ranked lifetime), so callers could
    // not spawn it; on `&PgPool` it is.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(migrating(options))
        .await?;
    let migrated = crate::MIGRATOR.run(&pool).await;
    pool.close().await;
    Ok(migrated?)
}

/// The migrating session's options: `options` with notices left unreported.
fn migrating(options: &PgConnectOptions) -> PgConnectOptions {
    options
        .clone()
        .options([("client_min_messages", "warning")])
}

/// A server setting the service runs with but warns about, and what it costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingWarning {
    pub setting: &'static str,
    pub value: String,
    pub cost: &'static str,
}

/// The settings [`setting_warnings`] judges.
const WATCHED: [&str; 2] = ["autovacuum", "track_counts"];

/// What the server says of the watched settings, as `(name, value)`.
///
/// # Errors
/// The query fails.
pub async fn read_settings(pool: &PgPool) -> Result<Vec<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as("select name, setting from pg_settings where name = any($1) order by name")
            .bind(&WATCHED[..])
            .fetch_all(pool)
            .await?,
    )
}

/// The warnings for `settings` (as [`read_settings`] reads them; `on`/`off` in any case).
/// Autovacuum also needs `track_counts`: without it nothing is ever vacuumed or analyzed.
pub fn setting_warnings(settings: &[(String, String)]) -> Vec<SettingWarning> {
    let off = |value: &str| matches!(value.to_ascii_lowercase().as_str(), "off" | "false" | "0");
    settings
        .iter()
        .filter(|(name, value)| WATCHED.contains(&name.as_str()) && off(value))
        .filter_map(|(name, value)| {
            let setting = WATCHED.into_iter().find(|w| w == name)?;
            Some(SettingWarning {
                setting,
                value: value.clone(),
                cost: AUTOVACUUM_OFF_COSTS,
            })
        })
        .collect()
}

/// What a server that never vacuums or analyzes on its own costs the service
/// (docs/operations.md, "Autovacuum").
const AUTOVACUUM_OFF_COSTS: &str = "tables are never vacuumed or analyzed on their own: \
     dead rows of updated and deleted rows (webhook deliveries, orders, projections, \
     checkpoints) pile up and every scan of them slows down, the table statistics stay \
     those of the last manual ANALYZE (plans of new statements are costed on them), and \
     transaction ids are never frozen; run VACUUM (ANALYZE) regularly (docs/operations.md)";

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn autovacuum_off_is_warned_about_naming_the_setting_its_value_and_its_cost() {
        let warnings =
            setting_warnings(&settings(&[("autovacuum", "off"), ("track_counts", "on")]));
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].setting, "autovacuum");
        assert_eq!(warnings[0].value, "off");
        assert!(
            warnings[0].cost.contains("analyzed"),
            "{}",
            warnings[0].cost
        );
        assert!(
            warnings[0].cost.contains("dead rows"),
            "{}",
            warnings[0].cost
        );
        let both = setting_warnings(&settings(&[("autovacuum", "OFF"), ("track_counts", "off")]));
        let named: Vec<&str> = both.iter().map(|w| w.setting).collect();
        assert_eq!(named, ["autovacuum", "track_counts"]);
    }

    #[test]
    fn a_server_that_vacuums_on_its_own_gets_no_warning() {
        let on = settings(&[
            ("autovacuum", "on"),
            ("track_counts", "on"),
            ("fsync", "off"),
        ]);
        assert_eq!(setting_warnings(&on), []);
        assert_eq!(setting_warnings(&[]), []);
    }

    #[tokio::test]
    async fn the_warning_follows_what_the_server_says_of_autovacuum() {
        let (_db, pool) = crate::testing::database().await;
        let shown: String = sqlx::query_scalar("show autovacuum")
            .fetch_one(&pool)
            .await
            .unwrap();
        let read = read_settings(&pool).await.unwrap();
        assert!(
            read.contains(&("autovacuum".to_owned(), shown.clone())),
            "{read:?}"
        );
        let warned = setting_warnings(&read)
            .iter()
            .any(|w| w.setting == "autovacuum");
        assert_eq!(warned, shown == "off", "show autovacuum says {shown}");
    }

    #[tokio::test]
    async fn migrating_again_runs_in_a_session_that_reports_no_notices() {
        let (_db, pool) = crate::testing::database().await;
        let options = (*pool.connect_options())
            .clone()
            .options([("statement_timeout", "7s")]);
        let mut session = migrating(&options).connect().await.unwrap();
        let show = |setting: &'static str| format!("show {setting}");
        let mut shown = Vec::new();
        for setting in ["client_min_messages", "statement_timeout"] {
            let value: String = sqlx::query_scalar(&show(setting))
                .fetch_one(&mut session)
                .await
                .unwrap();
            shown.push(value);
        }
        // Notices off, and the options the caller gave still hold.
        assert_eq!(shown, ["warning", "7s"]);
        session.close().await.unwrap();
        // The testing database is migrated already: this is the run whose
        // `create table if not exists _sqlx_migrations` draws the NOTICE.
        migrate(&options).await.unwrap();
        migrate(&options).await.unwrap();
        pool.close().await;
    }

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

/// What a readiness probe learns of PostgreSQL (`/readyz`, docs/observability.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// No answer within the probe's time, or an error: the reason.
    Unreachable(String),
    /// Reachable, but the schema is older than this build's migrations.
    Behind {
        applied: i64,
        latest: i64,
    },
}

/// Whether the database answers within `timeout` and has this build's latest migration:
/// one query (the read of `_sqlx_migrations` is the "select 1"), on a pooled
/// connection, the wait for that connection included in the timeout.
pub async fn readiness(pool: &PgPool, timeout: Duration) -> Readiness {
    let latest = crate::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let query = sqlx::query_scalar::<_, Option<i64>>(
        "select max(version) from _sqlx_migrations where success",
    )
    .fetch_one(pool);
    match tokio::time::timeout(timeout, query).await {
        Err(_) => Readiness::Unreachable(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Readiness::Unreachable(crate::error_chain(&e)),
        Ok(Ok(applied)) => {
            let applied = applied.unwrap_or(0);
            if applied >= latest {
                Readiness::Ready
            } else {
                Readiness::Behind { applied, latest }
            }
        }
    }
}
