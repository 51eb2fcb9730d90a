//! Spans a collector rejects (an OTLP partial success) are said in the logs with its reason
//! (the process's global subscriber sees the export thread's report; this test binary has it
//! to itself).

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

mod support;
use support::Buf;

#[test]
fn rejections_are_reported_with_the_collectors_reason() {
    let (rt, addr) = support::picky_collector();
    let otlp = strata_otlp::Otlp::new()
        .with_endpoint(format!("http://{addr}"))
        .with_logs(false)
        .start()
        .unwrap();
    let logs = Buf::default();
    let out = logs.clone();
    tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer())
        .with(strata_json::layer().with_writer(move || out.clone()))
        .init();
    tracing::info_span!("picky").in_scope(|| {});
    assert!(otlp.flush(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let found = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["event"] == "telemetry_rejected");
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "no rejection report in:\n{text}");
        std::thread::yield_now();
    };
    assert_eq!(report["level"], "WARN");
    assert_eq!(report["signal"], "spans");
    assert_eq!(report["rejected"], 1);
    assert_eq!(report["reason"], "span name too long");
    drop(otlp);
    rt.shutdown_background();
}
