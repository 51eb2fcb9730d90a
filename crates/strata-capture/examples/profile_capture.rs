//! A loop for profilers (`valgrind --tool=callgrind`, `perf`): INFO events (breadcrumbs) and
//! ERROR events (captures) inside a request span. `cargo run --release --example
//! profile_capture -- [info|error] [N]`.

use tracing_subscriber::prelude::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "info".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let (capture, guard) = strata_capture::Capture::new()
        .with_store(dir.path().join("errors.db"))
        .with_queue_capacity(1024)
        .with_before_send(|_| false)
        .start()
        .unwrap();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(capture),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("request", request_id = "67e55044", route = "/api");
        let _g = span.enter();
        for i in 0..n {
            if what == "error" {
                tracing::error!(order_id = i, "charging the card failed");
                if i % 512 == 511 {
                    guard.flush(std::time::Duration::from_secs(60));
                }
            } else {
                tracing::info!(
                    status = 200_u16,
                    latency_ms = 12.625_f64,
                    cache_hit = true,
                    "request completed"
                );
            }
        }
    });
    println!("{:?}", guard.stats());
}
