//! The facade composing OTLP export and metrics: one `try_init`, spans and log records at a
//! real OTLP receiver, request metrics in the exposition, the exporter's losses as a metric.

use std::time::Duration;

use strata_testkit::OtlpReceiver;

#[test]
fn one_init_composes_json_otlp_and_metrics() {
    let receiver = OtlpReceiver::start().unwrap();
    let metrics = strata_metrics::Metrics::new();
    let guard = strata::builder()
        .without_config_file()
        .with_capture_enabled(false)
        .with_service("shop")
        .with_otlp(
            strata_otlp::Otlp::new()
                .with_endpoint(receiver.grpc_endpoint())
                .with_metrics_interval(Duration::from_secs(3600)),
        )
        .with_metrics(&metrics)
        .try_init()
        .unwrap();
    tracing::info_span!(
        target: "strata_request_id::server",
        "request",
        method = "GET",
        route = "/cart",
        status_code = 200_u64,
        duration_ms = 3.0
    )
    .in_scope(|| tracing::info!("cart shown"));
    guard.flush();
    let spans = receiver.wait_for_spans(1, Duration::from_secs(10));
    assert_eq!(spans[0].service_name, "shop", "the builder's service name");
    assert_eq!(spans[0].name, "request");
    let logs = receiver.wait_for_logs(1, Duration::from_secs(10));
    assert_eq!(logs[0].body, "cart shown");
    assert_eq!(logs[0].trace_id, spans[0].trace_id);
    let duration = receiver
        .wait_for_metric("http.server.request.duration", Duration::from_secs(10))
        .expect("the same instruments over OTLP");
    assert_eq!(duration.count, 1);
    let text = metrics.encode();
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    assert!(
        has(r#"http_server_requests_total{method="GET",route="/cart",status_class="2xx"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"strata_telemetry_dropped_total{source="strata-otlp/spans"} 0"#),
        "{text}"
    );
    drop(guard);
}
