//! Metrics over OTLP/HTTP with protobuf, logs and metrics over gRPC on the traces' listener, a
//! receiver restarted on the ports of one just dropped, and the black hole that never answers.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use strata_testkit::{BlackHole, MetricKind, OtlpReceiver};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

fn metrics_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("checkout"),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A Sum with two data points (one integer, one double) and a Histogram.
fn sum_and_histogram() -> ExportMetricsServiceRequest {
    let point = |route: &str, time_unix_nano, value| NumberDataPoint {
        attributes: vec![kv("http.route", route)],
        time_unix_nano,
        value: Some(value),
        ..Default::default()
    };
    metrics_request(vec![
        Metric {
            name: "http.server.requests".to_owned(),
            description: "Requests served".to_owned(),
            unit: "{request}".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![
                    point("/a", 10, number_data_point::Value::AsInt(3)),
                    point("/b", 11, number_data_point::Value::AsDouble(4.5)),
                ],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "http.server.duration".to_owned(),
            unit: "s".to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![kv("http.route", "/a")],
                    time_unix_nano: 12,
                    count: 4,
                    sum: Some(2.5),
                    bucket_counts: vec![1, 2, 1],
                    explicit_bounds: vec![0.1, 1.0],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
    ])
}

#[test]
fn protobuf_metrics_are_flattened_to_data_points() {
    let receiver = OtlpReceiver::start().unwrap();
    let response = reqwest::blocking::Client::new()
        .post(receiver.http_metrics_endpoint())
        .header("content-type", "application/x-protobuf")
        .body(sum_and_histogram().encode_to_vec())
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let answer = ExportMetricsServiceResponse::decode(response.bytes().unwrap()).unwrap();
    assert_eq!(answer.partial_success, None);

    let duration = receiver
        .wait_for_metric("http.server.duration", Duration::from_secs(5))
        .expect("the histogram arrived");
    assert_eq!(duration.kind, MetricKind::Histogram);
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.count, 4);
    assert!((duration.value - 2.5).abs() < f64::EPSILON, "{duration:?}");
    assert_eq!(duration.bucket_counts, [1, 2, 1]);
    assert_eq!(duration.explicit_bounds, [0.1, 1.0]);
    assert_eq!(duration.attributes["http.route"], "/a");
    assert_eq!(duration.time_unix_nano, 12);
    assert_eq!(duration.service_name, "checkout");
    assert_eq!(duration.resource["service.name"], "checkout");

    let requests: Vec<_> = receiver
        .metrics()
        .into_iter()
        .filter(|m| m.name == "http.server.requests")
        .collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for (m, (route, value, time)) in requests.iter().zip([("/a", 3.0, 10), ("/b", 4.5, 11)]) {
        assert_eq!(m.kind, MetricKind::Sum { monotonic: true });
        assert_eq!(m.description, "Requests served");
        assert_eq!(m.unit, "{request}");
        assert_eq!(m.attributes["http.route"], route);
        assert!((m.value - value).abs() < f64::EPSILON, "{m:?}");
        assert_eq!(m.time_unix_nano, time);
        assert_eq!((m.count, m.bucket_counts.len()), (0, 0));
        assert_eq!(m.service_name, "checkout");
    }
    // The latest data point of the metric.
    let latest = receiver
        .wait_for_metric("http.server.requests", Duration::from_secs(5))
        .unwrap();
    assert_eq!(latest.attributes["http.route"], "/b");
    assert_eq!(receiver.metrics().len(), 3);
    assert_eq!(
        receiver.wait_for_metric("never.sent", Duration::from_millis(50)),
        None
    );
}

