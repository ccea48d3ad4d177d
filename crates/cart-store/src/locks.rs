//! The advisory locks that serialise writers, for carts and orders alike: their keys,
//! the one query that takes them, and the retry when PostgreSQL breaks a deadlock.
//!
//! Keys live in the two-integer key space (a class, then a hash), apart from the
//! single-key locks of the relay and the rebuild. A hash collision only makes two
//! writers wait for each other needlessly. Key derivations need not be stable across
//! versions for correctness of one process, but instances of two versions running side
//! by side must agree, so a derivation changes only with a full stop.
//!
//! Lock order (see ARCHITECTURE.md, Concurrency): a command id, then SKU, promo-code and
//! promotion locks in key order, then the user's lock, then order locks in order id order, then
//! cart streams. A batch of cart appends takes its streams and command ids together in
//! key order. A user's key lock ([`user_key`]) stands apart: writers that seal take it
//! shared, wherever they are in that order, and only an erasure takes it exclusively,
//! holding no other lock.

use std::future::Future;

use cart_domain::{OrderId, ProjectId, PromotionId, Sku, UserId};
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use crate::store::StreamKey;

/// An advisory lock key: (class, hash).
pub(crate) type LockKey = (i32, i32);

// Classes, as four ASCII letters.
const STREAM_LOCK: i32 = 0x4341_5254; // "CART"
const COMMAND_LOCK: i32 = 0x434d_4421; // "CMD!"
const SKU_LOCK: i32 = 0x4f53_4b55; // "OSKU", also promo codes
const USER_LOCK: i32 = 0x4f55_5352; // "OUSR"
const ORDER_LOCK: i32 = 0x4f52_4452; // "ORDR"
const RETENTION_LOCK: i32 = 0x5245_544e; // "RETN"
const USER_KEY_LOCK: i32 = 0x554b_4559; // "UKEY"

// The namespaces the hashes are taken in: the cart streams' (for stream and command
// locks) and the order streams' (for the order store's locks).
const CART_NAMESPACE: Uuid = crate::store::STREAM_NAMESPACE;
const ORDER_NAMESPACE: Uuid = crate::orders::ORDER_NAMESPACE;

fn hash(id: Uuid) -> i32 {
    let b = id.as_bytes();
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn order_key(class: i32, name: &str) -> LockKey {
    (class, hash(Uuid::new_v5(&ORDER_NAMESPACE, name.as_bytes())))
}

/// One retention sweep's lock (`kind` 1 ledger, 2 carts, 3 orders): taken with
/// `pg_try_advisory_xact_lock` by each batch, so that while one instance sweeps, the
/// others skip that sweep instead of racing it for the same rows.
pub(crate) fn retention(kind: i32) -> LockKey {
    (RETENTION_LOCK, kind)
}

/// Whether this transaction got `key` without waiting (held until commit or rollback).
pub(crate) async fn try_take(conn: &mut PgConnection, key: LockKey) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select pg_try_advisory_xact_lock($1, $2)")
        .bind(key.0)
        .bind(key.1)
        .fetch_one(conn)
        .await
}

/// A cart stream's lock: appends take it, and so does a payment that clears the bought
/// cart, before reading it.
pub(crate) fn stream(key: &StreamKey) -> LockKey {
    (STREAM_LOCK, hash(key.stream_id()))
}

/// A user's command id, shared by cart commands and checkouts so that one id is never
/// recorded by both at once.
pub(crate) fn command(project: i64, user: &str, command_id: &str) -> LockKey {
    // The user's length first, so that no two (user, id) pairs share a name.
    let name = format!("{project}:{}:{user}:{command_id}", user.len());
    (
        COMMAND_LOCK,
        hash(Uuid::new_v5(&CART_NAMESPACE, name.as_bytes())),
    )
}

/// A limited SKU's lock: checkouts and payments of it queue here.
pub(crate) fn sku(project: ProjectId, sku: &Sku) -> LockKey {
    order_key(SKU_LOCK, &format!("{project}:{sku}"))
}

/// A limited promo code's lock, in the SKUs' class (taken in key order with them).
pub(crate) fn code(project: ProjectId, code: &str) -> LockKey {
    order_key(SKU_LOCK, &format!("code:{project}:{code}"))
}

/// A per-user limited promotion's lock, in the SKUs' class (taken in key order with
/// them): a user's checkouts and payments that get it queue here.
pub(crate) fn promotion(project: ProjectId, id: PromotionId) -> LockKey {
    order_key(SKU_LOCK, &format!("promotion:{project}:{id}"))
}

/// A user's checkout lock.
pub(crate) fn user(project: ProjectId, user: &UserId) -> LockKey {
    order_key(USER_LOCK, &format!("user:{project}:{user}"))
}

/// A user's key lock (`orders::sealed`, `erasure`): a transaction that seals personal
/// data takes it shared before it reads or makes the key, and holds it to commit; an
/// erasure takes it exclusively before it deletes the key. So an erasure waits for every
/// seal in flight and deletes the key they sealed under, also a first key not yet
/// committed when it started; a seal that comes after it waits, then finds no key and
/// makes a fresh one (a later order's data).
pub(crate) fn user_key(project: i64, user: &str) -> LockKey {
    // The user's length first, so that no two (project, user) pairs share a name.
    order_key(
        USER_KEY_LOCK,
        &format!("key:{project}:{}:{user}", user.len()),
    )
}

