//! The lossless non-blocking writer against tracing-appender's `non_blocking(..).lossy(false)`:
//! 2 producer threads writing raw 437-byte lines to a file, all in one run.
//!
//! Run with `cargo bench -p strata-router --bench writer`. Criterion reports the time to write
//! and flush N lines (throughput in lines/s); the caller-side cost per line and the drop count
//! are printed after the group.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};

const LINE_LEN: usize = 437;
const PRODUCERS: u64 = 2;

fn line() -> Vec<u8> {
    let mut l = String::from(
        "{\"timestamp\":\"2026-11-25T09:12:03.418207Z\",\"level\":\"INFO\",\"message\":\"",
    );
    while l.len() < LINE_LEN - 3 {
        l.push('x');
    }
    l.push_str("\"}\n");
    assert_eq!(l.len(), LINE_LEN);
    l.into_bytes()
}

/// (caller nanoseconds, lines, dropped) accumulated per configuration.
static CALLER: Mutex<Vec<(&'static str, f64, u64, u64)>> = Mutex::new(Vec::new());

fn record(name: &'static str, caller: Duration, lines: u64, dropped: u64) {
    let mut c = CALLER.lock().unwrap();
    match c.iter_mut().find(|e| e.0 == name) {
        Some(e) => {
            e.1 += caller.as_nanos() as f64;
            e.2 += lines;
            e.3 += dropped;
        }
        None => c.push((name, caller.as_nanos() as f64, lines, dropped)),
    }
}

/// Runs `PRODUCERS` threads writing `lines` lines in total through clones of `w`; returns the
/// summed time the callers spent in `write_all`.
fn produce<W: Write + Clone + Send>(w: &W, lines: u64) -> Duration {
    let l = line();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let mut w = w.clone();
                let l = &l;
                s.spawn(move || {
                    let t = Instant::now();
                    for _ in 0..lines / PRODUCERS {
                        w.write_all(l).unwrap();
                    }
                    t.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

fn nonblocking_file(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("nonblocking_file");
    g.sample_size(10).throughput(Throughput::Elements(1));
    g.bench_function("strata", |b| {
        b.iter_custom(|iters| {
            let path = dir.path().join("strata.log");
            let file = std::fs::File::create(&path).unwrap();
            let start = Instant::now();
            let (w, guard) = strata_router::non_blocking(file).unwrap();
            let caller = produce(&w, iters);
            drop(guard); // everything written
            let total = start.elapsed();
            record("strata", caller, iters, w.dropped_lines());
            std::fs::remove_file(&path).unwrap();
            total
        })
    });
    g.bench_function("tracing_appender", |b| {
        b.iter_custom(|iters| {
            let path = dir.path().join("appender.log");
            let file = std::fs::File::create(&path).unwrap();
            let start = Instant::now();
            let (w, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            let caller = produce(&w, iters);
            drop(guard);
            let total = start.elapsed();
            record("tracing_appender", caller, iters, 0);
            std::fs::remove_file(&path).unwrap();
            total
        })
    });
    g.finish();
    for (name, ns, lines, dropped) in CALLER.lock().unwrap().iter() {
        println!(
            "{name:<17} caller {:>7.1} ns/line over {lines} lines, dropped {dropped}",
            ns / *lines as f64
        );
    }
}

/// Caller-side cost when the queue has room: bursts of 8 000 lines (3.5 MB, below strata's
/// 4 MiB queue and tracing-appender's 128 000-line channel) from 2 threads, 50 bursts each,
/// the writer draining between bursts (not timed).
fn bursts() {
    const BURST: u64 = 8_000;
    const ROUNDS: u32 = 50;
    let dir = tempfile::tempdir().unwrap();
    let mut strata_ns = 0.0;
    let mut appender_ns = 0.0;
    for _ in 0..ROUNDS {
        let file = std::fs::File::create(dir.path().join("s.log")).unwrap();
        let (w, guard) = strata_router::non_blocking(file).unwrap();
        strata_ns += produce(&w, BURST).as_nanos() as f64;
        drop(guard);
        let file = std::fs::File::create(dir.path().join("a.log")).unwrap();
        let (w, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .finish(file);
        appender_ns += produce(&w, BURST).as_nanos() as f64;
        drop(guard);
    }
    let per = |ns: f64| ns / (BURST as f64 * f64::from(ROUNDS));
    println!(
        "bursts of {BURST} lines from {PRODUCERS} threads: caller strata {:.1} ns/line, tracing_appender {:.1} ns/line",
        per(strata_ns),
        per(appender_ns)
    );
}

/// A sink that discards (the cost measured is routing and rendering, not I/O).
struct Discard;

impl strata_router::Sink for Discard {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        std::hint::black_box(line);
        Ok(())
    }
}

/// One event to 1 sink and to 3 sinks taking the same format.
fn fanout(c: &mut Criterion) {
    use strata_router::{Format, Route, RouteFilter, RouterLayer};
    use tracing_subscriber::prelude::*;
    let mut g = c.benchmark_group("fanout");
    for sinks in [1, 3] {
        let json = Format::Json(strata_json::JsonFormat::new().with_service("bench"));
        let mut router = RouterLayer::new();
        for _ in 0..sinks {
            router = router.with_route(Route::new(RouteFilter::default(), json.clone(), Discard));
        }
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(router));
        tracing::dispatcher::with_default(&dispatch, || {
            let request = tracing::info_span!(
                "request",
                request_id = "67e55044-10b1-426f-9247-bb680e5fe0c8",
                user_id = 424242_u64
            );
            let _r = request.enter();
            let handler = tracing::info_span!(
                "handler",
                route = "/api/v1/users/{id}/orders",
                method = "GET"
            );
            let _h = handler.enter();
            g.bench_function(
                if sinks == 1 {
                    "one_sink"
                } else {
                    "three_sinks"
                },
                |b| {
                    b.iter(|| {
                        tracing::info!(
                            client = "203.0.113.42:51234",
                            status = 200_u16,
                            latency_ms = 12.625_f64,
                            cache_hit = true,
                            "request completed"
                        )
                    })
                },
            );
        });
    }
    g.finish();
}

criterion_group!(benches, nonblocking_file, fanout);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    // `cargo bench` passes --bench; `cargo test` runs this binary without it, once, quickly.
    if std::env::args().any(|a| a == "--bench") {
        bursts();
    }
}
