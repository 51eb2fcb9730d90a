//! The caller-side cost of one span through the whole export path — create, enter, exit, close,
//! hand to the processor — with an exporter that sends nothing: strata-otlp (strata's span store,
//! its span recorder and batch processor) against plain tracing-opentelemetry with the SDK's
//! `BatchSpanProcessor`, in the same run.

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

fn span_with_line() {
    tracing::info_span!(
        "request",
        request_id = "67e55044-10b1-426f-9247-bb680e5fe0c8",
        route = "/api/v1/users/{id}"
    )
    .in_scope(|| tracing::info!(user_id = 42_u64, status = 200_u64, "request completed"));
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

    // What a service pays: a span with one log line inside, written as JSON and exported.
    // strata: store + strata-otlp + strata-json; peer: tracing-opentelemetry (SDK batch) +
    // tracing-subscriber's JSON formatter with the current span, both writing to io::sink.
    let mut g = c.benchmark_group("span_with_json_line");
    let strata_json = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(strata.layer())
            .with(
                strata_json::layer()
                    .with_service("bench")
                    .with_writer(std::io::sink),
            ),
    );
    let peer_json = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(peer.tracer("bench")))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::sink),
            ),
    );
    tracing::dispatcher::with_default(&strata_json, || {
        g.bench_function("strata", |b| b.iter(span_with_line));
    });
    tracing::dispatcher::with_default(&peer_json, || {
        g.bench_function("tracing_opentelemetry_fmt_json", |b| b.iter(span_with_line));
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

/// Sustained export over real OTLP/gRPC to strata-testkit's in-process receiver (on the same
/// two cores): the flood rate, then paced rates, with what was dropped at the default queue.
fn sustained() {
    for rate in [None, Some(20_000_u64), Some(50_000)] {
        sustained_at(rate);
    }
}

fn sustained_at(rate: Option<u64>) {
    let receiver = strata_testkit::OtlpReceiver::start().unwrap();
    let otlp = strata_otlp::Otlp::new()
        .with_endpoint(receiver.grpc_endpoint())
        .with_protocol(strata_otlp::Protocol::Grpc)
        .start()
        .unwrap();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(otlp.layer()),
    );
    let n = rate.map_or(200_000_u64, |r| r * 3);
    let start = std::time::Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..n {
            one_span();
            // Paced: every 1 000 spans, wait for the schedule (a load generator's pacing).
            if let Some(r) = rate
                && i % 1000 == 999
            {
                let due = std::time::Duration::from_secs_f64((i + 1) as f64 / r as f64);
                while start.elapsed() < due {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
        }
    });
    let emitted = start.elapsed();
    assert!(otlp.flush(std::time::Duration::from_secs(120)));
    let received = receiver.spans().len() as u64;
    let all = start.elapsed();
    println!(
        "sustained over gRPC ({}): {n} spans emitted in {emitted:?}, {received} received in {all:?} = {:.0} spans/s end to end, {} dropped (queue 2048)",
        rate.map_or_else(|| "flood".to_owned(), |r| format!("paced at {r}/s")),
        received as f64 / all.as_secs_f64(),
        otlp.dropped_spans()
    );
}

fn all(c: &mut Criterion) {
    span(c);
    sustained();
}

criterion_group!(benches, all);
criterion_main!(benches);
