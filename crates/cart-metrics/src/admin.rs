//! The HTTP admin port of cartd and cart-webhook, in the form Prometheus and
//! Kubernetes probes expect:
//!
//! - `GET /metrics`: every instrument as Prometheus text;
//! - `GET /healthz`: 200 while the process serves HTTP at all (liveness);
//! - `GET /readyz`: 200 when every check of the service's [`Probe`] passes, else 503;
//!   both with a small JSON body naming each check and, for a failed one, why.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::Metrics;

/// Where the admin port listens: an address, or `off` (also an empty value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAddr {
    Off,
    At(SocketAddr),
}

impl FromStr for AdminAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(AdminAddr::Off);
        }
        text.parse().map(AdminAddr::At).map_err(|_| {
            format!("{text:?} is not an address like 127.0.0.1:9464 (or off to disable)")
        })
    }
}

impl fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminAddr::Off => f.write_str("off"),
            AdminAddr::At(addr) => write!(f, "{addr}"),
        }
    }
}

/// One readiness check's result: `detail` says why a failed one failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn pass(name: &'static str) -> Self {
        Self {
            name,
            ok: true,
            detail: String::new(),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What `/readyz` asks: the service's checks, run on every request. Each check must
/// bound its own time (a probe has a timeout of its own, often one second).
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Vec<Check>> + Send + Sync>;

/// The admin port's socket, bound before the service starts (so that a port in use
/// stops the start, and a test that asked for port 0 can read the port back).
#[derive(Debug)]
pub struct AdminListener {
    listener: TcpListener,
}

impl AdminListener {
    /// Binds `addr`; `Off` binds nothing.
    ///
    /// # Errors
    /// The address cannot be bound (in use, not local).
    pub async fn bind(addr: AdminAddr) -> std::io::Result<Option<Self>> {
        match addr {
            AdminAddr::Off => Ok(None),
            AdminAddr::At(addr) => Ok(Some(Self {
                listener: TcpListener::bind(addr).await?,
            })),
        }
    }

    /// The bound address (the real port when 0 was asked for).
    ///
    /// # Errors
    /// The socket has no local address (not expected once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the admin routes until `stop` turns true (or its sender is dropped); the
    /// caller spawns it among its own tasks.
    pub fn serve(
        self,
        metrics: &'static Metrics,
        probe: Probe,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let app = router(metrics, probe);
        async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(self.listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(error = %e, "the admin port stopped");
            }
        }
    }
}

#[derive(Clone)]
struct Admin {
    metrics: &'static Metrics,
    probe: Probe,
}

fn router(metrics: &'static Metrics, probe: Probe) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Admin { metrics, probe })
}

async fn scrape(State(admin): State<Admin>) -> Response {
    match admin.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics scrape failed");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(admin): State<Admin>) -> Response {
    let checks = (admin.probe)().await;
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &readiness_body(ready, &checks))
}

/// `{"ready": false, "checks": {"postgres": "ok", "nats": "not connected"}}`.
pub fn readiness_body(ready: bool, checks: &[Check]) -> serde_json::Value {
    let named: serde_json::Map<String, serde_json::Value> = checks
        .iter()
        .map(|c| {
            let verdict = if c.ok {
                "ok".to_owned()
            } else {
                c.detail.clone()
            };
            (c.name.to_owned(), verdict.into())
        })
        .collect();
    serde_json::json!({ "ready": ready, "checks": named })
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_off_disables() {
        assert_eq!("off".parse::<AdminAddr>(), Ok(AdminAddr::Off));
        assert_eq!("".parse::<AdminAddr>(), Ok(AdminAddr::Off));
        assert_eq!(
            "127.0.0.1:0".parse::<AdminAddr>(),
            Ok(AdminAddr::At(SocketAddr::from(([127, 0, 0, 1], 0))))
        );
        assert!("localhost".parse::<AdminAddr>().is_err());
    }

    #[test]
    fn a_failed_check_is_named_with_its_reason() {
        let body = readiness_body(
            false,
            &[
                Check::pass("postgres"),
                Check::fail("nats", "not connected"),
            ],
        );
        assert_eq!(
            body,
            serde_json::json!({"ready": false, "checks": {"postgres": "ok", "nats": "not connected"}})
        );
    }
}
