//! Each heuristic fires on synthetic input, once per episode, and stays quiet on a healthy
//! run; the sampler reads strata-metrics' real exposition.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_diagnostics::{Heuristics, HeuristicsConfig, Problem, Sample};
use tracing_subscriber::prelude::*;

const MIB: u64 = 1024 * 1024;

/// Every JSON line of this test binary (one global subscriber: the sampler runs on a thread
/// of its own).
fn lines() -> &'static Arc<Mutex<Vec<u8>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&buf);
        tracing_subscriber::registry()
            .with(strata_json::JsonLayer::new().with_writer(move || Sink(Arc::clone(&w))))
            .init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn warnings(problem: &str) -> Vec<Value> {
    let text = String::from_utf8(lines().lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "problem_detected" && v["problem"] == problem)
        .collect()
}

/// One sample a second; windows of 10 s.
fn config() -> HeuristicsConfig {
    let mut c = HeuristicsConfig::default();
    c.interval = Duration::from_secs(1);
    c.memory_window = Duration::from_secs(10);
    c.memory_min_growth = 10 * MIB;
    c.cpu_window = Duration::from_secs(10);
    c.queue_window = Duration::from_secs(10);
    c.queue_min_growth = 50;
    c.lag_samples = 4;
    c
}

/// Feeds `n` samples made by `f(i)`; returns the problems found at each.
fn feed(h: &mut Heuristics, n: usize, f: impl Fn(usize) -> Sample) -> Vec<Vec<Problem>> {
    (0..n)
        .map(|i| h.observe(f(i)).iter().map(|f| f.problem).collect())
        .collect()
}

/// A healthy service: memory in a sawtooth, CPU at half a core with requests completing,
/// a queue filling and draining, a punctual event loop.
fn healthy(i: usize) -> Sample {
    Sample::new(
        200 * MIB + (i as u64 % 5) * 3 * MIB,
        0.5 * i as f64,
        100 * i as u64,
        0.002,
    )
    .with_queue("emails", [0, 40, 80, 20, 0][i % 5])
}

#[test]
fn a_healthy_run_stays_quiet() {
    let _ = lines();
    let mut h = Heuristics::new(config());
    let found = feed(&mut h, 60, healthy);
    assert!(found.iter().all(Vec::is_empty), "{found:?}");
}

#[test]
fn growing_memory_is_a_leak_reported_once() {
    let _ = lines();
    let mut h = Heuristics::new(config());
    // 2 MiB more every second, otherwise healthy.
    let found = feed(&mut h, 30, |i| {
        let mut s = healthy(i);
        s.rss_bytes = 200 * MIB + 2 * MIB * i as u64;
        s
    });
    let fired: Vec<usize> = (0..found.len())
        .filter(|&i| found[i].contains(&Problem::MemoryGrowing))
        .collect();
    assert_eq!(fired, vec![10], "once, when the window is full: {found:?}");
    let w = warnings("MemoryGrowing");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["level"], "WARN");
    let m = w[0]["message"].as_str().unwrap();
    assert!(
        m.starts_with("MemoryGrowing: resident memory rose from 200.0 MiB to 220.0 MiB over 10 s"),
        "{m}"
    );
    // A one-off step of the same size is not a leak.
    let mut h = Heuristics::new(config());
    let found = feed(&mut h, 30, |i| {
        let mut s = healthy(i);
        s.rss_bytes = if i < 15 { 200 * MIB } else { 260 * MIB };
        s
    });
    assert!(found.iter().all(Vec::is_empty), "{found:?}");
}

#[test]
fn a_busy_cpu_with_no_progress_is_a_hot_loop() {
    let _ = lines();
    let mut h = Heuristics::new(config());
    // 0.97 s of CPU a second, nothing completed after the 5th second.
    let found = feed(&mut h, 25, |i| {
        let mut s = healthy(i);
        s.cpu_seconds = 0.97 * i as f64;
        s.completed = 100 * i.min(5) as u64;
        s
    });
    let fired: Vec<usize> = (0..found.len())
        .filter(|&i| found[i].contains(&Problem::SustainedHighCpu))
        .collect();
    assert_eq!(fired, vec![15], "{found:?}");
    let w = warnings("SustainedHighCpu");
    assert!(
        w[0]["message"]
            .as_str()
            .unwrap()
            .contains("97 % of a CPU for 10 s while no request or job completed"),
        "{w:?}"
    );
    // The same CPU while requests complete is load, not a hot loop.
    let mut h = Heuristics::new(config());
    let found = feed(&mut h, 25, |i| {
        let mut s = healthy(i);
        s.cpu_seconds = 0.97 * i as f64;
        s
    });
    assert!(found.iter().all(Vec::is_empty), "{found:?}");
}

