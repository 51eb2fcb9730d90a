//! `[diagnostics]` through the facade: its settings checked (a public address or the
//! production profile without a token refused, a weak token refused, the token never shown),
//! and, installed for real in a child process, the endpoint, the stuck-work WARN and the
//! SIGUSR1 dump.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use strata::config::ConfigError;
use strata::{InitError, builder};
use support::{is_child, run_child};

const TOKEN: &str = "diag-token-0123456789abcdef";

/// Runs child test `name` in `dir`, its lines to `dir/out.log` and its local stores in `dir`.
fn run_in(dir: &std::path::Path, name: &str, envs: &[(&str, String)]) -> std::process::Output {
    let p = |f: &str| dir.join(f).display().to_string();
    let mut all = vec![
        ("CHILD_OUT", p("out.log")),
        ("STRATA_ERRORS_DB", p("errors.db")),
        ("STRATA_TELEMETRY_FILE", p("telemetry.jsonl")),
    ];
    all.extend(envs.iter().cloned());
    run_child(name, dir, &all)
}

fn resolve(dir: &std::path::Path, toml: &str) -> Result<strata::Config, InitError> {
    let file = dir.join("strata.toml");
    std::fs::write(&file, toml).unwrap();
    builder().with_config_file(&file).resolve()
}

fn invalid(r: Result<strata::Config, InitError>) -> (String, String, String) {
    match r {
        Err(InitError::Config(ConfigError::Invalid {
            key,
            value,
            expected,
            ..
        })) => (key, value, expected),
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

#[test]
fn settings_are_checked_and_the_token_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (key, value, expected) = invalid(resolve(
        dir.path(),
        "[diagnostics]\nlisten = \"0.0.0.0:6060\"\n",
    ));
    assert_eq!(key, "diagnostics.listen");
    assert_eq!(value, "0.0.0.0:6060");
    assert!(
        expected.contains("loopback") && expected.contains("diagnostics.token"),
        "{expected}"
    );

    let (key, _, expected) = invalid(resolve(
        dir.path(),
        "env = \"production\"\n[diagnostics]\nlisten = \"127.0.0.1:6060\"\n",
    ));
    assert_eq!(key, "diagnostics.token");
    assert!(expected.contains("production"), "{expected}");

    let (key, value, expected) =
        invalid(resolve(dir.path(), "[diagnostics]\ntoken = \"hunter2\"\n"));
    assert_eq!(
        (key.as_str(), value.as_str()),
        ("diagnostics.token", "(hidden)")
    );
    assert!(!expected.contains("hunter2"));

    let (key, _, _) = invalid(resolve(
        dir.path(),
        "[diagnostics]\nstuck_after = \"soon\"\n",
    ));
    assert_eq!(key, "diagnostics.stuck_after");

    // With a token, any address, in any profile; the token masked everywhere.
    let c = resolve(
        dir.path(),
        &format!(
            "env = \"production\"\n[diagnostics]\nlisten = \"0.0.0.0:6060\"\ntoken = \"{TOKEN}\"\nstuck_after = \"45s\"\n"
        ),
    )
    .unwrap();
    assert_eq!(c.diagnostics.token.as_deref(), Some(TOKEN));
    assert_eq!(c.diagnostics.stuck_after, Duration::from_secs(45));
    let shown = c.to_string();
    assert!(shown.contains("[diagnostics]"), "{shown}");
    assert!(
        shown.contains("token       = \"[REDACTED]\"") || shown.contains("token = \"[REDACTED]\""),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!format!("{c:?}").contains(TOKEN));
}

/// The child: strata installed from a config file with the endpoint on, a job span open
/// longer than `stuck_after`.
#[test]
fn child_app() {
    if !is_child("child_app") {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var("CHILD_OUT").unwrap());
    let guard = strata::builder()
        .with_service("shop")
        .with_writer(std::sync::Mutex::new(std::fs::File::create(&out).unwrap()))
        .try_init()
        .unwrap();
    let addr = guard.diagnostics_addr().expect("diagnostics.listen is set");
    let inflight = guard.inflight().expect("diagnostics are on");
    let job = strata::request_id::JobContext::default().span("rebuild_index");
    let _entered = job.enter();
    assert_eq!(inflight.len(), 1);

    let client = reqwest::blocking::Client::new();
    let url = format!("http://{addr}/debug/inflight");
    assert_eq!(
        client.get(&url).send().unwrap().status(),
        401,
        "the token is required"
    );
    let body: Value = serde_json::from_str(
        &client
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["work"][0]["fields"]["job"], "rebuild_index", "{body}");

    // kill -USR1: the dump; and past stuck_after, the WARN (the watch checks every second).
    let status = std::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let dumped = lines
            .iter()
            .any(|l| l["event"] == "in_flight_work" && l["job"] == "rebuild_index");
        let stuck = lines
            .iter()
            .any(|l| l["event"] == "stuck" && l["level"] == "WARN" && l["job"] == "rebuild_index");
        if dumped && stuck {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dumped {dumped}, stuck {stuck}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(_entered);
    drop(job);
    assert!(inflight.is_empty());
    println!("CHILD_OK");
    drop(guard);
}

#[test]
fn installed_it_serves_in_flight_work_reports_stuck_jobs_and_dumps_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        format!(
            "env = \"staging\"\n[diagnostics]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\nstuck_after = \"300ms\"\n"
        ),
    )
    .unwrap();
    let child = run_in(dir.path(), "child_app", &[]);
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("CHILD_OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
}

/// The child: the development profile, tokio-console asked for in the config file.
#[test]
fn child_console() {
    if !is_child("child_console") {
        return;
    }
    let out = std::env::var("CHILD_OUT").unwrap();
    let guard = strata::builder()
        .with_writer(std::sync::Mutex::new(std::fs::File::create(out).unwrap()))
        .try_init()
        .unwrap();
    println!("{}", guard.config());
    drop(guard);
}

#[test]
fn tokio_console_asked_for_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        "[diagnostics]\ntokio_console = true\n",
    )
    .unwrap();
    let child = run_in(
        dir.path(),
        "child_console",
        &[
            ("STRATA_ENV", "development".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ],
    );
    let out = dir.path().join("out.log");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(stdout.contains("tokio_console = true"), "{stdout}");
    let lines = std::fs::read_to_string(&out).unwrap();
    if cfg!(tokio_unstable) {
        assert!(!lines.contains("tokio-console is on"), "{lines}");
    } else {
        assert!(
            lines.contains("tokio-console is on (diagnostics.tokio_console) but Tokio was built without task events: build with RUSTFLAGS=\"--cfg tokio_unstable\" to use it"),
            "{lines}"
        );
    }
}

