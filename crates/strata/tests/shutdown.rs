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
