//! Crypto-shredding against the real store: personal fields never in clear in
//! `order_events`, opened for every reader while the key lives, erased for every reader
//! after `erase_user`, and the log still folds and exports.

use super::export::export_everything;
use super::*;
use crate::erasure::{erase_user, ErasureReport};
use crate::export::{Logs, Stored};

const SECRET: &str = "ann@example.org";
const REASON: &str = "chargeback by Ann Smith";

async fn raw_log(pool: &sqlx::PgPool) -> String {
    let rows: Vec<String> = sqlx::query_scalar("select payload::text from order_events")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.join("\n")
}

async fn key_bytes(pool: &sqlx::PgPool, who: &str) -> Option<Vec<u8>> {
    sqlx::query_scalar("select key from user_keys where project_id = $1 and user_id = $2")
        .bind(i64::try_from(P).unwrap())
        .bind(who)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// A paid and refunded order of `who` with personal data in both sealed fields.
async fn refunded_order(store: &OrderStore, catalog: &Catalog, who: &str) -> OrderId {
    let snap = snapshot(catalog, &cart_of(&[("sword", 1)], None));
    let mut req = request(who, None, snap);
    req.custom_parameters = Some(format!(r#"{{"email":"{who}-{SECRET}"}}"#));
    let c = created(checkout(store, catalog, req).await);
    store
        .confirm_payment(catalog, payment(c.order_id, "5", &format!("inv-{who}")))
        .await
        .unwrap()
        .unwrap();
    store
        .cancel(project(), c.order_id, format!("{who}: {REASON}"))
        .await
        .unwrap()
        .unwrap();
    c.order_id
}

#[tokio::test]
async fn erasure_shreds_a_users_sealed_fields_and_leaves_the_log_folding_and_exporting() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let catalog = catalog();
    let ann = refunded_order(&store, &catalog, "ann").await;
    let bob = refunded_order(&store, &catalog, "bob").await;

    // Never in clear in the log; opened for the store's readers and the export.
    let raw = raw_log(&pool).await;
    assert!(!raw.contains(SECRET) && !raw.contains(REASON), "{raw}");
    assert!(raw.contains(r#""key": "v1""#), "{raw}");
    let order = store.load(project(), ann).await.unwrap().unwrap().order;
    let details = order.details().unwrap();
    assert_eq!(
        details.custom_parameters.as_deref(),
        Some(r#"{"email":"ann-ann@example.org"}"#)
    );
    assert_eq!(order.cancel_reason(), Some("ann: chargeback by Ann Smith"));
    let before = export_everything(&pool, Logs::All, Stored::Include).await;
    assert_eq!(before.lines().count(), 6, "{before}");
    assert!(before.contains("ann-ann@example.org") && before.contains("ann: chargeback"));

    let old_key = key_bytes(&pool, "ann").await.unwrap();
    let report = erase_user(&pool, project(), &user("ann")).await.unwrap();
    assert_eq!(key_bytes(&pool, "ann").await, None);
    assert_eq!(
        report,
        ErasureReport {
            key_deleted: true,
            sealed_events: 2,
            clear_events: vec![],
        }
    );

    // The log still folds: the fields read as erased.
    let order = store.load(project(), ann).await.unwrap().unwrap().order;
    assert_eq!(order.status(), Some(OrderStatus::Canceled));
    assert_eq!(order.details().unwrap().custom_parameters, None);
    assert_eq!(order.cancel_reason(), Some("erased"));
    // Nothing of Ann's in the export; Bob's untouched.
    let after = export_everything(&pool, Logs::All, Stored::Include).await;
    assert_eq!(after.lines().count(), before.lines().count());
    assert!(!after.contains("ann-ann@example.org") && !after.contains("ann: chargeback"));
    assert!(
        after.contains("bob-ann@example.org") && after.contains("bob: chargeback"),
        "{after}"
    );
    let bob_order = store.load(project(), bob).await.unwrap().unwrap().order;
    assert_eq!(
        bob_order.cancel_reason(),
        Some("bob: chargeback by Ann Smith")
    );

    // A repeat finds nothing to delete and still reports the sealed events.
    let again = erase_user(&pool, project(), &user("ann")).await.unwrap();
    assert!(!again.key_deleted);
    assert_eq!(again.sealed_events, 2);

    // A new order of Ann's gets a fresh key; the old fields stay erased.
    let next = refunded_order(&store, &catalog, "ann").await;
    let fresh = key_bytes(&pool, "ann").await.unwrap();
    assert_ne!(fresh, old_key);
    let order = store.load(project(), next).await.unwrap().unwrap().order;
    assert_eq!(order.cancel_reason(), Some("ann: chargeback by Ann Smith"));
    let order = store.load(project(), ann).await.unwrap().unwrap().order;
    assert_eq!(order.cancel_reason(), Some("erased"));
}

#[tokio::test]
async fn erasure_reports_events_written_in_clear_before_sealing_and_keys_are_made_only_when_needed()
{
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let catalog = catalog();
    // An order without personal data makes no key.
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    created(checkout(&store, &catalog, request("cy", None, snap)).await);
    assert_eq!(key_bytes(&pool, "cy").await, None);
    let order = refunded_order(&store, &catalog, "cy").await;
    // Rewrite its events as an older version wrote them, in clear (a test may).
    sqlx::query(
        "update order_events set payload = jsonb_set(payload, '{custom_parameters}', \
           '{\"email\": \"cy@example.org\"}') where order_id = $1 and event_type = 'OrderCreated'",
    )
    .bind(i64::try_from(order).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let report = erase_user(&pool, project(), &user("cy")).await.unwrap();
    assert!(report.key_deleted);
    assert_eq!(report.sealed_events, 1);
    assert_eq!(report.clear_events, vec![("OrderCreated".to_owned(), 1)]);
    // Clear data stays readable (the log is never rewritten); the sealed reason is gone.
    let order = store.load(project(), order).await.unwrap().unwrap().order;
    assert_eq!(
        order.details().unwrap().custom_parameters.as_deref(),
        Some(r#"{"email":"cy@example.org"}"#)
    );
    assert_eq!(order.cancel_reason(), Some("erased"));
}
