//! The embedded default: spans as OTLP/JSON lines in a local file, bounded in size.

use std::time::Duration;

use strata_otlp::Otlp;
use tracing_subscriber::prelude::*;

mod support;
use support::Buf;

#[test]
fn spans_are_written_as_otlp_json_lines_with_the_ids_of_the_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let otlp = Otlp::new()
        .with_service_name("worker")
        .with_file(&path, 10_000_000)
        .start()
        .unwrap();
    let logs = Buf::default();
    let out = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer())
        .with(strata_json::layer().with_writer(move || out.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("job", job = "nightly-report").in_scope(|| tracing::info!("ran"));
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    let text = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let rs = &line["resourceSpans"][0];
    let service = rs["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "service.name")
        .unwrap();
    assert_eq!(service["value"]["stringValue"], "worker");
    let span = &rs["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "job");
    let trace_id = span["traceId"].as_str().unwrap();
    assert_eq!(
        trace_id.len(),
        32,
        "hex, as OTLP/JSON writes IDs: {trace_id}"
    );
    let log: serde_json::Value = serde_json::from_slice(
        logs.0
            .lock()
            .unwrap()
            .split(|b| *b == b'\n')
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(log["trace_id"], trace_id);
    assert_eq!(log["span_id"], span["spanId"]);
}

#[test]
fn the_file_is_bounded_by_keeping_one_previous() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let otlp = Otlp::new().with_file(&path, 4096).start().unwrap();
    support::traced(&otlp, || {
        for round in 0..20 {
            for i in 0..20 {
                tracing::info_span!("step", round, i, payload = "x".repeat(100).as_str())
                    .in_scope(|| {});
            }
            // One export per round, so the file rotates between them.
            assert!(otlp.flush(Duration::from_secs(10)));
        }
    });
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let previous = dir.path().join("traces.jsonl.1");
    assert!(previous.exists(), "rotated");
    // Each file holds at most the limit, or one export request if a single one is larger.
    let one_request = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::len)
        .max()
        .unwrap() as u64
        + 1;
    assert!(size(&path) <= 4096.max(one_request), "{}", size(&path));
    assert!(
        size(&previous) <= 4096.max(one_request * 2),
        "{}",
        size(&previous)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no more files than two"
    );
    assert!(otlp.exported_spans() == 400, "{}", otlp.exported_spans());
}

/// The span events of the span named `name` and the log record bodies in an OTLP/JSON file.
fn events_and_records(text: &str, name: &str) -> (Vec<String>, Vec<String>) {
    let (spans, records) = support::spans_and_records(text);
    let events = spans
        .iter()
        .filter(|s| s["name"] == name)
        .flat_map(|s| s["events"].as_array().cloned().unwrap_or_default())
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    let records = records
        .iter()
        .map(|r| {
            r["body"]["stringValue"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    (events, records)
}

/// Runs one span with an event at each level and returns what reached the file.
fn one_span_of_every_level(otlp: Otlp, path: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let otlp = otlp.with_file(path, 10_000_000).start().unwrap();
    support::traced(&otlp, || {
        tracing::info_span!("checkout").in_scope(|| {
            tracing::debug!("cart loaded");
            tracing::info!("payment accepted");
            tracing::warn!("stock low");
            tracing::error!("receipt not sent");
        });
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    events_and_records(&std::fs::read_to_string(path).unwrap(), "checkout")
}

#[test]
fn with_log_records_exported_spans_keep_their_warnings_and_errors_as_span_events() {
    let dir = tempfile::tempdir().unwrap();
    let (events, records) = one_span_of_every_level(Otlp::new(), &dir.path().join("logs-on.jsonl"));
    // Every event is a log record (carrying the span's IDs: tests/logs.rs)…
    for message in [
        "cart loaded",
        "payment accepted",
        "stock low",
        "receipt not sent",
    ] {
        assert!(
            records.iter().any(|r| r == message),
            "{message}: {records:?}"
        );
    }
    // …and the span keeps only what an on-call engineer looks for in it.
    assert_eq!(events, ["stock low", "receipt not sent"]);

    let (events, records) = one_span_of_every_level(
        Otlp::new().with_logs(false),
        &dir.path().join("logs-off.jsonl"),
    );
    assert!(records.is_empty(), "{records:?}");
    assert_eq!(
        events,
        [
            "cart loaded",
            "payment accepted",
            "stock low",
            "receipt not sent"
        ],
        "without log records, every event stays in its span"
    );

    let (events, _) = one_span_of_every_level(
        Otlp::new().with_span_events(tracing::level_filters::LevelFilter::INFO),
        &dir.path().join("info.jsonl"),
    );
    assert_eq!(
        events,
        ["payment accepted", "stock low", "receipt not sent"]
    );

    // Off keeps the errors: they mark their span failed.
    let (events, _) = one_span_of_every_level(
        Otlp::new().with_span_events(tracing::level_filters::LevelFilter::OFF),
        &dir.path().join("off.jsonl"),
    );
    assert_eq!(events, ["receipt not sent"]);
}
