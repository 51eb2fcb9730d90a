//! One trace across two services in two processes, over real HTTP and real OTLP/gRPC: the
//! test is "checkout" (an axum service calling the other through strata-request-id's client
//! layer), and a child process of this test binary is "inventory". The `traceparent` and
//! `baggage` headers carry the trace and a tenant from one to the other; the collector gets
//! semantic-convention server and client spans, with error status where a call failed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use opentelemetry::baggage::BaggageExt as _;
use strata_otlp::Otlp;
use strata_testkit::{OtlpReceiver, ReceivedSpan};
use tower::ServiceExt as _;
use tracing_subscriber::prelude::*;

/// "inventory": a no-op unless the parent set `STRATA_CHAIN_CHILD`. Configured from the
/// environment only (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`); prints its port,
/// serves until its standard input closes, then flushes.
#[test]
fn child() {
    if std::env::var_os("STRATA_CHAIN_CHILD").is_none() {
        return;
    }
    let otlp = Otlp::new().start().unwrap();
    tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer())
        .init();
    strata_otlp::install_propagation();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = axum::Router::new()
            .route(
                "/stock/{sku}",
                axum::routing::get(
                    |axum::extract::Path(sku): axum::extract::Path<String>| async move {
                        strata_request_id::record_user(7_u64);
                        if sku == "0" {
                            tracing::error!(sku, "stock database unreachable");
                            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new());
                        }
                        if sku == "none" {
                            tracing::warn!(sku, "unknown sku");
                            return (axum::http::StatusCode::NOT_FOUND, String::new());
                        }
                        let cx = opentelemetry::Context::current();
                        let tenant = cx.baggage().get("tenant").map(|v| v.to_string());
                        (axum::http::StatusCode::OK, tenant.unwrap_or_default())
                    },
                ),
            )
            .layer(strata_request_id::RequestIdLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT {}", listener.local_addr().unwrap().port());
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stdin_closed.await;
            })
            .await
            .unwrap();
    });
    assert!(otlp.flush(Duration::from_secs(10)), "child flush");
}

/// Calls `url` through strata-request-id's client layer (a client span, and the request ID,
/// `traceparent` and `baggage` headers), with reqwest underneath.
async fn call(client: reqwest::Client, url: String) -> Result<(u16, String), reqwest::Error> {
    let inner = tower::service_fn(move |req: http::Request<String>| {
        let client = client.clone();
        async move {
            let response = client.execute(reqwest::Request::try_from(req)?).await?;
            let status = response.status();
            let body = response.text().await?;
            Ok::<_, reqwest::Error>(http::Response::builder().status(status).body(body).unwrap())
        }
    });
    let request = http::Request::get(url).body(String::new()).unwrap();
    let response = tower::ServiceBuilder::new()
        .layer(strata_request_id::PropagateLayer::new())
        .service(inner)
        .oneshot(request)
        .await?;
    Ok((response.status().as_u16(), response.into_body()))
}

fn by_kind<'a>(
    spans: &'a [ReceivedSpan],
    trace: &str,
    kind: i32,
    service: &str,
) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.trace_id == trace && s.kind == kind && s.service_name == service)
        .unwrap_or_else(|| panic!("no kind {kind} span of {service} in {trace}: {spans:#?}"))
}

