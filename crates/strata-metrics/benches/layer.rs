//! What the metrics layer adds to one HTTP request span (counter + histogram, found through
//! the route cache): a request span shaped like strata-request-id's, through strata-core's
//! store alone and through the store plus the metrics layer, in the same run; and the heap
//! allocations per request in steady state, counted by a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::prelude::*;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[path = "support/request.rs"]
mod support;
use support::request;

fn allocations_per_request(dispatch: &tracing::Dispatch) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        request(); // warm: the route's handles are made once
        let n = 10_000;
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..n {
            request();
        }
        (ALLOCS.load(Ordering::Relaxed) - before) as f64 / f64::from(n)
    })
}

fn layer(c: &mut Criterion) {
    let metrics = strata_metrics::Metrics::new();
    let store_only = tracing::Dispatch::new(
        tracing_subscriber::registry().with(strata_core::StoreLayer::default()),
    );
    let with_metrics = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(metrics.layer()),
    );
    let mut g = c.benchmark_group("request_span");
    tracing::dispatcher::with_default(&store_only, || {
        g.bench_function("store_only", |b| b.iter(request));
    });
    tracing::dispatcher::with_default(&with_metrics, || {
        g.bench_function("store_and_metrics", |b| b.iter(request));
    });
    g.finish();
    println!(
        "allocations per request: store only {:.2}, store + metrics {:.2}",
        allocations_per_request(&store_only),
        allocations_per_request(&with_metrics)
    );
}

criterion_group!(benches, layer);
criterion_main!(benches);
