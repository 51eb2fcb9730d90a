//! W3C TraceContext through strata-request-id: a real axum service behind `RequestIdLayer`
//! continues an incoming `traceparent`, and `strata_request_id::inject` sends the current one.

use std::time::Duration;

use strata_otlp::{Otlp, Protocol};
use strata_testkit::OtlpReceiver;
use tracing_subscriber::prelude::*;

#[test]
fn an_incoming_traceparent_is_continued_and_the_current_one_is_sent() {
    strata_otlp::install_propagation();
    let receiver = OtlpReceiver::start().unwrap();
    let otlp = Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_protocol(Protocol::Grpc)
        .with_service_name("api")
        .start()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer());
    // One thread for server, client and subscriber: the test's default subscriber sees all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outgoing = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let app = axum::Router::new()
                .route(
                    "/hello",
                    axum::routing::get(|| async {
                        tracing::info!("handled");
                        "hi"
                    }),
                )
                .layer(strata_request_id::RequestIdLayer::new());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            let response = reqwest::Client::new()
                .get(format!("http://{addr}/hello"))
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            // A client call from inside a span sends that span's context.
            let span = tracing::info_span!("outgoing_call");
            let headers = span.in_scope(|| {
                let mut h = http::HeaderMap::new();
                strata_request_id::inject(&mut h);
                h
            });
            drop(span);
            headers
        })
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
    let request = spans
        .iter()
        .find(|s| s.kind == 2)
        .unwrap_or_else(|| panic!("{spans:#?}"));
    // Semantic-convention names in the export; strata's names stay in the JSON lines.
    assert_eq!(request.name, "GET /hello");
    assert_eq!(request.attributes["http.request.method"], "GET");
    assert_eq!(request.attributes["http.route"], "/hello");
    assert_eq!(request.attributes["url.path"], "/hello");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    assert!(request.attributes.contains_key("request_id"));
    assert_eq!(request.status_code, 0);
    assert_eq!(
        request.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736",
        "the caller's trace"
    );
    assert_eq!(
        request.parent_span_id, "00f067aa0ba902b7",
        "the caller's span is the parent"
    );
    let call = spans.iter().find(|s| s.name == "outgoing_call").unwrap();
    let traceparent = outgoing["traceparent"].to_str().unwrap();
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", call.trace_id, call.span_id),
        "the outgoing request carries the current span"
    );
}
