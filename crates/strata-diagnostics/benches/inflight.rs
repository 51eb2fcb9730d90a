//! What the in-flight registry adds to a request: one `request` span opened and closed, with
//! and without `Inflight::layer` on the same stack (a registry with strata's span store, as in
//! every strata setup); the difference is its register + deregister. And what it adds to every
//! other span (its per-layer filter's check).
//!
//! ```sh
//! cargo bench -p strata-diagnostics --bench inflight
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::prelude::*;

fn request() {
    let span = tracing::info_span!(
        target: "strata_request_id::server",
        "request",
        request_id = "0193a5f8-7c2e-7b1a-9f3e-2d4c6b8a0e1f",
        route = "/orders/{id}",
    );
    black_box(&span);
}

/// A request entered, with a child span entered and left inside it: what the current-span
/// tracking adds on top (one check of the entered span, one store per child entered).
fn request_with_child() {
    let span = tracing::info_span!(
        target: "strata_request_id::server",
        "request",
        request_id = "0193a5f8-7c2e-7b1a-9f3e-2d4c6b8a0e1f",
    );
    let _in = span.enter();
    let child = tracing::info_span!("db.query", table = "orders");
    let _child = child.enter();
    black_box(&_child);
}

/// A span the registry does not track: what every other span of the application pays.
fn other_span() {
    let span = tracing::info_span!("db.query", table = "orders");
    black_box(&span);
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_span");
    {
        let _d = tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .set_default();
        g.bench_function("store", |b| b.iter(request));
    }
    {
        let inflight = strata_diagnostics::Inflight::new();
        let _d = tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(inflight.layer())
            .set_default();
        g.bench_function("store_and_inflight", |b| b.iter(request));
        assert!(inflight.is_empty());
    }
    g.finish();
    let mut g = c.benchmark_group("request_with_child_entered");
    {
        let _d = tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .set_default();
        g.bench_function("store", |b| b.iter(request_with_child));
    }
    {
        let inflight = strata_diagnostics::Inflight::new();
        let _d = tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(inflight.layer())
            .set_default();
        g.bench_function("store_and_inflight", |b| b.iter(request_with_child));
    }
    g.finish();
    let mut g = c.benchmark_group("other_span");
    {
        let _d = tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .set_default();
        g.bench_function("store", |b| b.iter(other_span));
    }
    {
        let inflight = strata_diagnostics::Inflight::new();
        let _d = tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(inflight.layer())
            .set_default();
        g.bench_function("store_and_inflight", |b| b.iter(other_span));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
