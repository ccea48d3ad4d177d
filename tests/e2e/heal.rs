//! The feed heals itself when JetStream loses what it acknowledged (issue 13): a tail lost
//! in a crash (SIGKILL, then the store's last block cut short), a purged stream and a
//! deleted stream. Every event must reach the stream again, each cart's events in version
//! order, each exactly once (`assert_stream_matches_log`), on Debian's nats-server 2.9 and,
//! when this machine has one, on a current server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cart_relay::Relay;
use cart_tests::*;

use crate::feed::{assert_stream_matches_log, put, relay_config, spawn, wait_for};

/// A round of commands on six carts.
async fn write_round(w: &World, round: i64) {
    for i in 0..18 {
        let sku = if i % 2 == 0 { "cup01" } else { "gold" };
        put(w, &format!("heal{}", i % 6), sku, (round * 18 + i) % 9 + 1).await;
    }
}

/// Cuts the stream's newest message block to half its length, as a crash of a server
/// that had not synced it would leave it, and drops the block indexes (2.9 keeps them)
/// so that the server rebuilds what it holds from the blocks.
fn cut_the_tail(store: &Path, stream: &str) {
    let msgs = store
        .join("jetstream")
        .join("$G")
        .join("streams")
        .join(stream)
        .join("msgs");
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(&msgs)
        .unwrap_or_else(|e| panic!("{}: {e}", msgs.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    for index in blocks
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
    {
        std::fs::remove_file(index).unwrap();
    }
    blocks.retain(|p| p.extension().is_some_and(|e| e == "blk"));
    let newest = blocks
        .iter()
        .max_by_key(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            stem.parse::<u64>().unwrap_or(0)
        })
        .expect("a message block");
    let len = std::fs::metadata(newest).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap();
    file.set_len(len / 2).unwrap();
}

async fn a_lost_tail_is_published_again(binary: PathBuf) {
    let w = World::start().await;
    let pool = w.db.pool().await;
    let mut broker = TestNats::start_binary(binary).await;
    let connect = async || {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(broker.url())
            .await
            .unwrap()
    };
    let (relay_client, reader) = (connect().await, connect().await);
    let relay = Relay::new(pool.clone(), relay_client, relay_config(&w));
    let task = spawn(relay.clone());
    // Three rounds a little over a second apart, so that the relay leaves marks between
    // them (one a second at most) and the rewind need not go back to the start.
    for round in 0..3 {
        write_round(&w, round).await;
        assert_stream_matches_log(&reader, &w.stream(), &pool).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let before = stream_contents(&reader, &w.stream()).await.len();
    broker.stop();
    cut_the_tail(broker.store_dir(), &w.stream());
    broker.restart().await;
    let rewound = wait_for(
        "the relay to notice the lost tail",
        Duration::from_secs(60),
        async || {
            let s = relay.status();
            (s.rewinds > 0).then_some(s.last_rewind)
        },
    )
    .await;
    let reason = rewound.unwrap_or_default();
    assert!(reason.contains("ends at sequence"), "{reason}");
    // The stream really came back with less than the relay had been told it stored.
    let ends_at: u64 = reason
        .split("ends at sequence ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(ends_at < before as u64, "{reason}, {before} stored before");
    write_round(&w, 3).await;
    assert_stream_matches_log(&reader, &w.stream(), &pool).await;
    task.abort();
    delete_stream(&reader, &w.stream()).await;
    pool.close().await;
    w.finish().await;
}

#[tokio::test]
async fn a_tail_lost_in_a_crash_of_nats_server_2_9_is_published_again_in_order() {
    a_lost_tail_is_published_again(default_nats_binary()).await;
}

#[tokio::test]
async fn a_tail_lost_in_a_crash_of_a_current_nats_server_is_published_again_in_order() {
    let Some(binary) = current_nats_binary() else {
        eprintln!("no current nats-server here (make nats-current installs one); the 2.9 test covers the relay");
        return;
    };
    a_lost_tail_is_published_again(binary).await;
}

#[tokio::test]
async fn a_purged_stream_and_a_deleted_stream_get_every_event_again_in_order() {
    let w = World::start().await;
    let pool = w.db.pool().await;
    let mut config = relay_config(&w);
    config.verify_every = Duration::from_millis(200);
    // JetStream keeps the ids of purged messages for the duplicate window and drops their
    // re-publishes until then: a short window keeps the test short.
    config.duplicate_window = Duration::from_secs(1);
    let relay = Relay::new(pool.clone(), w.client.nats.clone(), config);
    let task = spawn(relay.clone());
    let nats = &w.client.nats;
    let js = async_nats::jetstream::new(nats.clone());
    write_round(&w, 0).await;
    assert_stream_matches_log(nats, &w.stream(), &pool).await;

    js.get_stream(w.stream())
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    let reason = wait_for(
        "a rewind after the purge",
        Duration::from_secs(30),
        async || relay.status().last_rewind,
    )
    .await;
    assert!(reason.contains("purged"), "{reason}");
    write_round(&w, 1).await;
    assert_stream_matches_log(nats, &w.stream(), &pool).await;

    js.delete_stream(w.stream()).await.unwrap();
    wait_for(
        "a rewind after the delete",
        Duration::from_secs(30),
        async || (relay.status().rewinds >= 2).then_some(()),
    )
    .await;
    write_round(&w, 2).await;
    assert_stream_matches_log(nats, &w.stream(), &pool).await;
    task.abort();
    pool.close().await;
    w.finish().await;
}