/// One log record and one gauge over gRPC, on the endpoint the traces use.
fn export_over_grpc(endpoint: &str, message: &str) {
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("checkout"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_number: 13,
                    severity_text: "WARN".to_owned(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(message.to_owned())),
                    }),
                    trace_id: vec![0xab; 16],
                    span_id: vec![0xcd; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let metrics = metrics_request(vec![Metric {
        name: "up".to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                value: Some(number_data_point::Value::AsInt(1)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = LogsServiceClient::connect(endpoint.to_owned())
            .await
            .unwrap();
        client.export(logs).await.unwrap();
        let mut client = MetricsServiceClient::connect(endpoint.to_owned())
            .await
            .unwrap();
        client.export(metrics).await.unwrap();
    });
}

fn post_json_logs(receiver: &OtlpReceiver) -> reqwest::blocking::Response {
    let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"severityNumber": 9, "body": {"stringValue": "over http"}}
    ]}]}]});
    reqwest::blocking::Client::new()
        .post(receiver.http_logs_endpoint())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap()
}

#[test]
fn a_receiver_restarts_on_the_ports_of_one_just_dropped() {
    let first = OtlpReceiver::start().unwrap();
    let (grpc, http) = (first.grpc_addr(), first.http_addr());
    assert_eq!(first.grpc_endpoint(), format!("http://{grpc}"));
    assert_eq!(first.http_logs_endpoint(), format!("http://{http}/v1/logs"));
    export_over_grpc(&first.grpc_endpoint(), "before");
    assert!(post_json_logs(&first).status().is_success());
    let logs = first.wait_for_logs(2, Duration::from_secs(5));
    assert_eq!(logs.len(), 2, "{logs:#?}");
    assert_eq!(logs[0].body, "before");
    assert_eq!(logs[0].severity_text, "WARN");
    assert_eq!(logs[0].trace_id, "ab".repeat(16));
    assert_eq!(logs[0].span_id, "cd".repeat(8));
    let up = first.wait_for_metric("up", Duration::from_secs(5)).unwrap();
    assert_eq!(up.kind, MetricKind::Gauge);
    assert!((up.value - 1.0).abs() < f64::EPSILON, "{up:?}");
    drop(first);

    // The listeners are closed…
    for addr in [grpc, http] {
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{addr} still listens"
        );
    }
    // …and a new receiver takes the same ports at once, with nothing of the old one's.
    let second = OtlpReceiver::start_at(grpc, http).unwrap();
    assert_eq!((second.grpc_addr(), second.http_addr()), (grpc, http));
    assert_eq!(second.requests(), 0);
    export_over_grpc(&second.grpc_endpoint(), "after");
    assert!(post_json_logs(&second).status().is_success());
    let logs = second.wait_for_logs(2, Duration::from_secs(5));
    let bodies: Vec<_> = logs.iter().map(|l| l.body.as_str()).collect();
    assert_eq!(bodies, ["after", "over http"]);
    assert!(
        second
            .wait_for_metric("up", Duration::from_secs(5))
            .is_some()
    );
    assert_eq!(second.requests(), 3);
}

/// Waits until `done` holds, checking often, for at most 5 seconds.
fn eventually(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_black_hole_reads_and_never_answers() {
    let hole = BlackHole::start().unwrap();
    assert_eq!(hole.endpoint(), format!("http://{}", hole.addr()));
    let request = b"POST /v1/traces HTTP/1.1\r\nhost: collector\r\ncontent-length: 0\r\n\r\n";
    let mut stream = TcpStream::connect(hole.addr()).unwrap();
    stream.write_all(request).unwrap();
    eventually(|| hole.connections() == 1 && hole.bytes_received() == request.len() as u64);
    assert_eq!(hole.connections(), 1);
    assert_eq!(hole.bytes_received(), request.len() as u64);
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0_u8; 64];
    let error = stream.read(&mut buf).expect_err("the black hole answered");
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );

    // An HTTP client times out on it.
    let sent = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .post(format!("{}/v1/traces", hole.endpoint()))
        .body("x")
        .send();
    assert!(sent.is_err_and(|e| e.is_timeout()));
    eventually(|| hole.connections() == 2);
    assert_eq!(hole.connections(), 2);

    // Dropped, it closes the connection it held and stops listening.
    let addr = hole.addr();
    drop(hole);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) => assert_ne!(e.kind(), ErrorKind::WouldBlock, "still open"),
        Ok(n) => panic!("the black hole wrote {n} bytes"),
    }
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
