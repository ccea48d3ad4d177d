//! Deliveries to an https receiver: a local TLS server whose certificate is signed by
//! the test CA of `tests/fixtures` (trusted through `--ca-file`, or not).

mod common;

use std::time::Duration;

use cart_webhook::payload;
use common::{paid, Receiver, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_delivery_with_the_ca_file_arrives_signed() {
    let w = World::new().await;
    let receiver = Receiver::start_tls(vec![]).await;
    assert!(receiver.url.starts_with("https://localhost:"));
    let mut config = w.config.clone();
    config.ca_file = Some(common::ca_file());
    let worker = w.start_worker_with(config);
    w.set_webhook(1, &receiver.url, "tls-secret", 2).await;
    w.publish(&paid(1, 91)).await;
    w.wait_status(91, "order_paid", "delivered").await;

    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.key(), "1:91:order_paid");
    assert_eq!(
        call.header("authorization"),
        format!("Signature {}", payload::signature(&call.body, "tls-secret"))
    );
    assert!(payload::verify(
        Some(&call.header("authorization")),
        &call.body,
        "tls-secret"
    ));
    assert_eq!(call.json()["notification_type"], "order_paid");
    assert_eq!(
        w.attempts(91, "order_paid").await,
        vec![(1, Some(204), "success".into())]
    );
    assert_eq!(receiver.tls_failures(), 0);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_without_the_ca_file_is_a_certificate_error_and_retried() {
    let w = World::new().await;
    let receiver = Receiver::start_tls(vec![]).await;
    // Only the bundled roots: the test CA is unknown.
    assert!(w.config.ca_file.is_none());
    let worker = w.start_worker();
    w.set_webhook(1, &receiver.url, "s", 1).await;
    w.publish(&paid(1, 92)).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w.attempts(92, "order_paid").await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no retry");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    worker.abort();
    let attempts = w.attempts(92, "order_paid").await;
    assert!(
        attempts
            .iter()
            .all(|(_, status, outcome)| status.is_none() && outcome == "error"),
        "{attempts:?}"
    );
    assert_eq!(attempts[0].0, 1);
    assert_eq!(attempts[1].0, 2, "retried");
    let errors: Vec<String> = sqlx::query_scalar(
        "select a.error from webhook_attempts a
         join webhook_deliveries d using (event_id)
         where d.order_id = 92 order by a.attempt",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert!(
        errors
            .iter()
            .all(|e| e.contains("tls handshake with localhost:") && e.contains("certificate")),
        "{errors:?}"
    );
    assert!(receiver.calls().is_empty(), "no request without trust");
    assert!(receiver.tls_failures() >= 2);
}
