//! Trace export never fails or slows a request: with the OTLP endpoint on a closed port
//! (a dead collector), then on a listener that accepts and never answers (a hanging
//! one), every request is answered, each within a generous bound. The tracer provider is
//! process-wide, so this binary holds this one test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cart_tests::{free_port, World};

/// Far above a request's latency on a loaded machine; an export that blocked a request
/// would hold it for the exporter's 10 s timeout.
const BOUND: Duration = Duration::from_secs(5);

/// `n` commands on carts of their own, each answered OK within [`BOUND`].
async fn commands(w: &World, round: &str, n: usize) {
    for i in 0..n {
        let started = Instant::now();
        let reply = w
            .client
            .json(
                "fill",
                Some(&format!("{round}-{i}")),
                serde_json::json!({"project_id": 44056, "user_id": format!("{round}-{i}"),
                                   "items": [{"sku": "gold", "quantity": 1}]}),
            )
            .await;
        assert!(reply.is_ok(), "{round} {i}: {reply:?}");
        let took = started.elapsed();
        assert!(took < BOUND, "{round} {i} took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_hanging_collector_neither_fails_nor_slows_requests() {
    let port = free_port();
    let mut settings = cart_telemetry::Settings::new("cart-fault-test", Default::default());
    settings.endpoint = Some(format!("http://127.0.0.1:{port}/v1/traces"));
    let telemetry = cart_telemetry::init(&settings).expect("telemetry");
    let w = World::start().await;

    // Dead: nothing listens. 200 commands make several export batches (512 spans each).
    commands(&w, "dead", 200).await;

    // Hanging: a listener that takes connections and never answers.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the collector's port again");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let hanging = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    // Commands until the exporter is stuck on the hanging collector (it exports when a
    // batch is full or every 5 s), then more while it is.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the exporter never connected");
        commands(&w, &format!("wait{round}"), 20).await;
        round += 1;
    }
    commands(&w, "hanging", 200).await;

    // Shutting the pipeline down is bounded too, though its last export hangs.
    let started = Instant::now();
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    hanging.abort();
    w.finish().await;
}
