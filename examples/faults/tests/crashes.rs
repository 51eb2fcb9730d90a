//! Crashes: a panic on the main thread, in a tokio task and in a blocking task, unwinding and
//! with `panic = "abort"`. Whatever was logged before is on disk (stdout and the routed file)
//! with the CRITICAL panic line after it, and the panic and the error before it reached Bugsink
//! over the Sentry protocol.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use example_faults::{CRASH_LINES, Outputs, json_lines, wait_until};
use serde_json::Value;
use strata_testkit::Bugsink;

const KINDS: [(&str, &str); 3] = [
    ("main", "boom on main"),
    ("task", "boom in a task"),
    ("blocking", "boom in a blocking task"),
];

/// Runs `bin crash kind` in a new directory, as version `release`; kills it after 60 s.
fn crash(bin: &Path, kind: &str, release: &str, dsn: Option<&str>) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    Outputs {
        dsn: dsn.map(str::to_owned),
        ..Outputs::default()
    }
    .write(dir.path());
    let mut cmd = Command::new(bin);
    strata_testkit::scrub_env(&mut cmd);
    let mut child = cmd
        .args(["crash", kind])
        .current_dir(dir.path())
        .env("STRATA_VERSION", release)
        .env_remove("RUST_BACKTRACE")
        .stdout(std::fs::File::create(dir.path().join("stdout.jsonl")).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{release}: hung after the panic");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (dir, output)
}

fn check_disk(dir: &Path, release: &str, message: &str) {
    for file in ["stdout.jsonl", "logs/app.log"] {
        let lines = json_lines(&dir.join(file));
        let before = lines
            .iter()
            .filter(|l| l["message"] == "line before the crash")
            .count();
        assert_eq!(
            before, CRASH_LINES,
            "{release} {file}: every line before the panic"
        );
        let error = lines.iter().position(|l| l["level"] == "ERROR");
        let critical = lines
            .iter()
            .position(|l| l["level"] == "CRITICAL")
            .unwrap_or_else(|| panic!("{release} {file}: no CRITICAL line"));
        assert!(error < Some(critical), "{release} {file}: in order");
        let panic_line = &lines[critical];
        assert_eq!(panic_line["message"], format!("panicked: {message}"));
        assert!(
            panic_line["panic.location"]
                .as_str()
                .is_some_and(|l| l.contains("faults-service.rs:")),
            "{release}: {panic_line}"
        );
    }
}

/// The events Bugsink holds for `release`.
fn events_of(bugsink: &Bugsink, release: &str) -> Vec<Value> {
    bugsink
        .issues()
        .iter()
        .filter_map(|i| i["id"].as_str())
        .flat_map(|id| bugsink.events(id))
        .filter(|e| e["release"] == release)
        .collect()
}

fn check_transport(bugsink: &Bugsink, release: &str, message: &str) {
    wait_until(
        &format!("{release}: the panic and the error in Bugsink"),
        Duration::from_secs(30),
        || events_of(bugsink, release).len() >= 2,
    );
    let events = events_of(bugsink, release);
    let text = |e: &Value| e.to_string();
    assert!(
        events
            .iter()
            .any(|e| e["level"] == "fatal" && text(e).contains(message)),
        "{release}: the panic as a fatal event: {events:#?}"
    );
    assert!(
        events.iter().any(|e| text(e).contains("payment failed")),
        "{release}: the error logged before it"
    );
}

#[test]
fn unwinding_panics_keep_every_line_and_reach_bugsink() {
    let bugsink = Bugsink::start();
    let dsn = bugsink.as_ref().map(|b| b.dsn().to_owned());
    for (kind, message) in KINDS {
        let release = format!("unwind-{kind}");
        let (dir, output) = crash(
            env!("CARGO_BIN_EXE_faults-service").as_ref(),
            kind,
            &release,
            dsn.as_deref(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        // On the main thread the process dies (101); a task's panic leaves the program running,
        // and it ends normally with the guard's flush.
        assert_eq!(
            output.status.success(),
            kind != "main",
            "{release}: {stderr}"
        );
        assert!(
            stderr.contains(message),
            "{release}: the default hook still prints it"
        );
        check_disk(dir.path(), &release, message);
        if let Some(b) = &bugsink {
            check_transport(b, &release, message);
        }
    }
}

/// The service built with `panic = "abort"` (`scripts/test.sh` builds it and names it in
/// `STRATA_FAULTS_ABORT_SERVICE`): every panic aborts right after strata's hook.
#[test]
fn aborting_panics_keep_every_line_and_reach_bugsink() {
    let Some(bin) = std::env::var_os("STRATA_FAULTS_ABORT_SERVICE").map(PathBuf::from) else {
        assert!(
            std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
            "scripts/test.sh builds the panic = \"abort\" service and sets STRATA_FAULTS_ABORT_SERVICE"
        );
        eprintln!("skipped: STRATA_FAULTS_ABORT_SERVICE not set; run scripts/test.sh");
        return;
    };
    let bugsink = Bugsink::start();
    let dsn = bugsink.as_ref().map(|b| b.dsn().to_owned());
    for (kind, message) in KINDS {
        let release = format!("abort-{kind}");
        let (dir, output) = crash(&bin, kind, &release, dsn.as_deref());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGABRT),
            "{release}: aborted: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        check_disk(dir.path(), &release, message);
        if let Some(b) = &bugsink {
            check_transport(b, &release, message);
        }
    }
}
