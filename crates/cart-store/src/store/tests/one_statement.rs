//! The append batch in one statement (issue 17, `store/one_trip.rs`): it reads the
//! versions and the ledger as they are once its locks are held, not as they were when
//! the statement began, and it takes only the batches whose appends stand alone.

use super::*;
use crate::store::one_trip;
use crate::{ledger, locks};

fn opened() -> (Vec<CartEvent>, Cart) {
    let events = vec![CartEvent::CartOpened];
    let cart = Cart::replay(&events);
    (events, cart)
}

/// Another writer holds a cart's lock and appends version 1 while the batch waits for
/// that lock: once it commits, the batch sees version 1 and answers a conflict. A
/// version read with the statement's own snapshot (taken before the wait) would miss it
/// and the batch would fail on the duplicate version instead, batch-mate and all.
#[tokio::test]
async fn a_batch_that_waited_for_a_cart_lock_sees_what_the_holder_committed() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let (held, free) = (key("held"), key("free"));
    let mut holder = pool.begin().await.unwrap();
    locks::take(&mut holder, &[locks::stream(&held)])
        .await
        .unwrap();
    raw_insert(&mut holder, held.stream_id(), 1).await;
    let batch = {
        let (store, held, free) = (store.clone(), held.clone(), free.clone());
        tokio::spawn(async move {
            let (events, cart) = opened();
            let append = |k| Append {
                key: k,
                expected: 0,
                events: &events,
                cart: &cart,
                command: None,
                metadata: serde_json::json!({}),
            };
            store.append_batch(&[append(&free), append(&held)]).await
        })
    };
    until_a_session_waits_for_a_lock(&pool).await;
    holder.commit().await.unwrap();
    let outcomes = batch.await.unwrap().expect("the batch itself succeeds");
    assert!(
        matches!(outcomes[0], Ok(AppendOutcome { version: 1 })),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], Err(StoreError::Conflict { expected: 0, .. })),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(store.load(&free).await.unwrap().version, 1);
    assert_eq!(
        store.load(&held).await.unwrap().version,
        1,
        "only the holder's"
    );
    assert!(
        store.projection(&held).await.unwrap().is_none(),
        "the loser wrote no projection row"
    );
}

/// Another writer holds a command id's lock and records it while the batch waits: the
/// batch's append under that id is then a duplicate and writes nothing.
#[tokio::test]
async fn a_batch_that_waited_for_a_command_lock_sees_the_recorded_id() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("retried");
    let command = ProcessedCommand {
        command_id: "cmd-1".into(),
        fingerprint: vec![7],
        content_type: "application/json".into(),
        reply: b"first".to_vec(),
    };
    let ledger_key = (project_id(k.project), k.user.as_str(), "cmd-1");
    let mut holder = pool.begin().await.unwrap();
    locks::take(
        &mut holder,
        &[locks::command(ledger_key.0, ledger_key.1, ledger_key.2)],
    )
    .await
    .unwrap();
    let entry = ledger::Entry {
        key: ledger_key,
        command: &command,
        stream_id: k.stream_id(),
    };
    ledger::record(&mut holder, &[entry]).await.unwrap();
    let batch = {
        let (store, k, command) = (store.clone(), k.clone(), command.clone());
        tokio::spawn(async move {
            let (events, cart) = opened();
            store
                .append(Append {
                    key: &k,
                    expected: 0,
                    events: &events,
                    cart: &cart,
                    command: Some(&command),
                    metadata: serde_json::json!({}),
                })
                .await
        })
    };
    until_a_session_waits_for_a_lock(&pool).await;
    holder.commit().await.unwrap();
    let outcome = batch.await.unwrap();
    assert!(
        matches!(&outcome, Err(StoreError::DuplicateCommand { command_id }) if command_id == "cmd-1"),
        "{outcome:?}"
    );
    assert_eq!(store.load(&k).await.unwrap().version, 0, "no event written");
    let recorded = store.processed(k.project, &k.user, "cmd-1").await.unwrap();
    assert_eq!(recorded.unwrap().reply, b"first");
}

/// Only batches whose appends stand alone go in one statement; a cart or a command id
/// twice needs the stepwise path, which chains them.
#[test]
fn one_statement_takes_each_cart_and_command_id_once() {
    let (events, cart) = opened();
    let command = |id: &str| ProcessedCommand {
        command_id: id.into(),
        fingerprint: vec![],
        content_type: "application/json".into(),
        reply: vec![],
    };
    let (one, two) = (command("one"), command("two"));
    let (a, b) = (key("a"), key("b"));
    let append = |k, c| Append {
        key: k,
        expected: 0,
        events: &events,
        cart: &cart,
        command: c,
        metadata: serde_json::json!({}),
    };
    assert!(one_trip::fits(&[
        append(&a, Some(&one)),
        append(&b, Some(&two))
    ]));
    assert!(one_trip::fits(&[append(&a, None), append(&b, None)]));
    assert!(!one_trip::fits(&[append(&a, None), append(&a, None)]));
    assert!(!one_trip::fits(&[
        append(&a, Some(&one)),
        append(&b, Some(&one))
    ]));
}
