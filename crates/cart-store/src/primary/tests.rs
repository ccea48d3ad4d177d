use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::*;
use crate::StoreError;

/// A `primary_only` pool of one connection on the test database, so that a second
/// acquire gets the first one's session unless the check dropped it.
async fn pool_of_one(db: &crate::testing::TestDb) -> PgPool {
    let options: PgConnectOptions = db.url().parse().unwrap();
    primary_only(PgPoolOptions::new())
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .unwrap()
}

async fn pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Fences the pool's one session read-only (as a demotion or an operator's fence would
/// leave it); its pid.
async fn fence_the_session(pool: &PgPool) -> i32 {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("set default_transaction_read_only = on")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(!is_writable(&mut conn).await.unwrap());
    pid(&mut conn).await
}

/// The next acquire hands out another session than the fenced one, and a writable one.
async fn assert_fenced_session_replaced(pool: &PgPool, fenced: i32) {
    let mut conn = pool.acquire().await.unwrap();
    assert_ne!(
        pid(&mut conn).await,
        fenced,
        "the fenced session was dropped"
    );
    assert!(is_writable(&mut conn).await.unwrap());
}

#[tokio::test]
async fn a_fenced_session_is_dropped_at_its_next_use_once_a_write_was_refused() {
    let (db, _) = crate::testing::database().await;
    let pool = pool_of_one(&db).await;
    let fenced = fence_the_session(&pool).await;
    // The write a command would try: refused with 25006, which the store's error
    // conversion notes.
    let refused = sqlx::query("create table t (x int)")
        .execute(&pool)
        .await
        .unwrap_err();
    let error = StoreError::from(refused);
    assert!(error.is_unavailable(), "{error:?}");
    assert_fenced_session_replaced(&pool, fenced).await;
}

#[tokio::test]
async fn a_session_idle_past_the_check_is_checked_before_use() {
    let (db, _) = crate::testing::database().await;
    let pool = pool_of_one(&db).await;
    let fenced = fence_the_session(&pool).await;
    tokio::time::sleep(IDLE_CHECK + Duration::from_millis(300)).await;
    assert_fenced_session_replaced(&pool, fenced).await;
}

#[tokio::test]
async fn a_new_session_on_a_read_only_database_never_enters_the_pool() {
    let (db, admin) = crate::testing::database().await;
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "alter database {name} set default_transaction_read_only = on"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let options: PgConnectOptions = db.url().parse().unwrap();
    let refused = primary_only(PgPoolOptions::new())
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(500))
        .connect_with(options)
        .await;
    assert!(refused.is_err(), "a read-only session was let in");
}

#[test]
fn only_idle_connections_or_recent_trouble_cost_a_check() {
    let now = epoch() + Duration::from_secs(100);
    let at = |ago: u64| 100_000 - ago * 1000 + 1;
    let busy = Duration::from_millis(5);
    assert!(
        !needs_check(busy, 0, now),
        "a busy pool with no trouble: no round trip"
    );
    assert!(needs_check(IDLE_CHECK + Duration::from_millis(1), 0, now));
    assert!(needs_check(busy, at(10), now), "trouble 10 s ago");
    assert!(!needs_check(busy, at(31), now), "trouble 31 s ago is over");
}

#[test]
fn connection_loss_and_read_only_errors_count_as_trouble() {
    let before = TROUBLE_AT.load(Ordering::Relaxed);
    note_if_trouble(&sqlx::Error::RowNotFound);
    note_if_trouble(&sqlx::Error::Io(std::io::Error::other("reset")));
    let after = TROUBLE_AT.load(Ordering::Relaxed);
    assert!(after > 0 && after >= before);
    assert!(needs_check(Duration::ZERO, after, Instant::now()));
}
