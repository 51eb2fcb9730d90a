//! A tight loop of the benchmark's event, for profilers (`perf record`, callgrind).
//!
//! Run with `cargo run --release -p strata-json --example profile_loop -- [global|redacted|per-layer|unit|unit-global|unit-redacted|reference] [N]`.
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

#[path = "../benches/support/workload.rs"]
#[allow(dead_code)]
mod workload;

#[path = "../benches/support/reference.rs"]
#[allow(dead_code)]
mod reference;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "per-layer".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    if mode == "reference" {
        let mut buf = Vec::with_capacity(512);
        let t = std::time::Instant::now();
        for _ in 0..n {
            reference::line(&mut buf);
        }
        eprintln!(
            "reference: {:.1} ns/line",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        return;
    }
    let dispatch = match mode.as_str() {
        "unit-bare" => {
            tracing::Dispatch::new(tracing_subscriber::registry().with(LevelFilter::INFO))
        }
        "unit-json-subscriber" => tracing::Dispatch::new(
            json_subscriber::fmt()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::sink)
                .with_max_level(LevelFilter::INFO)
                .finish(),
        ),
        "global" | "unit-global" => workload::strata_dispatch(),
        "redacted" | "unit-redacted" => workload::strata_redacted_dispatch(),
        // the per-layer filter the facade uses
        _ => tracing::Dispatch::new(
            tracing_subscriber::registry().with(
                strata_json::layer()
                    .with_service("bench")
                    .with_writer(std::io::sink)
                    .with_filter(LevelFilter::INFO),
            ),
        ),
    };
    let timed = |what: &str, f: fn()| {
        let t = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        eprintln!(
            "{mode}: {:.1} ns/{what}",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    };
    tracing::dispatcher::with_default(&dispatch, || {
        if mode.starts_with("unit") {
            timed("request", workload::request_unit);
        } else {
            workload::in_two_spans(|| timed("event", workload::the_event));
        }
    });
}
