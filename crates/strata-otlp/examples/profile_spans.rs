//! A loop for profilers (`valgrind --tool=callgrind --separate-threads=yes`): spans through
//! strata-otlp's whole path with an exporter that sends nothing, or (`peer`) through plain
//! tracing-opentelemetry with the SDK's batch processor.
//! `cargo run --release --example profile_spans -- [N] [strata|peer]`.

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
    let peer = std::env::args().nth(2).is_some_and(|m| m == "peer");
    let otlp = strata_otlp::Otlp::new().start_with_exporter(Noop).unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Noop)
        .build();
    let dispatch = if peer {
        use opentelemetry::trace::TracerProvider as _;
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("peer"))),
        )
    } else {
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(strata_core::StoreLayer::default())
                .with(otlp.layer()),
        )
    };
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..n {
            tracing::info_span!("request", request_id = "67e55044", route = "/api").in_scope(|| {});
        }
    });
    println!("exported {}", otlp.exported_spans());
    let _ = provider.shutdown();
}
