//! The local fulfilment server the worker sends to: answers 204 at once and records per
//! request its arrival time, `Idempotency-Key` and notification type. It checks nothing
//! else (signatures and payloads are the worker's tests' business), so that the figure
//! is the worker's speed, not the receiver's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use tokio::task::JoinHandle;

use super::figures::Arrival;

type Log = Arc<Mutex<Vec<Arrival>>>;

/// The running receiver; dropped, it stops.
pub struct Receiver {
    pub addr: SocketAddr,
    log: Log,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("bind the webhook receiver")?;
        let addr = listener.local_addr()?;
        let log = Log::default();
        let app = Router::new().fallback(record).with_state(log.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("cart-bench fulfilment: the webhook receiver stopped: {e}");
            }
        });
        Ok(Self { addr, log, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/fulfilment", self.addr)
    }

    /// Everything received so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn record(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = now();
    let arrival = arrival_of(&headers, &body, at);
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(arrival);
    StatusCode::NO_CONTENT
}

/// Wall-clock seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What is recorded of one request: a missing header or an unreadable body leaves its
/// field empty (it then counts as no `order_paid`, which the report shows as missing).
pub fn arrival_of(headers: &HeaderMap, body: &[u8], at: f64) -> Arrival {
    #[derive(serde::Deserialize)]
    struct Notification {
        notification_type: String,
        order: Option<Order>,
    }
    #[derive(serde::Deserialize)]
    struct Order {
        id: u64,
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (notification_type, order_id) = serde_json::from_slice::<Notification>(body)
        .map(|n| (n.notification_type, n.order.map(|o| o.id)))
        .unwrap_or_default();
    Arrival {
        key,
        notification_type,
        order_id,
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_notification_type_are_read_from_a_request() {
        let mut headers = HeaderMap::new();
        headers.insert("Idempotency-Key", "44056:12:order_paid".parse().unwrap());
        let body = br#"{"notification_type":"order_paid","items":[],"order":{"id":12}}"#;
        let a = arrival_of(&headers, body, 5.5);
        assert_eq!(a.key, "44056:12:order_paid");
        assert_eq!(a.notification_type, "order_paid");
        assert_eq!(a.order_id, Some(12));
        assert_eq!(a.at, 5.5);
    }

    #[test]
    fn a_request_without_key_or_readable_body_records_empty_fields() {
        let a = arrival_of(&HeaderMap::new(), b"not json", 1.0);
        assert_eq!((a.key.as_str(), a.notification_type.as_str()), ("", ""));
    }

    #[tokio::test]
    async fn the_receiver_answers_204_and_records_each_request() {
        let receiver = Receiver::start().await.unwrap();
        let mut stream = tokio::net::TcpStream::connect(receiver.addr).await.unwrap();
        let body = r#"{"notification_type":"order_paid"}"#;
        let request = format!(
            "POST /fulfilment HTTP/1.1\r\nHost: x\r\nIdempotency-Key: 1:2:order_paid\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");
        let arrivals = receiver.arrivals();
        assert_eq!(arrivals.len(), 1);
        assert_eq!(arrivals[0].key, "1:2:order_paid");
        assert_eq!(arrivals[0].notification_type, "order_paid");
    }
}
