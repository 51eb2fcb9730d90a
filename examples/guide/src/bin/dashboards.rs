//! Dashboards: the lesson's four — API (requests, errors, p50/p95/p99, database calls per
//! request, cache), workers (queue depth, processing rate, wait, failures vs retries), system
//! (CPU, memory, event-loop lag, file descriptors) and business — ship as Grafana JSON in
//! `docs/dashboards`. This program lists every panel and its queries, and checks each metric
//! they read against the exposition of a service that runs for a moment.
//!
//! Run with `cargo run -p example-guide --bin dashboards`; import the JSON files into Grafana
//! (Dashboards → New → Import) with a Prometheus data source.

use axum::Router;
use axum::routing::post;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use strata::request_id::{JobContext, RequestIdLayer};
use strata::{Classify, ErrorClass, log_error};
use tower::ServiceExt;

const DASHBOARDS: [&str; 4] = [
    include_str!("../../../../docs/dashboards/api.json"),
    include_str!("../../../../docs/dashboards/worker.json"),
    include_str!("../../../../docs/dashboards/system.json"),
    include_str!("../../../../docs/dashboards/business.json"),
];

#[derive(Debug)]
struct Declined;
impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}
impl std::error::Error for Declined {}
impl Classify for Declined {
    fn class(&self) -> ErrorClass {
        ErrorClass::Business
    }
}

type Outcomes = Family<Vec<(String, String)>, Counter>;

#[tokio::main]
async fn main() {
    let dir = example_guide::workdir("dashboards");
    let guard = strata::builder()
        .with_service("shop")
        .with_profile(strata::Profile::Staging)
        .with_writer(std::io::stderr) // standard output is this program's report
        .init();
    let metrics = guard.metrics().expect("metrics are on");
    // The business dashboard's metrics are the service's own.
    let (orders, payments) = (Outcomes::default(), Outcomes::default());
    metrics.register("shop_orders", "Orders, by outcome", orders.clone());
    metrics.register("shop_payments", "Payments, by outcome", payments.clone());

    // A moment of the service's life: a checkout with a database call and a declined card, a
    // job, the queue's and the cache's figures.
    let app = Router::new()
        .route(
            "/checkout",
            post(move || async move {
                tracing::info_span!("db.query", db.system = "postgresql")
                    .in_scope(|| tracing::debug!("SELECT …"));
                log_error!(Declined, "checkout failed: card declined");
                let outcome = vec![("outcome".to_owned(), "failed".to_owned())];
                orders.get_or_create(&outcome).inc();
                payments.get_or_create(&outcome).inc();
                "declined"
            }),
        )
        .layer(RequestIdLayer::new());
    let request = http::Request::post("/checkout").body(axum::body::Body::empty());
    let _ = app.oneshot(request.expect("a request")).await;
    JobContext::capture()
        .span("send_receipt")
        .in_scope(|| tracing::info!("receipt sent"));
    let emails = metrics.worker("emails");
    emails.set_depth(12);
    emails.waited(std::time::Duration::from_millis(40));
    emails.processed();
    metrics.cache("products").hit();
    let exposition = metrics.encode();
    std::fs::write(dir.join("metrics.txt"), &exposition).expect("writable");

    let mut missing = 0;
    for text in DASHBOARDS {
        let dashboard: Value = serde_json::from_str(text).expect("valid JSON");
        println!("{}", dashboard["title"].as_str().unwrap_or("?"));
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            let mut names = Vec::new();
            for target in panel["targets"].as_array().into_iter().flatten() {
                names.extend(example_guide::promql_metrics(
                    target["expr"].as_str().unwrap_or(""),
                ));
            }
            names.dedup();
            let absent: Vec<&String> = names
                .iter()
                .filter(|n| example_guide::samples(&exposition, n).is_empty())
                .collect();
            missing += absent.len();
            println!(
                "  {} {:<58} {}",
                if absent.is_empty() {
                    "ok     "
                } else {
                    "MISSING"
                },
                panel["title"].as_str().unwrap_or("?"),
                names.join(", ")
            );
        }
    }
    eprintln!(
        "[guide] look at: every panel of the four dashboards and the metrics it reads — all in \
         this service's exposition ({missing} missing), metrics.txt"
    );
    drop(guard);
    std::process::exit(i32::from(missing > 0));
}
