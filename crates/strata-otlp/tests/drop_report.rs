//! Dropped spans are said in the logs, rate-limited (the process's global subscriber sees the
//! export thread's report; this test binary has it to itself).

use std::time::{Duration, Instant};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing_subscriber::prelude::*;

mod support;
use support::Buf;

/// An exporter as slow as a struggling collector.
#[derive(Debug)]
struct Slow;

impl SpanExporter for Slow {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::thread::sleep(Duration::from_millis(50));
        drop(batch);
        Ok(())
    }
}

#[test]
fn drops_are_reported_in_the_logs() {
    let otlp = strata_otlp::Otlp::new()
        .with_max_queue_size(64)
        .start_with_exporter(Slow)
        .unwrap();
    let logs = Buf::default();
    let out = logs.clone();
    tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer())
        .with(strata_json::layer().with_writer(move || out.clone()))
        .init();
    for i in 0..5_000 {
        tracing::info_span!("work", i).in_scope(|| {});
    }
    let report = || -> Option<serde_json::Value> {
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["event"] == "telemetry_dropped" && l["signal"] == "spans")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while report().is_none() {
        assert!(Instant::now() < deadline, "no drop report in the logs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = report().unwrap();
    assert_eq!(r["level"], "WARN");
    assert_eq!(r["target"], "strata_otlp");
    assert!(r["dropped"].as_u64().unwrap() > 0);
    assert!(otlp.dropped_spans() >= r["dropped"].as_u64().unwrap());
    let reports = String::from_utf8(logs.0.lock().unwrap().clone())
        .unwrap()
        .matches("telemetry_dropped")
        .count();
    assert!(reports <= 3, "rate-limited: {reports} reports");
}
