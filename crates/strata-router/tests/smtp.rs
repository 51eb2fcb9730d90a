//! The email alert sink against a real SMTP server, aiosmtpd (installed by `scripts/test.sh` into
//! a cached venv named by `STRATA_PYTHON`), its Maildir read back with Python's `email` parser.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_core::{Severity, critical};
use strata_router::{AlertPolicy, AlertSink, Destination, Retry, Route, RouteFilter, RouterLayer};
use tracing_subscriber::prelude::*;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Python that has aiosmtpd, or `None` (the test then skips, unless backends are required).
fn python() -> Option<PathBuf> {
    let candidates = std::env::var_os("STRATA_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("python3")]);
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    assert!(
        std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
        "aiosmtpd is not installed (scripts/test.sh installs it and sets STRATA_PYTHON)"
    );
    eprintln!("skipped: aiosmtpd not installed; run scripts/test.sh");
    None
}

/// Parses one stored message with Python's `email` package: decoded headers and body.
fn parse_mail(py: &Path, file: &Path) -> Value {
    let script = r#"
import email, json, sys
from email.header import decode_header, make_header
m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
print(json.dumps({
    "headers": [[k, str(make_header(decode_header(v)))] for k, v in m.items()],
    "body": m.get_payload(decode=True).decode(m.get_content_charset() or 'utf-8'),
}))
"#;
    let out = Command::new(py)
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn header<'a>(mail: &'a Value, name: &str) -> Vec<&'a str> {
    mail["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

#[test]
fn alerts_arrive_as_email_through_a_real_smtp_server() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let port = free_port();
    let child = Command::new(&py)
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .spawn()
        .expect("aiosmtpd starts");
    let _smtpd = Daemon(child);
    wait_for("aiosmtpd to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let dest = Destination::email(
        &format!("smtp://127.0.0.1:{port}"),
        "Strata Alerts <alerts@example.com>",
        &["oncall@example.com", "backup@example.com"],
    )
    .unwrap();
    let (sink, guard) = AlertSink::new(dest)
        .with_policy(AlertPolicy::default().with_throttle(Duration::from_millis(300)))
        .spawn()
        .unwrap();
    let filter = RouteFilter::default().with_levels(Severity::Error, Severity::Critical);
    let router = RouterLayer::new().with_route(Route::alert(filter, sink));
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(router));
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("request", request_id = "req-42");
        let _g = span.enter();
        // A header-injection attempt in the message, and non-ASCII text.
        critical!(
            shard = 3,
            "ledger unreachable\r\nBcc: victim@example.com\r\n\r\nforged body — café"
        );
        critical!(
            shard = 4,
            "ledger unreachable\r\nBcc: victim@example.com\r\n\r\nforged body — café"
        );
    });
    // The first at once; the repeat as a digest when the throttle window ends.
    let new = maildir.join("new");
    let files = || -> Vec<PathBuf> {
        std::fs::read_dir(&new)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    wait_for("2 emails in the Maildir", || files().len() >= 2);
    drop(guard);
    let mut mails: Vec<Value> = files().iter().map(|f| parse_mail(&py, f)).collect();
    assert_eq!(mails.len(), 2);
    mails.sort_by_key(|m| header(m, "subject")[0].contains("more time"));
    let first = &mails[0];
    let subject = header(first, "subject");
    assert_eq!(subject.len(), 1);
    assert!(subject[0].starts_with("[CRITICAL] "), "{subject:?}");
    assert!(subject[0].contains("ledger unreachable"));
    assert!(
        subject[0].contains("café"),
        "non-ASCII survives encoding: {subject:?}"
    );
    assert!(header(first, "bcc").is_empty(), "no injected header");
    assert_eq!(header(first, "to").len(), 1);
    assert!(header(first, "to")[0].contains("oncall@example.com"));
    assert!(header(first, "to")[0].contains("backup@example.com"));
    assert!(header(first, "from")[0].contains("alerts@example.com"));
    let body = first["body"].as_str().unwrap();
    assert!(body.contains("request_id: req-42"), "{body}");
    assert!(body.contains("fingerprint: "), "{body}");
    assert!(
        body.contains("\"shard\": 3"),
        "the log line is attached: {body}"
    );
    let digest = &mails[1];
    assert!(
        header(digest, "subject")[0].contains("(occurred 1 more time in the last"),
        "{:?}",
        header(digest, "subject")
    );
}

#[test]
fn an_unreachable_smtp_server_is_retried_then_counted_as_failed() {
    let port = free_port();
    let dest = Destination::email(
        &format!("smtp://127.0.0.1:{port}"),
        "alerts@example.com",
        &["oncall@example.com"],
    )
    .unwrap();
    let (sink, guard) = AlertSink::new(dest)
        .with_retry(
            Retry::default()
                .with_attempts(3)
                .with_backoff(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .spawn()
        .unwrap();
    let filter = RouteFilter::default().with_levels(Severity::Error, Severity::Critical);
    let router = RouterLayer::new().with_route(Route::alert(filter, sink));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        critical!("nobody listens");
    });
    assert!(guard.flush(Duration::from_secs(20)));
    let stats = guard.stats();
    assert_eq!(
        (stats.sent, stats.retries, stats.failed),
        (0, 2, 1),
        "{stats:?}"
    );
}

#[test]
fn alert_emails_carry_no_secret_when_the_router_redacts() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let port = free_port();
    let child = Command::new(&py)
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .spawn()
        .expect("aiosmtpd starts");
    let _smtpd = Daemon(child);
    wait_for("aiosmtpd to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let dest = Destination::email(
        &format!("smtp://127.0.0.1:{port}"),
        "alerts@example.com",
        &["oncall@example.com"],
    )
    .unwrap();
    let (sink, guard) = AlertSink::new(dest).spawn().unwrap();
    let router = RouterLayer::new()
        .with_redaction(Some(std::sync::Arc::new(strata_core::Redaction::new())))
        .with_route(Route::alert(RouteFilter::default(), sink));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        let span = tracing::info_span!("request", session_id = "sess_5f2b8c1d9e");
        let _g = span.enter();
        let err = std::io::Error::other("connect to redis://default:r3d1s-p4ss@cache:6379/0");
        critical!(
            password = "hunter2",
            error = &err as &dyn std::error::Error,
            "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc rejected"
        );
    });
    assert!(guard.flush(Duration::from_secs(20)));
    let new = maildir.join("new");
    let files: Vec<PathBuf> = std::fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let mail = parse_mail(&py, &files[0]);
    // Unfolded (a long subject is folded over lines).
    let subject = header(&mail, "subject")[0]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        subject.contains("stripe key [REDACTED:token] rejected"),
        "{subject}"
    );
    let body = mail["body"].as_str().unwrap();
    assert!(body.contains("\"password\": \"[REDACTED]\""), "{body}");
    assert!(body.contains("redis://default:[REDACTED]@cache"), "{body}");
    for secret in [
        "hunter2",
        "sess_5f2b8c1d9e",
        "r3d1s-p4ss",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ] {
        assert!(
            !subject.contains(secret) && !body.contains(secret),
            "{secret}: {body}"
        );
    }
}
