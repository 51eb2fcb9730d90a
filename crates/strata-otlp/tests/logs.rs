//! Log events exported as OpenTelemetry log records (the logs bridge) over real OTLP/gRPC and
//! OTLP/HTTP, each carrying the trace and span IDs that strata's JSON line shows for the same
//! event; and metrics through the meter provider.

use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use strata_otlp::{Otlp, Protocol};
use strata_testkit::OtlpReceiver;

mod support;

fn log_records_carry_the_json_lines_ids(protocol: Protocol) {
    let receiver = OtlpReceiver::start().unwrap();
    let endpoint = match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_logs_endpoint(),
    };
    let otlp = Otlp::new()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_service_name("orders")
        .start()
        .unwrap();
    let (subscriber, buf) = support::with_json_lines(&otlp);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(order_id = 1, "before any span");
        let request = tracing::info_span!("request", request_id = "req-9");
        let _r = request.enter();
        tracing::info!(order_id = 2, "order received");
        tracing::info_span!("charge").in_scope(|| {
            tracing::warn!(order_id = 2, attempt = 1, "card declined");
        });
        // Telemetry crates' own events never become records (each export would log again).
        tracing::warn!(target: "tonic::transport", "connection reset");
        tracing::warn!(target: "strata_otlp", "3 spans dropped");
    });
    assert!(otlp.flush(Duration::from_secs(10)), "flush timed out");
    let logs = receiver.wait_for_logs(3, Duration::from_secs(10));
    let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
    assert_eq!(logs.len(), 3, "{logs:#?}");
    assert_eq!((otlp.exported_logs(), otlp.dropped_logs()), (3, 0));
    let lines = buf.lines();
    for message in ["order received", "card declined"] {
        let record = logs.iter().find(|l| l.body == message).unwrap();
        let line = lines.iter().find(|l| l["message"] == message).unwrap();
        assert_eq!(
            record.trace_id,
            line["trace_id"].as_str().unwrap(),
            "{message}"
        );
        assert_eq!(
            record.span_id,
            line["span_id"].as_str().unwrap(),
            "{message}"
        );
        assert!(
            spans
                .iter()
                .any(|s| s.span_id == record.span_id && s.trace_id == record.trace_id),
            "{message}: the record names an exported span"
        );
        assert_eq!(record.service_name, "orders");
    }
    let declined = logs.iter().find(|l| l.body == "card declined").unwrap();
    assert_eq!(declined.severity_text, "WARN");
    assert_eq!(declined.severity_number, 13, "SeverityNumber WARN");
    assert_eq!(declined.attributes["attempt"], "1");
    let charge = spans.iter().find(|s| s.name == "charge").unwrap();
    assert_eq!(declined.span_id, charge.span_id);
    let outside = logs.iter().find(|l| l.body == "before any span").unwrap();
    assert_eq!(
        (outside.trace_id.as_str(), outside.span_id.as_str()),
        ("", ""),
        "no span, no trace context: {outside:#?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.body.contains("connection reset") || l.body.contains("spans dropped")),
        "telemetry targets left out: {logs:#?}"
    );
}

#[test]
fn log_records_over_grpc_carry_the_same_trace_and_span_ids_as_the_json_lines() {
    log_records_carry_the_json_lines_ids(Protocol::Grpc);
}

#[test]
fn log_records_over_http_carry_the_same_trace_and_span_ids_as_the_json_lines() {
    log_records_carry_the_json_lines_ids(Protocol::HttpProtobuf);
}

#[test]
fn logs_can_be_turned_off_while_traces_go_on() {
    let receiver = OtlpReceiver::start().unwrap();
    let otlp = Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_logs(false)
        .start()
        .unwrap();
    support::traced(&otlp, || {
        tracing::info_span!("job").in_scope(|| tracing::info!("ran"));
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    assert_eq!(receiver.wait_for_spans(1, Duration::from_secs(10)).len(), 1);
    assert_eq!(otlp.exported_logs(), 0);
    assert!(receiver.logs().is_empty());
}

#[test]
fn metrics_from_the_meter_provider_reach_the_collector() {
    let receiver = OtlpReceiver::start().unwrap();
    let otlp = Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_service_name("orders")
        // Exported by flush below, not by the timer.
        .with_metrics_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let meter = otlp.meter_provider().meter("strata");
    let requests = meter.u64_counter("http_server_requests").build();
    let latency = meter
        .f64_histogram("http_server_request_duration")
        .with_unit("s")
        .with_boundaries(vec![0.1, 0.5, 1.0])
        .build();
    let ok = [opentelemetry::KeyValue::new("status_class", "2xx")];
    requests.add(3, &ok);
    requests.add(1, &[opentelemetry::KeyValue::new("status_class", "5xx")]);
    for s in [0.05, 0.2, 0.7, 2.0] {
        latency.record(s, &ok);
    }
    assert!(otlp.flush(Duration::from_secs(10)), "flush timed out");
    let count = receiver
        .wait_for_metric("http_server_requests", Duration::from_secs(10))
        .expect("the counter arrived");
    let points: Vec<_> = receiver
        .metrics()
        .into_iter()
        .filter(|m| m.name == "http_server_requests")
        .collect();
    assert_eq!(points.len(), 2, "{points:#?}");
    let two_xx = points
        .iter()
        .find(|m| m.attributes["status_class"] == "2xx")
        .unwrap();
    assert_eq!(two_xx.value, 3.0);
    assert_eq!(count.service_name, "orders");
    assert!(matches!(
        count.kind,
        strata_testkit::MetricKind::Sum {
            monotonic: true,
            ..
        }
    ));
    let hist = receiver
        .wait_for_metric("http_server_request_duration", Duration::from_secs(10))
        .unwrap();
    assert_eq!(hist.count, 4);
    assert!((hist.value - 2.95).abs() < 1e-9, "sum {}", hist.value);
    assert_eq!(hist.explicit_bounds, vec![0.1, 0.5, 1.0]);
    assert_eq!(hist.bucket_counts, vec![1, 1, 1, 1]);
    assert_eq!(hist.unit, "s");
}

#[test]
fn the_local_file_holds_spans_log_records_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.jsonl");
    let otlp = Otlp::new()
        .with_file(&path, 10_000_000)
        .with_service_name("worker")
        .start()
        .unwrap();
    let (subscriber, buf) = support::with_json_lines(&otlp);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("job", job = "invoice").in_scope(|| tracing::info!("job done"));
    });
    otlp.meter_provider()
        .meter("strata")
        .u64_counter("jobs_processed")
        .build()
        .add(1, &[]);
    assert!(otlp.flush(Duration::from_secs(10)));
    drop(otlp);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |key: &str| {
        lines
            .iter()
            .find(|l| l.get(key).is_some())
            .unwrap_or_else(|| panic!("no {key} line in {text}"))
    };
    let span = &find("resourceSpans")["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let record = &find("resourceLogs")["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    let metric = &find("resourceMetrics")["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
    assert_eq!(span["name"], "job");
    assert_eq!(record["body"]["stringValue"], "job done");
    assert_eq!(record["traceId"], span["traceId"]);
    assert_eq!(record["spanId"], span["spanId"]);
    let line = &buf.lines()[0];
    assert_eq!(line["trace_id"], span["traceId"]);
    assert_eq!(metric["name"], "jobs_processed");
}
