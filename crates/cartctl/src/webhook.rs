//! `cartctl webhook`: a project's webhook settings (served by the cart-webhook worker)
//! and `listen`, a local receiver that checks signatures and prints what arrives.

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Set the project's (--project) webhook URL, secret and payload version.
    Set {
        /// Where to POST notifications (http:// or https://).
        #[arg(long)]
        url: String,
        /// The secret the signature is computed with.
        #[arg(long)]
        secret: String,
        /// Keep the settings but send nothing (deliveries wait until enabled).
        #[arg(long)]
        disabled: bool,
        /// Payload version: 2 adds is_free, is_bonus and is_bundle_content to items.
        #[arg(long, default_value_t = 1)]
        version: i16,
    },
    /// Show the project's (--project) webhook settings (the secret is never shown).
    Get,
    /// Receive webhooks locally: check each signature and print the payload.
    Listen {
        /// Port to listen on.
        #[arg(long)]
        port: u16,
        /// The project's webhook secret.
        #[arg(long)]
        secret: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Status answered to a correctly signed request (e.g. 500 to see retries, 422
        /// to see a permanent failure).
        #[arg(long, default_value_t = 204)]
        status: u16,
    },
}

pub(crate) async fn run(g: &Global, command: &WebhookCommand) -> anyhow::Result<i32> {
    let (endpoint, body) = match command {
        WebhookCommand::Set {
            url,
            secret,
            disabled,
            version,
        } => (
            "set",
            json!({
                "project_id": g.project,
                "url": url,
                "secret": secret,
                "enabled": !disabled,
                "version": version,
            }),
        ),
        WebhookCommand::Get => ("get", json!({ "project_id": g.project })),
        WebhookCommand::Listen {
            port,
            secret,
            bind,
            status,
        } => return listen(bind, *port, secret.clone(), *status).await,
    };
    crate::json_request(
        g,
        &format!("admin.webhook.{endpoint}"),
        async_nats::HeaderMap::new(),
        serde_json::to_vec(&body)?,
        "cart-webhook",
    )
    .await
}

#[derive(Clone)]
struct Listener {
    secret: String,
    status: StatusCode,
}

async fn listen(bind: &str, port: u16, secret: String, status: u16) -> anyhow::Result<i32> {
    let status = StatusCode::from_u16(status).with_context(|| format!("status {status}"))?;
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(Listener { secret, status });
    let listener = tokio::net::TcpListener::bind((bind, port))
        .await
        .with_context(|| format!("listen on {bind}:{port}"))?;
    eprintln!(
        "listening on http://{}/ (answering {status} to signed requests)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(0)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message } }).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

async fn receive(State(l): State<Listener>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Constant-time check of sha1(body ++ secret), over the raw bytes as received.
    if !cart_webhook::payload::verify(header("authorization"), &body, &l.secret) {
        eprintln!("rejected a request with a missing or wrong signature (401)");
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SIGNATURE",
            "Invalid signature",
        );
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_PARAMETER",
            "The body is not JSON",
        );
    };
    let kind = payload["notification_type"].as_str().unwrap_or("?");
    println!(
        "== {kind} (Idempotency-Key: {}, attempt {}) -> {}",
        header("idempotency-key").unwrap_or("-"),
        header("x-webhook-attempt").unwrap_or("-"),
        l.status.as_u16()
    );
    // The trace the worker continued: find the whole path by its trace id.
    if let Some(traceparent) = header("traceparent") {
        println!("traceparent: {traceparent}");
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&payload).unwrap_or_default()
    );
    l.status.into_response()
}
