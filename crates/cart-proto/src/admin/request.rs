//! The catalog admin request bodies and their decoding into checked values, one
//! `decode_*` per body: one JSON object (`decode`), the project id, the entity validated
//! with field paths from the request (`item.prices[0].currency`), `at_time` read by
//! `DateTime`.

use cart_domain::{DateTime, ProjectId};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{decode, CatalogDocument, DecodeError, Item, PromoCode, Promotion, ValidationError};
use crate::ErrorReply;

/// The largest page of `changes`, and its default.
pub const MAX_CHANGES: i64 = 10_000;
pub const DEFAULT_CHANGES: i64 = 1_000;

/// A change of one project's catalog, checked against `expected_version` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<T> {
    pub project: ProjectId,
    pub expected_version: Option<i64>,
    /// The entity (create, update), validated on its own, or its key (delete).
    pub subject: T,
}

/// `import`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Validated entity by entity; references are checked on the merged catalog.
    pub catalog: CatalogDocument,
    /// `replace` (true) or `merge` (false, the default).
    pub replace: bool,
    pub expected_version: Option<i64>,
}

/// A point in a catalog's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogPoint {
    /// After the change with this version.
    Version(i64),
    /// As it was at this instant.
    Time(DateTime),
}

/// `get`: the whole catalog, or one entity of it (`kind` and `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogGet {
    pub project: ProjectId,
    /// `item`, `promotion` or `promo_code` with its key; None for the whole catalog.
    pub entity: Option<(String, String)>,
    pub at: Option<CatalogPoint>,
}

/// `changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesQuery {
    pub project: ProjectId,
    pub after_version: i64,
    /// 1 to `MAX_CHANGES`.
    pub limit: i64,
}

/// The 400 or 422 reply to a refused admin body.
pub fn decode_reply(e: &DecodeError) -> ErrorReply {
    match e {
        DecodeError::Syntax(e) => ErrorReply::malformed(e),
        DecodeError::Shape(e) => ErrorReply::new(422, 1102, format!("Unprocessable Entity. {e}")),
        DecodeError::Invalid(e) => invalid_reply(e),
    }
}

/// The 422 reply to a failed check.
pub fn invalid_reply(e: &ValidationError) -> ErrorReply {
    ErrorReply::new(422, 1102, format!("Unprocessable Entity. {e}"))
}

/// The body of `item.create` and `item.update`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemBody {
    project_id: u64,
    #[serde(default)]
    expected_version: Option<i64>,
    item: Item,
}

/// The body of `promotion.create` and `promotion.update`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct PromotionBody {
    project_id: u64,
    #[serde(default)]
    expected_version: Option<i64>,
    promotion: Promotion,
}

/// The body of `promocode.create` and `promocode.update`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct PromoCodeBody {
    project_id: u64,
    #[serde(default)]
    expected_version: Option<i64>,
    promo_code: PromoCode,
}

/// The body of the deletes: the key the endpoint names and no other (`sku` for
/// `item.delete`, `id` for `promotion.delete`, `code` for `promocode.delete`).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyBody {
    project_id: u64,
    #[serde(default)]
    expected_version: Option<i64>,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// The body of `import`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportBody {
    catalog: CatalogDocument,
    /// `merge` (the default) or `replace`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["merge", "replace", null])))]
    mode: Option<String>,
    #[serde(default)]
    expected_version: Option<i64>,
}

/// The body of `export`; an empty body exports every project.
#[derive(Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportBody {
    #[serde(default)]
    project_id: Option<u64>,
}

/// The body of `get`: `kind` and `key` together, or neither; `at_version` or
/// `at_time` (RFC 3339), or neither.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct GetBody {
    project_id: u64,
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["item", "promotion", "promo_code", null]))
    )]
    kind: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    at_version: Option<i64>,
    #[serde(default)]
    at_time: Option<String>,
}

/// The body of `changes`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangesBody {
    project_id: u64,
    #[serde(default)]
    after_version: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorReply> {
    decode(bytes).map_err(|e| decode_reply(&e))
}

fn invalid(field: &str, reason: impl Into<String>) -> ErrorReply {
    invalid_reply(&ValidationError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    })
}

fn project(id: u64) -> Result<ProjectId, ErrorReply> {
    ProjectId::parse(id).map_err(|_| invalid("project_id", "must be a positive 64-bit integer"))
}

/// `item.create`, `item.update`.
///
/// # Errors
/// 400/1102 for bytes that are not JSON; 422/1102 for any other refusal, naming the
/// field (`item.prices[0].currency`).
pub fn decode_item(bytes: &[u8]) -> Result<Change<Item>, ErrorReply> {
    let r: ItemBody = body(bytes)?;
    r.item
        .validate()
        .map_err(|e| invalid_reply(&e.under("item")))?;
    Ok(Change {
        project: project(r.project_id)?,
        expected_version: r.expected_version,
        subject: r.item,
    })
}

/// `promotion.create`, `promotion.update`.
///
/// # Errors
/// As [`decode_item`].
pub fn decode_promotion(bytes: &[u8]) -> Result<Change<Promotion>, ErrorReply> {
    let r: PromotionBody = body(bytes)?;
    r.promotion
        .validate()
        .map_err(|e| invalid_reply(&e.under("promotion")))?;
    Ok(Change {
        project: project(r.project_id)?,
        expected_version: r.expected_version,
        subject: r.promotion,
    })
}

