//! Group commit under load, with two instances side by side: every acknowledged command
//! is in the log exactly once, no cart loses an update, retries apply once, and commands
//! really do share transactions.

use std::collections::{BTreeMap, HashSet};

use cart_tests::{lines, World};
use serde_json::json;
use uuid::Uuid;

use crate::req;

const CARTS: usize = 12;
const SKUS: [&str; 4] = ["cup01", "t-shirt01", "gold", "sword_common"];
const ROUNDS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_under_load_lose_nothing_and_apply_each_command_once() {
    let mut w = World::start().await;
    w.add_instance().await;
    // One task per (cart, SKU): 48 writers at once, four on each cart, spread over both
    // instances by the queue group. Each sets its SKU to 1..=ROUNDS in turn; every fifth
    // command is also sent a second time at once with the same id, as a client retry.
    let tasks: Vec<_> = (0..CARTS)
        .flat_map(|cart| SKUS.iter().map(move |sku| (cart, *sku)))
        .map(|(cart, sku)| {
            let c = w.client.clone();
            tokio::spawn(async move {
                let user = format!("load-u{}", cart % 3);
                let cart_id = format!("c{cart}");
                let (mut last_ok, mut ids, mut refused) = (None, Vec::new(), 0);
                for q in 1..=ROUNDS {
                    let id = Uuid::new_v4().to_string();
                    let body = req(&user, Some(&cart_id), json!({"sku": sku, "quantity": q}));
                    let first = c.json("item.put", Some(&id), body.clone());
                    let result = if q % 5 == 0 {
                        let (a, b) = tokio::join!(first, c.json("item.put", Some(&id), body));
                        if let (Ok(a), Ok(b)) = (&a, &b) {
                            assert_eq!(lines(a), lines(b), "a retry gets the original reply");
                        }
                        a.and(b)
                    } else {
                        first.await
                    };
                    match result {
                        Ok(_) => {
                            last_ok = Some(q);
                            ids.push(id);
                        }
                        Err(e) => {
                            assert_eq!(
                                e.error.code, 1421,
                                "only a concurrency refusal: {}",
                                e.error
                            );
                            refused += 1;
                        }
                    }
                }
                (user, cart_id, sku, last_ok, ids, refused)
            })
        })
        .collect();
    let mut expected: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut accepted_ids = HashSet::new();
    let mut refused = 0;
    for task in tasks {
        let (user, cart, sku, last_ok, ids, n) = task.await.unwrap();
        refused += n;
        accepted_ids.extend(ids);
        if let Some(q) = last_ok {
            expected
                .entry((user, cart))
                .or_default()
                .insert(sku.to_owned(), q);
        }
    }
    let total = CARTS * SKUS.len() * ROUNDS as usize;
    assert!(
        refused * 50 <= total,
        "retries absorb nearly every race: {refused} of {total} refused"
    );

    for ((user, cart), want) in &expected {
        let got = w
            .client
            .json("get", None, req(user, Some(cart), json!({})))
            .await
            .unwrap();
        let got: BTreeMap<String, u64> = lines(&got).into_iter().collect();
        assert_eq!(
            &got, want,
            "{user}/{cart}: every acknowledged update, none lost"
        );
    }

    let pool = w.db.pool().await;
    // Each stream's versions are 1..=n with no gap, and hold CartOpened plus exactly one
    // event per accepted command (each accepted put changes its SKU's quantity).
    let per_stream: Vec<(i64, i64, i64)> = sqlx::query_as(
        "select count(*), min(version), max(version) from cart_events group by stream_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(per_stream.len(), CARTS);
    for (n, min, max) in &per_stream {
        assert_eq!((*min, *max), (1, *n), "contiguous versions");
    }
    let events: i64 = per_stream.iter().map(|(n, ..)| n).sum();
    assert_eq!(events as usize, CARTS + accepted_ids.len());
    let ledger: i64 = sqlx::query_scalar("select count(*) from processed_commands")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        ledger as usize,
        accepted_ids.len(),
        "one ledger row per command"
    );
    // The projection agrees with the log for every cart.
    let stale: i64 = sqlx::query_scalar(
        "select count(*) from cart_projection p \
         where p.version <> (select max(version) from cart_events e where e.stream_id = p.stream_id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stale, 0);
    // Group commit happened: fewer transactions than commands.
    let transactions: i64 = sqlx::query_scalar("select count(distinct tx_id) from cart_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        (transactions as usize) < accepted_ids.len(),
        "{transactions} transactions for {} commands",
        accepted_ids.len()
    );
    pool.close().await;
    w.finish().await;
}
