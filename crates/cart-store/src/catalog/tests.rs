use serde_json::json;

use super::*;
use crate::testing::database;

fn item(sku: &str, amount: &str) -> Change {
    Change {
        kind: EntityKind::Item,
        key: sku.to_owned(),
        action: Action::Put(json!({"sku": sku, "prices": [{"currency": "USD", "amount": amount}]})),
    }
}

fn with(mut change: Change, action: fn(Value) -> Action) -> Change {
    let Action::Put(doc) = change.action else {
        unreachable!()
    };
    change.action = action(doc);
    change
}

#[tokio::test]
async fn every_change_is_recorded_with_the_next_version() {
    let (_db, pool) = database().await;
    let store = CatalogStore::new(pool);
    assert_eq!(store.version(1).await.unwrap(), 0);

    let a = store
        .apply(1, Some(0), vec![with(item("a", "1"), Action::Create)])
        .await
        .unwrap();
    assert_eq!(a.version, 1);
    assert_eq!(
        a.changes,
        vec![(EntityKind::Item, "a".to_owned(), Operation::Create)]
    );
    let b = store
        .apply(1, None, vec![with(item("a", "2"), Action::Update)])
        .await
        .unwrap();
    assert_eq!(b.version, 2);
    let c = store
        .apply(
            1,
            Some(2),
            vec![Change {
                kind: EntityKind::Item,
                key: "a".to_owned(),
                action: Action::Delete,
            }],
        )
        .await
        .unwrap();
    assert_eq!(c.version, 3);
    assert_eq!(store.get(1, EntityKind::Item, "a").await.unwrap(), None);

    let changes = store.changes(1, 0, 100).await.unwrap();
    let ops: Vec<(i64, Operation)> = changes.iter().map(|c| (c.version, c.operation)).collect();
    assert_eq!(
        ops,
        [
            (1, Operation::Create),
            (2, Operation::Update),
            (3, Operation::Delete)
        ]
    );
    assert_eq!(
        changes[1].document.as_ref().unwrap()["prices"][0]["amount"],
        "2"
    );
    assert!(changes[2].document.is_none());
    assert!(changes[0].recorded_at.ends_with('Z'));

    // Another project has versions of its own.
    let other = store.apply(2, None, vec![item("a", "9")]).await.unwrap();
    assert_eq!(other.version, 1);
}

#[tokio::test]
async fn refused_changes_write_nothing() {
    let (_db, pool) = database().await;
    let store = CatalogStore::new(pool.clone());
    store.apply(1, None, vec![item("a", "1")]).await.unwrap();

    let dup = store
        .apply(1, None, vec![with(item("a", "1"), Action::Create)])
        .await;
    assert!(
        matches!(dup, Err(CatalogError::AlreadyExists { .. })),
        "{dup:?}"
    );
    let missing = store
        .apply(1, None, vec![with(item("b", "1"), Action::Update)])
        .await;
    assert!(
        matches!(missing, Err(CatalogError::NotFound { .. })),
        "{missing:?}"
    );
    let stale = store.apply(1, Some(0), vec![item("b", "1")]).await;
    assert!(
        matches!(
            stale,
            Err(CatalogError::Conflict {
                expected: 0,
                actual: 1,
                ..
            })
        ),
        "{stale:?}"
    );
    // A batch fails as a whole: b is not created because c's update fails.
    let half = store
        .apply(
            1,
            None,
            vec![item("b", "1"), with(item("c", "1"), Action::Update)],
        )
        .await;
    assert!(half.is_err());
    assert_eq!(store.version(1).await.unwrap(), 1);
    assert_eq!(store.get(1, EntityKind::Item, "b").await.unwrap(), None);
    let n: i64 = sqlx::query_scalar("select count(*) from catalog_changes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // A put of the stored document changes nothing and takes no version.
    let same = store.apply(1, None, vec![item("a", "1")]).await.unwrap();
    assert_eq!((same.version, same.changes.len()), (1, 0));
    // The log is append-only.
    let e = sqlx::query("delete from catalog_changes")
        .execute(&pool)
        .await;
    assert!(e.is_err());
    for statement in [
        "truncate catalog_changes",
        "update catalog_changes set version = version",
    ] {
        let e = sqlx::query(statement).execute(&pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{statement}: {e}");
    }
    let n: i64 = sqlx::query_scalar("select count(*) from catalog_changes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_catalog_can_be_read_as_it_was_at_a_version_or_time() {
    let (_db, pool) = database().await;
    let store = CatalogStore::new(pool);
    store
        .apply(7, None, vec![item("a", "1"), item("b", "1")])
        .await
        .unwrap();
    let promo = Change {
        kind: EntityKind::Promotion,
        key: "p".to_owned(),
        action: Action::Put(json!({"id": "p"})),
    };
    store
        .apply(7, None, vec![item("a", "2"), promo])
        .await
        .unwrap();
    let after_two = store.changes(7, 1, 10).await.unwrap()[0]
        .recorded_at
        .clone();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .apply_many(vec![ProjectChanges {
            project_id: 7,
            expected_version: Some(2),
            changes: vec![item("c", "1")],
            replace: true,
        }])
        .await
        .unwrap();

    let skus = |s: &CatalogSnapshot| -> Vec<String> {
        s.items
            .iter()
            .map(|i| {
                format!(
                    "{}={}",
                    i["sku"].as_str().unwrap(),
                    i["prices"][0]["amount"].as_str().unwrap()
                )
            })
            .collect()
    };
    let v1 = store.catalog_at(7, &CatalogAt::Version(1)).await.unwrap();
    assert_eq!(skus(&v1), ["a=1", "b=1"]);
    assert!(v1.promotions.is_empty());
    let v2 = store.catalog_at(7, &CatalogAt::Version(2)).await.unwrap();
    assert_eq!(skus(&v2), ["a=2", "b=1"]);
    assert_eq!(v2.promotions.len(), 1);
    let v3 = store.catalog_at(7, &CatalogAt::Version(3)).await.unwrap();
    assert_eq!(skus(&v3), ["c=1"]);
    assert!(v3.promotions.is_empty());
    let now = store.current(7).await.unwrap();
    assert_eq!((now.version, skus(&now)), (3, skus(&v3)));
    assert_eq!(
        store
            .catalog_at(7, &CatalogAt::Version(0))
            .await
            .unwrap()
            .items
            .len(),
        0
    );

    let at = store
        .catalog_at(7, &CatalogAt::Time(after_two))
        .await
        .unwrap();
    assert_eq!((at.version, skus(&at)), (2, skus(&v2)));
    let before = store
        .catalog_at(7, &CatalogAt::Time("2000-01-01T00:00:00Z".to_owned()))
        .await
        .unwrap();
    assert_eq!(before.version, 0);
    let bad = store
        .catalog_at(7, &CatalogAt::Time("soon".to_owned()))
        .await;
    assert!(matches!(bad, Err(CatalogError::Invalid(_))), "{bad:?}");
}
