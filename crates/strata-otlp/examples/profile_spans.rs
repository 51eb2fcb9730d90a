//! A loop for profilers (`valgrind --tool=callgrind --separate-threads=yes`): spans through
//! strata-otlp's whole path with an exporter that sends nothing, or (`peer`) through plain
//! tracing-opentelemetry with the SDK's batch processor.
//! `cargo run --release --example profile_spans -- [N] [strata|peer|strata-json|peer-json]`
//! (the `-json` modes add one log line per span, written as JSON to `io::sink`).

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct Noop;

impl SpanExporter for Noop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mode = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "strata".to_owned());
    let json = mode.ends_with("-json");
    let otlp = strata_otlp::Otlp::new().start_with_exporter(Noop).unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Noop)
        .build();
    let dispatch = if mode.starts_with("peer") {
        use opentelemetry::trace::TracerProvider as _;
        let fmt = json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::sink)
        });
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("peer")))
                .with(fmt),
        )
    } else {
        let lines = json.then(|| strata_json::layer().with_writer(std::io::sink));
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(strata_core::StoreLayer::default())
                .with(otlp.layer())
                .with(lines),
        )
    };
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..n {
            tracing::info_span!("request", request_id = "67e55044", route = "/api").in_scope(
                || {
                    if json {
                        tracing::info!(user_id = 42_u64, status = 200_u64, "request completed");
                    }
                },
            );
        }
    });
    println!("exported {}", otlp.exported_spans());
    let _ = provider.shutdown();
}
