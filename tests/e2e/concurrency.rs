//! Many concurrent commands on one cart, from many tasks and two instances: no lost update.

use std::collections::BTreeMap;

use cart_tests::{lines, World};
use serde_json::json;

use crate::req;

#[tokio::test]
async fn concurrent_commands_on_one_cart_from_two_instances_lose_no_update() {
    let mut w = World::start().await;
    w.add_instance().await;
    let skus = [
        "cup01",
        "t-shirt01",
        "gold",
        "starter_pack",
        "space_game_key",
        "sword_common",
        "daily_gift",
    ];
    // 70 commands: each task owns one SKU and sets it to 1..=10 in turn, so the last
    // quantity each task set is what the cart must show.
    let tasks: Vec<_> = skus
        .iter()
        .map(|sku| {
            let (c, sku) = (w.client.clone(), (*sku).to_owned());
            tokio::spawn(async move {
                let mut last_ok = None;
                let mut refused = 0;
                for q in 1..=10u64 {
                    let body = req("hot", Some("shared"), json!({"sku": sku, "quantity": q}));
                    match c.json("item.put", Some(&format!("{sku}-{q}")), body).await {
                        Ok(_) => last_ok = Some(q),
                        Err(e) => {
                            assert_eq!(
                                e.error.code, 1421,
                                "only a concurrency refusal is acceptable: {}",
                                e.error
                            );
                            refused += 1;
                        }
                    }
                }
                (sku, last_ok, refused)
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    let mut refused = 0;
    for t in tasks {
        let (sku, last_ok, n) = t.await.unwrap();
        refused += n;
        if let Some(q) = last_ok {
            expected.insert(sku, q);
        }
    }
    let cart = w
        .client
        .json("get", None, req("hot", Some("shared"), json!({})))
        .await
        .unwrap();
    let got: BTreeMap<String, u64> = lines(&cart).into_iter().collect();
    assert_eq!(got, expected, "every acknowledged update is in the cart");
    assert!(
        refused <= 3,
        "bounded retries should absorb almost all races, {refused} refused"
    );

    // The log has contiguous versions and exactly one event per effective change.
    let pool = w.db.pool().await;
    let versions: Vec<i64> = sqlx::query_scalar("select version from cart_events order by version")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        versions,
        (1..=i64::try_from(versions.len()).unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(
        versions.len(),
        1 + 70 - refused as usize,
        "CartOpened plus one event per accepted put"
    );
    pool.close().await;
    w.finish().await;
}
