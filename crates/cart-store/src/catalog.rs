//! The catalog in PostgreSQL: the current items, promotions and promo codes of each
//! project as JSONB documents, and `catalog_changes`, the append-only log of every change
//! with the project's catalog version, written in the same transaction as the change.
//!
//! The store checks keys, existence and versions; what a document holds is checked by
//! the caller (cart-proto's `admin` module) before it gets here.

use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};

/// The kinds of catalog entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    Item,
    Promotion,
    PromoCode,
}

impl EntityKind {
    pub const ALL: [EntityKind; 3] = [Self::Item, Self::Promotion, Self::PromoCode];

    /// The name in `catalog_changes.kind` and in admin replies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Item => "item",
            Self::Promotion => "promotion",
            Self::PromoCode => "promo_code",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    fn table(self) -> &'static str {
        match self {
            Self::Item => "catalog_items",
            Self::Promotion => "catalog_promotions",
            Self::PromoCode => "catalog_promo_codes",
        }
    }

    fn key_column(self) -> &'static str {
        match self {
            Self::Item => "sku",
            Self::Promotion => "promotion_id",
            Self::PromoCode => "code",
        }
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a recorded change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Create, Self::Update, Self::Delete]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// What a change asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fails with [`CatalogError::AlreadyExists`] when the key exists.
    Create(Value),
    /// Fails with [`CatalogError::NotFound`] when the key does not exist.
    Update(Value),
    /// Fails with [`CatalogError::NotFound`] when the key does not exist.
    Delete,
    /// Create or update; a document equal to the stored one changes nothing.
    Put(Value),
}

/// One requested change of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: EntityKind,
    pub key: String,
    pub action: Action,
}

/// A change as recorded in `catalog_changes`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedChange {
    pub version: i64,
    pub kind: EntityKind,
    pub key: String,
    pub operation: Operation,
    /// The document after the change; None for a delete.
    pub document: Option<Value>,
    /// RFC 3339, UTC, microseconds.
    pub recorded_at: String,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub project_id: i64,
    /// The catalog version after the write (unchanged when nothing changed).
    pub version: i64,
    /// The effective changes, in the order applied.
    pub changes: Vec<(EntityKind, String, Operation)>,
}

/// A project's catalog at one version: documents ordered by key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogSnapshot {
    pub project_id: i64,
    /// 0 for a project without a catalog.
    pub version: i64,
    pub items: Vec<Value>,
    pub promotions: Vec<Value>,
    pub promo_codes: Vec<Value>,
}

impl CatalogSnapshot {
    fn push(&mut self, kind: EntityKind, document: Value) {
        match kind {
            EntityKind::Item => self.items.push(document),
            EntityKind::Promotion => self.promotions.push(document),
            EntityKind::PromoCode => self.promo_codes.push(document),
        }
    }
}

/// Which catalog to read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogAt {
    /// After the change with this version (0: empty).
    Version(i64),
    /// As it was at this time (RFC 3339).
    Time(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Optimistic concurrency: the catalog moved on since the caller read it.
    #[error("catalog of project {project_id} is at version {actual}, not the expected {expected}")]
    Conflict {
        project_id: i64,
        expected: i64,
        actual: i64,
    },
    #[error("{kind} {key} already exists")]
    AlreadyExists { kind: EntityKind, key: String },
    #[error("{kind} {key} not found")]
    NotFound { kind: EntityKind, key: String },
    /// A value from the caller that PostgreSQL refused, such as a malformed time.
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// One project's batch of changes for [`CatalogStore::apply_many`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectChanges {
    pub project_id: i64,
    /// The version the caller read; the write fails with a conflict if it moved on.
    pub expected_version: Option<i64>,
    pub changes: Vec<Change>,
    /// Delete every entity of the project that `changes` does not name (an import that
    /// replaces the catalog).
    pub replace: bool,
}

#[derive(Debug, Clone)]
pub struct CatalogStore {
    pool: PgPool,
}

