//! The catalog carts are priced against: a snapshot of the catalog stored in PostgreSQL
//! (`catalog_items`, `catalog_promotions`, `catalog_promo_codes`), converted to the
//! domain's [`Catalog`] and swapped whole behind an `Arc`.
//!
//! Reading is cheap: [`CatalogCache::snapshot`] clones an `Arc` under a read lock that
//! is only ever held for that clone, so every request prices one consistent catalog.
//!
//! Refreshing: [`CatalogCache::refresh`] reads every project's version (one query) and
//! reloads, in one repeatable-read transaction each, the projects whose version moved;
//! then it builds a new `Catalog` and swaps it in. Refreshes are serialized, so a slow
//! one never overwrites a newer snapshot. It runs
//! - after every admin change this instance commits, before the admin reply is sent: a
//!   caller that got the reply sees the change in its next cart read on this instance;
//! - every [`POLL_INTERVAL`] in the background, for changes made through other
//!   instances (or by hand in PostgreSQL).
//!
//! Staleness bound: a change committed through another instance is used by this one
//! within `POLL_INTERVAL` plus one refresh (a versions query and the changed projects'
//! reads), about a second. While PostgreSQL cannot be reached the last snapshot stays
//! in use (logged), and the next successful poll catches up. A stored document that
//! does not convert (it bypassed validation) is logged and its project keeps its
//! previous catalog.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cart_domain::Catalog;
use cart_proto::admin::{self, ProjectCatalog};
use cart_store::catalog::{CatalogError, CatalogSnapshot, CatalogStore};

/// How often the background task polls the catalog versions.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A cheap handle (clone it freely) on the current catalog snapshot.
#[derive(Clone)]
pub struct CatalogCache {
    inner: Arc<Inner>,
}

/// A catalog and the version per project it was built from.
pub type Versioned = (Arc<Catalog>, Arc<BTreeMap<i64, i64>>);

struct Inner {
    store: CatalogStore,
    /// The catalog and the version per project it was built from, swapped together.
    current: RwLock<Versioned>,
    /// The projects the snapshot was built from, with their versions. Held across a
    /// refresh, which serializes refreshes.
    loaded: tokio::sync::Mutex<BTreeMap<i64, (i64, ProjectCatalog)>>,
}

impl CatalogCache {
    /// An empty cache; call [`CatalogCache::refresh`] to load it.
    pub fn new(store: CatalogStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                current: RwLock::new((Arc::default(), Arc::default())),
                loaded: tokio::sync::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The current catalog. Hold on to it for the whole request.
    pub fn snapshot(&self) -> Arc<Catalog> {
        self.versioned().0
    }

    /// The current catalog with the version per project it was built from (an order
    /// records the version it was priced against).
    pub fn versioned(&self) -> Versioned {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The catalog version per project the snapshot was built from.
    pub async fn versions(&self) -> BTreeMap<i64, i64> {
        self.inner
            .loaded
            .lock()
            .await
            .iter()
            .map(|(p, (v, _))| (*p, *v))
            .collect()
    }

    /// Reloads the projects whose version changed and swaps in a new snapshot. Returns
    /// whether anything changed.
    ///
    /// # Errors
    /// The database; the previous snapshot stays.
    pub async fn refresh(&self) -> Result<bool, CatalogError> {
        let mut loaded = self.inner.loaded.lock().await;
        let versions = self.inner.store.versions().await?;
        let mut changed = false;
        for (project_id, version) in versions {
            if loaded.get(&project_id).is_some_and(|(v, _)| *v == version) {
                continue;
            }
            let snapshot = self.inner.store.current(project_id).await?;
            let project = match project_catalog(&snapshot) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(project_id, version = snapshot.version, error = %e,
                        "stored catalog does not convert; keeping the previous one");
                    continue;
                }
            };
            tracing::debug!(project_id, version = snapshot.version, "catalog reloaded");
            loaded.insert(project_id, (snapshot.version, project));
            changed = true;
        }
        if changed {
            let mut catalog = Catalog::default();
            for (_, project) in loaded.values() {
                // Checked above; a failure here would be a bug, so keep what converts.
                if let Err(e) = admin::project_into(&mut catalog, project) {
                    tracing::error!(project_id = project.project_id, error = %e, "catalog conversion failed");
                }
            }
            let versions = loaded.iter().map(|(p, (v, _))| (*p, *v)).collect();
            *self
                .inner
                .current
                .write()
                .unwrap_or_else(|e| e.into_inner()) = (Arc::new(catalog), Arc::new(versions));
        }
        Ok(changed)
    }

    /// Refreshes after a change this instance committed; a failure is logged (the poll
    /// catches up).
    pub async fn changed(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "catalog refresh after an admin change failed");
        }
    }

    /// Polls every [`POLL_INTERVAL`] until `stopped` turns true.
    pub async fn poll(self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stopped.borrow() {
                return;
            }
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "catalog poll failed; pricing with the last snapshot");
                    }
                }
                res = stopped.changed() => {
                    if res.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The stored documents of a project as a checked project catalog.
fn project_catalog(s: &CatalogSnapshot) -> Result<ProjectCatalog, String> {
    fn docs<T: serde::de::DeserializeOwned>(
        values: &[serde_json::Value],
    ) -> Result<Vec<T>, String> {
        values
            .iter()
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| e.to_string()))
            .collect()
    }
    let project = ProjectCatalog {
        project_id: u64::try_from(s.project_id).map_err(|e| e.to_string())?,
        items: docs(&s.items)?,
        promotions: docs(&s.promotions)?,
        promo_codes: docs(&s.promo_codes)?,
    };
    // Validated as an admin change is (a hand-edited document must not reach pricing);
    // validation includes the conversion.
    project.validate().map_err(|e| e.to_string())?;
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot(amount: &str) -> CatalogSnapshot {
        CatalogSnapshot {
            project_id: 7,
            version: 1,
            items: vec![json!({
                "sku": "sword_1", "type": "virtual_good", "name": {"en": "Sword"},
                "prices": [{"currency": "USD", "amount": amount, "is_default": true}]
            })],
            promotions: vec![],
            promo_codes: vec![],
        }
    }

    #[test]
    fn stored_documents_are_validated_before_they_reach_pricing() {
        project_catalog(&snapshot("1.99")).unwrap();
        for bad in ["-1", "100000000000000000000", "1.23456"] {
            let e = project_catalog(&snapshot(bad)).unwrap_err();
            assert!(e.contains("prices[0].amount"), "{bad}: {e}");
        }
    }
}
