//! The panic hook in child processes: a program logs N lines through the non-blocking file
//! writer, then panics — on the main thread, on another thread, in a tokio task, and with an
//! abort right after the hook (what `panic = "abort"` does). Its guards are leaked, so only the
//! hook's flush can save the lines: all N lines and the CRITICAL panic line must be on disk and
//! the panic must be in the error store.

use std::process::Command;

use strata_capture::LocalStore;

mod support;
use support::panic_child::LINES;

/// The child's body; a no-op unless the parent set `STRATA_PANIC_CHILD`.
#[test]
fn child() {
    let Ok(mode) = std::env::var("STRATA_PANIC_CHILD") else {
        return;
    };
    support::panic_child::run(&mode, &std::env::var("STRATA_PANIC_DIR").unwrap());
}

/// Runs the child; its output is kept (not mixed into this test run's summary). A child that
/// hangs (a deadlock in the hook) is killed after 60 s and fails the test.
fn run_child(mode: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("STRATA_PANIC_CHILD", mode)
        .env("STRATA_PANIC_DIR", dir.path())
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{mode}: the child hung (deadlock in the panic path?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (dir, child.wait_with_output().unwrap())
}

fn check(mode: &str, message: &str, thread: &str) {
    check_output(mode, message, thread, run_child(mode));
}

fn check_output(
    mode: &str,
    message: &str,
    thread: &str,
    (dir, output): (tempfile::TempDir, std::process::Output),
) {
    assert!(!output.status.success(), "{mode}: the child must die");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !mode.ends_with("-abort") {
        // The default hook, chained after ours, printed the panic as usual.
        assert!(
            stderr.contains(message),
            "{mode}: the previous hook ran: {stderr}"
        );
    }
    let text = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{mode}: torn line {l:?}: {e}")))
        .collect();
    let info = lines.iter().filter(|l| l["level"] == "INFO").count();
    assert_eq!(
        info, LINES,
        "{mode}: every line before the panic is on disk"
    );
    let panic_line = lines
        .iter()
        .find(|l| l["level"] == "CRITICAL")
        .unwrap_or_else(|| panic!("{mode}: no CRITICAL line"));
    assert_eq!(panic_line["message"], format!("panicked: {message}"));
    assert_eq!(panic_line["panic.thread"], thread);
    assert!(
        panic_line["panic.location"]
            .as_str()
            .unwrap()
            .contains("panic_child.rs:")
    );
    assert!(panic_line["backtrace"].is_string());
    if mode.starts_with("main") {
        assert_eq!(
            panic_line["request_id"], "req-panic",
            "the request's context"
        );
    }
    let store = LocalStore::open(dir.path().join("errors.db"), "9.9.9").unwrap();
    let groups = store.groups().unwrap();
    assert_eq!(groups.len(), 1, "{mode}: {groups:?}");
    assert_eq!(groups[0].level, "CRITICAL");
    assert!(groups[0].title.contains(message), "{:?}", groups[0].title);
    let (_, events) = store.group(&groups[0].id).unwrap().unwrap();
    assert_eq!(events[0].class.as_deref(), Some("system"));
    assert!(!events[0].frames.is_empty(), "{mode}: the panic's stack");
}

#[test]
fn a_panic_on_the_main_thread_is_logged_captured_and_flushed() {
    // The child's "main thread" is the test harness's thread running `child`.
    check("main", "boom on main", "child");
}

#[test]
fn a_panic_on_another_thread_is_logged_captured_and_flushed() {
    check("thread", "boom in thread", "worker-7");
}

#[test]
fn a_panic_in_a_tokio_task_is_logged_captured_and_flushed() {
    check("task", "boom in task", "tokio-rt-worker");
}

#[test]
fn a_panic_inside_a_values_debug_impl_does_not_deadlock_the_hook() {
    check("debug-abort", "boom in Debug", "child");
}

#[test]
fn with_abort_after_the_hook_nothing_is_lost_either() {
    check("main-abort", "boom on main", "child");
    check("task-abort", "boom in task", "tokio-rt-worker");
}

/// The probe built with a real `panic = "abort"` (by `scripts/test.sh`, which names it in
/// `STRATA_PANIC_ABORT_PROBE`).
#[test]
fn under_a_real_panic_abort_build_nothing_is_lost() {
    let Some(probe) = std::env::var_os("STRATA_PANIC_ABORT_PROBE") else {
        assert!(
            std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
            "scripts/test.sh builds the panic = \"abort\" probe and sets STRATA_PANIC_ABORT_PROBE"
        );
        eprintln!("skipped: no panic = \"abort\" probe; run scripts/test.sh");
        return;
    };
    for (mode, message, thread) in [
        ("main", "boom on main", "main"),
        ("thread", "boom in thread", "worker-7"),
        ("task", "boom in task", "tokio-rt-worker"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(&probe)
            .arg(mode)
            .arg(dir.path())
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        // Aborted: killed by SIGABRT, no exit code.
        assert_eq!(output.status.code(), None, "{mode}: {output:?}");
        check_output(
            &format!("{mode} (panic = abort)"),
            message,
            thread,
            (dir, output),
        );
    }
}
