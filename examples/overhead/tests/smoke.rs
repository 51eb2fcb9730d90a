//! The benchmark, run briefly: every mode serves without errors and really produces what it
//! claims to — a JSON line per request in its file and a span per request at the OTLP
//! receiver — so the figures compare stacks doing the same work.

use std::process::Command;

use serde_json::Value;

#[test]
fn every_mode_serves_and_delivers_its_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_overhead"))
        .args(["--rounds", "1", "--warmup", "0.2", "--duration", "1"])
        .args(["--connections", "4", "--no-pin", "--json"])
        .arg(&runs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| strata |"), "the table: {stdout}");

    let runs: Vec<Value> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let modes: Vec<&str> = runs.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes.len(), 4, "{modes:?}");
    for mode in ["bare", "strata", "peers", "strata-production"] {
        assert!(modes.contains(&mode), "{mode} ran: {modes:?}");
    }
    for r in &runs {
        let mode = r["mode"].as_str().unwrap();
        let (load, report) = (&r["load"], &r["report"]);
        let requests = load["requests"].as_u64().unwrap();
        let served = report["served"].as_u64().unwrap();
        assert!(requests > 0, "{mode}: {r}");
        assert_eq!(load["errors"], 0, "{mode}: {r}");
        assert!(served >= requests, "{mode}: {r}");
        let (lines, spans) = (
            report["json_lines"].as_u64().unwrap(),
            report["spans"].as_u64().unwrap(),
        );
        match mode {
            "bare" => assert_eq!((lines, spans), (0, 0), "{r}"),
            // One access line and one server span per request, all delivered.
            "strata" | "peers" => {
                assert!(lines >= served, "{mode}: {lines} lines for {served}: {r}");
                assert!(spans >= served, "{mode}: {spans} spans for {served}: {r}");
            }
            // WARN lines only (none here) and a sample of the traces.
            "strata-production" => {
                assert_eq!(lines, 0, "{r}");
                assert!(spans < served, "{r}");
            }
            other => panic!("unexpected mode {other}"),
        }
        if mode.starts_with("strata") {
            assert_eq!(report["telemetry_dropped"], 0, "{mode}: {r}");
            assert_eq!(report["metrics_requests"].as_u64(), Some(served), "{r}");
        }
    }
}
