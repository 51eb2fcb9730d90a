//! A loop for profilers (`valgrind --tool=callgrind`): request spans shaped like
//! strata-request-id's through strata-core's store, with (`metrics`) or without (`store`) the
//! metrics layer. `cargo run --release --example profile_requests -- [N] [store|metrics]`.

use tracing_subscriber::prelude::*;

#[path = "../benches/support/request.rs"]
mod support;
use support::request;

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
