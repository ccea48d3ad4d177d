//! Catalog admin commands over NATS: `<prefix>.admin.catalog.*`, JSON request/reply.
//!
//! Every change is checked in full before anything is written: the entity alone (field
//! errors name the field under `item.`, `promotion.` or `promo_code.`), then the
//! project's whole catalog with the change applied (duplicates, references between
//! items, promotions and promo codes). The write then goes to PostgreSQL with the version
//! the check was made against (optimistic concurrency), so a concurrent change makes it
//! check again instead of storing a catalog that was never validated as a whole.
//! docs/catalog.md describes the format and docs/protocol.md lists the endpoints.

mod edit;

use cart_proto::admin::reply::{
    ChangesReply, EntityDocument, GetReply, ImportReply, RecordedChange,
};
use cart_proto::admin::{self, CatalogDocument, ProjectCatalog};
use cart_proto::ErrorReply;
use cart_store::catalog::{
    CatalogAt, CatalogError, CatalogStore, Change, EntityKind, ProjectChanges,
};
use serde::Serialize;
use serde_json::Value;

use edit::{applied_reply, changes_of, check_merge, entity_path, pid, project_of, put, remove};

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
                let r = admin::request::decode_item(body)?;
                let item = r.subject;
                self.change(r.project.get(), r.expected_version, |c| {
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
                let r = admin::request::decode_promotion(body)?;
                let p = r.subject;
                self.change(r.project.get(), r.expected_version, |c| {
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
                let r = admin::request::decode_promo_code(body)?;
                let code = r.subject;
                self.change(r.project.get(), r.expected_version, |c| {
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
                let r = admin::request::decode_delete(body, admin::request::KeyField::Sku)?;
                let sku = r.subject;
                self.change(r.project.get(), r.expected_version, |c| {
                    remove(&mut c.items, |i| i.sku == sku, EntityKind::Item, &sku)
                })
                .await
            }
            (Entity::Promotion, Verb::Delete) => {
                let r = admin::request::decode_delete(body, admin::request::KeyField::Id)?;
                let id = r.subject;
                self.change(r.project.get(), r.expected_version, |c| {
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
                let r = admin::request::decode_delete(body, admin::request::KeyField::Code)?;
                let code = r.subject;
                self.change(r.project.get(), r.expected_version, |c| {
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
                Ok(applied) => return to_value(&applied_reply(&applied)),
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
        let r = admin::request::decode_import(body)?;
        let replace = r.replace;
        // The decoder checked each entity; a replace must also stand alone as a whole
        // (a merge may refer to what is stored: checked below).
        if replace {
            r.catalog
                .validate()
                .map_err(|e| reply(e.under("catalog")))?;
        }
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
                    return to_value(&ImportReply {
                        mode: if replace { "replace" } else { "merge" }.to_owned(),
                        projects: applied.iter().map(applied_reply).collect(),
                    })
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
        let projects = match admin::request::decode_export(body)? {
            Some(p) => vec![pid(p.get()).map_err(reply)?],
            None => self.store.projects().await.map_err(reply)?,
        };
        let mut doc = CatalogDocument::default();
        for id in projects {
            let snapshot = self.store.current(id).await.map_err(reply)?;
            doc.projects.push(project_of(id.unsigned_abs(), &snapshot)?);
        }
        to_value(&doc)
    }

    async fn get(&self, body: &[u8]) -> Result<Value, ErrorReply> {
        let r = admin::request::decode_get(body)?;
        let project_id = r.project.get();
        let id = pid(project_id).map_err(reply)?;
        let at = r.at.map(|at| match at {
            admin::request::CatalogPoint::Version(v) => CatalogAt::Version(v),
            // A checked date, written in a form PostgreSQL reads exactly.
            admin::request::CatalogPoint::Time(t) => CatalogAt::Time(t.to_string()),
        });
        let snapshot = match &at {
            Some(at) => self.store.catalog_at(id, at).await,
            None => self.store.current(id).await,
        }
        .map_err(reply)?;
        let catalog = project_of(project_id, &snapshot)?;
        let Some((kind, key)) = r.entity else {
            return to_value(&GetReply::Catalog {
                project_id,
                version: snapshot.version,
                catalog,
            });
        };
        // The decoder accepts only the three kinds.
        let kind = EntityKind::parse(&kind).ok_or_else(|| internal(&kind))?;
        let document = match kind {
            EntityKind::Item => catalog
                .items
                .into_iter()
                .find(|i| i.sku == key)
                .map(|x| EntityDocument::Item(Box::new(x))),
            EntityKind::Promotion => catalog
                .promotions
                .into_iter()
                .find(|p| p.id == key)
                .map(|x| EntityDocument::Promotion(Box::new(x))),
            EntityKind::PromoCode => catalog
                .promo_codes
                .into_iter()
                .find(|c| c.code == key)
                .map(|x| EntityDocument::PromoCode(Box::new(x))),
        };
        match document {
            Some(document) => to_value(&GetReply::Entity {
                project_id,
                version: snapshot.version,
                kind: kind.as_str().to_owned(),
                key,
                document,
            }),
            None => Err(errors::not_found(kind, &key, Some(project_id))),
        }
    }

    async fn changes(&self, body: &[u8]) -> Result<Value, ErrorReply> {
        let r = admin::request::decode_changes(body)?;
        let id = pid(r.project.get()).map_err(reply)?;
        let changes = self
            .store
            .changes(id, r.after_version, r.limit)
            .await
            .map_err(reply)?;
        to_value(&ChangesReply {
            project_id: r.project.get(),
            changes: changes
                .into_iter()
                .map(|c| RecordedChange {
                    version: c.version,
                    kind: c.kind.as_str().to_owned(),
                    key: c.key,
                    operation: c.operation.as_str().to_owned(),
                    document: c.document,
                    recorded_at: c.recorded_at,
                })
                .collect(),
        })
    }
}

/// A reply body of cart-proto's admin reply types (docs/schemas/catalog-*-reply.json).
fn to_value(reply: &impl Serialize) -> Result<Value, ErrorReply> {
    serde_json::to_value(reply).map_err(|e| internal(&e))
}

fn json_reply(value: Value) -> Reply {
    Reply::json(serde_json::to_vec(&value).unwrap_or_default())
}

/// A failure of the service itself (a stored document that no longer reads).
pub(super) fn internal(e: &dyn std::fmt::Display) -> ErrorReply {
    tracing::error!(error = %e, "catalog admin failure");
    errors::internal()
}
