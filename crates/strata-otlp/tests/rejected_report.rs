//! Spans a collector rejects (an OTLP partial success) are said in the logs with its reason
//! (the process's global subscriber sees the export thread's report; this test binary has it
//! to itself).

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

mod support;

#[test]
fn rejections_are_reported_with_the_collectors_reason() {
    let (rt, addr) = support::picky_collector();
    let otlp = strata_otlp::Otlp::new()
        .with_endpoint(format!("http://{addr}"))
        .with_logs(false)
        .start()
        .unwrap();
    let (subscriber, logs) = support::with_json_lines(&otlp);
    subscriber.init();
    tracing::info_span!("picky").in_scope(|| {});
    assert!(otlp.flush(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let lines = logs.lines();
        if let Some(line) = lines.iter().find(|l| l["event"] == "telemetry_rejected") {
            break line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no rejection report in:\n{lines:#?}"
        );
        std::thread::yield_now();
    };
    assert_eq!(report["level"], "WARN");
    assert_eq!(report["signal"], "spans");
    assert_eq!(report["rejected"], 1);
    assert_eq!(report["reason"], "span name too long");
    drop(otlp);
    rt.shutdown_background();
}