/// An order's lock.
pub(crate) fn order(project: ProjectId, order_id: OrderId) -> LockKey {
    order_key(ORDER_LOCK, &format!("order:{project}:{order_id}"))
}

/// Keys in key order, each once: two transactions that take overlapping sets this way
/// wait for each other instead of deadlocking.
pub(crate) fn in_key_order(keys: impl IntoIterator<Item = LockKey>) -> Vec<LockKey> {
    let mut keys: Vec<LockKey> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Takes transaction-scoped advisory locks on `keys`, in the order given (callers
/// build it with [`in_key_order`] and the lock order above); held until commit or
/// rollback. Taking a lock the transaction holds already is a no-op.
pub(crate) async fn take(conn: &mut PgConnection, keys: &[LockKey]) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    // A function scan of unnest yields the rows, and so takes the locks, in array order.
    sqlx::query(
        "select pg_advisory_xact_lock(c, k) from unnest($1::int4[], $2::int4[]) as l(c, k)",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes `key` in shared mode until commit or rollback: shared holders do not wait for
/// each other, only for (and block) an exclusive holder.
pub(crate) async fn take_shared(conn: &mut PgConnection, key: LockKey) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock_shared($1, $2)")
        .bind(key.0)
        .bind(key.1)
        .execute(conn)
        .await?;
    Ok(())
}

/// An error that may be PostgreSQL breaking a deadlock by aborting the transaction.
pub(crate) trait Deadlock {
    fn is_deadlock(&self) -> bool;
}

/// How many times a transaction is tried before its deadlock is the caller's error.
const TRIES: u32 = 3;

/// Runs `transaction` (one whole transaction, begun and ended inside) again when
/// PostgreSQL aborted it as a deadlock: nothing of it was written, so running it again
/// is safe. Writers that follow the lock order above wait instead of deadlocking; the
/// retry covers the meetings the order cannot rule out (a cart batch takes its stream
/// before its command id, a checkout the other way round) and row locks.
pub(crate) async fn retry_on_deadlock<T, E, F, Fut>(what: &str, mut transaction: F) -> Result<T, E>
where
    E: Deadlock,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        // One span per transaction, not per statement: it covers the statements and the
        // commit, which is what a slow command waits for.
        let span = tracing::info_span!(
            "transaction",
            otel.name = what,
            db.system.name = "postgresql",
            db.operation.name = what,
            attempt,
        );
        match transaction().instrument(span).await {
            Err(e) if attempt < TRIES && e.is_deadlock() => {
                tracing::debug!(attempt, what, "transaction deadlocked; running it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl Deadlock for crate::StoreError {
    fn is_deadlock(&self) -> bool {
        crate::StoreError::is_deadlock(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_key_order_are_sorted_and_unique() {
        let p = ProjectId::parse(7).unwrap();
        let a = sku(p, &Sku::parse("a").unwrap());
        let b = code(p, "B");
        assert_eq!(in_key_order([b, a, b]), in_key_order([a, b]));
        assert_eq!(in_key_order([b, a, a]).len(), 2);
        let sorted = in_key_order([b, a]);
        assert!(sorted[0] < sorted[1]);
    }

    #[test]
    fn the_classes_keep_the_lock_order_of_one_checkout() {
        // A checkout sorts its SKU and code locks, then appends the user's: the user's
        // class sorts after the SKUs' so a sorted batch of both still ends with it.
        let p = ProjectId::parse(7).unwrap();
        let user = user(p, &UserId::parse("ann").unwrap());
        assert!(user.0 > sku(p, &Sku::parse("x").unwrap()).0);
    }

    #[test]
    fn a_command_lock_tells_users_apart_whatever_their_ids() {
        assert_ne!(command(7, "a", "bc"), command(7, "ab", "c"));
        assert_eq!(command(7, "ann", "id"), command(7, "ann", "id"));
    }

    /// Two transactions that take two locks in opposite orders deadlock for real;
    /// PostgreSQL aborts one, which runs again and commits after the other.
    #[tokio::test]
    async fn a_deadlocked_transaction_is_run_again_and_both_commit() {
        use std::sync::atomic::{AtomicU32, Ordering};

        let (_db, pool) = crate::testing::database().await;
        let barrier = tokio::sync::Barrier::new(2);
        let (a, b) = ((1, 1), (1, 2));
        let run = |first: LockKey, second: LockKey| {
            let (pool, barrier) = (&pool, &barrier);
            async move {
                let tries = AtomicU32::new(0);
                let tries_ref = &tries;
                let result = retry_on_deadlock("test", || async move {
                    let attempt = tries_ref.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut tx = pool.begin().await?;
                    take(&mut tx, &[first]).await?;
                    if attempt == 1 {
                        // Both hold their first lock before either asks for its second.
                        barrier.wait().await;
                    }
                    take(&mut tx, &[second]).await?;
                    tx.commit().await?;
                    Ok::<_, crate::StoreError>(())
                })
                .await;
                (result, tries.load(Ordering::SeqCst))
            }
        };
        let ((one, one_tries), (two, two_tries)) = tokio::join!(run(a, b), run(b, a));
        assert!(one.is_ok(), "{one:?}");
        assert!(two.is_ok(), "{two:?}");
        assert_eq!(one_tries + two_tries, 3, "exactly one of them ran twice");
    }
}
