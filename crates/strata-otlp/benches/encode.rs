//! Encoding one batch of 512 request spans into the OTLP request that goes on the wire, on the
//! export thread: strata's encoder (straight from the SDK's `SpanData` into one buffer) against
//! what opentelemetry-otlp does for each export (a copy of the batch kept for retries,
//! opentelemetry-proto's conversion into message structs, prost's encoding), in the same run.
//! Both produce the same bytes (`wire::tests`).

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;

/// A server span as strata-request-id and tracing-opentelemetry make it (after the semantic
/// conventions): the attributes of the overhead benchmark's request span.
fn request_span(i: u64) -> SpanData {
    let start = SystemTime::now();
    let attributes = vec![
        KeyValue::new("code.file.path", "crates/strata-request-id/src/server.rs"),
        KeyValue::new("code.module.name", "strata_request_id::server"),
        KeyValue::new("code.line.number", 187_i64),
        KeyValue::new("thread.id", 2_i64),
        KeyValue::new("thread.name", "tokio-runtime-worker"),
        KeyValue::new("target", "strata_request_id::server"),
        KeyValue::new("request_id", "67e55044-10b1-426f-9247-bb680e5fe0c8"),
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", "/api/v1/users/{id}"),
        KeyValue::new("url.path", "/api/v1/users/42"),
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("duration_ms", 0.182_f64),
        KeyValue::new("busy_ns", 41_250_i64),
        KeyValue::new("idle_ns", 140_750_i64),
    ];
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128 + u128::from(i)),
            SpanId::from(i + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: Cow::Borrowed("GET /api/v1/users/{id}"),
        start_time: start,
        end_time: start + Duration::from_micros(182),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("strata").build(),
    }
}

fn encode(c: &mut Criterion) {
    let resource = Resource::builder()
        .with_service_name("checkout")
        .with_attributes([
            KeyValue::new("service.version", "1.4.2"),
            KeyValue::new("deployment.environment.name", "staging"),
            KeyValue::new("host.name", "web-1"),
            KeyValue::new("process.pid", 4242_i64),
        ])
        .build();
    let batch: Vec<SpanData> = (0..512).map(request_span).collect();
    let mut g = c.benchmark_group("encode_512_spans");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("strata", |b| {
        b.iter(|| black_box(strata_otlp::__bench::encode_traces(&resource, &batch)));
    });
    let with_schema = ResourceAttributesWithSchema::from(&resource);
    g.bench_function("opentelemetry-otlp", |b| {
        b.iter(|| {
            // opentelemetry-otlp 0.33 clones the batch for its retry, converts, then encodes.
            let request = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(batch.clone(), &with_schema),
            };
            black_box(request.encode_to_vec())
        });
    });
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
