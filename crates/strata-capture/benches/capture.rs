//! What capture costs the caller, against sentry-tracing in the same run:
//!
//! - `info_event`: an INFO event inside a request span — for strata the breadcrumb it records,
//!   for sentry-tracing the breadcrumb it adds to the hub's scope — against the same subscriber
//!   without a capture layer (`baseline`).
//! - `error_event`: the caller-side cost of capturing one ERROR event with a stack trace
//!   (strata: gather, capture the stack unresolved, queue; sentry-tracing with
//!   `attach_stacktrace`: build and resolve the event on the caller's thread). Timed in batches
//!   that fit strata's queue; the queue is drained between batches, outside the timing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use strata_capture::Capture;
use tracing_subscriber::prelude::*;

/// A Sentry transport that sends nothing.
struct Noop;
impl sentry::Transport for Noop {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        black_box(envelope);
    }
}

fn sentry_dispatch() -> tracing::Dispatch {
    let mut o = sentry::ClientOptions::new();
    o.dsn = "https://0123456789abcdef0123456789abcdef@localhost/1"
        .parse()
        .ok();
    o.transport = Some(Arc::new(Arc::new(Noop)));
    o.attach_stacktrace = true;
    o.default_integrations = false;
    let o = sentry::apply_defaults(o);
    sentry::Hub::current().bind_client(Some(Arc::new(sentry::Client::from(o))));
    tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            // The recommended pair: breadcrumbs from INFO/WARN, events from ERROR.
            .with(sentry_tracing::BreadcrumbLayer::new().with_filter(
                tracing_subscriber::filter::filter_fn(|m| {
                    matches!(*m.level(), tracing::Level::INFO | tracing::Level::WARN)
                }),
            ))
            .with(sentry_tracing::ErrorLayer::new().with_filter(
                tracing_subscriber::filter::filter_fn(|m| *m.level() == tracing::Level::ERROR),
            )),
    )
}

fn in_request(dispatch: &tracing::Dispatch, f: impl FnOnce()) {
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!(
            "request",
            request_id = "67e55044-10b1-426f-9247-bb680e5fe0c8",
            route = "/api/v1/users/{id}/orders"
        );
        let _g = span.enter();
        f();
    });
}

fn info_event(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (capture, _guard) = Capture::new()
        .with_store(dir.path().join("errors.db"))
        .start()
        .unwrap();
    let baseline = tracing::Dispatch::new(
        tracing_subscriber::registry().with(strata_core::StoreLayer::default()),
    );
    let strata = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(capture),
    );
    let sentry = sentry_dispatch();
    let mut g = c.benchmark_group("info_event");
    for (name, dispatch) in [
        ("baseline", &baseline),
        ("strata", &strata),
        ("sentry_tracing", &sentry),
    ] {
        in_request(dispatch, || {
            g.bench_function(name, |b| {
                b.iter(|| {
                    tracing::info!(
                        status = 200_u16,
                        latency_ms = 12.625_f64,
                        cache_hit = true,
                        "request completed"
                    );
                });
            });
        });
    }
    g.finish();
}

fn error_event(c: &mut Criterion) {
    const BATCH: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let (capture, guard) = Capture::new()
        .with_store(dir.path().join("errors.db"))
        .with_queue_capacity(BATCH as usize + 8)
        // Keep the store out of the measurement's background: nothing is written.
        .with_before_send(|_| false)
        .start()
        .unwrap();
    let strata = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(capture),
    );
    let sentry = sentry_dispatch();
    let mut g = c.benchmark_group("error_event");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    in_request(&strata, || {
        g.bench_function("strata", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    let start = Instant::now();
                    for i in 0..n {
                        tracing::error!(order_id = i, "charging the card failed");
                    }
                    total += start.elapsed();
                    left -= n;
                    // Drain (resolving the stacks) outside the timing.
                    assert!(guard.flush(Duration::from_secs(60)));
                }
                total
            });
        });
    });
    in_request(&sentry, || {
        g.bench_function("sentry_tracing", |b| {
            b.iter(|| tracing::error!(order_id = 1, "charging the card failed"));
        });
    });
    g.finish();
    let stats = guard.stats();
    println!(
        "strata error events: {} queued, {} dropped",
        stats.queued, stats.dropped
    );
}

criterion_group!(benches, info_event, error_event);
criterion_main!(benches);