/// `promocode.create`, `promocode.update`.
///
/// # Errors
/// As [`decode_item`].
pub fn decode_promo_code(bytes: &[u8]) -> Result<Change<PromoCode>, ErrorReply> {
    let r: PromoCodeBody = body(bytes)?;
    r.promo_code
        .validate()
        .map_err(|e| invalid_reply(&e.under("promo_code")))?;
    Ok(Change {
        project: project(r.project_id)?,
        expected_version: r.expected_version,
        subject: r.promo_code,
    })
}

/// Which key a delete names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// `item.delete`.
    Sku,
    /// `promotion.delete`.
    Id,
    /// `promocode.delete`.
    Code,
}

/// `item.delete`, `promotion.delete`, `promocode.delete`: the key `field` names, and no
/// other.
///
/// # Errors
/// As [`decode_item`].
pub fn decode_delete(bytes: &[u8], field: KeyField) -> Result<Change<String>, ErrorReply> {
    let r: KeyBody = body(bytes)?;
    let (name, wanted, others) = match field {
        KeyField::Sku => (
            "sku",
            r.sku,
            [("id", r.id.is_some()), ("code", r.code.is_some())],
        ),
        KeyField::Id => (
            "id",
            r.id,
            [("sku", r.sku.is_some()), ("code", r.code.is_some())],
        ),
        KeyField::Code => (
            "code",
            r.code,
            [("sku", r.sku.is_some()), ("id", r.id.is_some())],
        ),
    };
    if let Some((other, _)) = others.iter().find(|(_, given)| *given) {
        return Err(decode_reply(&DecodeError::Shape(serde::de::Error::custom(
            format!(
                "unknown field `{other}`, expected `project_id`, `expected_version` or `{name}`"
            ),
        ))));
    }
    let key = wanted.ok_or_else(|| {
        invalid_reply(&ValidationError::Required {
            field: name.to_owned(),
        })
    })?;
    Ok(Change {
        project: project(r.project_id)?,
        expected_version: r.expected_version,
        subject: key,
    })
}

/// `import`.
///
/// # Errors
/// As [`decode_item`]; entities are validated on their own, with paths from the
/// request (`catalog.projects[0].items[3].sku`).
pub fn decode_import(bytes: &[u8]) -> Result<Import, ErrorReply> {
    let r: ImportBody = body(bytes)?;
    let replace = match r.mode.as_deref() {
        None | Some("merge") => false,
        Some("replace") => true,
        Some(other) => {
            return Err(invalid(
                "mode",
                format!("{other:?} is neither \"merge\" nor \"replace\""),
            ))
        }
    };
    r.catalog
        .validate_entities()
        .map_err(|e| invalid_reply(&e.under("catalog")))?;
    Ok(Import {
        catalog: r.catalog,
        replace,
        expected_version: r.expected_version,
    })
}

/// `export`: one project, or all of them (an empty body too).
///
/// # Errors
/// As [`decode_item`].
pub fn decode_export(bytes: &[u8]) -> Result<Option<ProjectId>, ErrorReply> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let r: ExportBody = body(bytes)?;
    r.project_id.map(project).transpose()
}

/// `get`.
///
/// # Errors
/// As [`decode_item`]; an `at_time` that is not an RFC 3339 date-time names `at_time`.
pub fn decode_get(bytes: &[u8]) -> Result<CatalogGet, ErrorReply> {
    let r: GetBody = body(bytes)?;
    let at = match (r.at_version, r.at_time) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "at_time",
                "give `at_version` or `at_time`, not both",
            ))
        }
        (Some(v), None) => Some(CatalogPoint::Version(v)),
        (None, Some(t)) => Some(CatalogPoint::Time(DateTime::parse(&t).map_err(|_| {
            invalid_reply(&ValidationError::Date {
                field: "at_time".to_owned(),
                value: t.clone(),
            })
        })?)),
        (None, None) => None,
    };
    let entity = match (r.kind, r.key) {
        (None, None) => None,
        (Some(kind), Some(key)) if matches!(kind.as_str(), "item" | "promotion" | "promo_code") => {
            Some((kind, key))
        }
        (Some(kind), Some(_)) => {
            return Err(invalid(
                "kind",
                format!("{kind:?} is not one of \"item\", \"promotion\", \"promo_code\""),
            ))
        }
        _ => {
            return Err(ErrorReply::new(
                422,
                1102,
                "Unprocessable Entity. Give both `kind` and `key`, or neither",
            ))
        }
    };
    Ok(CatalogGet {
        project: project(r.project_id)?,
        entity,
        at,
    })
}

/// `changes`.
///
/// # Errors
/// As [`decode_item`].
pub fn decode_changes(bytes: &[u8]) -> Result<ChangesQuery, ErrorReply> {
    let r: ChangesBody = body(bytes)?;
    Ok(ChangesQuery {
        project: project(r.project_id)?,
        after_version: r.after_version.unwrap_or(0),
        limit: r.limit.unwrap_or(DEFAULT_CHANGES).clamp(1, MAX_CHANGES),
    })
}
