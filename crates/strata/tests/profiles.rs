//! Each profile, installed for real in a child process (the global subscriber is installed once
//! per process): development writes the console format at DEBUG with nothing masked;
//! staging writes JSON at INFO with secrets masked; production writes JSON at WARN only, with
//! secrets masked — while traces, metrics and error capture still see the INFO request.

mod support;

use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;
use support::{is_child, run_child};

/// The application of every profile: a request with a DEBUG, an INFO, a WARN with secrets and
/// an ERROR inside it.
#[test]
fn child_app() {
    if !is_child("child_app") {
        return;
    }
    let out = std::env::var("CHILD_OUT").unwrap();
    let guard = strata::builder()
        .with_service("shop")
        .with_writer(Mutex::new(std::fs::File::create(out).unwrap()))
        .try_init()
        .unwrap();
    let span = tracing::info_span!(
        target: "strata_request_id::server",
        "request",
        request_id = "req-42",
        method = "GET",
        route = "/cart",
        status_code = 200_u64
    );
    span.in_scope(|| {
        tracing::debug!(rows = 3, "debug detail");
        tracing::info!(user = "bob", "cart shown");
        tracing::warn!(
            password = "hunter2",
            "slow login for Authorization: Bearer abcDEF1234567890"
        );
        tracing::error!(order = 7, "payment failed");
    });
    drop(span);
    let metrics = guard.metrics().expect("metrics are on in every profile");
    std::fs::write(std::env::var("CHILD_METRICS").unwrap(), metrics.encode()).unwrap();
    std::fs::write(
        std::env::var("CHILD_CONFIG").unwrap(),
        guard.config().to_string(),
    )
    .unwrap();
    drop(guard);
}

struct Run {
    out: String,
    metrics: String,
    config: String,
    telemetry: String,
    errors: Vec<String>,
}

fn run(profile: &str) -> Run {
    run_with(profile, &[])
}

/// [`run`] with more environment variables.
fn run_with(profile: &str, env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let mut vars = vec![
        ("STRATA_ENV", profile.to_owned()),
        ("CHILD_OUT", p("out.log")),
        ("CHILD_METRICS", p("metrics.txt")),
        ("CHILD_CONFIG", p("config.toml")),
        ("STRATA_TELEMETRY_FILE", p("telemetry.jsonl")),
        ("STRATA_ERRORS_DB", p("errors.db")),
    ];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let child = run_child("child_app", dir.path(), &vars);
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    Run {
        out: read("out.log"),
        metrics: read("metrics.txt"),
        config: read("config.toml"),
        telemetry: read("telemetry.jsonl"),
        errors: support::stored_errors(Path::new(&p("errors.db"))),
    }
}

/// The severity and body of every log record in the local OTLP/JSON file.
fn log_records(telemetry: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in telemetry.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for rl in v["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for r in sl["logRecords"].as_array().into_iter().flatten() {
                    out.push((
                        r["severityText"].as_str().unwrap_or_default().to_owned(),
                        r["body"]["stringValue"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
            }
        }
    }
    out
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// What every profile shares: the request in the traces and the metrics, the error captured.
fn sees_everything(r: &Run) {
    assert!(
        r.metrics.lines().any(|l| l.starts_with(
            r#"http_server_requests_total{method="GET",route="/cart",status_class="2xx"} 1"#
        )),
        "{}",
        r.metrics
    );
    assert!(
        r.telemetry.contains("req-42"),
        "the request span: {}",
        r.telemetry
    );
    assert!(
        log_records(&r.telemetry)
            .iter()
            .any(|(_, body)| body == "cart shown"),
        "the INFO log record"
    );
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].contains("payment failed"));
    assert!(r.errors[0].contains("cart shown"), "the INFO breadcrumb");
}

#[test]
fn development_is_a_coloured_console_at_debug_with_everything_visible() {
    let r = run("dev");
    assert!(
        r.out.contains("DEBUG") && r.out.contains("debug detail"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("[req-42]"),
        "the request ID up front: {}",
        r.out
    );
    assert!(
        r.out
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "not JSON: {}",
        r.out
    );
    assert!(!r.out.contains('\u{1b}'), "no colour when not a terminal");
    assert!(r.out.contains("hunter2"), "development masks nothing");
    assert!(r.config.contains("format = \"console\""), "{}", r.config);
    sees_everything(&r);
}

#[test]
fn staging_is_json_at_info_with_secrets_masked() {
    let r = run("staging");
    let lines = json_lines(&r.out);
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["INFO", "WARN", "ERROR"], "{}", r.out);
    for l in &lines {
        assert_eq!(l["env"], "staging");
        assert_eq!(l["service"], "shop");
        assert_eq!(l["request_id"], "req-42");
    }
    assert_eq!(lines[1]["password"], "[REDACTED]");
    assert_eq!(
        lines[1]["message"],
        "slow login for Authorization: [REDACTED]"
    );
    assert!(!r.out.contains("hunter2") && !r.out.contains("abcDEF1234567890"));
    assert!(!r.telemetry.contains("hunter2") && !r.telemetry.contains("abcDEF1234567890"));
    sees_everything(&r);
}

#[test]
fn production_logs_warn_and_up_but_traces_metrics_and_capture_see_the_request() {
    let r = run("production");
    let lines = json_lines(&r.out);
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["WARN", "ERROR"], "{}", r.out);
    assert!(
        lines
            .iter()
            .all(|l| l["env"] == "production" && l["request_id"] == "req-42")
    );
    assert_eq!(lines[0]["password"], "[REDACTED]");
    assert!(!r.out.contains("hunter2"));
    assert!(r.config.contains("sample_ratio = 0.1"), "{}", r.config);
    assert!(r.config.contains("level = \"warn\""), "{}", r.config);
    // The trace of this request may be sampled out (10 %): metrics and capture must not be.
    assert!(
        r.metrics.contains(r#"route="/cart""#) && r.errors.len() == 1,
        "{}",
        r.metrics
    );
    assert!(
        r.errors[0].contains("cart shown"),
        "breadcrumbs below the log level"
    );
    // Log records follow the log level, like log lines.
    let records = log_records(&r.telemetry);
    assert!(
        !records.is_empty()
            && records
                .iter()
                .all(|(level, _)| level == "WARN" || level == "ERROR"),
        "{records:?}"
    );
}

/// The log filter decides log lines and log records alike, whether it names only levels and
/// targets (checked per event) or spans (a per-layer filter that tracks them); traces, metrics
/// and capture see everything either way.
#[test]
fn the_log_filter_applies_to_lines_and_records_with_or_without_span_directives() {
    let r = run_with("staging", &[("RUST_LOG", "error")]);
    let levels: Vec<String> = json_lines(&r.out)
        .iter()
        .map(|l| l["level"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(levels, ["ERROR"], "{}", r.out);
    let records: Vec<String> = log_records(&r.telemetry)
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(records, ["payment failed"], "{}", r.telemetry);
    assert!(r.telemetry.contains("req-42"), "the span is still traced");

    // A span directive: DEBUG inside `request`, WARN elsewhere.
    let r = run_with("staging", &[("RUST_LOG", "warn,[request]=debug")]);
    let messages: Vec<String> = json_lines(&r.out)
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        messages,
        [
            "debug detail",
            "cart shown",
            "slow login for Authorization: [REDACTED]",
            "payment failed"
        ],
        "{}",
        r.out
    );
    assert!(
        log_records(&r.telemetry)
            .iter()
            .any(|(_, body)| body == "debug detail"),
        "{}",
        r.telemetry
    );
}
