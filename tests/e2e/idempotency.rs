//! A command id makes a command idempotent: one set of events, the same reply each time.

use cart_tests::{lines, World};
use serde_json::json;

use crate::req;

#[tokio::test]
async fn a_retried_command_returns_the_original_reply_and_appends_nothing() {
    let w = World::start().await;
    let c = &w.client;
    let put = req("alice", None, json!({"sku": "cup01", "quantity": 2}));
    let first = c
        .json("item.put", Some("cmd-1"), put.clone())
        .await
        .unwrap();
    let events = w.db.count_events().await;

    // (b) retry after the commit.
    let again = c
        .json("item.put", Some("cmd-1"), put.clone())
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(w.db.count_events().await, events);

    // (c) retry after other commands moved the cart on: still the original reply, and
    // the cart is not changed back.
    c.json(
        "item.put",
        Some("cmd-2"),
        req("alice", None, json!({"sku": "cup01", "quantity": 9})),
    )
    .await
    .unwrap();
    let events = w.db.count_events().await;
    let late = c
        .json("item.put", Some("cmd-1"), put.clone())
        .await
        .unwrap();
    assert_eq!(late, first);
    assert_eq!(lines(&late), [("cup01".into(), 2)]);
    assert_eq!(w.db.count_events().await, events);
    let now = c
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&now), [("cup01".into(), 9)]);

    // The same id with a different payload is a different command: refused.
    let other = req("alice", None, json!({"sku": "cup01", "quantity": 3}));
    let refusal = c.json("item.put", Some("cmd-1"), other).await.unwrap_err();
    assert_eq!((refusal.error.status, refusal.error.code), (409, 1102));
    assert!(refusal.error.message().contains("cmd-1"));
    let refusal = c
        .json(
            "fill",
            Some("cmd-1"),
            req("alice", None, json!({"items": []})),
        )
        .await
        .unwrap_err();
    assert_eq!(refusal.error.status, 409);
    assert_eq!(w.db.count_events().await, events);

    // A no-op command with an id is remembered too.
    let noop = c
        .json(
            "item.delete",
            Some("cmd-3"),
            req("alice", None, json!({"sku": "gold"})),
        )
        .await
        .unwrap();
    c.json(
        "item.put",
        None,
        req("alice", None, json!({"sku": "gold", "quantity": 1})),
    )
    .await
    .unwrap();
    assert_eq!(
        c.json(
            "item.delete",
            Some("cmd-3"),
            req("alice", None, json!({"sku": "gold"}))
        )
        .await
        .unwrap(),
        noop
    );

    // Ids are scoped to their user: bob's cmd-1 is his own command.
    let bob = c
        .json(
            "item.put",
            Some("cmd-1"),
            req("bob", None, json!({"sku": "gold", "quantity": 1})),
        )
        .await
        .unwrap();
    assert_eq!(lines(&bob), [("gold".into(), 1)]);
    w.finish().await;
}

#[tokio::test]
async fn concurrent_retries_of_one_command_apply_it_once() {
    let mut w = World::start().await;
    w.add_instance().await;
    let body = req(
        "alice",
        None,
        json!({"items": [{"sku": "cup01", "quantity": 1}, {"sku": "gold", "quantity": 5}]}),
    );
    // (a) retries arriving while the first is still running, spread over two instances.
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (c, body) = (w.client.clone(), body.clone());
            tokio::spawn(async move { c.json("fill", Some("same-fill"), body).await })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap().expect("every retry is answered OK"));
    }
    assert!(
        replies.windows(2).all(|p| p[0] == p[1]),
        "every retry got the same reply"
    );
    assert_eq!(
        w.db.count_events().await,
        3,
        "CartOpened and two lines, once"
    );
    w.finish().await;
}
