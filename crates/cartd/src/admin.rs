//! Catalog admin commands over NATS: `<prefix>.admin.catalog.*`, JSON request/reply.
//!
//! Every change is checked in full before anything is written: the entity alone (field
//! errors name the field under `item.`, `promotion.` or `promo_code.`), then the
//! project's whole catalog with the change applied (duplicates, references between
//! items, promotions and promo codes). The write then goes to PostgreSQL with the version
//! the check was made against (optimistic concurrency), so a concurrent change makes it
//! check again instead of storing a catalog that was never validated as a whole.
//! docs/catalog.md describes the format and docs/protocol.md lists the endpoints.

use std::collections::BTreeMap;

use cart_proto::admin::{
    self, CatalogDocument, Item, ProjectCatalog, PromoCode, Promotion, ValidationError,
};
use cart_proto::ErrorReply;
use cart_store::catalog::{
    Action, Applied, CatalogAt, CatalogError, CatalogSnapshot, CatalogStore, Change, EntityKind,
    ProjectChanges,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog::CatalogCache;
use crate::edge::errors::{self, reply};
use crate::edge::{AdminEndpoint, Entity, Reply, Verb};

/// How often a change is checked again when the catalog moved on meanwhile.
const MAX_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub(crate) struct Admin {
    store: CatalogStore,
    /// Refreshed after every change, before the reply.
    cache: CatalogCache,
}

impl Admin {
    pub(crate) fn new(store: CatalogStore, cache: CatalogCache) -> Self {
        Self { store, cache }
    }

    /// Imports a catalog file into the projects that have no catalog yet (version 0);
    /// projects with a catalog are left alone. Returns the projects imported.
    pub(crate) async fn seed(&self, bytes: &[u8]) -> Result<Vec<u64>, anyhow::Error> {
        let doc = admin::parse_document(bytes)?;
        let mut imported = Vec::new();
        for project in doc.projects {
            let id = project.project_id;
            if self.store.version(pid(id)?).await? != 0 {
                continue;
            }
            let batch = ProjectChanges {
                project_id: pid(id)?,
                expected_version: Some(0),
                changes: changes_of(&project)?,
                replace: false,
            };
            match self.store.apply_many(vec![batch]).await {
                Ok(_) => imported.push(id),
                // Another instance seeded it first.
                Err(CatalogError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(imported)
    }

    /// Answers a request to an `admin.catalog.*` endpoint. A change is in this
    /// instance's prices before the caller hears of it.
    pub(crate) async fn handle(
        &self,
        endpoint: AdminEndpoint,
        body: &[u8],
    ) -> Result<Reply, ErrorReply> {
        let value = match endpoint {
            AdminEndpoint::Change(entity, verb) => self.change_entity(entity, verb, body).await?,
            AdminEndpoint::Import => self.import(body).await?,
            AdminEndpoint::Export => return self.export(body).await.map(json_reply),
            AdminEndpoint::Get => return self.get(body).await.map(json_reply),
            AdminEndpoint::Changes => return self.changes(body).await.map(json_reply),
        };
        self.cache.changed().await;
        Ok(json_reply(value))
    }

    /// Creates, updates or deletes one entity.
    async fn change_entity(
        &self,
        entity: Entity,
        verb: Verb,
        body: &[u8],
    ) -> Result<Value, ErrorReply> {
        match (entity, verb) {
            (Entity::Item, Verb::Create | Verb::Update) => {
                let r: ItemRequest = decode(body)?;
                let item = r.item;
                item.validate().map_err(|e| reply(e.under("item")))?;
                self.change(r.project_id, r.expected_version, |c| {
                    put(
                        &mut c.items,
                        |i| i.sku == item.sku,
                        item.clone(),
                        verb,
                        EntityKind::Item,
                        &item.sku,
                    )
                })
                .await
            }
            (Entity::Promotion, Verb::Create | Verb::Update) => {
                let r: PromotionRequest = decode(body)?;
                let p = r.promotion;
                p.validate().map_err(|e| reply(e.under("promotion")))?;
                self.change(r.project_id, r.expected_version, |c| {
                    put(
                        &mut c.promotions,
                        |x| x.id == p.id,
                        p.clone(),
                        verb,
                        EntityKind::Promotion,
                        &p.id,
                    )
                })
                .await
            }
            (Entity::PromoCode, Verb::Create | Verb::Update) => {
                let r: PromoCodeRequest = decode(body)?;
                let code = r.promo_code;
                code.validate().map_err(|e| reply(e.under("promo_code")))?;
                self.change(r.project_id, r.expected_version, |c| {
                    put(
                        &mut c.promo_codes,
                        |x| x.code == code.code,
                        code.clone(),
                        verb,
                        EntityKind::PromoCode,
                        &code.code,
                    )
                })
                .await
            }
            (Entity::Item, Verb::Delete) => {
                let r: ItemKey = decode(body)?;
                let sku = r.sku;
                self.change(r.project_id, r.expected_version, |c| {
                    remove(&mut c.items, |i| i.sku == sku, EntityKind::Item, &sku)
                })
                .await
            }
            (Entity::Promotion, Verb::Delete) => {
                let r: PromotionKey = decode(body)?;
                let id = r.id;
                self.change(r.project_id, r.expected_version, |c| {
                    remove(
                        &mut c.promotions,
                        |p| p.id == id,
                        EntityKind::Promotion,
                        &id,
                    )
                })
                .await
            }
            (Entity::PromoCode, Verb::Delete) => {
                let r: PromoCodeKey = decode(body)?;
                let code = r.code;
                self.change(r.project_id, r.expected_version, |c| {
                    remove(
                        &mut c.promo_codes,
                        |p| p.code == code,
                        EntityKind::PromoCode,
                        &code,
                    )
                })
                .await
            }
        }
    }

    /// Applies `edit` to the project's catalog, checks the result as a whole and writes
    /// the one change it made, against the version it was checked on.
    async fn change(
        &self,
        project_id: u64,
        expected_version: Option<i64>,
        edit: impl Fn(&mut ProjectCatalog) -> Result<Change, ErrorReply>,
    ) -> Result<Value, ErrorReply> {
        let id = pid(project_id).map_err(reply)?;
        for _ in 0..MAX_ATTEMPTS {
            let snapshot = self.store.current(id).await.map_err(reply)?;
            if let Some(expected) = expected_version {
                if expected != snapshot.version {
                    return Err(errors::catalog_conflict(
                        project_id,
                        expected,
                        snapshot.version,
                    ));
                }
            }
            let mut catalog = project_of(project_id, &snapshot)?;
            let change = edit(&mut catalog)?;
            if let Err(e) = catalog.validate() {
                return Err(reply(entity_path(e, &catalog, &change)));
            }
            match self
                .store
                .apply(id, Some(snapshot.version), vec![change])
                .await
            {
                Ok(applied) => return Ok(applied_reply(&applied)),
                // Someone else changed the catalog meanwhile: check again on theirs,
                // unless the caller asked for a version.
                Err(CatalogError::Conflict { actual, .. }) if expected_version.is_none() => {
                    tracing::debug!(
                        project_id,
                        actual,
                        "catalog changed concurrently; checking again"
                    );
                }
                Err(e) => return Err(reply(e)),
            }
        }
        Err(errors::too_busy("change"))
    }

    async fn import(&self, body: &[u8]) -> Result<Value, ErrorReply> {
        let r: ImportRequest = decode(body)?;
        let replace = match r.mode.as_deref() {
            None | Some("merge") => false,
            Some("replace") => true,
            Some(other) => {
                return Err(reply(ValidationError::Invalid {
                    field: "mode".to_owned(),
                    reason: format!("{other:?} is neither \"merge\" nor \"replace\""),
                }))
            }
        };
        // A replace stands alone; a merge may refer to what is stored (checked below).
        if replace {
            r.catalog.validate()
        } else {
            r.catalog.validate_entities()
        }
        .map_err(|e| reply(e.under("catalog")))?;
        // A merge is checked against the stored version it read and written only if
        // that version is still current: a concurrent change (an item deleted that the
        // file refers to) makes it check again, as `change` does.
        let retry = !replace && r.expected_version.is_none();
        for _ in 0..MAX_ATTEMPTS {
            let mut batches = Vec::new();
            for (i, project) in r.catalog.projects.iter().enumerate() {
                let project_id = pid(project.project_id).map_err(reply)?;
                let expected_version = if replace {
                    r.expected_version
                } else {
                    // A merge keeps what the file does not name, so the result must be
                    // checked as a whole: references to kept entities, and kept entities
                    // referring to replaced ones.
                    let stored = self.store.current(project_id).await.map_err(reply)?;
                    check_merge(project, i, &stored)?;
                    Some(r.expected_version.unwrap_or(stored.version))
                };
                batches.push(ProjectChanges {
                    project_id,
                    expected_version,
                    changes: changes_of(project).map_err(reply)?,
                    replace,
                });
            }
            match self.store.apply_many(batches).await {
                Ok(applied) => {
                    return Ok(json!({
                        "mode": if replace { "replace" } else { "merge" },
                        "projects": applied.iter().map(applied_reply).collect::<Vec<_>>(),
                    }))
                }
                Err(CatalogError::Conflict { actual, .. }) if retry => {
                    tracing::debug!(
                        actual,
                        "catalog changed during a merge import; checking again"
                    );
                }
                Err(e) => return Err(reply(e)),
            }
        }
        Err(errors::too_busy("import"))
    }

    async fn export(&self, body: &[u8]) -> Result<Value, ErrorReply> {
        let r: ExportRequest = decode_or_default(body)?;
        let projects = match r.project_id {
            Some(p) => vec![pid(p).map_err(reply)?],
            None => self.store.projects().await.map_err(reply)?,
        };
        let mut doc = CatalogDocument::default();
        for id in projects {
            let snapshot = self.store.current(id).await.map_err(reply)?;
            doc.projects.push(project_of(id.unsigned_abs(), &snapshot)?);
        }
        serde_json::to_value(doc).map_err(|e| internal(&e))
    }

    async fn get(&self, body: &[u8]) -> Result<Value, ErrorReply> {
        let r: GetRequest = decode(body)?;
        let id = pid(r.project_id).map_err(reply)?;
        let at = match (r.at_version, r.at_time) {
            (Some(_), Some(_)) => {
                return Err(reply(ValidationError::Invalid {
                    field: "at_time".to_owned(),
                    reason: "give `at_version` or `at_time`, not both".to_owned(),
                }))
            }
            (Some(v), None) => Some(CatalogAt::Version(v)),
            (None, Some(t)) => {
                admin::parse_date("at_time", &t).map_err(reply)?;
                Some(CatalogAt::Time(t))
            }
            (None, None) => None,
        };
        let snapshot = match &at {
            Some(at) => self.store.catalog_at(id, at).await,
            None => self.store.current(id).await,
        }
        .map_err(reply)?;
        let catalog = project_of(r.project_id, &snapshot)?;
        match (r.kind.as_deref(), r.key) {
            (None, None) => Ok(json!({
                "project_id": r.project_id,
                "version": snapshot.version,
                "catalog": catalog,
            })),
            (Some(kind), Some(key)) => {
                let Some(kind) = EntityKind::parse(kind) else {
                    return Err(reply(ValidationError::Invalid {
                        field: "kind".to_owned(),
                        reason: format!(
                            "{kind:?} is not one of \"item\", \"promotion\", \"promo_code\""
                        ),
                    }));
                };
                let document = match kind {
                    EntityKind::Item => catalog
                        .items
                        .iter()
                        .find(|i| i.sku == key)
                        .map(serde_json::to_value),
                    EntityKind::Promotion => catalog
                        .promotions
                        .iter()
                        .find(|p| p.id == key)
                        .map(serde_json::to_value),
                    EntityKind::PromoCode => catalog
                        .promo_codes
                        .iter()
                        .find(|c| c.code == key)
                        .map(serde_json::to_value),
                };
                match document {
                    Some(doc) => Ok(json!({
                        "project_id": r.project_id,
                        "version": snapshot.version,
                        "kind": kind.as_str(),
                        "key": key,
                        "document": doc.map_err(|e| internal(&e))?,
                    })),
                    None => Err(errors::not_found(kind, &key, Some(r.project_id))),
                }
            }
            _ => Err(errors::out_of_range(
                "Give both `kind` and `key`, or neither",
            )),
        }
    }

    async fn changes(&self, body: &[u8]) -> Result<Value, ErrorReply> {
        let r: ChangesRequest = decode(body)?;
        let id = pid(r.project_id).map_err(reply)?;
        let limit = r.limit.unwrap_or(1000).clamp(1, 10_000);
        let changes = self
            .store
            .changes(id, r.after_version.unwrap_or(0), limit)
            .await
            .map_err(reply)?;
        Ok(json!({
            "project_id": r.project_id,
            "changes": changes.iter().map(|c| json!({
                "version": c.version,
                "kind": c.kind.as_str(),
                "key": c.key,
                "operation": c.operation.as_str(),
                "document": c.document,
                "recorded_at": c.recorded_at,
            })).collect::<Vec<_>>(),
        }))
    }
}

// ---- requests ---------------------------------------------------------------------

/// Declares a request of `project_id`, an optional `expected_version` and one field.
macro_rules! request {
    ($name:ident, $field:ident: $ty:ty) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            project_id: u64,
            #[serde(default)]
            expected_version: Option<i64>,
            $field: $ty,
        }
    };
}

request!(ItemRequest, item: Item);
request!(PromotionRequest, promotion: Promotion);
request!(PromoCodeRequest, promo_code: PromoCode);
request!(ItemKey, sku: String);
request!(PromotionKey, id: String);
request!(PromoCodeKey, code: String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    catalog: CatalogDocument,
    #[serde(default)]
    mode: Option<String>,
    /// Applies to every project of the document.
    #[serde(default)]
    expected_version: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    #[serde(default)]
    project_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetRequest {
    project_id: u64,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    at_version: Option<i64>,
    #[serde(default)]
    at_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesRequest {
    project_id: u64,
    #[serde(default)]
    after_version: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

// ---- helpers ----------------------------------------------------------------------

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ErrorReply> {
    admin::decode(body).map_err(reply)
}

fn json_reply(value: Value) -> Reply {
    Reply::json(serde_json::to_vec(&value).unwrap_or_default())
}

/// A failure of the service itself (a stored document that no longer reads).
fn internal(e: &dyn std::fmt::Display) -> ErrorReply {
    tracing::error!(error = %e, "catalog admin failure");
    errors::internal()
}

fn decode_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ErrorReply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    decode(body)
}

fn pid(project_id: u64) -> Result<i64, ValidationError> {
    i64::try_from(project_id)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ValidationError::Invalid {
            field: "project_id".to_owned(),
            reason: "must be a positive 64-bit integer".to_owned(),
        })
}

/// The stored documents as a project catalog.
fn project_of(project_id: u64, s: &CatalogSnapshot) -> Result<ProjectCatalog, ErrorReply> {
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

fn document<T: Serialize>(value: &T) -> Result<Value, ValidationError> {
    serde_json::to_value(value).map_err(|e| ValidationError::Invalid {
        field: String::new(),
        reason: e.to_string(),
    })
}

/// Every entity of `project` as a put.
fn changes_of(project: &ProjectCatalog) -> Result<Vec<Change>, ValidationError> {
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
fn merge(merged: &mut ProjectCatalog, file: &ProjectCatalog) {
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
fn put<T: Serialize>(
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

fn remove<T>(
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
fn entity_path(e: ValidationError, catalog: &ProjectCatalog, change: &Change) -> ValidationError {
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
fn check_merge(
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
fn merge_path(
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

fn applied_reply(a: &Applied) -> Value {
    json!({
        "project_id": a.project_id,
        "version": a.version,
        "changes": a.changes.iter().map(|(kind, key, op)| json!({
            "kind": kind.as_str(),
            "key": key,
            "operation": op.as_str(),
        })).collect::<Vec<_>>(),
    })
}
