//! Credentials in the configuration — the Sentry DSN's keys, an alert webhook's URL, the OTLP
//! endpoint's user and password and its headers — never reach any output, even when every
//! destination fails and strata says so. Run in the development profile, where redaction is
//! off: what is tested is that strata never writes them, not that a mask hides them.

mod support;

use std::net::TcpListener;
use std::path::Path;

use support::{is_child, run_child};

const DSN_PUBLIC_KEY: &str = "5ec7e7a11ce5dsnpub11c0ffee0ddba11";
const DSN_SECRET_KEY: &str = "dsnSecretKeyC0ffee";
const WEBHOOK_TOKEN: &str = "hookTokenXq7Lp2Zr9Wv4";
const OTLP_PASSWORD: &str = "otlpPassw0rdK9m";
const OTLP_HEADER_TOKEN: &str = "otlpHeaderT0kenJ3n";

/// Every credential, for the assertions.
const SECRETS: [&str; 5] = [
    DSN_PUBLIC_KEY,
    DSN_SECRET_KEY,
    WEBHOOK_TOKEN,
    OTLP_PASSWORD,
    OTLP_HEADER_TOKEN,
];

/// The application: an ERROR (captured and sent to Sentry, alerted to the webhook) inside a
/// span (exported over OTLP/HTTP), then the effective configuration and the guard's `Debug`.
#[test]
fn child_app() {
    if !is_child("child_app") {
        return;
    }
    let out = std::env::var("CHILD_OUT").unwrap();
    let guard = strata::builder()
        .with_service("shop")
        .with_writer(std::sync::Mutex::new(std::fs::File::create(out).unwrap()))
        .with_shutdown_timeout(std::time::Duration::from_secs(3))
        .try_init()
        .unwrap();
    tracing::info_span!("checkout", order = 7).in_scope(|| {
        tracing::error!(order = 7, "payment failed");
    });
    println!("{}", guard.config());
    println!("{guard:?}");
    drop(guard);
}

/// A port on 127.0.0.1 that refuses connections.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn dsn_webhook_url_and_otlp_credentials_never_reach_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let logs = dir.path().join("logs");
    std::fs::write(
        dir.path().join("strata.toml"),
        format!(
            r#"
[[router.route]]
sink = "file"
dir = "{logs}"
prefix = "text"
format = "text"

[[router.route]]
sink = "webhook"
url = "http://127.0.0.1:{port}/services/T0001/B0001/{WEBHOOK_TOKEN}"
min_level = "error"
"#,
            logs = logs.display(),
        ),
    )
    .unwrap();
    let out = dir.path().join("out.log");
    let child = run_child(
        "child_app",
        dir.path(),
        &[
            ("STRATA_ENV", "development".to_owned()),
            ("CHILD_OUT", out.display().to_string()),
            (
                "SENTRY_DSN",
                format!("http://{DSN_PUBLIC_KEY}:{DSN_SECRET_KEY}@127.0.0.1:{port}/42"),
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://collector:{OTLP_PASSWORD}@127.0.0.1:{port}"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("authorization=Bearer {OTLP_HEADER_TOKEN}"),
            ),
            (
                "STRATA_ERRORS_DB",
                dir.path().join("errors.db").display().to_string(),
            ),
        ],
    );
    let stdout = String::from_utf8_lossy(&child.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&child.stderr).into_owned();
    assert!(child.status.success(), "{stderr}");
    let written = std::fs::read_to_string(&out).unwrap();
    let routed = read_dir_text(&logs);

    // The failures happened and were said: the test sees the messages that could leak.
    assert!(
        stderr.contains("strata-capture: sending an error event to Sentry failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("127.0.0.1") && stderr.contains("webhook"),
        "the webhook failure is reported: {stderr}"
    );
    assert!(
        written.contains("telemetry_export_failed"),
        "the OTLP export failure is logged: {written}"
    );
    // The configuration was printed, with the credentials masked.
    assert!(stdout.contains("[REDACTED]"), "{stdout}");
    assert!(written.contains("payment failed"), "{written}");
    assert!(routed.contains("payment failed"), "{routed}");

    for (name, text) in [
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("the log writer", &written),
        ("the routed file", &routed),
    ] {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} leaked to {name}:\n{text}");
        }
    }
    let stored = support::stored_errors(&dir.path().join("errors.db"));
    assert!(!stored.is_empty());
    for event in &stored {
        for secret in SECRETS {
            assert!(
                !event.contains(secret),
                "{secret} in the error store: {event}"
            );
        }
    }
}

/// Every file under `dir`, concatenated.
fn read_dir_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    text
}
