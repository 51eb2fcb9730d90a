//! The panic hook in child processes: a program logs N lines through the non-blocking file
//! writer, then panics — on the main thread, on another thread, in a tokio task, and with an
//! abort right after the hook (what `panic = "abort"` does). Its guards are leaked, so only the
//! hook's flush can save the lines: all N lines and the CRITICAL panic line must be on disk and
//! the panic must be in the error store.

use std::path::Path;
use std::process::Command;

use strata_capture::{Capture, LocalStore};
use strata_router::{NonBlockingBuilder, RollingFile};
use tracing_subscriber::prelude::*;

const LINES: usize = 2000;

/// The child's body; a no-op unless the parent set `STRATA_PANIC_CHILD`.
#[test]
fn child() {
    let Ok(mode) = std::env::var("STRATA_PANIC_CHILD") else {
        return;
    };
    let dir = std::env::var("STRATA_PANIC_DIR").unwrap();
    let file = RollingFile::new(&dir, "app").open().unwrap();
    let (writer, writer_guard) = NonBlockingBuilder::default().spawn(file).unwrap();
    let (capture, capture_guard) = Capture::new()
        .with_release("9.9.9")
        .with_store(Path::new(&dir).join("errors.db"))
        .start()
        .unwrap();
    tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(strata_json::layer().with_writer(move || writer.clone()))
        .with(capture)
        .init();
    if mode.ends_with("-abort") {
        // What `panic = "abort"` does after the hooks: no unwinding, no destructors.
        std::panic::set_hook(Box::new(|_| std::process::abort()));
    }
    strata_capture::install_panic_hook();
    // Only the hook can flush now.
    std::mem::forget(writer_guard);
    std::mem::forget(capture_guard);
    let request = tracing::info_span!("request", request_id = "req-panic");
    let _r = request.enter();
    for i in 0..LINES {
        tracing::info!(i, "line {i}");
    }
    match mode.trim_end_matches("-abort") {
        "main" => panic!("boom on main"),
        "debug" => {
            // The application's Debug impl panics while a breadcrumb is being written.
            struct Bomb;
            impl std::fmt::Debug for Bomb {
                fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    panic!("boom in Debug")
                }
            }
            tracing::info!(value = ?Bomb, "about to explode");
        }
        "thread" => {
            let _ = std::thread::Builder::new()
                .name("worker-7".into())
                .spawn(|| panic!("boom in thread"))
                .unwrap()
                .join();
        }
        "task" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            let _ = rt.block_on(async { tokio::spawn(async { panic!("boom in task") }).await });
        }
        other => unreachable!("{other}"),
    }
    // The process dies without running destructors.
    std::process::exit(101);
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
    let (dir, output) = run_child(mode);
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
            .contains("panic.rs:")
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
