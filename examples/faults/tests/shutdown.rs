//! SIGTERM to a service under steady load: it stops accepting, finishes what is in flight, and
//! strata's guard flushes — every request that was answered has its lines on stdout and in the
//! routed file, its span at the OTLP receiver, and every failed one its event in Bugsink.

use std::time::Duration;

use example_faults::{Load, Outputs, Service, access_lines_by_request, json_lines, wait_until};
use strata_testkit::{Bugsink, OtlpReceiver};

#[test]
fn sigterm_under_load_delivers_every_line_span_and_error_produced_before_it() {
    let receiver = OtlpReceiver::start().unwrap();
    let bugsink = Bugsink::start();
    let dir = tempfile::tempdir().unwrap();
    Outputs {
        otlp: Some(receiver.grpc_endpoint()),
        dsn: bugsink.as_ref().map(|b| b.dsn().to_owned()),
        ..Outputs::default()
    }
    .write(dir.path());
    let service = Service::start(
        env!("CARGO_BIN_EXE_faults-service").as_ref(),
        dir.path(),
        &[],
    )
    .unwrap();

    // 100 requests a second, every 25th a captured error; the signal lands mid-traffic.
    let load = Load::start(service.addr, 100, 25);
    wait_until("300 answers", Duration::from_secs(60), || {
        load.answered() >= 300
    });
    let status = service.terminate();
    let report = load.stop();
    assert!(status.success(), "a clean exit after SIGTERM: {status}");

    let work = report.answered_ids("/work");
    let fail = report.answered_ids("/fail");
    assert!(
        work.len() >= 280 && fail.len() >= 10,
        "{} {}",
        work.len(),
        fail.len()
    );
    let answered: Vec<&str> = work.iter().chain(&fail).copied().collect();

    // Logs: one access line per answered request, on stdout and in the routed file.
    for file in ["stdout.jsonl", "logs/app.log"] {
        let lines = json_lines(&dir.path().join(file));
        let access = access_lines_by_request(&lines);
        let missing: Vec<&&str> = answered
            .iter()
            .filter(|id| access.get(**id) != Some(&1))
            .collect();
        assert!(missing.is_empty(), "{file}: no access line for {missing:?}");
        let errors = lines
            .iter()
            .filter(|l| l["level"] == "ERROR" && l["target"] == "faults_service")
            .count();
        assert_eq!(errors, fail.len(), "{file}: one ERROR per failed request");
        assert!(
            lines.iter().any(|l| l["message"] == "stopped serving"),
            "{file}: the last line, written after the server stopped"
        );
    }

    // Spans: each answered request's server span reached the receiver.
    let spans = receiver.spans();
    let exported: std::collections::HashSet<&str> = spans
        .iter()
        .filter(|s| s.kind == 2)
        .filter_map(|s| s.attributes.get("request_id").map(String::as_str))
        .collect();
    let missing: Vec<&&str> = answered
        .iter()
        .filter(|id| !exported.contains(**id))
        .collect();
    assert!(missing.is_empty(), "spans never exported: {missing:?}");

    // Errors: each failed request is one event at Bugsink (it ingests in the background).
    if let Some(bugsink) = bugsink {
        let events = || -> usize {
            bugsink
                .issues()
                .iter()
                .filter_map(|i| i["id"].as_str())
                .map(|id| bugsink.events(id).len())
                .sum()
        };
        wait_until(
            "every captured error in Bugsink",
            Duration::from_secs(30),
            || events() >= fail.len(),
        );
        assert_eq!(events(), fail.len(), "one event per failed request");
    }
}