impl CatalogStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies one project's changes atomically as one new version.
    ///
    /// # Errors
    /// A conflict, a duplicate create, an unknown key, or the database.
    pub async fn apply(
        &self,
        project_id: i64,
        expected_version: Option<i64>,
        changes: Vec<Change>,
    ) -> Result<Applied, CatalogError> {
        let mut applied = self
            .apply_many(vec![ProjectChanges {
                project_id,
                expected_version,
                changes,
                replace: false,
            }])
            .await?;
        Ok(applied.remove(0))
    }

    /// Applies the batches of several projects in one transaction: all or nothing. Each
    /// project that changes gets one new version.
    ///
    /// # Errors
    /// As [`CatalogStore::apply`].
    pub async fn apply_many(
        &self,
        mut batches: Vec<ProjectChanges>,
    ) -> Result<Vec<Applied>, CatalogError> {
        // Projects locked in one order, so two imports cannot deadlock.
        batches.sort_by_key(|b| b.project_id);
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            out.push(apply_in(&mut tx, batch).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The project's current catalog version (0 without a catalog).
    ///
    /// # Errors
    /// The database.
    pub async fn version(&self, project_id: i64) -> Result<i64, CatalogError> {
        let v: Option<i64> =
            sqlx::query_scalar("select version from catalog_versions where project_id = $1")
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    /// Every project's current catalog version, by project ascending: one cheap query,
    /// so that a cache can poll it to notice another instance's change.
    ///
    /// # Errors
    /// The database.
    pub async fn versions(&self) -> Result<Vec<(i64, i64)>, CatalogError> {
        Ok(
            sqlx::query_as("select project_id, version from catalog_versions order by project_id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The projects that have a catalog row, ascending.
    ///
    /// # Errors
    /// The database.
    pub async fn projects(&self) -> Result<Vec<i64>, CatalogError> {
        Ok(
            sqlx::query_scalar("select project_id from catalog_versions order by project_id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// One current entity.
    ///
    /// # Errors
    /// The database.
    pub async fn get(
        &self,
        project_id: i64,
        kind: EntityKind,
        key: &str,
    ) -> Result<Option<Value>, CatalogError> {
        let sql = format!(
            "select document from {} where project_id = $1 and {} = $2",
            kind.table(),
            kind.key_column()
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(project_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The current catalog, read in one snapshot.
    ///
    /// # Errors
    /// The database.
    pub async fn current(&self, project_id: i64) -> Result<CatalogSnapshot, CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only")
            .execute(&mut *tx)
            .await?;
        let version: Option<i64> =
            sqlx::query_scalar("select version from catalog_versions where project_id = $1")
                .bind(project_id)
                .fetch_optional(&mut *tx)
                .await?;
        let mut snapshot = CatalogSnapshot {
            project_id,
            version: version.unwrap_or(0),
            ..CatalogSnapshot::default()
        };
        for kind in EntityKind::ALL {
            let sql = format!(
                "select document from {} where project_id = $1 order by {}",
                kind.table(),
                kind.key_column()
            );
            let docs: Vec<Value> = sqlx::query_scalar(&sql)
                .bind(project_id)
                .fetch_all(&mut *tx)
                .await?;
            for doc in docs {
                snapshot.push(kind, doc);
            }
        }
        tx.commit().await?;
        Ok(snapshot)
    }

    /// The catalog as it was at a version or a time, rebuilt from `catalog_changes`.
    /// A version above the current one reads as the current catalog.
    ///
    /// # Errors
    /// A malformed time, or the database.
    pub async fn catalog_at(
        &self,
        project_id: i64,
        at: &CatalogAt,
    ) -> Result<CatalogSnapshot, CatalogError> {
        let version = match at {
            CatalogAt::Version(v) => {
                let current = self.version(project_id).await?;
                (*v).clamp(0, current)
            }
            CatalogAt::Time(t) => sqlx::query_scalar(
                "select coalesce(max(version), 0) from catalog_changes
                  where project_id = $1 and recorded_at <= $2::timestamptz",
            )
            .bind(project_id)
            .bind(t)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| invalid_time(e, t))?,
        };
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "select kind, document from (
                 select distinct on (kind, key) kind, key, operation, document
                   from catalog_changes
                  where project_id = $1 and version <= $2
                  order by kind, key, version desc
             ) last
              where operation <> 'delete'
              order by kind, key",
        )
        .bind(project_id)
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        let mut snapshot = CatalogSnapshot {
            project_id,
            version,
            ..CatalogSnapshot::default()
        };
        for (kind, doc) in rows {
            if let Some(kind) = EntityKind::parse(&kind) {
                snapshot.push(kind, doc);
            }
        }
        Ok(snapshot)
    }

    /// The recorded changes after `after_version`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// The database.
    pub async fn changes(
        &self,
        project_id: i64,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedChange>, CatalogError> {
        type Row = (i64, String, String, String, Option<Value>, String);
        let rows: Vec<Row> = sqlx::query_as(
            r#"select version, kind, key, operation, document,
                      to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                 from catalog_changes
                where project_id = $1 and version > $2
                order by version, kind, key
                limit $3"#,
        )
        .bind(project_id)
        .bind(after_version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(version, kind, key, operation, document, recorded_at)| {
                Some(RecordedChange {
                    version,
                    kind: EntityKind::parse(&kind)?,
                    key,
                    operation: Operation::parse(&operation)?,
                    document,
                    recorded_at,
                })
            })
            .collect())
    }
}

fn invalid_time(e: sqlx::Error, time: &str) -> CatalogError {
    match &e {
        // invalid_datetime_format, datetime_field_overflow
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22007" | "22008")) => {
            CatalogError::Invalid(format!("{time:?} is not a date-time"))
        }
        _ => CatalogError::Database(e),
    }
}

async fn apply_in(
    tx: &mut Transaction<'static, Postgres>,
    batch: ProjectChanges,
) -> Result<Applied, CatalogError> {
    let project_id = batch.project_id;
    sqlx::query("insert into catalog_versions (project_id) values ($1) on conflict do nothing")
        .bind(project_id)
        .execute(&mut **tx)
        .await?;
    let current: i64 =
        sqlx::query_scalar("select version from catalog_versions where project_id = $1 for update")
            .bind(project_id)
            .fetch_one(&mut **tx)
            .await?;
    if let Some(expected) = batch.expected_version {
        if expected != current {
            return Err(CatalogError::Conflict {
                project_id,
                expected,
                actual: current,
            });
        }
    }
    let version = current + 1;
    let mut done = Vec::new();
    let mut named = std::collections::BTreeSet::new();
    for change in batch.changes {
        if !named.insert((change.kind, change.key.clone())) {
            return Err(CatalogError::Invalid(format!(
                "{} {} is changed twice in one write",
                change.kind, change.key
            )));
        }
        if let Some(op) = apply_one(tx, project_id, version, change.clone()).await? {
            done.push((change.kind, change.key, op));
        }
    }
    if batch.replace {
        for kind in EntityKind::ALL {
            let sql = format!(
                "select {} from {} where project_id = $1 order by 1",
                kind.key_column(),
                kind.table()
            );
            let keys: Vec<String> = sqlx::query_scalar(&sql)
                .bind(project_id)
                .fetch_all(&mut **tx)
                .await?;
            for key in keys {
                if !named.contains(&(kind, key.clone())) {
                    let change = Change {
                        kind,
                        key: key.clone(),
                        action: Action::Delete,
                    };
                    if let Some(op) = apply_one(tx, project_id, version, change).await? {
                        done.push((kind, key, op));
                    }
                }
            }
        }
    }
    let version = if done.is_empty() {
        current
    } else {
        sqlx::query(
            "update catalog_versions set version = $2, updated_at = now() where project_id = $1",
        )
        .bind(project_id)
        .bind(version)
        .execute(&mut **tx)
        .await?;
        version
    };
    Ok(Applied {
        project_id,
        version,
        changes: done,
    })
}

/// Applies one change and records it; None when it changed nothing (a `Put` of the
/// stored document).
async fn apply_one(
    tx: &mut Transaction<'static, Postgres>,
    project_id: i64,
    version: i64,
    change: Change,
) -> Result<Option<Operation>, CatalogError> {
    let Change { kind, key, action } = change;
    let (table, column) = (kind.table(), kind.key_column());
    let stored: Option<Value> = sqlx::query_scalar(&format!(
        "select document from {table} where project_id = $1 and {column} = $2 for update"
    ))
    .bind(project_id)
    .bind(&key)
    .fetch_optional(&mut **tx)
    .await?;
    let (operation, document) = match (action, stored) {
        (Action::Create(_), Some(_)) => return Err(CatalogError::AlreadyExists { kind, key }),
        (Action::Update(_) | Action::Delete, None) => {
            return Err(CatalogError::NotFound { kind, key })
        }
        (Action::Put(doc), Some(old)) if doc == old => return Ok(None),
        (Action::Create(doc) | Action::Put(doc), None) => (Operation::Create, Some(doc)),
        (Action::Update(doc) | Action::Put(doc), Some(_)) => (Operation::Update, Some(doc)),
        (Action::Delete, Some(_)) => (Operation::Delete, None),
    };
    match &document {
        Some(doc) => {
            sqlx::query(&format!(
                "insert into {table} (project_id, {column}, document, version)
                 values ($1, $2, $3, $4)
                 on conflict (project_id, {column})
                 do update set document = excluded.document, version = excluded.version"
            ))
            .bind(project_id)
            .bind(&key)
            .bind(doc)
            .bind(version)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query(&format!(
                "delete from {table} where project_id = $1 and {column} = $2"
            ))
            .bind(project_id)
            .bind(&key)
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query(
        "insert into catalog_changes (project_id, version, kind, key, operation, document)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(project_id)
    .bind(version)
    .bind(kind.as_str())
    .bind(&key)
    .bind(operation.as_str())
    .bind(&document)
    .execute(&mut **tx)
    .await?;
    Ok(Some(operation))
}

#[cfg(test)]
mod tests;
