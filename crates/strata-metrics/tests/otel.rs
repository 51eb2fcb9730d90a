//! The same instruments over OTLP: strata-metrics recording into strata-otlp's meter
//! provider, received by strata-testkit's OTLP receiver over real gRPC.

use std::time::Duration;

use strata_metrics::Metrics;
use strata_testkit::{MetricKind, OtlpReceiver};
use tracing_subscriber::prelude::*;

#[test]
fn request_durations_log_events_and_errors_reach_an_otlp_collector() {
    let receiver = OtlpReceiver::start().unwrap();
    let otlp = strata_otlp::Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_logs(false)
        .with_metrics_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let metrics = Metrics::new().with_meter_provider(otlp.meter_provider());
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(metrics.layer());
    tracing::subscriber::with_default(subscriber, || {
        for ms in [20.0, 40.0, 600.0] {
            tracing::info_span!(
                target: "strata_request_id::server",
                "request",
                method = "GET",
                route = "/users/{id}",
                status_code = 200_u64,
                duration_ms = ms
            )
            .in_scope(|| tracing::info!("served"));
        }
        tracing::error!(error.class = "external", "payment provider timed out");
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    let duration = receiver
        .wait_for_metric("http.server.request.duration", Duration::from_secs(10))
        .expect("the histogram arrived");
    assert!(matches!(duration.kind, MetricKind::Histogram));
    assert_eq!(duration.count, 3);
    assert!(
        (duration.value - 0.66).abs() < 1e-9,
        "sum {}",
        duration.value
    );
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.attributes["http.route"], "/users/{id}");
    assert_eq!(duration.attributes["http.request.method"], "GET");
    assert_eq!(duration.attributes["http.response.status_class"], "2xx");
    let bounds: Vec<f64> = strata_metrics::LATENCY_BUCKETS.to_vec();
    assert_eq!(duration.explicit_bounds, bounds);
    let info = receiver
        .metrics()
        .into_iter()
        .find(|m| m.name == "strata.log.events" && m.attributes["level"] == "info")
        .expect("log events");
    assert_eq!(info.value, 3.0);
    let errors = receiver
        .wait_for_metric("strata.errors", Duration::from_secs(10))
        .unwrap();
    assert_eq!(errors.attributes["error.class"], "external");
    assert_eq!(errors.value, 1.0);
}
