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

#[tokio::test]
async fn cartctl_webhook_listen_prints_the_traceparent_it_receives() {
    use sha1::Digest;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let binary = tokio::task::spawn_blocking(cart_tests::cartctl_binary)
        .await
        .unwrap();
    let port = cart_tests::free_port();
    let mut listen = tokio::process::Command::new(&binary)
        .args([
            "webhook",
            "listen",
            "--port",
            &port.to_string(),
            "--secret",
            "s3cr3t",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(listen.stderr.take().unwrap()).lines();
    let ready = stderr.next_line().await.unwrap().unwrap_or_default();
    assert!(ready.starts_with("listening on"), "{ready:?}");

    // A signed order_paid as the worker sends it, with its trace context.
    let traceparent = cart_telemetry::new_traceparent().traceparent;
    let body = br#"{"notification_type":"order_paid"}"#;
    let mut sha = sha1::Sha1::new();
    sha.update(body);
    sha.update(b"s3cr3t");
    let signature = hex::encode(sha.finalize());
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Authorization: Signature {signature}\r\ntraceparent: {traceparent}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer:?}");

    let mut stdout = BufReader::new(listen.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while let Some(line) = stdout.next_line().await.unwrap() {
        let done = line.starts_with("traceparent: ");
        printed.push(line);
        if done {
            break;
        }
    }
    assert!(printed[0].starts_with("== order_paid"), "{printed:?}");
    assert_eq!(
        printed.last().unwrap(),
        &format!("traceparent: {traceparent}")
    );
    listen.kill().await.unwrap();
}
