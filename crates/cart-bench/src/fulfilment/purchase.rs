//! The users of a phase: each, again and again as a fresh user, fills one line, checks
//! out and confirms the payment, as a store's backend would (the requests of
//! `cart-bench orders`). The payment reply's wall-clock time is what the webhook and
//! `done` latencies are measured from.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::Client;
use serde_json::json;

use super::figures::Paid;
use super::receiver::now;
use crate::orders::request;
use crate::stats::Latencies;

/// Who buys what, shared by every user of a run.
#[derive(Debug, Clone)]
pub struct Shop {
    pub prefix: String,
    pub project: u64,
    pub sku: String,
    /// Part of every user id, unique to the run and phase.
    pub tag: String,
}

/// What the users of a phase did.
#[derive(Default)]
pub struct Purchases {
    pub paid: Vec<Paid>,
    /// Fill + checkout + payment, of the paid ones.
    pub latency: Latencies,
    pub errors: u64,
    pub first_errors: Vec<String>,
}

impl Purchases {
    fn add(&mut self, other: Purchases) {
        self.paid.extend(other.paid);
        self.latency.add(&other.latency);
        self.errors += other.errors;
        for e in other.first_errors {
            if self.first_errors.len() < 3 {
                self.first_errors.push(e);
            }
        }
    }
}

/// One whole purchase; the paid order.
pub async fn purchase(client: &Client, shop: &Shop, user: &str) -> anyhow::Result<Paid> {
    let p = &shop.prefix;
    let scope = json!({"project_id": shop.project, "user_id": user});
    let mut fill = scope.clone();
    fill["items"] = json!([{"sku": shop.sku, "quantity": 1}]);
    let cart = request(client, format!("{p}.fill"), fill).await?;
    let amount = cart["price"]["amount"]
        .as_str()
        .context("the cart has no total")?
        .to_owned();
    let currency = cart["price"]["currency"]
        .as_str()
        .unwrap_or("USD")
        .to_owned();
    let order = request(client, format!("{p}.order.checkout"), scope).await?;
    let order_id = order["order_id"].as_u64().context("no order id")?;
    let paid = request(
        client,
        format!("{p}.payment.confirm"),
        json!({"project_id": shop.project, "order_id": order_id,
               "invoice_id": format!("inv-{user}"), "amount": amount, "currency": currency}),
    )
    .await?;
    let replied_at = now();
    anyhow::ensure!(paid["status"] == "paid", "not paid: {paid}");
    Ok(Paid {
        order_id,
        replied_at,
    })
}

async fn user_loop(client: Client, shop: &Shop, id: usize, end: Instant) -> Purchases {
    let mut done = Purchases::default();
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        let user = format!("bench-{}-{id}-{n}", shop.tag);
        let started = Instant::now();
        match purchase(&client, shop, &user).await {
            Ok(paid) => {
                done.latency.record(started.elapsed());
                done.paid.push(paid);
            }
            Err(e) => {
                done.errors += 1;
                if done.first_errors.len() < 3 {
                    done.first_errors.push(format!("{e:#}"));
                }
            }
        }
    }
    done
}

/// `users` users buying for `duration`.
pub async fn run(client: &Client, shop: &Shop, users: usize, duration: Duration) -> Purchases {
    let end = Instant::now() + duration;
    let loops = (0..users.max(1)).map(|id| user_loop(client.clone(), shop, id, end));
    let mut all = Purchases::default();
    for done in futures::future::join_all(loops).await {
        all.add(done);
    }
    all
}