#[test]
fn a_queue_that_keeps_rising_is_a_backlog_and_clears_when_it_drains() {
    let _ = lines();
    let mut h = Heuristics::new(config());
    // "invoices" grows by 10 a second for 20 s, then drains; "emails" stays healthy.
    let depth = |i: usize| if i < 20 { 10 * i as i64 } else { 0 };
    let found = feed(&mut h, 40, |i| healthy(i).with_queue("invoices", depth(i)));
    let fired: Vec<usize> = (0..found.len())
        .filter(|&i| found[i].contains(&Problem::QueueBacklog))
        .collect();
    assert_eq!(fired, vec![10], "{found:?}");
    let w = warnings("QueueBacklog");
    assert!(w.iter().any(|w| w["subject"] == "invoices"), "{w:?}");
    assert!(w.iter().all(|w| w["subject"] != "emails"), "{w:?}");
    // After draining, a new rise is a new episode.
    let found = feed(&mut h, 12, |i| {
        healthy(i).with_queue("invoices", 10 * i as i64)
    });
    assert_eq!(
        found
            .iter()
            .filter(|f| f.contains(&Problem::QueueBacklog))
            .count(),
        1,
        "{found:?}"
    );
}

#[test]
fn a_late_event_loop_in_a_row_is_reported() {
    let _ = lines();
    let mut h = Heuristics::new(config());
    // Late three times, on time, then late four times in a row.
    let lags = [
        0.25, 0.25, 0.25, 0.002, 0.25, 0.25, 0.25, 0.25, 0.002, 0.002, 0.002, 0.002,
    ];
    let found = feed(&mut h, lags.len(), |i| {
        let mut s = healthy(i);
        s.lag_seconds = lags[i];
        s
    });
    let fired: Vec<usize> = (0..found.len())
        .filter(|&i| found[i].contains(&Problem::EventLoopLag))
        .collect();
    assert_eq!(fired, vec![7], "{found:?}");
    assert!(
        warnings("EventLoopLag")[0]["message"]
            .as_str()
            .unwrap()
            .contains("late by more than 100 ms in 4 samples in a row (up to 250 ms)")
    );
}

#[test]
fn the_sampler_reads_strata_metrics_and_finds_a_growing_queue() {
    let _ = lines();
    let metrics = strata_metrics::Metrics::new();
    let worker = metrics.worker("thumbnails");
    worker.set_depth(3);
    let s = Sample::from_exposition(&metrics.encode());
    assert_eq!(s.queues.get("thumbnails"), Some(&3), "{s:?}");
    assert!(s.rss_bytes > MIB, "{s:?}");
    // Every figure, by the names strata-metrics exposes.
    let s = Sample::from_exposition(
        "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total 12.5\n\
         process_resident_memory_bytes 1.5e8\n\
         http_server_requests_total{method=\"GET\",route=\"/a\",status_code=\"200\"} 40\n\
         http_server_requests_total{method=\"GET\",route=\"/b\",status_code=\"500\"} 2\n\
         jobs_processed_total{queue=\"emails\"} 8\n\
         event_loop_lag_max_seconds 0.125\n\
         queue_depth{queue=\"emails\"} 17\n# EOF\n",
    );
    assert_eq!(
        s,
        Sample::new(150_000_000, 12.5, 50, 0.125).with_queue("emails", 17)
    );

    let mut c = config();
    c.interval = Duration::from_millis(20);
    c.queue_window = Duration::from_millis(200);
    c.queue_min_growth = 5;
    let _guard = Heuristics::new(c).spawn(metrics.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut depth = 3;
    while warnings("QueueBacklog")
        .iter()
        .all(|w| w["subject"] != "thumbnails")
    {
        assert!(
            Instant::now() < deadline,
            "no QueueBacklog for a rising queue"
        );
        depth += 1;
        worker.set_depth(depth);
        std::thread::sleep(Duration::from_millis(10));
    }
}
