//! `cartctl catalog ...`: the catalog admin endpoints (`<prefix>.admin.catalog.*`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Import a catalog document (the format of deploy/catalog.json, docs/catalog.md).
    Import {
        /// The file; `-` reads standard input.
        file: PathBuf,
        /// Delete what the file does not list (per project in the file); the default
        /// merges: entities in the file are created or updated, the others stay.
        #[arg(long)]
        replace: bool,
        /// Refuse the import unless each project's catalog is at this version.
        #[arg(long)]
        expected_version: Option<i64>,
    },
    /// Print the stored catalog as a document that `import` takes back.
    Export {
        /// Only this project (default: every project with a catalog).
        #[arg(long = "only-project")]
        only_project: Option<u64>,
    },
    /// Show the project's catalog (now, or at a version or time) with its version, or
    /// one entity: `catalog get item cup01`.
    Get {
        /// item, promotion or promo_code.
        kind: Option<String>,
        key: Option<String>,
        #[arg(long, conflicts_with = "at_time")]
        at_version: Option<i64>,
        /// RFC 3339, e.g. 2026-11-22T10:00:00Z.
        #[arg(long)]
        at_time: Option<String>,
    },
    /// The recorded changes of the project's catalog, oldest first.
    Changes {
        #[arg(long, default_value_t = 0)]
        after_version: i64,
    },
}

pub(crate) async fn run(g: &Global, command: &CatalogCommand) -> anyhow::Result<i32> {
    let (endpoint, body) = match command {
        CatalogCommand::Import {
            file,
            replace,
            expected_version,
        } => {
            let bytes = if file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                buf
            } else {
                std::fs::read(file).with_context(|| format!("read {}", file.display()))?
            };
            let catalog: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let mut body = json!({
                "catalog": catalog,
                "mode": if *replace { "replace" } else { "merge" },
            });
            if let Some(v) = expected_version {
                body["expected_version"] = json!(v);
            }
            ("import", body)
        }
        CatalogCommand::Export { only_project } => (
            "export",
            match only_project {
                Some(p) => json!({ "project_id": p }),
                None => json!({}),
            },
        ),
        CatalogCommand::Get {
            kind,
            key,
            at_version,
            at_time,
        } => {
            let mut body = json!({ "project_id": g.project });
            if let Some(kind) = kind {
                body["kind"] = json!(kind);
            }
            if let Some(key) = key {
                body["key"] = json!(key);
            }
            if let Some(v) = at_version {
                body["at_version"] = json!(v);
            }
            if let Some(t) = at_time {
                body["at_time"] = json!(t);
            }
            ("get", body)
        }
        CatalogCommand::Changes { after_version } => (
            "changes",
            json!({ "project_id": g.project, "after_version": after_version }),
        ),
    };
    crate::json_request(
        g,
        &format!("admin.catalog.{endpoint}"),
        async_nats::HeaderMap::new(),
        serde_json::to_vec(&body)?,
        "cartd (`make run`)",
    )
    .await
}
