//! Editing a project's catalog as admin documents: the stored snapshot as a project,
//! puts and removals of one entity, merges of an import, and the field paths of the
//! errors a whole-catalog check finds.

use std::collections::BTreeMap;

use cart_proto::admin::reply::{AppliedChange, ChangeReply};
use cart_proto::admin::{ProjectCatalog, ValidationError};
use cart_proto::ErrorReply;
use cart_store::catalog::{Action, Applied, CatalogSnapshot, Change, EntityKind};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::internal;
use crate::edge::errors::{self, reply};
use crate::edge::Verb;

pub(super) fn pid(project_id: u64) -> Result<i64, ValidationError> {
    i64::try_from(project_id)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ValidationError::Invalid {
            field: "project_id".to_owned(),
            reason: "must be a positive 64-bit integer".to_owned(),
        })
}

/// The stored documents as a project catalog.
pub(super) fn project_of(
    project_id: u64,
    s: &CatalogSnapshot,
) -> Result<ProjectCatalog, ErrorReply> {
    fn docs<T: DeserializeOwned>(values: &[Value]) -> Result<Vec<T>, ErrorReply> {
        values
            .iter()
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| internal(&e)))
            .collect()
    }
    Ok(ProjectCatalog {
        project_id,
        items: docs(&s.items)?,
        promotions: docs(&s.promotions)?,
        promo_codes: docs(&s.promo_codes)?,
    })
}

pub(super) fn document<T: Serialize>(value: &T) -> Result<Value, ValidationError> {
    serde_json::to_value(value).map_err(|e| ValidationError::Invalid {
        field: String::new(),
        reason: e.to_string(),
    })
}

/// Every entity of `project` as a put.
pub(super) fn changes_of(project: &ProjectCatalog) -> Result<Vec<Change>, ValidationError> {
    let mut out = Vec::new();
    for i in &project.items {
        out.push(Change {
            kind: EntityKind::Item,
            key: i.sku.clone(),
            action: Action::Put(document(i)?),
        });
    }
    for p in &project.promotions {
        out.push(Change {
            kind: EntityKind::Promotion,
            key: p.id.clone(),
            action: Action::Put(document(p)?),
        });
    }
    for c in &project.promo_codes {
        out.push(Change {
            kind: EntityKind::PromoCode,
            key: c.code.clone(),
            action: Action::Put(document(c)?),
        });
    }
    Ok(out)
}

/// `merged` with the entities of `file` put over it (merge import).
pub(super) fn merge(merged: &mut ProjectCatalog, file: &ProjectCatalog) {
    fn over<T: Clone>(into: &mut Vec<T>, from: &[T], key: impl Fn(&T) -> &str) {
        let mut at: BTreeMap<String, usize> = into
            .iter()
            .enumerate()
            .map(|(i, x)| (key(x).to_owned(), i))
            .collect();
        for x in from {
            match at.get(key(x)) {
                Some(&i) => into[i] = x.clone(),
                None => {
                    at.insert(key(x).to_owned(), into.len());
                    into.push(x.clone());
                }
            }
        }
    }
    over(&mut merged.items, &file.items, |i| &i.sku);
    over(&mut merged.promotions, &file.promotions, |p| &p.id);
    over(&mut merged.promo_codes, &file.promo_codes, |c| &c.code);
}

/// Creates or updates `value` in `list` (by `same`), as the verb says.
pub(super) fn put<T: Serialize>(
    list: &mut Vec<T>,
    same: impl Fn(&T) -> bool,
    value: T,
    verb: Verb,
    kind: EntityKind,
    key: &str,
) -> Result<Change, ErrorReply> {
    let doc = document(&value).map_err(|e| internal(&e))?;
    let position = list.iter().position(same);
    let action = match (verb, position) {
        (Verb::Create, Some(_)) => return Err(errors::already_exists(kind, key)),
        (Verb::Create, None) => {
            list.push(value);
            Action::Create(doc.clone())
        }
        (_, None) => return Err(errors::not_found(kind, key, None)),
        (_, Some(i)) => {
            list[i] = value;
            Action::Update(doc)
        }
    };
    Ok(Change {
        kind,
        key: key.to_owned(),
        action,
    })
}

