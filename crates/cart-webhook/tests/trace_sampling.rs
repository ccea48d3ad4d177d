//! Head sampling: with `parentbased_traceidratio` at 0, only a caller's sampled
//! `traceparent` gets a trace, and it gets the whole of it (request, decode, decide, the
//! group commit's batch and transaction, the relay's publish), while an unsampled or a
//! new request has nothing exported, no link pointing at it, and no context stored with
//! its events (a consumer of the stream starts its own trace).
//!
//! The batch and the publish are roots of their own: before head sampling they were
//! sampled by the ratio of their own trace id (never, at 0), so a sampled command's
//! trace lost them. The tracer provider is process-wide: this binary holds this test only.

mod common;

use std::time::{Duration, Instant};

use common::otlp::{hex, ids, one, request, Collector};
use common::World;
use opentelemetry_proto::tonic::trace::v1::Span;

fn fill(user: &str) -> serde_json::Value {
    serde_json::json!({"project_id": 44056, "user_id": user,
                       "items": [{"sku": "gold", "quantity": 1}]})
}

/// The `traceparent` on the stream's message for `user`'s event (empty when it has
/// none), once the relay published it.
async fn published_traceparent(w: &World, stream: &str, user: &str) -> String {
    let stream = w
        .jetstream
        .get_stream(stream)
        .await
        .expect("the events stream");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seq = 1;
        while let Ok(message) = stream.get_raw_message(seq).await {
            if message.subject.contains(user) {
                let header = message.headers.get("traceparent");
                return header.map(|h| h.as_str().to_owned()).unwrap_or_default();
            }
            seq += 1;
        }
        assert!(
            Instant::now() < deadline,
            "{user}'s event never reached the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_sampled_callers_are_traced_and_they_are_traced_whole() {
    // Read by the SDK's sampler configuration when the provider is built.
    std::env::set_var("OTEL_TRACES_SAMPLER", "parentbased_traceidratio");
    std::env::set_var("OTEL_TRACES_SAMPLER_ARG", "0");
    let (collector, endpoint) = Collector::start().await;
    let mut settings = cart_telemetry::Settings::new("cart-trace-test", Default::default());
    settings.endpoint = Some(endpoint);
    let telemetry = cart_telemetry::init(&settings).expect("telemetry");
    let w = World::new_without_orders_stream().await;
    let (server, service) = common::otlp::start_cartd(&w).await;

    let sampled = cart_telemetry::new_traceparent().traceparent;
    let fresh = cart_telemetry::new_traceparent().traceparent;
    let unsampled = format!("{}-00", fresh.strip_suffix("-01").expect("a sampled one"));
    let (sampled_trace, caller) = ids(&sampled);
    let (unsampled_trace, _) = ids(&unsampled);
    request(&w, "fill", &sampled, fill("sampled-caller")).await;
    request(&w, "fill", &unsampled, fill("unsampled-caller")).await;
    request(&w, "fill", "", fill("new-trace")).await;

    // The sampled context goes on with the events; an unsampled one is not stored.
    let stream = &service.events_stream;
    let on_stream = published_traceparent(&w, stream, "sampled-caller").await;
    assert!(on_stream.ends_with("-01"), "{on_stream}");
    assert_eq!(ids(&on_stream).0, sampled_trace);
    for user in ["unsampled-caller", "new-trace"] {
        let on_stream = published_traceparent(&w, stream, user).await;
        assert_eq!(on_stream, "", "{user}: nothing to continue");
    }

    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    server.shutdown().await;
    let _ = w.jetstream.delete_stream(stream).await;
    let spans = collector.spans();

    // The sampled caller's trace, whole.
    let traced: Vec<Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == sampled_trace)
        .cloned()
        .collect();
    let root = one(&traced, "the request span", |s| s.name == "cart");
    assert_eq!(hex(&root.parent_span_id), caller);
    for name in ["decode", "decide"] {
        let child = one(&traced, name, |s| s.name == name);
        assert_eq!(child.parent_span_id, root.span_id, "{name}'s parent");
    }
    let linked = |s: &Span| s.links.iter().any(|l| l.span_id == root.span_id);
    let batch = one(&spans, "the batch", |s| {
        s.name == "group commit" && linked(s)
    });
    one(&spans, "the batch's transaction", |s| {
        s.name == "append batch" && s.trace_id == batch.trace_id
    });
    assert!(
        spans
            .iter()
            .any(|s| s.name.starts_with("publish ") && linked(s)),
        "a relay publish linked to the sampled command"
    );

    // Nothing of the others: no span in the unsampled caller's trace, no link to it, and
    // no request span but the sampled one.
    let trace = &unsampled_trace;
    let touching: Vec<&String> = spans
        .iter()
        .filter(|s| {
            hex(&s.trace_id) == *trace || s.links.iter().any(|l| hex(&l.trace_id) == *trace)
        })
        .map(|s| &s.name)
        .collect();
    assert!(touching.is_empty(), "{trace}: {touching:?}");
    let requests = spans.iter().filter(|s| s.name == "cart").count();
    assert_eq!(requests, 1, "only the sampled request");
}