/// The child: a queue that keeps rising, heuristics sampling every 20 ms.
#[test]
fn child_backlog() {
    if !is_child("child_backlog") {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var("CHILD_OUT").unwrap());
    let mut thresholds = strata::diagnostics::HeuristicsConfig::default();
    thresholds.interval = Duration::from_millis(20);
    thresholds.queue_window = Duration::from_millis(200);
    thresholds.queue_min_growth = 5;
    let guard = strata::builder()
        .with_writer(std::sync::Mutex::new(std::fs::File::create(&out).unwrap()))
        .with_heuristics(thresholds)
        .try_init()
        .unwrap();
    let worker = guard.metrics().expect("metrics are on").worker("invoices");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut depth = 0;
    loop {
        let text = std::fs::read_to_string(&out).unwrap();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("\"problem\":\"QueueBacklog\""))
        {
            println!("{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no QueueBacklog:\n{text}");
        depth += 1;
        worker.set_depth(depth);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(guard);
}

#[test]
fn the_facades_heuristics_watch_its_metrics_with_the_thresholds_given() {
    let dir = tempfile::tempdir().unwrap();
    let child = run_in(
        dir.path(),
        "child_backlog",
        &[("STRATA_ENV", "staging".to_owned())],
    );
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let found = stdout
        .lines()
        .find(|l| l.contains("QueueBacklog"))
        .unwrap_or_else(|| panic!("{stdout}"));
    // The test harness prints its "test child_backlog ... " before the child's line.
    let json = &found[found.find('{').unwrap_or(0)..];
    let line: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {found}"));
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["event"], "problem_detected");
    assert_eq!(line["subject"], "invoices");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with("QueueBacklog: queue \"invoices\" rose from "),
        "{line}"
    );
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains(" over 200 ms, never draining"),
        "{line}"
    );
}
