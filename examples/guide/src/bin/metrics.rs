//! Metrics: request rate, errors and latency (p50/p95/p99 from a histogram) of every route
//! come from the request spans — no counter or timer in the handlers. Database calls per
//! request, cache hits, process CPU and memory, event-loop lag come with it; the service's own
//! business metrics are registered next to them. Prometheus scrapes `GET /metrics`.
//!
//! Run with `cargo run -p example-guide --bin metrics`; `metrics.txt` in its directory is the
//! whole exposition.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use prometheus_client::metrics::counter::Counter;
use strata::metrics::{CacheMetrics, Metrics};
use strata::request_id::RequestIdLayer;
use tracing::Instrument;

#[derive(Clone)]
struct App {
    products: CacheMetrics,
    signups: Counter,
}

async fn order(State(app): State<App>, Path(id): Path<u64>) -> StatusCode {
    // A span with a `db.system` field is a database call (db_queries_per_request).
    let query = tracing::info_span!("db.query", db.system = "postgresql");
    async { tokio::time::sleep(Duration::from_millis(2)).await }
        .instrument(query)
        .await;
    if id % 2 == 0 {
        app.products.hit();
    } else {
        app.products.miss();
    }
    if id % 5 == 0 {
        tracing::error!(order_id = id, "order lookup failed");
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

async fn signup(State(app): State<App>) -> StatusCode {
    app.signups.inc(); // a business metric of the service's own
    StatusCode::CREATED
}

#[tokio::main]
async fn main() {
    let dir = example_guide::workdir("metrics");
    // A histogram for database spans too; an application counter beside strata's.
    let metrics = Metrics::new().with_span_histogram(&["db.query"]);
    let signups = Counter::default();
    metrics.register("signups", "Users who signed up", signups.clone());
    let mut builder = strata::builder()
        .with_service("shop")
        .with_metrics(&metrics);
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let _guard = builder.init();

    let state = App {
        products: metrics.cache("products"),
        signups,
    };
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .route("/signup", post(signup))
        .with_state(state)
        .route_service("/metrics", metrics.service())
        .layer(RequestIdLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    for id in 1..=20 {
        let _ = client.get(format!("{base}/orders/{id}")).send().await;
    }
    for _ in 0..3 {
        let _ = client.post(format!("{base}/signup")).send().await;
    }
    let exposition = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the exposition");
    std::fs::write(dir.join("metrics.txt"), &exposition).expect("writable");

    eprintln!("[guide] from GET {base}/metrics:");
    for line in exposition.lines().filter(|l| {
        (l.starts_with("http_server_requests_total") && l.contains("/orders"))
            || l.starts_with("http_server_request_duration_seconds_count")
            || l.starts_with("db_queries_per_request_count")
            || l.starts_with("span_duration_seconds_count")
            || l.starts_with("cache_requests_total")
            || l.starts_with("signups_total")
            || l.starts_with("process_resident_memory_bytes")
            || l.starts_with("log_events_total{level=\"error\"}")
    }) {
        eprintln!("[guide]   {line}");
    }
    eprintln!(
        "[guide] look at: 16 2xx and 4 5xx for route /orders/{{id}} (the template, never the raw \
         path), a latency histogram per route, 20 database spans, 10 cache hits and 10 misses, \
         3 signups — and not one metric call in the request handling code but the cache's and \
         the signup counter"
    );
}
