//! Stream replicas from settings, on real servers: a three-node JetStream cluster of
//! throwaway nats-servers (ports 16010-16012, routes 16020-16022), and the shared single
//! server (`NATS_URL`), which cannot hold more than one replica.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use cart_nats::{ensure_stream, Replicas, StreamPlacement};

/// Three clustered nats-servers with JetStream, killed (and their folders removed) on drop.
struct Cluster {
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("cart-nats-cluster-{}", std::process::id()));
        let routes = "nats://127.0.0.1:16020,nats://127.0.0.1:16021,nats://127.0.0.1:16022";
        let bin = std::env::var("TEST_NATS_BIN").unwrap_or_else(|_| "nats-server".into());
        let children = (0..3)
            .map(|i| {
                let store = dir.join(format!("n{i}"));
                std::fs::create_dir_all(&store).unwrap();
                Command::new(&bin)
                    .args(["-a", "127.0.0.1", "-p", &(16010 + i).to_string()])
                    .args(["--server_name", &format!("n{i}"), "--cluster_name", "drain"])
                    .args(["--cluster", &format!("nats://127.0.0.1:{}", 16020 + i)])
                    .args(["--routes", routes, "-js", "-sd"])
                    .arg(&store)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn nats-server (set TEST_NATS_BIN or install nats-server)")
            })
            .collect();
        Cluster { children, dir }
    }

    fn seeds() -> &'static str {
        "nats://127.0.0.1:16010,nats://127.0.0.1:16011,nats://127.0.0.1:16012"
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(name: &str) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        ..Default::default()
    }
}

async fn replicas_of(js: &jetstream::Context, name: &str) -> (usize, usize) {
    let info = js
        .get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    let peers = info.cluster.map_or(0, |c| c.replicas.len());
    (info.config.num_replicas, peers)
}

#[tokio::test]
async fn an_existing_stream_follows_the_replicas_setting_on_a_cluster() {
    let _cluster = Cluster::start();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(cart_nats::servers(Cluster::seeds()).unwrap().as_slice())
        .await
        .unwrap();
    let js = jetstream::new(client);
    // The cluster elects its meta leader after start: until then stream requests fail.
    let deadline = Instant::now() + Duration::from_secs(60);
    let one = StreamPlacement::new(1, "");
    let created = loop {
        match ensure_stream(&js, config("DRAIN_REPLICAS"), &one).await {
            Ok(r) => break r,
            Err(e) => assert!(Instant::now() < deadline, "cluster not ready: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(created, Replicas::AsSet);
    assert_eq!(replicas_of(&js, "DRAIN_REPLICAS").await, (1, 0));

    let three = StreamPlacement::new(3, "");
    let changed = ensure_stream(&js, config("DRAIN_REPLICAS"), &three)
        .await
        .unwrap();
    assert_eq!(changed, Replicas::Changed { from: 1 });
    // The leader and (at least) two followers.
    let (replicas, followers) = replicas_of(&js, "DRAIN_REPLICAS").await;
    assert_eq!(replicas, 3);
    assert!(followers >= 2, "{followers} followers");
    let again = ensure_stream(&js, config("DRAIN_REPLICAS"), &three)
        .await
        .unwrap();
    assert_eq!(again, Replicas::AsSet);

    // A new stream is created with the setting.
    ensure_stream(&js, config("DRAIN_NEW"), &three)
        .await
        .unwrap();
    assert_eq!(replicas_of(&js, "DRAIN_NEW").await.0, 3);
}

#[tokio::test]
async fn a_single_server_refuses_more_replicas_and_the_stream_stays_usable() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(cart_nats::servers(&url).unwrap().as_slice())
        .await
        .unwrap();
    let js = jetstream::new(client);
    let name = format!("DRAIN_SINGLE_{}", std::process::id());
    let one = StreamPlacement::new(1, "");
    ensure_stream(&js, config(&name), &one).await.unwrap();
    let refused = ensure_stream(&js, config(&name), &StreamPlacement::new(3, ""))
        .await
        .unwrap();
    match refused {
        Replicas::Refused { kept, reason } => {
            assert_eq!(kept, 1);
            assert!(!reason.is_empty());
        }
        other => panic!("a single server took 3 replicas: {other:?}"),
    }
    assert_eq!(replicas_of(&js, &name).await.0, 1);
    let ack = js
        .publish(format!("{}.x", name.to_lowercase()), "still usable".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.stream, name);
    js.delete_stream(&name).await.unwrap();
}
