//! Redaction in JSON lines: sensitive field names masked whatever the value's type, secrets
//! found by shape in values, messages, span fields and error chains; ordinary values untouched;
//! every line still one valid JSON object.

mod support;

use std::sync::Arc;

use serde_json::Value;
use strata_core::Redaction;
use strata_testkit::corpus::{self, SecretKind};
use support::capture;

fn layer() -> strata_json::JsonLayer {
    strata_json::layer().with_redaction(Some(Arc::new(Redaction::new())))
}

#[derive(Debug)]
struct LoginFailed {
    source: std::io::Error,
}

impl std::fmt::Display for LoginFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("login to postgres://app:hunter2@db/shop failed")
    }
}

impl std::error::Error for LoginFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The line as text without its timestamp (whose digits could contain a short secret by chance).
fn without_timestamp(line: &Value) -> String {
    let mut l = line.clone();
    l.as_object_mut().expect("an object").remove("timestamp");
    l.to_string()
}

#[test]
fn names_mask_any_type_and_patterns_mask_text_everywhere() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl";
    let lines = capture(layer(), || {
        let span = tracing::info_span!("request", session_id = "sess-1", user_id = 42_u64);
        let _e = span.enter();
        let err = LoginFailed {
            source: std::io::Error::other("Authorization: Bearer abc.DEF-123"),
        };
        tracing::warn!(
            password = "hunter2",
            cvv = 123_u64,
            api_key = ?Some("k-1"),
            note = %format_args!("token {jwt}"),
            error = &err as &dyn std::error::Error,
            "card 4111 1111 1111 1111 declined for {}",
            "bob"
        );
    });
    let l = &lines[0];
    assert_eq!(l["password"], "[REDACTED]");
    assert_eq!(l["cvv"], "[REDACTED]");
    assert_eq!(l["api_key"], "[REDACTED]");
    assert_eq!(l["session_id"], "[REDACTED]");
    assert_eq!(l["user_id"], 42);
    assert_eq!(l["note"], "token [REDACTED:jwt]");
    assert_eq!(l["message"], "card [REDACTED:card] declined for bob");
    assert_eq!(
        l["error"]["message"],
        "login to postgres://app:[REDACTED]@db/shop failed"
    );
    assert_eq!(
        l["error"]["chain"][0]["message"],
        "Authorization: [REDACTED]"
    );
    let text = without_timestamp(l);
    for secret in ["hunter2", "123", "k-1", "sess-1", jwt, "4111", "abc.DEF"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn span_fields_recorded_later_and_span_close_lines_are_masked() {
    let lines = capture(layer().with_span_close(true), || {
        let span = tracing::info_span!("login", token = tracing::field::Empty, user = "bob");
        span.record("token", "t-secret-1");
        span.in_scope(|| tracing::info!("inside"));
    });
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["token"], "[REDACTED]", "{l}");
        assert_eq!(l["user"], "bob");
    }
}

#[test]
fn no_redaction_without_rules() {
    let lines = capture(strata_json::layer(), || {
        tracing::info!(password = "hunter2", "plain");
    });
    assert_eq!(lines[0]["password"], "hunter2");
}

#[test]
fn the_corpus_secrets_never_appear_and_ordinary_values_survive() {
    let secrets = corpus::secrets();
    let ordinary = corpus::ordinary();
    let lines = capture(layer(), || {
        for s in &secrets {
            corpus::emit(tracing::Level::INFO, &s.field, &s.value, "by field");
            if s.kind == SecretKind::Pattern {
                corpus::emit(tracing::Level::INFO, "detail", "x", &s.value);
                let span = tracing::info_span!("op", input = %s.value);
                span.in_scope(|| tracing::info!("in span"));
            }
        }
        for o in &ordinary {
            corpus::emit(tracing::Level::INFO, &o.field, &o.value, &o.value);
        }
    });
    let pattern_count = secrets
        .iter()
        .filter(|s| s.kind == SecretKind::Pattern)
        .count();
    assert_eq!(
        lines.len(),
        secrets.len() + 2 * pattern_count + ordinary.len()
    );
    let (secret_lines, ordinary_lines) = lines.split_at(lines.len() - ordinary.len());
    let mut lines = secret_lines.iter();
    for s in &secrets {
        let n = if s.kind == SecretKind::Pattern { 3 } else { 1 };
        for l in lines.by_ref().take(n) {
            let text = without_timestamp(l);
            assert!(
                !text.contains(&s.secret) && !text.contains(&s.secret.replace('\n', "\\n")),
                "{:?} leaked in {text}",
                s.secret
            );
        }
    }
    for (o, l) in ordinary.iter().zip(ordinary_lines) {
        assert_eq!(l[&o.field], Value::String(o.value.clone()), "{l}");
        assert_eq!(l["message"], o.value, "{l}");
    }
}

#[test]
fn a_secret_cut_by_the_length_limit_is_not_written_in_part() {
    let url = format!("{}postgres://app:hunter2secret@db/shop", "x".repeat(40));
    let lines = capture(layer().with_max_field_len(60), || {
        tracing::info!(url = %url, token = "ordinary", note = url.as_str(), "{url}");
    });
    let l = &lines[0];
    for key in ["url", "note", "message"] {
        let v = l[key].as_str().unwrap();
        assert!(v.contains("…[truncated "), "{key} cut: {v}");
        assert!(!v.contains("hunt"), "{key} keeps part of the password: {v}");
    }
}
