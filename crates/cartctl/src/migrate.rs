//! `cartctl migrate`: the schema migrations alone, once per rollout (the Kubernetes Job
//! and Compose's `migrate` service), so that the service's replicas find them applied
//! instead of each taking the migration lock at start. `--check` changes nothing: it
//! tells whether this build's migrations are all applied (an init container of cartd's
//! pods waits on it, so no replica starts before the Job has run).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::feed::{connect, Database};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    db: Database,
    /// Apply nothing: exit 0 when every migration of this build is applied, 1 (naming
    /// the pending ones) when some are not.
    #[arg(long)]
    check: bool,
}

/// The versions of this build's migrations.
fn known() -> BTreeSet<i64> {
    cart_store::MIGRATOR.iter().map(|m| m.version).collect()
}

/// The versions the database has applied successfully; none when it was never migrated.
async fn applied(db: &Database) -> anyhow::Result<BTreeSet<i64>> {
    let pool = connect(db).await?;
    let exists: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(&pool)
        .await
        .context("read the applied migrations")?;
    let versions: Vec<i64> = if exists {
        sqlx::query_scalar("select version from _sqlx_migrations where success")
            .fetch_all(&pool)
            .await
            .context("read the applied migrations")?
    } else {
        Vec::new()
    };
    pool.close().await;
    Ok(versions.into_iter().collect())
}

fn list(versions: &BTreeSet<i64>) -> String {
    let names: Vec<String> = versions.iter().map(|v| format!("{v:04}")).collect();
    names.join(", ")
}

pub(crate) async fn run(args: &MigrateArgs) -> anyhow::Result<i32> {
    let known = known();
    if args.check {
        let applied = applied(&args.db).await?;
        let pending: BTreeSet<i64> = known.difference(&applied).copied().collect();
        if pending.is_empty() {
            eprintln!("migrations: all {} of this build are applied", known.len());
            return Ok(0);
        }
        eprintln!(
            "migrations: {} pending ({}); run `cartctl migrate`",
            pending.len(),
            list(&pending)
        );
        return Ok(1);
    }
    let url = args.db.database_url.as_str();
    cart_store::ensure_database(url)
        .await
        .with_context(|| format!("create the database at {url}"))?;
    let before = applied(&args.db).await?;
    // `connect` is what cartd runs at start: the durability check, then the migrations
    // under sqlx's advisory lock, so a replica starting meanwhile waits rather than races.
    let config = cart_store::DbConfig {
        url: url.to_owned(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
    };
    let pool = cart_store::connect(&config)
        .await
        .with_context(|| format!("migrate the database at {url}"))?;
    pool.close().await;
    let after = applied(&args.db).await?;
    let now: BTreeSet<i64> = after.difference(&before).copied().collect();
    if now.is_empty() {
        eprintln!("migrations: none to apply; all {} applied", known.len());
    } else {
        eprintln!("migrations: applied {} ({})", now.len(), list(&now));
    }
    Ok(0)
}
