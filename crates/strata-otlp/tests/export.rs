//! Spans exported over real OTLP/gRPC to strata-testkit's in-process receiver, and the same
//! trace and span IDs in strata's JSON lines.

use std::time::Duration;

use strata_otlp::{Otlp, Protocol};
use strata_testkit::OtlpReceiver;

mod support;

#[test]
fn spans_reach_the_collector_with_parents_and_the_json_lines_carry_their_ids() {
    let receiver = OtlpReceiver::start().unwrap();
    let otlp = Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_protocol(Protocol::Grpc)
        .with_service_name("checkout")
        .with_service_version("1.4.2")
        .with_environment("staging")
        .start()
        .unwrap();
    let (subscriber, buf) = support::with_json_lines(&otlp);
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request", request_id = "req-1", user_id = 42_u64);
        let _r = request.enter();
        tracing::info!("handling");
        let db = tracing::info_span!("db_query", db.system = "postgresql");
        let _d = db.enter();
        tracing::info!("querying");
        tracing::error!("connection reset");
    });
    assert!(otlp.flush(Duration::from_secs(10)), "flush timed out");
    let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(
        (
            otlp.exported_spans(),
            otlp.dropped_spans(),
            otlp.failed_spans()
        ),
        (2, 0, 0)
    );
    let request = spans.iter().find(|s| s.name == "request").unwrap();
    let db = spans.iter().find(|s| s.name == "db_query").unwrap();
    assert_eq!(request.service_name, "checkout");
    assert_eq!(request.resource["service.version"], "1.4.2");
    assert_eq!(request.resource["deployment.environment.name"], "staging");
    assert_eq!(
        request.resource["process.pid"],
        std::process::id().to_string()
    );
    assert!(request.resource.contains_key("host.name"));
    assert_eq!(request.parent_span_id, "", "a root span");
    assert_eq!(
        db.parent_span_id, request.span_id,
        "db_query is request's child"
    );
    assert_eq!(db.trace_id, request.trace_id, "one trace");
    assert_eq!(request.attributes["request_id"], "req-1");
    assert_eq!(request.attributes["user_id"], "42");
    // An ERROR event marks its span as failed.
    assert_eq!(db.status_code, 2, "{db:#?}");
    assert_eq!(request.status_code, 0);

    let lines = buf.lines();
    let handling = lines.iter().find(|l| l["message"] == "handling").unwrap();
    assert_eq!(handling["trace_id"], request.trace_id.as_str());
    assert_eq!(handling["span_id"], request.span_id.as_str());
    let querying = lines.iter().find(|l| l["message"] == "querying").unwrap();
    assert_eq!(querying["trace_id"], request.trace_id.as_str());
    assert_eq!(querying["span_id"], db.span_id.as_str());
}

#[test]
fn shutdown_inside_a_current_thread_runtime_with_the_collector_down_completes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let otlp = Otlp::new()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_protocol(Protocol::Grpc)
                .start()
                .unwrap();
            support::traced(&otlp, || {
                for i in 0..100 {
                    tracing::info_span!("work", i).in_scope(|| tracing::info!("step"));
                }
            });
            // The known deadlock: shutting the SDK down from a current-thread runtime's thread.
            drop(otlp);
        });
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("shutdown on a current-thread runtime hung");
}

#[test]
fn spans_reach_the_collector_over_http_protobuf() {
    let receiver = OtlpReceiver::start().unwrap();
    let otlp = Otlp::new()
        .with_endpoint(receiver.http_traces_endpoint())
        .with_protocol(Protocol::HttpProtobuf)
        .with_service_name("billing")
        .start()
        .unwrap();
    support::traced(&otlp, || {
        tracing::info_span!("invoice", invoice_id = 7).in_scope(|| tracing::info!("sent"));
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    let spans = receiver.wait_for_spans(1, Duration::from_secs(10));
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "invoice");
    assert_eq!(spans[0].service_name, "billing");
    assert_eq!(spans[0].attributes["invoice_id"], "7");
    assert_eq!(spans[0].trace_id.len(), 32);
}

/// Starts, traces and drops the guard (which must flush) inside `flavor`: a current-thread
/// runtime, a multi-thread runtime's worker, or no runtime.
fn start_trace_drop(protocol: Protocol, endpoint: String, flavor: &'static str, name: String) {
    let body = move || {
        let otlp = Otlp::new()
            .with_endpoint(endpoint)
            .with_protocol(protocol)
            .start()
            .unwrap();
        support::traced(&otlp, || {
            tracing::info_span!("shutdown", case = name.as_str())
                .in_scope(|| tracing::info!("bye"));
        });
        drop(otlp); // no explicit flush: the guard's drop exports what is buffered
    };
    match flavor {
        "current_thread" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { body() }),
        "multi_thread" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { tokio::spawn(async { body() }).await.unwrap() }),
        _ => body(),
    }
}

