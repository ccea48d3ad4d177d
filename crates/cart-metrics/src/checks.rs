//! The readiness checks both services share: PostgreSQL (reachable, migrated), NATS,
//! and the service's own endpoints subscribed ([`Health`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cart_store::Readiness;
use sqlx::PgPool;

use crate::{Check, Probe};

/// How long the PostgreSQL check may take, the wait for a pooled connection included;
/// below the usual one-second timeout of a Kubernetes probe.
pub const DB_TIMEOUT: Duration = Duration::from_millis(800);

/// `postgres` and `migrations`, from one bounded query.
pub async fn database_checks(pool: &PgPool) -> Vec<Check> {
    match cart_store::readiness(pool, DB_TIMEOUT).await {
        Readiness::Ready => vec![Check::pass("postgres"), Check::pass("migrations")],
        Readiness::Unreachable(why) => vec![
            Check::fail("postgres", why),
            Check::fail("migrations", "unknown: PostgreSQL unreachable"),
        ],
        Readiness::Behind { applied, latest } => vec![
            Check::pass("postgres"),
            Check::fail(
                "migrations",
                format!("schema at version {applied}, this build needs {latest}"),
            ),
        ],
    }
}

/// `nats`: the client is connected now (it reconnects by itself, and subscribes again).
pub fn nats_check(client: Option<&async_nats::Client>) -> Check {
    match client.map(async_nats::Client::connection_state) {
        Some(async_nats::connection::State::Connected) => Check::pass("nats"),
        Some(state) => Check::fail("nats", format!("{state}")),
        None => Check::fail("nats", "not connected yet"),
    }
}

/// What `/readyz` checks for a service: PostgreSQL reachable with this build's
/// migrations, NATS connected, and the service's endpoints subscribed. Filled in as the
/// service gets each part, so that the admin port answers (not ready) while it starts.
#[derive(Default)]
pub struct Health {
    pool: OnceLock<PgPool>,
    nats: OnceLock<async_nats::Client>,
    serving: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_pool(&self, pool: PgPool) {
        let _ = self.pool.set(pool);
    }

    pub fn set_nats(&self, client: async_nats::Client) {
        let _ = self.nats.set(client);
    }

    /// The endpoints are subscribed (async-nats subscribes them again after a reconnect,
    /// which the `nats` check covers).
    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::Release);
    }

    /// Shutting down: the endpoints are being unsubscribed and what is in flight
    /// finishes; `/readyz` says not ready from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The probe the admin port runs for `/readyz`.
    pub fn probe(self: &Arc<Self>) -> Probe {
        let health = self.clone();
        Arc::new(move || {
            let health = health.clone();
            Box::pin(async move { health.checks().await })
        })
    }

    pub async fn checks(&self) -> Vec<Check> {
        let mut checks = match self.pool.get() {
            Some(pool) => database_checks(pool).await,
            None => vec![Check::fail("postgres", "not connected yet")],
        };
        checks.push(nats_check(self.nats.get()));
        checks.push(if self.draining.load(Ordering::Acquire) {
            Check::fail(
                "endpoints",
                "draining: no new requests, finishing those in flight",
            )
        } else if self.serving.load(Ordering::Acquire) {
            Check::pass("endpoints")
        } else {
            Check::fail("endpoints", "not subscribed yet")
        });
        checks
    }
}
