//! The redaction corpus through every output of the facade at once, in both formats of
//! standard output: JSON lines or the console, a routed text file and JSON file, alert
//! payloads received over HTTP, the local error store, and spans and log records received by a
//! real OTLP receiver. No secret of the corpus may appear in any of them; the ordinary values
//! must come out as they went in.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use strata_testkit::OtlpReceiver;
use strata_testkit::corpus::{self, SecretKind};
use support::{Webhooks, file_lines, is_child, run_child, stored_errors};

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request failed")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Logs the whole corpus through a facade configured by the parent.
#[test]
fn child_corpus() {
    if !is_child("child_corpus") {
        return;
    }
    let out = std::env::var("CHILD_OUT").unwrap();
    let guard = strata::builder()
        .with_writer(Mutex::new(std::fs::File::create(out).unwrap()))
        .try_init()
        .unwrap();
    for s in corpus::secrets() {
        // Only a secret recognisable by its shape may go under any name (a span field here).
        let input = if s.kind == SecretKind::Pattern {
            s.value.as_str()
        } else {
            "-"
        };
        let span = tracing::info_span!("op", input, request_id = "req-corpus");
        let _e = span.enter();
        corpus::emit(tracing::Level::ERROR, &s.field, &s.value, "by field");
        if s.kind == SecretKind::Pattern {
            corpus::emit(tracing::Level::ERROR, "detail", "x", &s.value);
            let err = Outer(std::io::Error::other(s.value.clone()));
            tracing::error!(error = &err as &dyn std::error::Error, "in a chain");
        }
    }
    for o in corpus::ordinary() {
        corpus::emit(tracing::Level::WARN, &o.field, &o.value, &o.value);
    }
    drop(guard);
}

/// Whether `secret` is in `text`. A short one (a CVV) only counts as a whole token — not
/// inside a timestamp's fraction, a trace ID or a duration, where three digits turn up by
/// chance.
fn leaks(text: &str, secret: &str) -> bool {
    if secret.len() >= 8 {
        return text.contains(secret);
    }
    text.match_indices(secret).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + secret.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '-')
            && !after.is_some_and(char::is_alphanumeric)
    })
}

fn check(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = OtlpReceiver::start().unwrap();
    let hooks = Webhooks::start();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = format!(
        r#"
env = "production"
service = "corpus"

[log]
level = "info"
format = "{format}"

[capture]
store = "{store}"

[otlp]
endpoint = "{otlp}"
sample_ratio = 1.0

[metrics]
enabled = false

[[router.route]]
sink = "file"
dir = "{logs}"
prefix = "text"
format = "text"

[[router.route]]
sink = "file"
dir = "{logs}"
prefix = "json"
format = "json"

[[router.route]]
sink = "webhook"
url = "{hook}"
min_level = "error"
"#,
        store = dir.path().join("errors.db").display(),
        otlp = receiver.grpc_endpoint(),
        logs = logs.display(),
        hook = hooks.url(),
    );
    std::fs::write(dir.path().join("strata.toml"), config).unwrap();
    let out = dir.path().join("out.log");
    let child = run_child(
        "child_corpus",
        dir.path(),
        &[("CHILD_OUT", out.display().to_string())],
    );
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );

    let secrets = corpus::secrets();
    let ordinary = corpus::ordinary();
    let stdout = std::fs::read_to_string(&out).unwrap();
    let text_file = file_lines(&logs, "text").join("\n");
    let json_file = file_lines(&logs, "json").join("\n");
    let errors = stored_errors(&dir.path().join("errors.db"));
    let alerts = hooks.wait_for(1, Duration::from_secs(20));
    let spans = receiver.wait_for_spans(secrets.len(), Duration::from_secs(20));
    let records = receiver.wait_for_logs(secrets.len(), Duration::from_secs(20));

    // Every output got something (a check that passes on empty outputs proves nothing).
    assert!(stdout.lines().count() > secrets.len(), "{stdout}");
    assert!(text_file.lines().count() > secrets.len());
    assert!(json_file.lines().count() > secrets.len());
    assert!(!errors.is_empty());
    assert!(!alerts.is_empty());
    assert!(spans.len() >= secrets.len(), "{} spans", spans.len());
    assert!(
        records.len() >= secrets.len(),
        "{} log records",
        records.len()
    );

    let outputs: Vec<(&str, String)> = vec![
        ("standard output", stdout.clone()),
        ("text file", text_file.clone()),
        ("JSON file", json_file.clone()),
        ("error store", errors.join("\n")),
        ("alert payloads", alerts.join("\n")),
        ("OTLP spans", format!("{spans:?}")),
        ("OTLP log records", format!("{records:?}")),
    ];
    for (name, text) in &outputs {
        for s in &secrets {
            // The forms a secret takes in text, JSON, and Rust's Debug.
            let forms = [
                s.secret.clone(),
                s.secret.replace('\n', "\\n"),
                format!("{:?}", s.secret).trim_matches('"').to_owned(),
            ];
            for f in forms {
                assert!(
                    !leaks(text, &f),
                    "{format}: {:?} leaked in the {name}",
                    s.secret
                );
            }
        }
    }

    // Ordinary values survive: in JSON lines exactly, in the text outputs as written.
    if format == "json" {
        let lines: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for o in &ordinary {
            assert!(
                lines
                    .iter()
                    .any(|l| l[&o.field] == Value::String(o.value.clone())
                        && l["message"] == o.value),
                "{:?} changed",
                o.value
            );
        }
    }
    for o in ordinary.iter().filter(|o| !o.value.contains('\n')) {
        assert!(
            text_file.contains(&o.value),
            "{:?} changed in the text file",
            o.value
        );
        if format == "console" {
            assert!(
                stdout.contains(&o.value),
                "{:?} changed on the console",
                o.value
            );
        }
    }
}

#[test]
fn no_secret_leaves_through_any_output_json() {
    check("json");
}

#[test]
fn no_secret_leaves_through_any_output_console() {
    check("console");
}
