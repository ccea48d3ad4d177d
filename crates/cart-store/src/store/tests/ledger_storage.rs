//! How the ledger stores replies (migration 0015): a reply large enough to be compressed
//! is compressed with lz4 where the server has it, and still replays byte for byte.

use super::*;

#[tokio::test]
async fn a_large_reply_is_stored_compressed_and_replays_byte_for_byte() {
    let (_db, pool) = crate::testing::database().await;
    let store = EventStore::new(pool.clone());
    let k = key("big");
    // A priced cart of many lines: repetitive, as replies are, and over the 2 kB at
    // which PostgreSQL starts compressing a row.
    let reply: Vec<u8> = (0..200)
        .flat_map(|i| {
            format!("{{\"sku\":\"item-{i}\",\"quantity\":{i},\"price\":\"9.99\"}}").into_bytes()
        })
        .collect();
    assert!(reply.len() > 4000);
    let ledger = ProcessedCommand {
        command_id: "cmd-big".into(),
        fingerprint: vec![3; 32],
        content_type: "application/json".into(),
        reply: reply.clone(),
    };
    let events = [CartEvent::CartOpened];
    let cart = events.iter().fold(Cart::default(), cart_domain::apply);
    store
        .append(Append {
            key: &k,
            expected: 0,
            events: &events,
            cart: &cart,
            command: Some(&ledger),
            metadata: serde_json::json!({}),
        })
        .await
        .unwrap();

    let replayed = store
        .processed(k.project, &k.user, "cmd-big")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replayed, ledger, "the first reply, byte for byte");

    let (method, stored): (Option<String>, i32) = sqlx::query_as(
        "select pg_column_compression(reply), pg_column_size(reply) from processed_commands",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        usize::try_from(stored).unwrap() < reply.len() / 2,
        "{stored} bytes stored"
    );
    let lz4: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_settings where name = 'default_toast_compression' \
           and 'lz4' = any(enumvals))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let expected = if lz4 { "lz4" } else { "pglz" };
    assert_eq!(method.as_deref(), Some(expected));
}
