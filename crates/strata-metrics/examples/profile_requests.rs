//! A loop for profilers (`valgrind --tool=callgrind`): request spans shaped like
//! strata-request-id's through strata-core's store, with (`metrics`) or without (`store`) the
//! metrics layer. `cargo run --release --example profile_requests -- [N] [store|metrics]`.

use std::hint::black_box;

use tracing::field::Empty;
use tracing_subscriber::prelude::*;

fn request() {
    let span = tracing::info_span!(
        target: "strata_request_id::server",
        "request",
        request_id = "0193a9f0-7c1e-7b55-9a0e-4d6f4a1f2b3c",
        method = "GET",
        route = "/api/v1/users/{id}",
        path = "/api/v1/users/42",
        user_id = Empty,
        status_code = Empty,
        duration_ms = Empty,
    );
    span.in_scope(|| black_box(()));
    tracing::record_all!(span, status_code = 200_u64, duration_ms = 12.5);
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let with_metrics = std::env::args().nth(2).is_some_and(|m| m == "metrics");
    let metrics = strata_metrics::Metrics::new();
    let layer = with_metrics.then(|| metrics.layer());
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(layer),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..n {
            request();
        }
    });
    println!("{} bytes of exposition", metrics.encode().len());
}
