//! strata-json against its peers on the workload of `shared/reference/perf-baseline.md`.
//!
//! Run with `cargo bench -p strata-json --bench json`. Besides criterion's timings, it prints
//! the heap allocations per operation of each configuration (counted with a counting global
//! allocator, outside the timed loops).

use std::alloc::{GlobalAlloc, Layout, System};

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group};
use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(n as u64, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- subscribers under test -------------------------------------------------------------

fn json_subscriber() -> Dispatch {
    Dispatch::new(
        json_subscriber::fmt()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(io::sink)
            .with_max_level(LevelFilter::INFO)
            .finish(),
    )
}

fn bunyan() -> Dispatch {
    use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
    Dispatch::new(
        tracing_subscriber::registry()
            .with(LevelFilter::INFO)
            .with(JsonStorageLayer)
            .with(BunyanFormattingLayer::new("bench".into(), io::sink)),
    )
}

/// No strata layer: the baseline for a disabled event.
fn no_layer() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(LevelFilter::INFO))
}

type MakeDispatch = fn() -> Dispatch;

const PEERS: [(&str, MakeDispatch); 5] = [
    ("strata", strata),
    ("strata_redacted", strata_redacted),
    ("tracing_subscriber_json", tracing_subscriber_json),
    ("json_subscriber", json_subscriber),
    ("bunyan", bunyan),
];

// ---- the workload -----------------------------------------------------------------------

#[path = "support/workload.rs"]
mod workload;
use workload::{
    disabled_event, fmt_json_dispatch as tracing_subscriber_json, in_two_spans, request_unit,
    strata_dispatch as strata, strata_redacted_dispatch as strata_redacted, the_event,
};

// ---- the reference writer ---------------------------------------------------------------

#[path = "support/reference.rs"]
mod reference;

// ---- benchmarks -------------------------------------------------------------------------

fn event_in_2_spans(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_in_2_spans");
    for (name, make) in PEERS {
        tracing::dispatcher::with_default(&make(), || {
            in_two_spans(|| g.bench_function(name, |b| b.iter(the_event)));
        });
    }
    let mut buf = Vec::with_capacity(512);
    g.bench_function("reference", |b| b.iter(|| reference::line(&mut buf)));
    g.finish();
}

fn request_unit_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_unit");
    for (name, make) in PEERS {
        tracing::dispatcher::with_default(&make(), || {
            g.bench_function(name, |b| b.iter(request_unit));
        });
    }
    let mut buf = Vec::with_capacity(512);
    g.bench_function("reference", |b| b.iter(|| reference::line(&mut buf)));
    g.finish();
}

fn disabled_event_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("disabled_event");
    for (name, make) in PEERS {
        tracing::dispatcher::with_default(&make(), || {
            g.bench_function(name, |b| b.iter(disabled_event));
        });
    }
    tracing::dispatcher::with_default(&no_layer(), || {
        g.bench_function("reference", |b| b.iter(disabled_event));
    });
    g.finish();
}

/// Heap allocations per operation, counted over many operations after a warm-up.
fn alloc_report() {
    const N: u64 = 10_000;
    fn per_op(f: &mut dyn FnMut()) -> (f64, f64) {
        for _ in 0..1000 {
            f();
        }
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            ALLOC_BYTES.load(Ordering::Relaxed),
        );
        for _ in 0..N {
            f();
        }
        let (a1, b1) = (
            ALLOCS.load(Ordering::Relaxed),
            ALLOC_BYTES.load(Ordering::Relaxed),
        );
        ((a1 - a0) as f64 / N as f64, (b1 - b0) as f64 / N as f64)
    }
    println!("allocations per op (count, bytes):");
    for (name, make) in PEERS {
        let d = make();
        let ev = tracing::dispatcher::with_default(&d, || in_two_spans(|| per_op(&mut the_event)));
        let unit = tracing::dispatcher::with_default(&d, || per_op(&mut request_unit));
        let off = tracing::dispatcher::with_default(&d, || per_op(&mut disabled_event));
        println!(
            "  {name:<24} event_in_2_spans {:>5.1} ({:>6.0} B)  request_unit {:>5.1} ({:>6.0} B)  disabled {:.1}",
            ev.0, ev.1, unit.0, unit.1, off.0
        );
    }
    let mut buf = Vec::with_capacity(512);
    let r = per_op(&mut || reference::line(&mut buf));
    println!("  {:<24} line {:.1} ({:.0} B)", "reference", r.0, r.1);
}

/// The same three workloads, measured round-robin: each round runs a batch of every
/// configuration in turn, so a slow patch of the machine hits all of them alike. Prints the
/// median ns/op of each and the median of the per-round ratios strata / other.
fn interleaved() {
    const ROUNDS: usize = 31;
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn batch(d: &Dispatch, n: u32, in_spans: bool, op: fn()) -> f64 {
        tracing::dispatcher::with_default(d, || {
            let run = || {
                let t = std::time::Instant::now();
                for _ in 0..n {
                    op();
                }
                t.elapsed().as_nanos() as f64 / f64::from(n)
            };
            if in_spans { in_two_spans(run) } else { run() }
        })
    }
    let mut buf = Vec::with_capacity(512);
    let mut reference_line = || {
        let t = std::time::Instant::now();
        for _ in 0..20_000 {
            reference::line(&mut buf);
        }
        t.elapsed().as_nanos() as f64 / 20_000.0
    };
    let dispatches: Vec<(&str, Dispatch)> = PEERS.iter().map(|(n, m)| (*n, m())).collect();
    let bare = no_layer();
    /// (group, ops per batch, inside the two spans, the operation)
    type Group = (&'static str, u32, bool, fn());
    let groups: [Group; 3] = [
        ("event_in_2_spans", 20_000, true, the_event),
        ("request_unit", 5_000, false, request_unit),
        ("disabled_event", 2_000_000, false, disabled_event),
    ];
    println!(
        "interleaved, {ROUNDS} rounds (median ns/op; ratio = median of per-round strata/other):"
    );
    for (group, n, in_spans, op) in groups {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); dispatches.len() + 1];
        for _ in 0..ROUNDS {
            for (i, (_, d)) in dispatches.iter().enumerate() {
                times[i].push(batch(d, n, in_spans, op));
            }
            let last = dispatches.len();
            times[last].push(if group == "disabled_event" {
                batch(&bare, n, false, op)
            } else {
                reference_line()
            });
        }
        let names: Vec<&str> = dispatches
            .iter()
            .map(|(n, _)| *n)
            .chain(["reference"])
            .collect();
        for (i, name) in names.iter().enumerate() {
            let ratio = median((0..ROUNDS).map(|r| times[0][r] / times[i][r]).collect());
            println!(
                "  {group:<17} {name:<24} {:>9.1} ns   strata/{name} = {ratio:.3}",
                median(times[i].clone())
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = event_in_2_spans, request_unit_group, disabled_event_group
}

fn main() {
    alloc_report();
    // `cargo bench` passes --bench; `cargo test` runs this binary without it, once, quickly.
    if std::env::args().any(|a| a == "--bench") {
        interleaved();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