#[test]
fn the_guard_flushes_on_drop_inside_any_runtime_over_both_protocols() {
    let receiver = OtlpReceiver::start().unwrap();
    let mut expected = Vec::new();
    for (protocol, endpoint) in [
        (Protocol::Grpc, receiver.grpc_endpoint()),
        (Protocol::HttpProtobuf, receiver.http_traces_endpoint()),
    ] {
        for flavor in ["current_thread", "multi_thread", "none"] {
            let name = format!("{protocol:?}/{flavor}");
            let (tx, rx) = std::sync::mpsc::channel();
            let (endpoint, case) = (endpoint.clone(), name.clone());
            std::thread::spawn(move || {
                start_trace_drop(protocol, endpoint, flavor, case);
                tx.send(()).unwrap();
            });
            rx.recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("{name}: dropping the guard hung"));
            expected.push(name);
        }
    }
    let spans = receiver.wait_for_spans(expected.len(), Duration::from_secs(10));
    for name in &expected {
        assert!(
            spans.iter().any(|s| s.attributes.get("case") == Some(name)),
            "{name}: the span made before the drop was not exported: {spans:#?}"
        );
    }
    let logs = receiver.wait_for_logs(expected.len(), Duration::from_secs(10));
    assert_eq!(logs.len(), expected.len(), "log records flushed too");
}

#[test]
fn gzip_and_headers_set_in_code_reach_the_grpc_collector_with_spans_and_log_records() {
    let receiver = OtlpReceiver::start().unwrap();
    let otlp = Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_compression(strata_otlp::Compression::Gzip)
        .with_header("x-tenant", "acme")
        .start()
        .unwrap();
    support::traced(&otlp, || {
        tracing::info_span!("zipped", size = 3).in_scope(|| tracing::info!("packed"));
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    let spans = receiver.wait_for_spans(1, Duration::from_secs(10));
    assert_eq!(spans[0].name, "zipped");
    assert_eq!(spans[0].attributes["size"], "3");
    let logs = receiver.wait_for_logs(1, Duration::from_secs(10));
    assert_eq!(logs[0].body, "packed");
    assert_eq!(logs[0].trace_id, spans[0].trace_id);
    let headers = receiver.request_headers();
    assert!(
        headers
            .iter()
            .all(|h| h.get("x-tenant").map(String::as_str) == Some("acme")),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .all(|h| h.get("grpc-encoding").map(String::as_str) == Some("gzip")),
        "{headers:?}"
    );
}

#[test]
fn spans_a_collector_rejects_in_a_partial_success_are_counted_as_lost() {
    let (rt, addr) = support::picky_collector();
    let otlp = Otlp::new()
        .with_endpoint(format!("http://{addr}"))
        .with_logs(false)
        .start()
        .unwrap();
    support::traced(&otlp, || {
        for i in 0..3 {
            tracing::info_span!("picky", i).in_scope(|| {});
        }
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    assert_eq!(otlp.exported_spans(), 3, "sent, and the request accepted");
    assert_eq!(otlp.failed_spans(), 0);
    assert_eq!(otlp.rejected_spans(), 1);
    assert_eq!(
        otlp.drop_counts().spans(),
        1,
        "a rejected span is a lost span"
    );
    drop(otlp);
    rt.shutdown_background();
}
