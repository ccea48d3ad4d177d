//! The OTLP pipeline: the SDK's batch span processor and an OTLP/HTTP (protobuf)
//! exporter, configured by the standard `OTEL_*` variables, which the SDK reads itself
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` and `_HEADERS`).
//!
//! Export never touches a request: spans go into the batch processor's bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048), which drops spans when full, and its own thread
//! exports them. A dead collector fails that thread's export; a hanging one holds it for
//! the exporter's timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s) while the queue fills and
//! drops.

use std::env;
use std::time::Duration;

use opentelemetry::Key;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

use crate::{Settings, TelemetryError};

/// Where spans go, when anywhere.
pub(crate) enum Endpoint {
    /// The settings name the traces URL.
    Explicit(String),
    /// The environment does; the SDK reads it.
    Environment,
}

/// The endpoint to export to, or `None` for no export at all: no endpoint variable set,
/// or the SDK switched off (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
pub(crate) fn endpoint(settings: &Settings) -> Option<Endpoint> {
    if let Some(url) = &settings.endpoint {
        return Some(Endpoint::Explicit(url.clone()));
    }
    let set = |name: &str| env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| {
        env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    if is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none") {
        return None;
    }
    (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .then_some(Endpoint::Environment)
}

/// The tracer provider: resource, sampler (from the environment) and batch export.
pub(crate) fn provider(
    settings: &Settings,
    endpoint: Endpoint,
) -> Result<SdkTracerProvider, TelemetryError> {
    let client = RuntimeClient::start(export_timeout())?;
    let builder = SpanExporter::builder().with_http().with_http_client(client);
    let builder = match endpoint {
        Endpoint::Explicit(url) => builder.with_endpoint(url),
        Endpoint::Environment => builder,
    };
    let exporter = builder
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    // The sampler is the SDK's, read from OTEL_TRACES_SAMPLER(_ARG); a parent-based one
    // also follows the links of batch roots (`sampling::FollowLinks`).
    let sampler = opentelemetry_sdk::trace::Config::default().sampler;
    let sampler: Box<dyn opentelemetry_sdk::trace::ShouldSample> =
        if crate::sampling::parent_based_from_env() {
            Box::new(crate::sampling::FollowLinks(sampler))
        } else {
            sampler
        };
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource(settings.service_name))
        .build())
}

/// The SDK's resource (its detectors read `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`), named after the binary when those name no service.
fn resource(default_name: &'static str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder().with_service_name(default_name).build()
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds),
/// 10 s by default: the exporter applies it only to the clients it builds itself.
fn export_timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|name| env::var(name).ok()?.trim().parse::<u64>().ok())
    .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// opentelemetry-http's hyper client on a one-thread tokio runtime of its own.
///
/// The SDK's batch processor exports from a plain thread (`futures` `block_on`), where
/// the hyper client, which needs a tokio runtime, cannot run; and on the service's
/// runtime an export would compete with requests. Here it runs beside both.
#[derive(Debug)]
struct RuntimeClient {
    inner: HyperClient,
    runtime: ExportRuntime,
}

impl RuntimeClient {
    fn start(timeout: Duration) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otel-export")
            .enable_all()
            .build()?;
        Ok(Self {
            inner: HyperClient::with_default_connector(timeout, None),
            runtime: ExportRuntime(Some(runtime)),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let Some(runtime) = &self.runtime.0 else {
            return Err("the export runtime has stopped".into());
        };
        let inner = self.inner.clone();
        runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as HttpError)?
    }
}

/// The export runtime, shut down without blocking when dropped: the client may be
/// dropped on an async thread (a failed `init` inside `main`), where a blocking
/// shutdown panics.
#[derive(Debug)]
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
