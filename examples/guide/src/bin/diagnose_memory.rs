//! Diagnosing a memory leak: a global cache that only grows. No line says so; the process's
//! resident memory does — it rises request after request and never comes down. strata exposes
//! it as `process_resident_memory_bytes` (the MemoryGrowing alert watches it); a cache with a
//! bound keeps it flat.
//!
//! Run with `cargo run -p example-guide --bin diagnose_memory`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The leak: every rendered page kept forever, keyed by request.
static PAGES: Mutex<Option<HashMap<u64, Vec<u8>>>> = Mutex::new(None);

/// The fix: at most 16 pages, the oldest evicted.
static RECENT: Mutex<VecDeque<Vec<u8>>> = Mutex::new(VecDeque::new());

/// Renders a 256 KiB page.
fn render(request: u64) -> Vec<u8> {
    vec![(request % 251) as u8 + 1; 256 * 1024]
}

fn resident_mb(metrics: &strata::metrics::Metrics) -> f64 {
    let x = metrics.encode();
    example_guide::sample(&x, "process_resident_memory_bytes", &[]).unwrap_or(0.0) / 1e6
}

/// Serves 200 requests with `cache`, sampling resident memory every 40 (as Prometheus would
/// every scrape).
fn serve(metrics: &strata::metrics::Metrics, phase: &str, cache: impl Fn(u64, Vec<u8>)) {
    for request in 1..=200_u64 {
        cache(request, render(request));
        if request % 40 == 0 {
            tracing::info!(
                event = "memory_sample",
                phase,
                requests = request,
                resident_mb = resident_mb(metrics).round(),
                "resident memory"
            );
        }
    }
}

fn main() {
    example_guide::workdir("diagnose_memory");
    let mut builder = strata::builder().with_service("renderer");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();
    let metrics = guard.metrics().expect("metrics are on");

    serve(&metrics, "unbounded", |request, page| {
        let mut pages = PAGES.lock().unwrap_or_else(|e| e.into_inner());
        pages.get_or_insert_with(HashMap::new).insert(request, page);
    });
    serve(&metrics, "bounded", |_, page| {
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == 16 {
            recent.pop_front();
        }
        recent.push_back(page);
    });

    eprintln!(
        "[guide] look at: resident_mb of the memory_sample lines — about +10 MB every 40 \
         requests with the unbounded cache (it never comes down), flat with the bounded one. \
         In production: process_resident_memory_bytes on the System dashboard; MemoryGrowing \
         fires when it rose throughout 30 minutes, by over 50 MB"
    );
}
