//! The caller-side cost of one span through the whole export path — create, enter, exit, close,
//! hand to the processor — with an exporter that sends nothing: strata-otlp (tracing-opentelemetry,
//! the ID bridge into strata's store, strata's batch processor) against plain
//! tracing-opentelemetry with the SDK's `BatchSpanProcessor`, in the same run.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct Noop;

impl SpanExporter for Noop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn one_span() {
    tracing::info_span!(
        "request",
        request_id = "67e55044-10b1-426f-9247-bb680e5fe0c8",
        route = "/api/v1/users/{id}"
    )
    .in_scope(|| black_box(()));
}

fn span(c: &mut Criterion) {
    let mut g = c.benchmark_group("span_export");
    let peer = SdkTracerProvider::builder()
        .with_batch_exporter(Noop)
        .build();
    let peer_dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(peer.tracer("bench"))),
    );
    let strata = strata_otlp::Otlp::new()
        .with_service_name("bench")
        .start_with_exporter(Noop)
        .unwrap();
    let strata_dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(strata.layer()),
    );
    tracing::dispatcher::with_default(&strata_dispatch, || {
        g.bench_function("strata", |b| b.iter(one_span));
    });
    tracing::dispatcher::with_default(&peer_dispatch, || {
        g.bench_function("tracing_opentelemetry_batch", |b| b.iter(one_span));
    });
    g.finish();
    assert!(strata.flush(std::time::Duration::from_secs(30)));
    println!(
        "strata: {} spans exported, {} dropped (queue 2048)",
        strata.exported_spans(),
        strata.dropped_spans()
    );
    let _ = peer.shutdown();
}

criterion_group!(benches, span);
criterion_main!(benches);
