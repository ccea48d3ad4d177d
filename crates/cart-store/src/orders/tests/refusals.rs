//! Typed refusals, and text PostgreSQL cannot hold: the caller's input, refused as
//! such, with nothing written.

use super::*;

/// Every row the order store writes, counted: a refused command must leave them as
/// they were.
async fn rows(pool: &sqlx::PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "select (select count(*) from order_events), (select count(*) from orders), \
                (select count(*) from processed_commands)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

fn invalid_text(error: &OrderStoreError) -> Option<InvalidTextKind> {
    match error {
        OrderStoreError::Store(StoreError::InvalidText(invalid)) => Some(invalid.kind),
        _ => None,
    }
}

#[tokio::test]
async fn a_nul_in_custom_parameters_is_invalid_input_and_writes_nothing() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let mut asked = request("ann", Some("c"), snap);
    asked.custom_parameters = Some(r#"{"note":"a\u0000b"}"#.to_owned());
    asked.command = Some(ProcessedCommand {
        command_id: "nul-1".to_owned(),
        fingerprint: vec![1],
        content_type: "application/json".to_owned(),
        reply: Vec::new(),
    });
    let before = rows(&pool).await;
    let error = store
        .checkout(&catalog, asked, |_| b"reply".to_vec())
        .await
        .unwrap_err();
    assert!(error.is_invalid_input(), "{error:?}");
    assert!(!error.is_unavailable());
    // JSON's \u0000 escape: PostgreSQL's jsonb cannot translate it (22P05).
    assert_eq!(
        invalid_text(&error),
        Some(InvalidTextKind::Untranslatable),
        "{error:?}"
    );
    assert_eq!(rows(&pool).await, before, "nothing of the checkout stays");
}

#[tokio::test]
async fn a_nul_in_a_refund_reason_is_invalid_input_and_the_order_stays_paid() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let c = created(checkout(&store, &catalog, request("ann", None, snap)).await);
    store
        .confirm_payment(&catalog, payment(c.order_id, "5.00", "inv"))
        .await
        .unwrap()
        .unwrap();
    let before = rows(&pool).await;
    let error = store
        .cancel(project(), c.order_id, "fraud\0".to_owned())
        .await
        .unwrap_err();
    assert!(error.is_invalid_input(), "{error:?}");
    assert!(invalid_text(&error).is_some(), "{error:?}");
    assert_eq!(rows(&pool).await, before);
    let order = store.load(project(), c.order_id).await.unwrap().unwrap();
    assert_eq!(order.order.status(), Some(OrderStatus::Paid));
}

#[tokio::test]
async fn a_nul_in_a_token_or_a_search_date_is_invalid_input() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let error = store.load_by_token(project(), "ab\0cd").await.unwrap_err();
    // A NUL byte in a text parameter: not in UTF8's repertoire for PostgreSQL (22021).
    assert_eq!(
        invalid_text(&error),
        Some(InvalidTextKind::NotInRepertoire),
        "{error:?}"
    );
    let search = Search {
        limit: 10,
        created_from: Some("2026-01-01\0".to_owned()),
        ..Search::default()
    };
    let error = store
        .search(project(), &user("ann"), &search)
        .await
        .unwrap_err();
    assert!(error.is_invalid_input(), "{error:?}");
    // A date PostgreSQL cannot read is invalid input too, not a failure.
    let search = Search {
        limit: 10,
        created_from: Some("not a date".to_owned()),
        ..Search::default()
    };
    let error = store
        .search(project(), &user("ann"), &search)
        .await
        .unwrap_err();
    assert!(error.is_invalid_input(), "{error:?}");
    assert!(invalid_text(&error).is_none());
}

#[tokio::test]
async fn a_nul_in_a_time_travel_time_is_invalid_input_for_the_cart_store_too() {
    let (_db, pool) = testing::database().await;
    let carts = EventStore::new(pool);
    let key = StreamKey::new(project(), user("ann"), CartId::parse("c").unwrap());
    let error = carts
        .load_as_of(&key, &crate::AsOf::Time("2026-01-01\0".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::InvalidText(t) if t.kind == InvalidTextKind::NotInRepertoire),
        "{error:?}"
    );
    assert!(error.is_invalid_input());
}

#[tokio::test]
async fn delivery_refusals_are_typed() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let error = store.mark_delivered(0, 1).await.unwrap_err();
    assert!(
        matches!(error, OrderStoreError::BadProject { project_id: 0, .. }),
        "{error:?}"
    );
    assert!(error.is_refusal());
    let error = store.mark_delivered(P, 404).await.unwrap_err();
    assert!(
        matches!(
            error,
            OrderStoreError::Refused {
                order_id: 404,
                refusal: OrderError::NotFound
            }
        ),
        "{error:?}"
    );
    assert!(error.is_refusal() && !error.is_unavailable() && !error.is_invalid_input());
}
