//! Request IDs: every line of a request — in the service it hits and in the services that one
//! calls — carries the same `request_id`, so one filter shows everything that happened.
//! `RequestIdLayer` takes the caller's `x-request-id` (or makes a UUIDv7), opens the request's
//! span and writes one access line; `inject` passes the ID on to the next service.
//!
//! Run with `cargo run -p example-guide --bin request_ids`: two services (checkout calls
//! inventory) on local ports, three requests.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use strata::request_id::RequestIdLayer;
use tracing::info;

/// API A: checkout, which asks API B (inventory) before accepting the order.
async fn checkout(State(inventory): State<String>, Path(sku): Path<String>) -> &'static str {
    strata::request_id::record_user(42_u64); // every later line of the request has user_id
    info!(sku, "checking stock");
    let mut headers = http::HeaderMap::new();
    strata::request_id::inject(&mut headers); // x-request-id (and traceparent) for the next hop
    let stock = reqwest::Client::new()
        .get(format!("{inventory}/stock/{sku}"))
        .headers(headers)
        .send()
        .await;
    info!(sku, ok = stock.is_ok(), "order accepted");
    "accepted"
}

/// API B: inventory.
async fn stock(Path(sku): Path<String>) -> &'static str {
    info!(sku, available = 42, "stock read");
    "42"
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::main]
async fn main() {
    example_guide::workdir("request_ids");
    let mut builder = strata::builder().with_service("shop");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let _guard = builder.init();

    let inventory = serve(
        Router::new()
            .route("/stock/{sku}", get(stock))
            .layer(RequestIdLayer::new()),
    )
    .await;
    let checkout = serve(
        Router::new()
            .route("/checkout/{sku}", post(checkout))
            .with_state(inventory)
            .layer(RequestIdLayer::new()),
    )
    .await;

    let client = reqwest::Client::new();
    // A caller that sends its own ID (a gateway, a mobile app), one that sends none, and one
    // whose ID is refused (spaces are not allowed: a fresh one is made, the refused kept).
    for offered in [Some("mobile-7f3e-0001"), None, Some("<script> x")] {
        let mut request = client.post(format!("{checkout}/checkout/SKU-1"));
        if let Some(id) = offered {
            request = request.header("x-request-id", id);
        }
        let response = request.send().await.expect("checkout answers");
        let echoed = response.headers()["x-request-id"].to_str().unwrap_or("?");
        eprintln!("[guide] sent x-request-id {offered:?} → answered with {echoed}");
    }
    eprintln!(
        "[guide] look at: every line with request_id \"mobile-7f3e-0001\" — checkout's and \
         inventory's access lines (event http_request) and handler lines; try \
         `jq 'select(.request_id == \"mobile-7f3e-0001\")'` on the output"
    );
}