pub(super) fn remove<T>(
    list: &mut Vec<T>,
    same: impl Fn(&T) -> bool,
    kind: EntityKind,
    key: &str,
) -> Result<Change, ErrorReply> {
    let Some(i) = list.iter().position(same) else {
        return Err(errors::not_found(kind, key, None));
    };
    list.remove(i);
    Ok(Change {
        kind,
        key: key.to_owned(),
        action: Action::Delete,
    })
}

/// A whole-catalog error about the changed entity itself is named from the entity
/// (`item.virtual_prices[0].sku`), not from its place in the project's lists.
pub(super) fn entity_path(
    e: ValidationError,
    catalog: &ProjectCatalog,
    change: &Change,
) -> ValidationError {
    let position = match change.kind {
        EntityKind::Item => catalog.items.iter().position(|i| i.sku == change.key),
        EntityKind::Promotion => catalog.promotions.iter().position(|p| p.id == change.key),
        EntityKind::PromoCode => catalog
            .promo_codes
            .iter()
            .position(|c| c.code == change.key),
    };
    let (list, name) = match change.kind {
        EntityKind::Item => ("items", "item"),
        EntityKind::Promotion => ("promotions", "promotion"),
        EntityKind::PromoCode => ("promo_codes", "promo_code"),
    };
    let prefix = position.map(|i| format!("{list}[{i}]."));
    match prefix.as_deref().and_then(|p| e.field().strip_prefix(p)) {
        Some(rest) => {
            let field = format!("{name}.{rest}");
            e.with_field(field)
        }
        // Another entity refers to the changed one: say which, from the project.
        None => e.under("catalog"),
    }
}

/// Checks `file` (project `index` of a merge import) merged into the `stored` catalog.
pub(super) fn check_merge(
    file: &ProjectCatalog,
    index: usize,
    stored: &CatalogSnapshot,
) -> Result<(), ErrorReply> {
    let mut merged = project_of(file.project_id, stored)?;
    merge(&mut merged, file);
    merged
        .validate_references()
        .map_err(|e| reply(merge_path(e, &merged, file, index)))
}

/// A reference error of a merged catalog, named from the document when the entity
/// comes from it (`catalog.projects[0].promotions[1].skus[0]`), else as stored
/// (`stored catalog of project N.promo_codes[0].bonus[0].sku`).
pub(super) fn merge_path(
    e: ValidationError,
    merged: &ProjectCatalog,
    file: &ProjectCatalog,
    project_index: usize,
) -> ValidationError {
    let field = e.field().to_owned();
    let Some((head, rest)) = field.split_once('.') else {
        return e;
    };
    let Some((list, index)) = head
        .strip_suffix(']')
        .and_then(|h| h.split_once('['))
        .and_then(|(l, i)| Some((l, i.parse::<usize>().ok()?)))
    else {
        return e;
    };
    let in_file = match list {
        "items" => merged
            .items
            .get(index)
            .and_then(|x| file.items.iter().position(|f| f.sku == x.sku)),
        "promotions" => merged
            .promotions
            .get(index)
            .and_then(|x| file.promotions.iter().position(|f| f.id == x.id)),
        "promo_codes" => merged
            .promo_codes
            .get(index)
            .and_then(|x| file.promo_codes.iter().position(|f| f.code == x.code)),
        _ => None,
    };
    match in_file {
        Some(j) => e.with_field(format!(
            "catalog.projects[{project_index}].{list}[{j}].{rest}"
        )),
        None => e.under(&format!("stored catalog of project {}", file.project_id)),
    }
}

pub(super) fn applied_reply(a: &Applied) -> ChangeReply {
    ChangeReply {
        project_id: a.project_id.unsigned_abs(),
        version: a.version,
        changes: a
            .changes
            .iter()
            .map(|(kind, key, op)| AppliedChange {
                kind: kind.as_str().to_owned(),
                key: key.clone(),
                operation: op.as_str().to_owned(),
            })
            .collect(),
    }
}
