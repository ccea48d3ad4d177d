//! Settings admin over NATS: `<prefix>.admin.webhook.set` and `.get`, queue-group
//! endpoints of the `cart-webhook` micro service, errors in the service's shape.

use async_nats::service::{self, Service, ServiceExt};
use async_nats::HeaderMap;
use cart_proto::ErrorReply;
use futures::StreamExt;
use serde::Deserialize;
use sqlx::PgPool;

use crate::store::{self, Settings};
use crate::{Config, WebhookError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRequest {
    project_id: u64,
    url: String,
    secret: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "one")]
    version: i16,
}

fn yes() -> bool {
    true
}
fn one() -> i16 {
    1
}

#[derive(Debug, Deserialize)]
struct GetRequest {
    project_id: u64,
}

fn invalid(text: impl Into<String>) -> ErrorReply {
    ErrorReply::new(422, 1102, format!("Unprocessable Entity. {}", text.into()))
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ErrorReply> {
    serde_json::from_slice(body).map_err(ErrorReply::malformed)
}

/// Checks a settings request: an http(s) URL, version 1 or 2, a secret.
fn validate(r: SetRequest) -> Result<Settings, ErrorReply> {
    if r.project_id == 0 || i64::try_from(r.project_id).is_err() {
        return Err(invalid(
            "The property `project_id` must be a positive integer",
        ));
    }
    let url = r.url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|host| host.is_empty() || host.starts_with('/'))
        || url.contains(char::is_whitespace)
    {
        return Err(invalid(
            "The property `url` must be an http:// or https:// URL",
        ));
    }
    if r.secret.is_empty() {
        return Err(invalid("The property `secret` must not be empty"));
    }
    if !matches!(r.version, 1 | 2) {
        return Err(invalid("The property `version` must be 1 or 2"));
    }
    Ok(Settings {
        project_id: r.project_id,
        url: url.to_owned(),
        secret: r.secret,
        enabled: r.enabled,
        version: r.version,
    })
}

/// Settings as `get` shows them: never the secret itself.
fn shown(s: Option<Settings>, project_id: u64) -> serde_json::Value {
    match s {
        Some(s) => serde_json::json!({
            "project_id": s.project_id,
            "url": s.url,
            "enabled": s.enabled,
            "version": s.version,
            "secret_set": !s.secret.is_empty(),
        }),
        None => serde_json::json!({
            "project_id": project_id,
            "url": null,
            "enabled": false,
            "version": 1,
            "secret_set": false,
        }),
    }
}

async fn handle(
    pool: &PgPool,
    endpoint: &str,
    body: &[u8],
) -> Result<serde_json::Value, ErrorReply> {
    let internal = |e: store::StoreError| {
        tracing::warn!(error = %cart_store::error_chain(&e), "webhook settings");
        ErrorReply::new(503, 1102, "Service Unavailable. The settings store failed")
    };
    match endpoint {
        "set" => {
            let settings = validate(decode(body)?)?;
            store::put_settings(pool, &settings)
                .await
                .map_err(internal)?;
            Ok(shown(Some(settings.clone()), settings.project_id))
        }
        _ => {
            let r: GetRequest = decode(body)?;
            let s = store::settings(pool, r.project_id)
                .await
                .map_err(internal)?;
            Ok(shown(s, r.project_id))
        }
    }
}

/// Starts the service and serves its two endpoints on background tasks.
pub async fn start(
    client: &async_nats::Client,
    config: &Config,
    pool: PgPool,
) -> Result<Service, WebhookError> {
    let service = client
        .service_builder()
        .description("cart webhook settings")
        .start("cart-webhook", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| WebhookError::Admin(e.to_string()))?;
    let group = service.group(format!("{}.admin.webhook", config.prefix));
    for endpoint in ["set", "get"] {
        let mut requests = group
            .endpoint_builder()
            .name(format!("admin-webhook-{endpoint}"))
            .add(endpoint)
            .await
            .map_err(|e| WebhookError::Admin(format!("endpoint {endpoint}: {e}")))?;
        let pool = pool.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let result = handle(&pool, endpoint, &request.message.payload).await;
                let mut headers = HeaderMap::new();
                headers.insert("Content-Type", "application/json");
                let body = match result {
                    Ok(value) => serde_json::to_vec(&value).unwrap_or_default(),
                    Err(error) => {
                        headers.insert(service::NATS_SERVICE_ERROR, error.message().as_str());
                        headers.insert(
                            service::NATS_SERVICE_ERROR_CODE,
                            error.status.to_string().as_str(),
                        );
                        headers.insert("Cart-Error-Code", error.code.to_string().as_str());
                        error.body()
                    }
                };
                if let Err(e) = request.respond_with_headers(Ok(body.into()), headers).await {
                    tracing::warn!(endpoint, error = %e, "could not send the admin reply");
                }
            }
        });
    }
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str, secret: &str, version: i16) -> SetRequest {
        SetRequest {
            project_id: 7,
            url: url.into(),
            secret: secret.into(),
            enabled: true,
            version,
        }
    }

    #[test]
    fn settings_are_validated() {
        assert!(validate(req("http://127.0.0.1:9/hook", "s", 2)).is_ok());
        assert!(validate(req("https://example.com", "s", 1)).is_ok());
        for (r, field) in [
            (req("ftp://x", "s", 1), "url"),
            (req("http://", "s", 1), "url"),
            (req("http://x", "", 1), "secret"),
            (req("http://x", "s", 3), "version"),
        ] {
            let e = validate(r).unwrap_err();
            assert_eq!((e.status, e.code), (422, 1102));
            assert!(e.text.contains(field), "{}", e.text);
        }
    }
}
