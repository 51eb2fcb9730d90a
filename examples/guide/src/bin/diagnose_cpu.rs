//! Diagnosing CPU problems: a CPU-bound loop run on the async runtime's thread (the lesson's
//! "accidental synchronous code inside async") does not show in any log line; it shows as
//! event-loop lag — every other task runs late — and as CPU time. strata measures both; the
//! fix here is `spawn_blocking`, which moves the work off the runtime's thread.
//!
//! Run with `cargo run -p example-guide --bin diagnose_cpu`.

use std::time::{Duration, Instant};

use example_guide::sample;

/// A report rendered by burning CPU for `ms` milliseconds (a hot loop).
fn render_report(ms: u64) -> u64 {
    let (start, mut x) = (Instant::now(), 1_u64);
    while start.elapsed() < Duration::from_millis(ms) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    }
    x
}

/// Runs `phase`, then reports the event-loop lag the probe saw and the CPU time spent.
async fn measure(metrics: &strata::metrics::Metrics, phase: &str, work: impl Future<Output = ()>) {
    let cpu = |m: &strata::metrics::Metrics| {
        sample(&m.encode(), "process_cpu_seconds_total", &[]).unwrap_or(0.0)
    };
    let before = cpu(metrics);
    work.await;
    // Give the probe (every 10 ms, from strata.toml) a moment to run and report how late it was.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let exposition = metrics.encode();
    let lag = sample(&exposition, "event_loop_lag_max_seconds", &[]).unwrap_or(0.0);
    tracing::info!(
        event = "phase_measured",
        phase,
        lag_max_ms = (lag * 1000.0).round(),
        cpu_ms = ((cpu(metrics) - before) * 1000.0).round(),
        "event-loop lag and CPU time"
    );
    // Let the probe's window of ten samples forget this phase.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    example_guide::workdir("diagnose_cpu");
    // The lag probe's interval is a config file setting (250ms by default).
    std::fs::write(
        "strata.toml",
        "service = \"reports\"\n[metrics]\nlag_probe = \"10ms\"\n",
    )
    .expect("writable");
    let mut builder = strata::builder();
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();
    let metrics = guard.metrics().expect("metrics are on");

    // The bug: 300 ms of CPU inside an async task, on the runtime's only thread.
    measure(&metrics, "inline", async {
        let _ = tokio::spawn(async { render_report(300) }).await;
    })
    .await;
    // The fix: the same work on the blocking pool; the runtime goes on serving.
    measure(&metrics, "spawn_blocking", async {
        let _ = tokio::task::spawn_blocking(|| render_report(300)).await;
    })
    .await;

    eprintln!(
        "[guide] look at: lag_max_ms of the \"inline\" phase (about 300: every task waited for \
         the loop) against \"spawn_blocking\" (a few); cpu_ms is about 300 in both. In \
         production: event_loop_lag_seconds (EventLoopLag alert, p99 > 100 ms for 5 min), \
         process_cpu_seconds_total (SustainedHighCpu, > 90 % of a core for 15 min)"
    );
}
