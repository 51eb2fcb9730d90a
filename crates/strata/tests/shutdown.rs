//! Nothing logged before the end is lost: `strata::shutdown()` before `std::process::exit`
//! (which runs no destructor), and a panic on the main thread (the panic hook logs it as
//! CRITICAL and flushes every output) — counted at each output: the routed file, the local
//! error store, the local OTLP file.

mod support;

use serde_json::Value;
use support::{file_lines, is_child, run_child, stored_errors};

const LINES: usize = 500;

fn setup() -> strata::Guard {
    strata::builder()
        .with_writer(std::io::sink)
        .try_init()
        .unwrap()
}

fn log_everything() {
    for i in 0..LINES {
        tracing::info_span!("job", job_id = i).in_scope(|| tracing::info!(i, "line"));
    }
    tracing::error!(code = 7, "the last error");
}

#[test]
fn child_exit() {
    if !is_child("child_exit") {
        return;
    }
    let guard = setup();
    log_everything();
    assert!(strata::shutdown());
    std::mem::forget(guard);
    std::process::exit(3);
}

#[test]
fn child_panic() {
    if !is_child("child_panic") {
        return;
    }
    let _guard = setup();
    log_everything();
    panic!("boom at the end");
}

fn run(name: &str) -> (std::process::Output, Vec<Value>, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::write(
        dir.path().join("strata.toml"),
        format!(
            r#"
env = "staging"
[capture]
store = "errors.db"
[otlp]
file = "telemetry.jsonl"
[metrics]
enabled = false
[[router.route]]
sink = "file"
dir = "{}"
prefix = "app"
queue = "64KiB"
"#,
            logs.display()
        ),
    )
    .unwrap();
    let out = run_child(name, dir.path(), &[]);
    let lines = file_lines(&logs, "app")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let errors = stored_errors(&dir.path().join("errors.db"));
    let telemetry = std::fs::read_to_string(dir.path().join("telemetry.jsonl")).unwrap();
    (out, lines, errors, telemetry)
}

#[test]
fn shutdown_before_process_exit_delivers_everything() {
    let (out, lines, errors, telemetry) = run("child_exit");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = lines.iter().filter(|l| l["message"] == "line").count();
    assert_eq!(info, LINES, "every line reached the file");
    assert!(lines.iter().any(|l| l["message"] == "the last error"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("the last error"));
    assert_eq!(
        telemetry.matches("\"job\"").count(),
        LINES,
        "every span reached the local OTLP file"
    );
}

#[test]
fn a_panic_is_logged_captured_and_everything_before_it_flushed() {
    let (out, lines, errors, _) = run("child_panic");
    assert!(!out.status.success());
    assert_eq!(
        lines.iter().filter(|l| l["message"] == "line").count(),
        LINES
    );
    let panic = lines
        .iter()
        .find(|l| l["level"] == "CRITICAL")
        .expect("the panic's CRITICAL line");
    assert!(
        panic["message"]
            .as_str()
            .unwrap()
            .contains("boom at the end"),
        "{panic}"
    );
    assert!(
        errors.iter().any(|e| e.contains("boom at the end")),
        "{errors:?}"
    );
}

/// An alert route whose webhook never answers, and OTLP to a collector that never answers.
#[test]
fn child_stuck() {
    if !is_child("child_stuck") {
        return;
    }
    let hole = std::env::var("CHILD_HOLE").unwrap();
    let routes = strata::router::RouterConfig::from_toml(&format!(
        "[[route]]\nsink = \"webhook\"\nurl = \"http://{hole}/hook\"\n"
    ))
    .unwrap();
    let guard = strata::builder()
        .with_writer(std::io::sink)
        .with_router(routes)
        .with_shutdown_timeout(std::time::Duration::from_secs(1))
        .try_init()
        .unwrap();
    tracing::error!("an alert that cannot be delivered");
    strata::critical!("and a page");
    let started = std::time::Instant::now();
    drop(guard);
    println!("SHUTDOWN_MS {}", started.elapsed().as_millis());
}

#[test]
fn shutdown_gives_up_on_a_destination_that_never_answers_within_its_timeout() {
    let hole = strata_testkit::BlackHole::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run_child(
        "child_stuck",
        dir.path(),
        &[
            ("CHILD_HOLE", hole.addr().to_string()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", hole.addr()),
            ),
            (
                "STRATA_ERRORS_DB",
                dir.path().join("errors.db").display().to_string(),
            ),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let ms: u64 = stdout
        .lines()
        .find_map(|l| l.split("SHUTDOWN_MS ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no timing: {stdout}"));
    // A 1 s timeout, not the sinks' own (10 s for alerts, 5 s for OTLP): bounded, with slack
    // for a loaded machine.
    assert!(ms < 4_000, "shutdown took {ms} ms");
    assert!(
        stderr.contains("did not flush within the shutdown timeout"),
        "{stderr}"
    );
}
