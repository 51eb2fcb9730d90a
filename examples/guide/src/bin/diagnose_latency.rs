//! Diagnosing latency: which route is slow (the latency histogram per route), which requests
//! (WARN access lines past the slow threshold, with their request and trace IDs), and why —
//! the trace of a slow request shows its steps: here an N+1 pattern of 21 database calls, and
//! a search whose one query is slow (a missing index).
//!
//! Run with `cargo run -p example-guide --bin diagnose_latency`.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use strata::request_id::RequestIdLayer;
use tracing::Instrument;

/// One database call: a span with `db.system`, as a database client's instrumentation makes.
async fn query(ms: u64) {
    let span = tracing::info_span!("db.query", db.system = "postgresql");
    tokio::time::sleep(Duration::from_millis(ms))
        .instrument(span)
        .await;
}

async fn one_order(Path(_id): Path<u64>) -> &'static str {
    query(2).await;
    "order"
}

/// The N+1 pattern: one query for the list, then one per order.
async fn list_orders() -> &'static str {
    query(2).await;
    for _ in 0..20 {
        query(2).await;
    }
    "orders"
}

/// One slow query (a missing index): slow queries say so.
async fn search() -> &'static str {
    query(120).await;
    tracing::warn!(duration_ms = 120, "Slow query");
    "results"
}

#[tokio::main]
async fn main() {
    let dir = example_guide::workdir("diagnose_latency");
    let mut builder = strata::builder().with_service("shop");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();
    let metrics = guard.metrics().expect("metrics are on");

    let app = Router::new()
        .route("/orders/{id}", get(one_order))
        .route("/orders", get(list_orders))
        .route("/search", get(search))
        .layer(RequestIdLayer::new().with_slow_threshold(Duration::from_millis(100)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    for id in 1..=10 {
        for path in [
            format!("/orders/{id}"),
            "/orders".to_owned(),
            "/search".to_owned(),
        ] {
            let _ = client.get(format!("{base}{path}")).send().await;
        }
    }

    // Which route: the share of requests over 100 ms, from the latency histogram.
    let exposition = metrics.encode();
    std::fs::write(dir.join("metrics.txt"), &exposition).expect("writable");
    let bucket = "http_server_request_duration_seconds_bucket";
    for route in ["/orders/{id}", "/orders", "/search"] {
        let fast = example_guide::sample(&exposition, bucket, &[("route", route), ("le", "0.1")]);
        let all = example_guide::sample(&exposition, bucket, &[("route", route), ("le", "+Inf")]);
        eprintln!(
            "[guide] {route:<14} {:?} of {:?} requests under 100 ms",
            fast, all
        );
    }
    // Why: database calls per trace, from the exported spans.
    drop(guard);
    let mut per_trace: HashMap<String, usize> = HashMap::new();
    for line in example_guide::json_lines(&dir.join(".strata/telemetry.jsonl")) {
        for rs in line["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    if s["name"] == "db.query" {
                        *per_trace.entry(s["traceId"].to_string()).or_default() += 1;
                    }
                }
            }
        }
    }
    let most = per_trace.values().max().copied().unwrap_or(0);
    eprintln!("[guide] the trace with the most database calls has {most}");
    eprintln!(
        "[guide] look at: /search has no request under 100 ms; its WARN \"slow request\" \
         access lines carry request_id and trace_id, and the \"Slow query\" line of the same \
         request says why; GET /orders is not slow yet but makes 21 queries per request (N+1): \
         db_queries_per_request in metrics.txt, its db.query spans in .strata/telemetry.jsonl"
    );
}
