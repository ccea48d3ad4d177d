//! A user never sees or changes another user's cart.

use cart_tests::{lines, World};
use serde_json::json;

use crate::req;

#[tokio::test]
async fn another_users_cart_is_not_found_and_stays_untouched() {
    let w = World::start().await;
    let c = &w.client;
    let alice_current = c
        .json(
            "fill",
            None,
            req(
                "alice",
                None,
                json!({"items": [{"sku": "cup01", "quantity": 2}]}),
            ),
        )
        .await
        .unwrap();
    c.json(
        "item.put",
        None,
        req(
            "alice",
            Some("shared-name"),
            json!({"sku": "gold", "quantity": 4}),
        ),
    )
    .await
    .unwrap();
    let alice_id = alice_current["cart_id"].as_str().unwrap().to_owned();

    // Bob cannot read Alice's carts, whether by her cart id or by her current cart's id.
    for cart in ["shared-name", alice_id.as_str()] {
        let refusal = c
            .json("get", None, req("bob", Some(cart), json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            (refusal.error.status, refusal.error.code),
            (404, 1401),
            "{cart}"
        );
        assert_eq!(
            refusal.error.message(),
            "[0401-1401]: Cart for user bob not found"
        );
    }
    // Bob's current cart is his own.
    let bob_current = c
        .json("get", None, req("bob", None, json!({})))
        .await
        .unwrap();
    assert_ne!(bob_current["cart_id"], alice_current["cart_id"]);
    assert_eq!(lines(&bob_current), []);

    // Writing under the same cart id gives Bob a cart of his own; Alice's is unchanged.
    c.json(
        "item.put",
        None,
        req(
            "bob",
            Some("shared-name"),
            json!({"sku": "cup01", "quantity": 1}),
        ),
    )
    .await
    .unwrap();
    c.json("clear", None, req("bob", Some(&alice_id), json!({})))
        .await
        .unwrap();
    let alice_shared = c
        .json("get", None, req("alice", Some("shared-name"), json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&alice_shared), [("gold".into(), 4)]);
    let alice_now = c
        .json("get", None, req("alice", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&alice_now), [("cup01".into(), 2)]);
    let bob_shared = c
        .json("get", None, req("bob", Some("shared-name"), json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&bob_shared), [("cup01".into(), 1)]);

    // The project scopes everything: the same user in another project has another cart.
    let mut other = req("alice", None, json!({}));
    other["project_id"] = json!(1);
    let elsewhere = c.json("get", None, other).await.unwrap();
    assert_eq!(lines(&elsewhere), []);
    assert_ne!(elsewhere["cart_id"], alice_current["cart_id"]);
    w.finish().await;
}
