//! The request-ID middleware against the tower-http stack doing the same job, and the extra
//! cost of request IDs on the JSON benches' `request_unit` workload.
//!
//! Run with `cargo bench -p strata-request-id --bench request_id`.

use std::convert::Infallible;
use std::hint::black_box;
use std::io;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use strata_request_id::{RequestId, RequestIdLayer};
use tower::{Layer, Service, ServiceExt};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Dispatch, Level, info, info_span};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

fn strata_dispatch() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(LevelFilter::INFO).with(
            strata_json::layer()
                .with_service("bench")
                .with_writer(io::sink),
        ),
    )
}

fn fmt_json_dispatch() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(io::sink)
            .with_max_level(LevelFilter::INFO)
            .finish(),
    )
}

/// The innermost service: answers at once.
async fn ok(_req: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn request() -> Request<String> {
    Request::get("/users/42")
        .header("x-request-id", "67e55044-10b1-426f-9247-bb680e5fe0c8")
        .body(String::new())
        .expect("valid request")
}

fn server_middleware(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("server_middleware");

    let strata = RequestIdLayer::new().layer(tower::service_fn(ok));
    tracing::dispatcher::with_default(&strata_dispatch(), || {
        g.bench_function("strata", |b| {
            b.iter(|| {
                rt.block_on(strata.clone().oneshot(request()))
                    .expect("infallible")
            })
        });
    });

    // tower-http: set/propagate the ID, TraceLayer with the ID in its span and an INFO access
    // line, through tracing-subscriber's JSON formatter.
    let peer = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<String>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    info_span!("request", request_id = id, method = %req.method(), uri = %req.uri())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(tower::service_fn(ok));
    tracing::dispatcher::with_default(&fmt_json_dispatch(), || {
        g.bench_function("tower_http", |b| {
            b.iter(|| {
                let mut svc = peer.clone();
                rt.block_on(async {
                    svc.ready().await.expect("ready");
                    svc.call(request()).await.expect("infallible")
                })
            })
        });
    });
    g.finish();
}

/// The JSON benches' request unit, with the request span's ID given as a literal (as there) and
/// made by this crate (a fresh UUIDv7, plus the empty `user_id` field).
fn request_unit(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_unit");
    tracing::dispatcher::with_default(&strata_dispatch(), || {
        g.bench_function("literal_id", |b| {
            b.iter(|| {
                let request = info_span!(
                    "request",
                    request_id = "67e55044-10b1-426f-9247-bb680e5fe0c8",
                    user_id = 424242_u64
                );
                let _r = request.enter();
                let handler = info_span!(
                    "handler",
                    route = "/api/v1/users/{id}/orders",
                    method = "GET"
                );
                let _h = handler.enter();
                info!(
                    client = "203.0.113.42:51234",
                    status = 200_u16,
                    latency_ms = 12.625_f64,
                    cache_hit = true,
                    "request completed"
                );
            })
        });
        g.bench_function("strata_request_id", |b| {
            b.iter(|| {
                let request = strata_request_id::request_span(&RequestId::generate());
                let _r = request.enter();
                let handler = info_span!(
                    "handler",
                    route = "/api/v1/users/{id}/orders",
                    method = "GET"
                );
                let _h = handler.enter();
                info!(
                    client = "203.0.113.42:51234",
                    status = 200_u16,
                    latency_ms = 12.625_f64,
                    cache_hit = true,
                    "request completed"
                );
            })
        });
        g.bench_function("strata_request_id_record_user", |b| {
            b.iter(|| {
                let request = strata_request_id::request_span(&RequestId::generate());
                let _r = request.enter();
                strata_request_id::record_user(424242_u64);
                let handler = info_span!(
                    "handler",
                    route = "/api/v1/users/{id}/orders",
                    method = "GET"
                );
                let _h = handler.enter();
                info!(
                    client = "203.0.113.42:51234",
                    status = 200_u16,
                    latency_ms = 12.625_f64,
                    cache_hit = true,
                    "request completed"
                );
            })
        });
        g.bench_function("generate_id", |b| {
            b.iter(|| black_box(RequestId::generate()))
        });
    });
    g.finish();
}

criterion_group!(benches, server_middleware, request_unit);
criterion_main!(benches);
