//! The projection row's updates stay HOT (issue 17): an append leaves the indexed
//! `updated_at` alone unless it is over an hour old, and the table keeps room on its
//! pages for the new row versions (fillfactor, migration 0015), also after a rebuild.

use super::*;

/// `cart_projection`'s updates and HOT updates so far in this transaction.
async fn updates(conn: &mut PgConnection) -> (i64, i64) {
    sqlx::query_as(
        "select pg_stat_get_xact_tuples_updated(c.oid), pg_stat_get_xact_tuples_hot_updated(c.oid) \
         from pg_class c where c.oid = 'cart_projection'::regclass",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Decides and appends `command` inside the caller's transaction; the new version.
async fn append_here(conn: &mut PgConnection, key: &StreamKey, command: &CartCommand) -> i64 {
    let loaded = load_in(conn, key).await.unwrap();
    let events = decide(&loaded.cart, command).unwrap();
    let cart = events.iter().fold(loaded.cart.clone(), cart_domain::apply);
    let append = Append {
        key,
        expected: loaded.version,
        events: &events,
        cart: &cart,
        command: None,
        metadata: serde_json::json!({}),
    };
    let mut outcomes = append_in(conn, &[append]).await.unwrap();
    outcomes.pop().unwrap().unwrap().version
}

async fn updated_at(pool: &PgPool, key: &StreamKey) -> f64 {
    sqlx::query_scalar(
        "select extract(epoch from updated_at)::float8 from cart_projection where stream_id = $1",
    )
    .bind(key.stream_id())
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn appends_within_the_hour_update_the_projection_hot() {
    let (_db, pool) = crate::testing::database().await;
    let k = key("hot");
    let mut tx = pool.begin().await.unwrap();
    append_here(&mut tx, &k, &put("a", 1)).await;
    for n in 2..=10 {
        append_here(&mut tx, &k, &put("a", n)).await;
    }
    assert_eq!(updates(&mut tx).await, (9, 9), "every update HOT");

    // A row whose stamp is over an hour old gets a new one: an index entry, not HOT.
    sqlx::query("update cart_projection set updated_at = updated_at - interval '2 hours'")
        .execute(&mut *tx)
        .await
        .unwrap();
    append_here(&mut tx, &k, &put("a", 11)).await;
    assert_eq!(updates(&mut tx).await, (11, 9));
    // ... after which the next append is HOT again.
    append_here(&mut tx, &k, &put("a", 12)).await;
    assert_eq!(updates(&mut tx).await, (12, 10));
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn the_expiry_clock_moves_only_when_over_an_hour_old() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("clock");
    run(&store, &k, &put("a", 1)).await.unwrap();
    let first = updated_at(&pool, &k).await;
    run(&store, &k, &put("a", 2)).await.unwrap();
    assert_eq!(
        updated_at(&pool, &k).await,
        first,
        "within the hour: left alone"
    );

    sqlx::query("update cart_projection set updated_at = updated_at - interval '61 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    run(&store, &k, &put("a", 3)).await.unwrap();
    let moved = updated_at(&pool, &k).await;
    assert!(
        moved >= first,
        "over an hour old: stamped anew ({moved} < {first})"
    );
}

#[tokio::test]
async fn the_projection_keeps_its_fillfactor_through_a_rebuild() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    run(&store, &key("c"), &put("a", 1)).await.unwrap();
    let options = || async {
        sqlx::query_scalar::<_, Option<Vec<String>>>(
            "select reloptions from pg_class where oid = 'cart_projection'::regclass",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(options().await, Some(vec!["fillfactor=80".to_owned()]));
    let report = crate::rebuild_projection(&pool, |_| {}).await.unwrap();
    assert_eq!(report.differences, 0);
    assert_eq!(options().await, Some(vec!["fillfactor=80".to_owned()]));
}
