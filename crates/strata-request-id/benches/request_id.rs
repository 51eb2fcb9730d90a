//! The request-ID middleware against the tower-http stack doing the same job, and the extra
//! cost of request IDs on the JSON benches' `request_unit` workload.
//!
//! Run with `cargo bench -p strata-request-id --bench request_id`.

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use http::{Request, Response};
use strata_request_id::{RequestId, RequestIdLayer};
use tower::{Layer, ServiceExt};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, info_span};

#[path = "../../strata-json/benches/support/workload.rs"]
#[allow(dead_code)]
mod workload;
use workload::{fmt_json_dispatch, in_handler_span, in_two_spans, strata_dispatch, the_event};

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

type Svc = tower::util::BoxCloneService<Request<String>, Response<String>, Infallible>;

fn strata_service() -> Svc {
    tower::util::BoxCloneService::new(RequestIdLayer::new().layer(tower::service_fn(ok)))
}

/// tower-http: set/propagate the ID, TraceLayer with the ID in its span and an INFO access
/// line, through tracing-subscriber's JSON formatter.
fn tower_http_service() -> Svc {
    let svc = tower::ServiceBuilder::new()
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
    tower::util::BoxCloneService::new(svc.map_response(|r| r.map(|_| String::new())))
}

fn one_request(rt: &tokio::runtime::Runtime, svc: &Svc) -> Response<String> {
    rt.block_on(svc.clone().oneshot(request()))
        .expect("infallible")
}

fn server_middleware(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("server_middleware");
    let strata = strata_service();
    tracing::dispatcher::with_default(&strata_dispatch(), || {
        g.bench_function("strata", |b| b.iter(|| one_request(&rt, &strata)));
    });
    let peer = tower_http_service();
    tracing::dispatcher::with_default(&fmt_json_dispatch(), || {
        g.bench_function("tower_http", |b| b.iter(|| one_request(&rt, &peer)));
    });
    g.finish();
}

/// Both stacks measured round-robin (a batch of each per round), so a slow patch of this noisy
/// machine hits both alike; prints the median ns per request and the median per-round ratio.
fn interleaved() {
    const ROUNDS: usize = 21;
    const N: u32 = 3_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let configs = [
        ("strata", strata_service(), strata_dispatch()),
        ("tower_http", tower_http_service(), fmt_json_dispatch()),
    ];
    let mut times = vec![Vec::new(); configs.len()];
    for _ in 0..ROUNDS {
        for (i, (_, svc, d)) in configs.iter().enumerate() {
            let t = std::time::Instant::now();
            tracing::dispatcher::with_default(d, || {
                for _ in 0..N {
                    black_box(one_request(&rt, svc));
                }
            });
            times[i].push(t.elapsed().as_nanos() as f64 / f64::from(N));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median((0..ROUNDS).map(|r| times[0][r] / times[1][r]).collect());
    println!(
        "interleaved server_middleware: strata {:.0} ns, tower_http {:.0} ns, strata/tower_http = {ratio:.3}",
        median(times[0].clone()),
        median(times[1].clone())
    );
}

/// The JSON benches' request unit, with the request span's ID given as a literal (as there) and
/// made by this crate (a fresh UUIDv7, plus the empty `user_id` field).
fn request_unit(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_unit");
    tracing::dispatcher::with_default(&strata_dispatch(), || {
        g.bench_function("literal_id", |b| b.iter(|| in_two_spans(the_event)));
        g.bench_function("strata_request_id", |b| {
            b.iter(|| {
                let request = strata_request_id::request_span(&RequestId::generate());
                let _r = request.enter();
                in_handler_span(the_event);
            })
        });
        g.bench_function("strata_request_id_record_user", |b| {
            b.iter(|| {
                let request = strata_request_id::request_span(&RequestId::generate());
                let _r = request.enter();
                strata_request_id::record_user(424242_u64);
                in_handler_span(the_event);
            })
        });
        g.bench_function("generate_id", |b| {
            b.iter(|| black_box(RequestId::generate()))
        });
    });
    g.finish();
}

criterion_group!(benches, server_middleware, request_unit);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes --bench; `cargo test` runs this binary without it, once, quickly.
    // Last, so the dispatchers it creates cannot change the callsite interest seen above.
    if std::env::args().any(|a| a == "--bench") {
        interleaved();
    }
}
