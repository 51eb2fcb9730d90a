//! Steady-state logging allocates nothing: counted with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tracing::info_span;

#[path = "../benches/support/workload.rs"]
#[allow(dead_code)]
mod workload;
use tracing_subscriber::prelude::*;
use workload::{in_two_spans, the_event as event};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

#[test]
fn events_in_spans_allocate_nothing_in_steady_state() {
    let sub = tracing_subscriber::registry().with(strata_json::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(sub, || {
        in_two_spans(|| {
            let both = || {
                event();
                tracing::warn!(
                    error = &std::io::Error::other("x") as &dyn std::error::Error,
                    "with an error"
                );
            };
            // warm-up: per-thread buffers and the callsite cache fill once
            for _ in 0..10 {
                both();
            }
            let before = allocs();
            for _ in 0..1000 {
                both();
            }
            let per_event = (allocs() - before) as f64 / 2000.0;
            // io::Error::other allocates its payload itself (one Box for the error, one for the
            // String): count them out by measuring them alone.
            let before = allocs();
            for _ in 0..1000 {
                std::hint::black_box(std::io::Error::other("x"));
            }
            let error_own = (allocs() - before) as f64 / 2000.0;
            assert_eq!(
                per_event - error_own,
                0.0,
                "heap allocations per event in steady state"
            );
        })
    });
}

#[test]
fn two_formats_on_one_thread_allocate_nothing_either() {
    let sub = tracing_subscriber::registry()
        .with(strata_json::layer().with_writer(std::io::sink))
        .with(
            strata_json::layer()
                .with_preset(strata_json::Preset::Ecs)
                .with_writer(std::io::sink),
        );
    tracing::subscriber::with_default(sub, || {
        let request = info_span!("request", request_id = "r-1", user_id = 7_u64);
        let _r = request.enter();
        for _ in 0..10 {
            event();
        }
        let before = allocs();
        for _ in 0..1000 {
            event();
        }
        assert_eq!(
            allocs() - before,
            0,
            "heap allocations for 1000 events in two formats"
        );
    });
}

#[test]
fn a_control_that_allocates_is_counted() {
    let before = allocs();
    std::hint::black_box(vec![1u8; 16]);
    assert!(allocs() > before, "the counting allocator counts");
}
