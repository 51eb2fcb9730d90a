//! Runs the demo binary and checks what it prints: valid JSON lines at every level, request IDs
//! on every line inside a request, classified errors with their chains, a CRITICAL.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

fn run(envs: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_example-demo"));
    cmd.env_remove("RUST_LOG")
        .env_remove("STRATA_ENV")
        .env_remove("STRATA_SERVICE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("demo runs");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn demo_emits_every_level_with_context() {
    let (lines, _) = run(&[]);
    let levels: BTreeSet<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"] {
        assert!(levels.contains(level), "no {level} line");
    }
    for l in &lines {
        assert_eq!(l["service"], "payment_api");
        assert_eq!(l["env"], "development");
        assert_eq!(l["version"], env!("CARGO_PKG_VERSION"));
        if l.get("span").is_some() {
            assert!(
                l["request_id"].as_str().is_some_and(|id| id.len() == 36),
                "no request_id: {l}"
            );
        }
    }
    let business = lines
        .iter()
        .find(|l| l["error.class"] == "business")
        .expect("a business error");
    assert_eq!(business["level"], "WARN");
    assert_eq!(
        business["error"]["message"],
        "card declined: insufficient funds"
    );
    assert_eq!(business["user_id"], 161803);

    let external = lines
        .iter()
        .find(|l| l["error.class"] == "external")
        .expect("an external error");
    assert_eq!(external["level"], "ERROR");
    let chain = external["error"]["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "{external}");
    assert_eq!(chain[1]["message"], "read timed out after 5s");
    assert_eq!(chain[1]["type"], "std::io::Error");
    assert!(
        external["error"]["type"]
            .as_str()
            .unwrap()
            .ends_with("PaymentError")
    );

    let critical = lines
        .iter()
        .find(|l| l["level"] == "CRITICAL")
        .expect("a CRITICAL");
    assert_eq!(critical["error.class"], "system");
    assert_eq!(critical["span"], "db.query");
    assert_eq!(critical["db.system"], "postgresql");

    let charged = lines
        .iter()
        .find(|l| l["event"] == "charge_created")
        .expect("a successful charge");
    assert!(
        charged.get("db.system").is_none(),
        "the db span had closed: {charged}"
    );

    let slow = lines
        .iter()
        .find(|l| l["message"] == "Slow query")
        .expect("a slow-request warning");
    assert!(slow["duration_ms"].as_f64().unwrap() > 500.0);
}

#[test]
fn rust_log_filters_and_a_bad_filter_is_a_clear_error() {
    let (lines, _) = run(&[("RUST_LOG", "warn")]);
    assert!(!lines.is_empty());
    // the filter hides INFO events, not the INFO request spans: WARN lines keep their context
    for l in &lines {
        assert!(
            l["request_id"].as_str().is_some_and(|id| id.len() == 36),
            "context lost: {l}"
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| ["WARN", "ERROR", "CRITICAL"].contains(&l["level"].as_str().unwrap()))
    );

    let out = Command::new(env!("CARGO_BIN_EXE_example-demo"))
        .env("RUST_LOG", "info,[bad")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RUST_LOG") && stderr.contains("info,[bad"),
        "{stderr}"
    );
}