#[test]
fn one_trace_crosses_two_services_with_baggage_and_semantic_conventions() {
    if std::env::var_os("STRATA_CHAIN_CHILD").is_some() {
        return;
    }
    let receiver = OtlpReceiver::start().unwrap();
    let mut inventory = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("STRATA_CHAIN_CHILD", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
        .env("OTEL_SERVICE_NAME", "inventory")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Read on a thread to the end: the child's test harness writes after the port, and a closed
    // pipe would fail it.
    let stdout = inventory.stdout.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may have written "test child ... " on the same line first.
            if let Some((_, p)) = line.split_once("PORT ") {
                let _ = port_tx.send(p.trim().parse::<u16>().unwrap());
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the child printed its port");

    strata_otlp::install_propagation();
    let otlp = Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_service_name("checkout")
        .start()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let responses = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let app = axum::Router::new()
                .route(
                    "/checkout/{sku}",
                    axum::routing::get(
                        move |axum::extract::Path(sku): axum::extract::Path<String>| async move {
                            let url = format!("http://127.0.0.1:{port}/stock/{sku}");
                            match call(reqwest::Client::new(), url).await {
                                Ok((200, tenant)) => (axum::http::StatusCode::OK, tenant),
                                _ => (axum::http::StatusCode::BAD_GATEWAY, String::new()),
                            }
                        },
                    ),
                )
                .layer(strata_request_id::RequestIdLayer::new());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            let mut out = Vec::new();
            for sku in ["42", "0", "none"] {
                let r = reqwest::Client::new()
                    .get(format!("http://{addr}/checkout/{sku}"))
                    .header("baggage", "tenant=acme")
                    .send()
                    .await
                    .unwrap();
                out.push((r.status().as_u16(), r.text().await.unwrap()));
            }
            out
        })
    });
    drop(inventory.stdin.take()); // the child stops serving, flushes and exits
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = inventory.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = inventory.kill();
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the child failed");
    assert!(otlp.flush(Duration::from_secs(10)));
    assert_eq!(
        responses[0],
        (200, "acme".to_owned()),
        "the baggage crossed both hops"
    );
    assert_eq!(responses[1].0, 502);
    assert_eq!(responses[2].0, 502);

    let spans = receiver.wait_for_spans(9, Duration::from_secs(20));
    assert_eq!(
        spans.len(),
        9,
        "three spans per call, nothing else: {spans:#?}"
    );
    let ok_trace = spans
        .iter()
        .find(|s| {
            s.attributes
                .get("url.path")
                .is_some_and(|p| p == "/checkout/42")
        })
        .unwrap()
        .trace_id
        .clone();
    let server_a = by_kind(&spans, &ok_trace, 2, "checkout");
    let client_a = by_kind(&spans, &ok_trace, 3, "checkout");
    let server_b = by_kind(&spans, &ok_trace, 2, "inventory");
    assert_eq!(client_a.parent_span_id, server_a.span_id);
    assert_eq!(
        server_b.parent_span_id, client_a.span_id,
        "inventory continues checkout's call"
    );
    assert_eq!(server_a.name, "GET /checkout/{sku}");
    assert_eq!(server_b.name, "GET /stock/{sku}");
    assert_eq!(server_b.attributes["http.route"], "/stock/{sku}");
    assert_eq!(server_b.attributes["http.response.status_code"], "200");
    assert_eq!(server_b.attributes["user_id"], "7");
    assert_eq!(
        server_b.attributes["request_id"], server_a.attributes["request_id"],
        "the request ID crossed too"
    );
    assert_eq!(client_a.name, "GET");
    assert_eq!(client_a.attributes["http.request.method"], "GET");
    assert_eq!(
        client_a.attributes["url.full"],
        format!("http://127.0.0.1:{port}/stock/42")
    );
    assert_eq!(client_a.attributes["server.address"], "127.0.0.1");
    assert_eq!(client_a.attributes["server.port"], port.to_string());
    assert_eq!(client_a.attributes["http.response.status_code"], "200");
    for s in [server_a, client_a, server_b] {
        assert_eq!(s.status_code, 0, "{s:#?}");
    }

    let failed_trace = &spans
        .iter()
        .find(|s| {
            s.attributes
                .get("url.path")
                .is_some_and(|p| p == "/checkout/0")
        })
        .unwrap()
        .trace_id;
    assert_ne!(failed_trace, &ok_trace);
    for (kind, service, code) in [
        (2, "inventory", "500"),
        (3, "checkout", "500"),
        (2, "checkout", "502"),
    ] {
        let s = by_kind(&spans, failed_trace, kind, service);
        assert_eq!(s.status_code, 2, "error status: {s:#?}");
        assert_eq!(s.attributes["http.response.status_code"], code);
        assert_eq!(s.attributes["error.type"], code);
    }
}
