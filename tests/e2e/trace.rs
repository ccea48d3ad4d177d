//! `cartctl` starts a trace: every request carries a fresh `traceparent`, and `--trace`
//! prints its trace id. The service's side (continuing it, exporting spans) is tested in
//! `crates/cart-webhook/tests/traces.rs` and `tests/traces/export_faults.rs`.

use cart_tests::{cartctl, nats_url, unique_prefix};
use futures::StreamExt;

/// Runs `cartctl <args> fill gold=1` against a plain NATS responder on the fill
/// subject; the request's `traceparent` and cartctl's stderr.
async fn fill_seen_by_responder(args: &[&str]) -> (String, String) {
    let prefix = unique_prefix();
    let nats = async_nats::connect(nats_url()).await.unwrap();
    let mut requests = nats.subscribe(format!("{prefix}.fill")).await.unwrap();
    nats.flush().await.unwrap();
    let responder = tokio::spawn({
        let nats = nats.clone();
        async move {
            let request = requests.next().await.expect("cartctl's request");
            let reply = request.reply.clone().expect("a request");
            nats.publish(reply, "{}".into()).await.unwrap();
            nats.flush().await.unwrap();
            request
                .headers
                .and_then(|h| h.get("traceparent").map(|v| v.as_str().to_owned()))
                .unwrap_or_default()
        }
    });
    let url = nats_url();
    let mut all = vec![
        "--nats-url",
        url.as_str(),
        "--subject-prefix",
        prefix.as_str(),
    ];
    all.extend_from_slice(args);
    all.extend_from_slice(&["fill", "gold=1"]);
    let out = cartctl(&all).await;
    assert!(out.status.success(), "{out:?}");
    let traceparent = responder.await.unwrap();
    (traceparent, String::from_utf8(out.stderr).unwrap())
}

#[tokio::test]
async fn cartctl_sends_a_fresh_traceparent_and_prints_its_trace_id_on_request() {
    let (traceparent, stderr) = fill_seen_by_responder(&["--trace"]).await;
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent:?}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[3], "01", "sampled: {traceparent}");
    let printed = stderr
        .lines()
        .find_map(|l| l.strip_prefix("trace id: "))
        .unwrap_or_else(|| panic!("no trace id in {stderr:?}"));
    assert_eq!(printed, parts[1]);
    assert_eq!(
        cart_telemetry::trace_id(&traceparent).as_deref(),
        Some(printed)
    );

    // Without --trace: still a traceparent (another one), and nothing printed.
    let (again, stderr) = fill_seen_by_responder(&[]).await;
    assert!(cart_telemetry::trace_id(&again).is_some(), "{again:?}");
    assert_ne!(again, traceparent);
    assert!(!stderr.contains("trace id"), "{stderr:?}");
}
