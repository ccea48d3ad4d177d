//! End-to-end tests: the real service against the real PostgreSQL and nats-server.
//! One binary, a module per feature.

mod backup;
mod bad_input;
mod catalog;
mod commands;
mod concurrency;
mod contract;
mod edge;
mod export;
mod failover;
mod faults;
mod feed;
mod fuzz;
mod heal;
mod history;
mod idempotency;
mod load;
mod minimal;
mod observability;
mod orders;
mod ownership;
mod pricing;
mod promocode;
mod replies;
mod retention;
mod trace;

use serde_json::{json, Value};

pub(crate) const PROJECT: u64 = 44056;

/// A request body for `user`'s cart (`cart` None = current cart) with extra fields.
pub(crate) fn req(user: &str, cart: Option<&str>, extra: Value) -> Value {
    let mut body = json!({"project_id": PROJECT, "user_id": user});
    if let Some(cart) = cart {
        body["cart_id"] = json!(cart);
    }
    if let Value::Object(fields) = extra {
        for (k, v) in fields {
            body[k] = v;
        }
    }
    body
}
