//! The edge against a real nats-server (`NATS_URL`), with a handler of the test's own:
//! a panicking handler gets a structured 500 and the endpoint keeps serving; request
//! text with CR/LF in an error message cannot break the reply's headers.

use std::time::Duration;

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::HeaderMap;
use cart_proto::request;
use cart_proto::ErrorReply;

use super::*;

/// Panics, fails with request text in the message, or echoes the request as JSON.
struct Probe;

impl Handler for Probe {
    async fn handle(&self, endpoint: Endpoint, request: Incoming) -> Result<Reply, ErrorReply> {
        match &request.body[..] {
            b"panic" => panic!("the probe panics on purpose"),
            b"crlf" => Err(ErrorReply::new(
                422,
                1102,
                "Unprocessable Entity. unknown property `bad\r\nX: y`",
            )),
            _ => Ok(Reply::json(
                serde_json::to_vec(&serde_json::json!({
                    "endpoint": endpoint.subject(),
                    "command_id": request.command.map(|c| c.id.as_str().to_owned()),
                }))
                .unwrap(),
            )),
        }
    }
}

async fn probe_service() -> (Running, async_nats::Client, String) {
    let mut config = Config::from_env();
    config.nats_url =
        std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    config.subject_prefix = format!("t{}.edge", uuid::Uuid::new_v4().simple());
    config.service_name = "cart-edge-test".to_owned();
    config.max_in_flight = 4;
    let client = connect(&config).await.unwrap();
    let running = start(&config, Probe, client.clone()).await.unwrap();
    (running, client, config.subject_prefix)
}

async fn ask(
    client: &async_nats::Client,
    subject: String,
    headers: HeaderMap,
    body: &'static [u8],
) -> async_nats::Message {
    tokio::time::timeout(
        Duration::from_secs(10),
        client.request_with_headers(subject, headers, body.into()),
    )
    .await
    .expect("a reply within the timeout")
    .expect("the endpoint answers")
}

fn header(message: &async_nats::Message, name: &str) -> Option<String> {
    let headers = message.headers.as_ref()?;
    headers.get(name).map(|v| v.as_str().to_owned())
}

#[tokio::test]
async fn a_panicking_handler_gets_a_structured_500_and_the_endpoint_keeps_serving() {
    let (running, client, prefix) = probe_service().await;
    let get = format!("{prefix}.get");
    let admin = format!("{prefix}.admin.catalog.item.create");
    for subject in [&get, &admin] {
        // More panics than the in-flight limit: no permit may leak.
        for _ in 0..10 {
            let reply = ask(&client, subject.clone(), HeaderMap::new(), b"panic").await;
            let error = ErrorReply::from_body(&reply.payload).expect("a JSON error body");
            assert_eq!((error.status, error.code), (500, 1000));
            assert_eq!(
                header(&reply, NATS_SERVICE_ERROR_CODE).as_deref(),
                Some("500")
            );
            assert_eq!(
                header(&reply, "Content-Type").as_deref(),
                Some("application/json")
            );
        }
        let reply = ask(&client, subject.clone(), HeaderMap::new(), b"{}").await;
        assert_eq!(header(&reply, NATS_SERVICE_ERROR_CODE), None);
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(
            body["endpoint"],
            subject.strip_prefix(&format!("{prefix}.")).unwrap()
        );
    }
    running.finish().await;
}

#[tokio::test]
async fn request_text_with_line_breaks_cannot_break_the_reply_headers() {
    let (running, client, prefix) = probe_service().await;
    for subject in [
        "fill",
        "order.checkout",
        "admin.catalog.import",
        "feed.status",
    ] {
        let reply = ask(
            &client,
            format!("{prefix}.{subject}"),
            HeaderMap::new(),
            b"crlf",
        )
        .await;
        let error = ErrorReply::from_body(&reply.payload).expect("a JSON error body");
        assert_eq!((error.status, error.code), (422, 1102), "{subject}");
        assert!(
            error.text.contains("bad\r\nX: y"),
            "the body keeps the text whole"
        );
        let message = header(&reply, NATS_SERVICE_ERROR).expect("an error header");
        assert!(!message.contains(['\r', '\n']), "{message:?}");
        assert!(
            message.ends_with("unknown property `bad??X: y`"),
            "{message:?}"
        );
        // The endpoint still serves.
        let reply = ask(
            &client,
            format!("{prefix}.{subject}"),
            HeaderMap::new(),
            b"{}",
        )
        .await;
        assert_eq!(header(&reply, NATS_SERVICE_ERROR_CODE), None, "{subject}");
    }
    running.finish().await;
}

#[tokio::test]
async fn command_ids_are_read_whatever_the_case_and_checked_on_every_endpoint() {
    let (running, client, prefix) = probe_service().await;
    let with = |name: &str, value: &str| {
        let mut h = HeaderMap::new();
        h.insert(name, value);
        h
    };
    // A lower-case header name is honoured on a command...
    let reply = ask(
        &client,
        format!("{prefix}.fill"),
        with("cart-command-id", "c-1"),
        b"{}",
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["command_id"], "c-1");
    // ...accepted and ignored on a query...
    let reply = ask(
        &client,
        format!("{prefix}.get"),
        with("CART-COMMAND-ID", "c-1"),
        b"{}",
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["command_id"], serde_json::Value::Null);
    // ...and an invalid one is refused everywhere, queries and admin included.
    for subject in [
        "get",
        "fill",
        "order.get",
        "payment.confirm",
        "admin.catalog.export",
        "feed.status",
    ] {
        let reply = ask(
            &client,
            format!("{prefix}.{subject}"),
            with("cart-command-id", "a b"),
            b"{}",
        )
        .await;
        let error = ErrorReply::from_body(&reply.payload).expect("a JSON error body");
        assert_eq!((error.status, error.code), (422, 1102), "{subject}");
    }
    running.finish().await;
}

#[test]
fn every_endpoint_is_typed() {
    assert!(Endpoint::all().contains(&Endpoint::Cart(request::Endpoint::Get)));
    assert!(Endpoint::all().contains(&Endpoint::FeedStatus));
}
