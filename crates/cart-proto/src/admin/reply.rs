//! The catalog admin reply bodies, as cartd writes them: typed here so that their JSON
//! Schemas (docs/schemas) are generated from what the service really writes. `export`
//! replies with a [`CatalogDocument`](super::CatalogDocument); errors are `ErrorReply`.

use serde::Serialize;

use super::{Item, ProjectCatalog, PromoCode, Promotion};

/// One change as it was applied: which entity, and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AppliedChange {
    /// `item`, `promotion` or `promo_code`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["item", "promotion", "promo_code"])))]
    pub kind: String,
    /// The SKU, promotion id or promo code.
    pub key: String,
    /// `create`, `update` or `delete`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["create", "update", "delete"])))]
    pub operation: String,
}

/// The reply to `item|promotion|promocode.create|update|delete`: the project's catalog
/// version after the change. Also one project of an `import` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChangeReply {
    pub project_id: u64,
    pub version: i64,
    pub changes: Vec<AppliedChange>,
}

/// The reply to `import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportReply {
    /// `merge` or `replace`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["merge", "replace"])))]
    pub mode: String,
    pub projects: Vec<ChangeReply>,
}

/// An entity of a `get` reply; written as the bare document (boxed: the three differ
/// much in size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum EntityDocument {
    Item(Box<Item>),
    Promotion(Box<Promotion>),
    PromoCode(Box<PromoCode>),
}

/// The reply to `get`: the whole catalog, or the one entity asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum GetReply {
    Catalog {
        project_id: u64,
        version: i64,
        catalog: ProjectCatalog,
    },
    Entity {
        project_id: u64,
        version: i64,
        /// `item`, `promotion` or `promo_code`.
        #[cfg_attr(feature = "schema", schemars(extend("enum" = ["item", "promotion", "promo_code"])))]
        kind: String,
        key: String,
        document: EntityDocument,
    },
}

/// One recorded change of a `changes` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RecordedChange {
    pub version: i64,
    /// `item`, `promotion` or `promo_code`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["item", "promotion", "promo_code"])))]
    pub kind: String,
    pub key: String,
    /// `create`, `update` or `delete`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["create", "update", "delete"])))]
    pub operation: String,
    /// The entity as it was stored by the change, as stored (JSONB); null for a delete.
    pub document: Option<serde_json::Value>,
    /// UTC, RFC 3339 with microseconds (`2026-01-02T03:04:05.123456Z`).
    pub recorded_at: String,
}

/// The reply to `changes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChangesReply {
    pub project_id: u64,
    pub changes: Vec<RecordedChange>,
}
