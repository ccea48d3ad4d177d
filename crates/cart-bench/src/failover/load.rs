//! The suite's load: cart clients (the bench's cart workload, `workload.rs`) and buying
//! users (fill, checkout, payment), every command with a `Cart-Command-Id`. A client
//! whose request fails sends the same request again, with the same id, until it is
//! answered OK or `give_up` passes, as a careful caller would: so a fault shows as failed
//! requests and a delay, and the checks can hold the service to "an id applies once".
//!
//! Each attempt is kept (when it was sent and answered, and whether OK), so that the
//! time from a fault until commands succeed again is read off afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::fulfilment::figures::Paid;
use crate::fulfilment::receiver::now;
use crate::runner::send;
use crate::stats::Outcome;
use crate::workload::{Mix, Workload};
use cart_proto::COMMAND_ID_HEADER;

/// One request sent (a first try or a retry).
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub sent: Instant,
    pub answered: Instant,
    pub ok: bool,
}

/// What one client did.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub attempts: Vec<Attempt>,
    /// Command ids answered OK (cart commands, fills and checkouts).
    pub acked: Vec<String>,
    /// Commands given up on after `give_up` of failures.
    pub abandoned: u64,
    /// The buying users this client used, and the orders they paid.
    pub users: Vec<String>,
    pub paid: Vec<Paid>,
    /// A few failures, for the report.
    pub errors: Vec<String>,
}

impl ClientLog {
    fn note(&mut self, error: String) {
        if self.errors.len() < 3 && !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }
}

/// How the load's requests go out.
#[derive(Clone)]
pub struct Settings {
    pub prefix: String,
    pub project: u64,
    pub sku: String,
    pub timeout: Duration,
    pub give_up: Duration,
    pub mix: Mix,
}

/// Sends `send` again (same id) until OK or `give_up` passes; logs every attempt.
async fn until_ok<T, F, Fut>(log: &mut ClientLog, give_up: Duration, send: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let first = Instant::now();
    loop {
        let sent = Instant::now();
        let result = send().await;
        let answered = Instant::now();
        log.attempts.push(Attempt {
            sent,
            answered,
            ok: result.is_ok(),
        });
        match result {
            Ok(value) => return Some(value),
            Err(e) => {
                log.note(e);
                if first.elapsed() >= give_up {
                    log.abandoned += 1;
                    return None;
                }
                // A fault that answers at once (no responders) must not turn into a spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A cart client: the cart workload's commands until `stop`.
pub async fn cart_client(
    client: Client,
    workload: Arc<Workload>,
    settings: Settings,
    stop: Arc<AtomicBool>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let mut rng = fastrand::Rng::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(op) = settings.mix.commands_only().map(|m| m.pick(&mut rng)) else {
            break;
        };
        let request = workload.request(op, &mut rng);
        let id = request
            .headers
            .get(COMMAND_ID_HEADER)
            .map(ToString::to_string)
            .unwrap_or_default();
        let (subject, headers, payload) = (request.subject, request.headers, request.payload);
        let ok = until_ok(&mut log, settings.give_up, || {
            let request = crate::workload::Request {
                op,
                subject: subject.clone(),
                headers: headers.clone(),
                payload: payload.clone(),
                cart: None,
            };
            let client = client.clone();
            async move {
                match send(&client, request, settings.timeout).await {
                    Outcome::Ok => Ok(()),
                    Outcome::Error(e) => Err(format!("{}: {e}", op.name())),
                }
            }
        })
        .await;
        if ok.is_some() {
            log.acked.push(id);
        }
    }
    log
}

/// A JSON request with an optional command id; the reply body, or the failure.
async fn call(
    client: &Client,
    subject: String,
    body: &Value,
    command_id: Option<&str>,
    timeout: Duration,
) -> Result<Value, String> {
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    if let Some(id) = command_id {
        headers.insert(COMMAND_ID_HEADER, id);
    }
    let payload = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
    let request = async_nats::Request::new()
        .headers(headers)
        .payload(payload)
        .timeout(Some(timeout));
    let reply = client
        .send_request(subject.clone(), request)
        .await
        .map_err(|e| format!("{subject}: {}", e.kind()))?;
    if let Some(code) = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
    {
        return Err(format!("{subject}: error {code}"));
    }
    serde_json::from_slice(&reply.payload).map_err(|e| format!("{subject}: {e}"))
}

/// A buying user: again and again as a fresh user, fill one line, check out, pay.
pub async fn buyer(
    client: Client,
    settings: Settings,
    tag: String,
    stop: Arc<AtomicBool>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let user = format!("failover-{tag}-{n}");
        log.users.push(user.clone());
        if let Err(e) = purchase(&client, &settings, &user, &mut log).await {
            log.note(format!("{e:#}"));
        }
    }
    log
}

async fn purchase(
    client: &Client,
    s: &Settings,
    user: &str,
    log: &mut ClientLog,
) -> anyhow::Result<()> {
    let p = &s.prefix;
    let scope = json!({"project_id": s.project, "user_id": user});
    let mut fill = scope.clone();
    fill["items"] = json!([{"sku": s.sku, "quantity": 1}]);
    let fill_id = uuid::Uuid::new_v4().to_string();
    let cart = until_ok(log, s.give_up, || {
        call(
            client,
            format!("{p}.fill"),
            &fill,
            Some(&fill_id),
            s.timeout,
        )
    })
    .await
    .context("fill given up")?;
    log.acked.push(fill_id);
    let amount = cart["price"]["amount"]
        .as_str()
        .context("no total")?
        .to_owned();
    let checkout_id = uuid::Uuid::new_v4().to_string();
    let order = until_ok(log, s.give_up, || {
        call(
            client,
            format!("{p}.order.checkout"),
            &scope,
            Some(&checkout_id),
            s.timeout,
        )
    })
    .await
    .context("checkout given up")?;
    log.acked.push(checkout_id);
    let order_id = order["order_id"].as_u64().context("no order id")?;
    // The payment is idempotent by its invoice id (docs/orders.md), not by a command id.
    let pay = json!({"project_id": s.project, "order_id": order_id,
                     "invoice_id": format!("inv-{user}"), "amount": amount, "currency": "USD"});
    let paid = until_ok(log, s.give_up, || {
        call(
            client,
            format!("{p}.payment.confirm"),
            &pay,
            None,
            s.timeout,
        )
    })
    .await
    .context("payment given up")?;
    anyhow::ensure!(paid["status"] == "paid", "not paid: {paid}");
    log.paid.push(Paid {
        order_id,
        replied_at: now(),
    });
    Ok(())
}
