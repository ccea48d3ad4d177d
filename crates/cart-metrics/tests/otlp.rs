//! The OTLP push: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the same instruments that
//! `/metrics` serves reach a real OTLP/HTTP receiver, whose protobuf is decoded with the
//! opentelemetry-proto types. A test binary of its own: the provider is installed once
//! per process, from the environment of that moment.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
use prost::Message;
use tokio::sync::mpsc;

/// The sum of `name` in one export, with the resource's `service.name`.
fn pushed(request: &ExportMetricsServiceRequest, name: &str) -> Option<(String, i64)> {
    for resource in &request.resource_metrics {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.clone());
        let Some(AnyValue::StringValue(service)) = service else {
            continue;
        };
        for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
            if metric.name != name {
                continue;
            }
            if let Some(Data::Sum(sum)) = &metric.data {
                let total = sum
                    .data_points
                    .iter()
                    .filter_map(|p| match p.value {
                        Some(Number::AsInt(v)) => Some(v),
                        _ => None,
                    })
                    .sum();
                return Some((service.clone(), total));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruments_are_pushed_over_otlp_http_and_served_as_prometheus_text() {
    let (exports, mut received) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v1/metrics",
        post(move |body: Bytes| {
            let exports = exports.clone();
            async move {
                match ExportMetricsServiceRequest::decode(body) {
                    Ok(request) => {
                        let _ = exports.send(request);
                        StatusCode::OK
                    }
                    Err(_) => StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The standard variables, before the provider is installed (this process only).
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"));
    std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "200");
    std::env::set_var("OTEL_SERVICE_NAME", "otlp-test");
    let metrics = cart_metrics::init("cart-metrics-test").unwrap();
    assert!(metrics.otlp());

    let counter = opentelemetry::global::meter("otlp-test")
        .u64_counter("cart_test_pushed")
        .build();
    counter.add(3, &[]);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let request = tokio::time::timeout(wait, received.recv())
            .await
            .expect("an OTLP export with the counter")
            .expect("the receiver runs");
        if let Some((service, total)) = pushed(&request, "cart_test_pushed") {
            assert_eq!(service, "otlp-test");
            assert_eq!(total, 3);
            break;
        }
    }
    // The same instrument, read by the Prometheus exporter.
    let text = metrics.render().unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("cart_test_pushed_total") && l.ends_with(" 3")),
        "{text}"
    );
}
