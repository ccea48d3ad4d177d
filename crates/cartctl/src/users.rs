//! `cartctl users erase`: a user's right to erasure (docs/operations.md, "Right to
//! erasure"). Reads and writes PostgreSQL directly, like `events export`: erasure must
//! work while no cartd runs.

use anyhow::Context;
use cart_domain::{ProjectId, UserId};
use clap::Subcommand;

use crate::feed::Database;
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Erase the personal data of the user given by --project and --user (both required
    /// on the command line): deletes their key, so every sealed field of theirs in the
    /// order log reads as erased from now on, and scrubs their webhook outbox rows.
    /// Prints what it did, and the user's events written in clear before sealing
    /// existed (never rewritten). Safe to repeat.
    Erase {
        #[command(flatten)]
        db: Database,
    },
}

pub(crate) async fn run(g: &Global, command: &UsersCommand) -> anyhow::Result<i32> {
    let UsersCommand::Erase { db } = command;
    let project =
        ProjectId::parse(g.project).map_err(|e| anyhow::anyhow!("--project {}: {e}", g.project))?;
    let user =
        UserId::parse(g.user.clone()).map_err(|e| anyhow::anyhow!("--user {:?}: {e}", g.user))?;
    let pool = crate::feed::connect(db).await?;
    let report = cart_store::erasure::erase_user(&pool, project, &user)
        .await
        .context("erase the user")?;
    // After the key: should this fail, a repeat (idempotent) scrubs what is left.
    let scrubbed = cart_webhook::store::scrub_user(&pool, g.project, &g.user)
        .await
        .context("scrub the user's webhook deliveries")?;
    let clear: serde_json::Map<String, serde_json::Value> = report
        .clear_events
        .iter()
        .map(|(t, n)| (t.clone(), (*n).into()))
        .collect();
    crate::print_json(&serde_json::json!({
        "project_id": g.project,
        "user_id": g.user,
        "key_deleted": report.key_deleted,
        "sealed_events_unreadable": report.sealed_events,
        "clear_events_not_rewritten": clear,
        "webhook_deliveries_scrubbed": scrubbed,
    }))?;
    if !report.clear_events.is_empty() {
        eprintln!(
            "cartctl: {} of the user's order events hold personal data in clear (written before sealing); the log is append-only, so they stay readable (docs/operations.md, \"Right to erasure\")",
            report.clear_events.iter().map(|(_, n)| n).sum::<u64>()
        );
    }
    Ok(0)
}
