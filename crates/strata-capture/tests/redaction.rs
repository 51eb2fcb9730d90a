//! Redaction of error events: secrets in fields (by name, whatever the type; the event's and
//! its spans'), the message, the error chain, breadcrumbs and the request context are masked on
//! the capture thread, before the before-send hook and the store; nothing secret is stored,
//! ordinary values are kept, and grouping does not change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use strata_capture::{Capture, CaptureGuard, ErrorEvent, LocalStore};
use strata_core::{Classify, ErrorClass, Redaction, critical, log_error};
use strata_testkit::corpus::{self, SecretKind};
use tracing_subscriber::prelude::*;

mod support;
use support::FakeTrace;

fn rules() -> Option<Arc<Redaction>> {
    Some(Arc::new(Redaction::new()))
}

/// A system error whose message and source hold secrets.
#[derive(Debug)]
struct LoginFailed(std::io::Error);
impl std::fmt::Display for LoginFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("login to postgres://app:hunter2@db/shop failed")
    }
}
impl std::error::Error for LoginFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl Classify for LoginFailed {
    fn class(&self) -> ErrorClass {
        ErrorClass::System
    }
}

struct Setup {
    dir: tempfile::TempDir,
    guard: CaptureGuard,
    dispatch: tracing::Dispatch,
}

impl Setup {
    fn new(capture: impl FnOnce(Capture) -> Capture) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = capture(
            Capture::new()
                .with_release("1.0.0")
                .with_backtraces(false)
                .with_store(dir.path().join("errors.db")),
        )
        .start()
        .unwrap();
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(strata_core::StoreLayer::default())
                .with(FakeTrace([0xab; 16], [0xcd; 8]))
                .with(layer),
        );
        Setup {
            dir,
            guard,
            dispatch,
        }
    }

    fn run(&self, f: impl FnOnce()) {
        tracing::dispatcher::with_default(&self.dispatch, f);
        assert!(self.guard.flush(Duration::from_secs(20)));
    }

    fn store(&self) -> LocalStore {
        LocalStore::open(self.dir.path().join("errors.db"), "1.0.0")
            .unwrap()
            .with_limits(1000, 10_000, 1000)
    }

    /// Every stored event, read back from the store, oldest first.
    fn events(&self) -> Vec<ErrorEvent> {
        let store = self.store();
        let mut all: Vec<ErrorEvent> = store
            .groups()
            .unwrap()
            .iter()
            .flat_map(|g| store.group(&g.id).unwrap().unwrap().1)
            .collect();
        all.sort_by_key(|e| e.unix_ms);
        all
    }
}

/// What the application put in the stored events and groups, as text: the event IDs,
/// fingerprints, timestamps and code locations (whose digits could hold a short secret by
/// chance) left out.
fn stored_text(s: &Setup) -> String {
    let mut out = String::new();
    for mut e in s
        .events()
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
    {
        let m = e.as_object_mut().unwrap();
        for k in [
            "event_id",
            "timestamp",
            "unix_ms",
            "fingerprint",
            "location",
            "thread",
        ] {
            m.remove(k);
        }
        for b in m
            .get_mut("breadcrumbs")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            b.as_object_mut().unwrap().remove("timestamp");
        }
        out.push_str(&e.to_string());
        out.push('\n');
    }
    for g in s.store().groups().unwrap() {
        out.push_str(&g.title);
        out.push('\n');
    }
    out
}

fn assert_no_secret<'s>(text: &str, secrets: impl IntoIterator<Item = &'s str>) {
    for s in secrets {
        assert!(!text.contains(s), "{s:?} stored:\n{text}");
    }
}

#[test]
fn nothing_secret_is_stored_from_fields_messages_chains_breadcrumbs_or_the_request() {
    let seen_by_hook = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&seen_by_hook);
    let s = Setup::new(|c| {
        c.with_redaction(rules()).with_before_send(move |e| {
            seen.lock().unwrap().push(e.fields.get("password").cloned());
            true
        })
    });
    s.run(|| {
        let request = tracing::info_span!(
            "request",
            request_id = "req-1",
            method = "POST",
            route = "/login?next=/home&access_token=at-77f1e2d3c4b5",
            user_id = 42_u64,
            session_id = "sess_5f2b8c1d9e"
        );
        let _r = request.enter();
        tracing::info!(
            token = "t-secret-1",
            card_number = 4_111_111_111_111_111_u64,
            note = "retrying with bearer AbCdEf0123456789AbCdEf",
            attempt = 2,
            "calling https://admin:adm1n!@intranet.example.com/reports"
        );
        tracing::error!(
            password = "hunter2",
            cvv = 737_u64,
            api_key = ?Some("k-live-31337"),
            user = "bob",
            "login for bob failed: upstream said Authorization: Bearer mF_9.B5f-4.1JqM"
        );
        log_error!(
            LoginFailed(std::io::Error::other(
                "Cookie: session=9f8e7d6c5b4a; theme=dark"
            )),
            "ledger unreachable"
        );
        critical!(
            client_secret = "8f14e45fceea167a5a36dedd4bea2543",
            "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc rejected"
        );
    });
    let events = s.events();
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(s.guard.stats().stored, 3);
    assert_no_secret(
        &stored_text(&s),
        [
            "hunter2",
            "737",
            "k-live-31337",
            "mF_9.B5f-4.1JqM",
            "sess_5f2b8c1d9e",
            "at-77f1e2d3c4b5",
            "t-secret-1",
            "4111111111111111",
            "AbCdEf0123456789AbCdEf",
            "adm1n!",
            "9f8e7d6c5b4a",
            "8f14e45fceea167a5a36dedd4bea2543",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ],
    );

    let find = |prefix: &str| {
        events
            .iter()
            .find(|e| e.message.starts_with(prefix))
            .unwrap_or_else(|| panic!("no event {prefix:?} in {events:#?}"))
    };
    // The login error: masked fields (text and numbers), message, span fields, request,
    // breadcrumbs; ordinary values kept.
    let e = find("login for bob");
    assert_eq!(
        e.message,
        "login for bob failed: upstream said Authorization: [REDACTED]"
    );
    for key in ["password", "cvv", "api_key", "session_id"] {
        assert_eq!(e.fields[key], "[REDACTED]", "{key}");
    }
    assert_eq!(e.fields["user"], "bob");
    assert_eq!(e.fields["user_id"], 42);
    assert_eq!(
        e.fields["route"],
        "/login?next=/home&access_token=[REDACTED]"
    );
    assert_eq!(
        e.request.route.as_deref(),
        Some("/login?next=/home&access_token=[REDACTED]")
    );
    assert_eq!(e.request.request_id.as_deref(), Some("req-1"));
    assert_eq!(e.request.user_id.as_deref(), Some("42"));
    assert_eq!(e.request.method.as_deref(), Some("POST"));
    assert_eq!(
        e.request.trace_id.as_deref(),
        Some("ab".repeat(16).as_str())
    );
    let crumb = &e.breadcrumbs[0];
    assert_eq!(
        crumb.message,
        "calling https://admin:[REDACTED]@intranet.example.com/reports"
    );
    assert_eq!(crumb.data["token"], "[REDACTED]");
    assert_eq!(crumb.data["card_number"], "[REDACTED]");
    assert_eq!(crumb.data["note"], "retrying with bearer [REDACTED:bearer]");
    assert_eq!(crumb.data["attempt"], 2);

    // The chain.
    let e = find("ledger unreachable");
    assert_eq!(e.level, "CRITICAL");
    let chain: Vec<&str> = e.chain.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        chain,
        [
            "login to postgres://app:[REDACTED]@db/shop failed",
            "Cookie: [REDACTED]"
        ]
    );
    assert_eq!(
        e.title(),
        "redaction::LoginFailed: ledger unreachable",
        "types are kept"
    );
    let e = find("stripe key");
    assert_eq!(e.message, "stripe key [REDACTED:token] rejected");
    assert_eq!(e.fields["client_secret"], "[REDACTED]");

    // The hook saw the masked event.
    let seen = seen_by_hook.lock().unwrap();
    assert_eq!(seen[0], Some(Value::from("[REDACTED]")), "{seen:?}");
}

#[test]
fn the_corpus_secrets_are_never_stored_and_ordinary_values_are_kept() {
    let s = Setup::new(|c| {
        c.with_redaction(rules())
            .with_breadcrumbs(1000, strata_core::Severity::Info)
            .with_queue_capacity(1000)
    });
    let secrets = corpus::secrets();
    let ordinary = corpus::ordinary();
    s.run(|| {
        // As breadcrumbs of one request, then as errors (one group each: `n7` is a word, not a
        // number the fingerprint would normalise away).
        let request = tracing::info_span!("request", request_id = "req-c");
        let _r = request.enter();
        for s in &secrets {
            corpus::emit(tracing::Level::INFO, &s.field, &s.value, "crumb");
            if s.kind == SecretKind::Pattern {
                corpus::emit(tracing::Level::INFO, "detail", "x", &s.value);
            }
        }
        for (i, s) in secrets.iter().enumerate() {
            corpus::emit(
                tracing::Level::ERROR,
                &s.field,
                &s.value,
                &format!("by field n{i}"),
            );
            if s.kind == SecretKind::Pattern {
                corpus::emit(tracing::Level::ERROR, "detail", "x", &s.value);
                let span = tracing::info_span!("op", input = %s.value);
                span.in_scope(|| tracing::error!("in span n{i}"));
            }
        }
        for o in &ordinary {
            corpus::emit(tracing::Level::ERROR, &o.field, &o.value, &o.value);
        }
    });
    let patterns = secrets
        .iter()
        .filter(|s| s.kind == SecretKind::Pattern)
        .count();
    let events = s.events();
    assert_eq!(events.len(), secrets.len() + 2 * patterns + ordinary.len());
    assert_no_secret(&stored_text(&s), secrets.iter().map(|s| s.secret.as_str()));
    // The first error carries every breadcrumb before it, masked.
    let first = events.iter().find(|e| e.message == "by field n0").unwrap();
    assert_eq!(first.breadcrumbs.len(), secrets.len() + patterns);
    for o in &ordinary {
        let e = events.iter().find(|e| {
            e.message == o.value && e.fields.get(&o.field) == Some(&Value::from(o.value.as_str()))
        });
        assert!(e.is_some(), "{o:?} changed");
    }
}

#[test]
fn grouping_does_not_change_with_redaction() {
    let log = || {
        tracing::error!(
            password = "hunter2",
            "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc rejected"
        );
    };
    let plain = Setup::new(|c| c);
    plain.run(log);
    let masked = Setup::new(|c| c.with_redaction(rules()));
    masked.run(log);
    let (a, b) = (&plain.events()[0], &masked.events()[0]);
    assert_eq!(
        a.message,
        "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc rejected"
    );
    assert_eq!(b.message, "stripe key [REDACTED:token] rejected");
    assert_eq!(a.fingerprint, b.fingerprint);
}

#[test]
fn error_event_redact_masks_nested_keys_and_every_type() {
    let mut e: ErrorEvent = serde_json::from_value(json!({
        "event_id": "0".repeat(32),
        "timestamp": "2026-11-25T00:00:00.000000Z",
        "unix_ms": 0,
        "level": "ERROR",
        "message": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl rejected",
        "target": "shop",
        "fingerprint": "00000000000000aa",
        "fields": {
            "db": {"password": 12345, "host": "db.internal", "dsn": "redis://u:r3d1s-p4ss@cache/0"},
            "secret": {"a": 1},
            "flags": [true, "Bearer abcDEF123456789xyz"],
            "count": 3
        },
        "breadcrumbs": [{"timestamp": "2026-11-25T00:00:00.000000Z", "level": "INFO",
                          "target": "shop", "message": "pin 4111111111111111",
                          "data": {"sessionId": false, "n": 1}}],
    }))
    .unwrap();
    e.redact(&Redaction::new());
    assert_eq!(e.message, "token [REDACTED:jwt] rejected");
    assert_eq!(
        Value::Object(e.fields.clone()),
        json!({
            "db": {"password": "[REDACTED]", "host": "db.internal", "dsn": "redis://u:[REDACTED]@cache/0"},
            "secret": "[REDACTED]",
            "flags": [true, "Bearer [REDACTED:bearer]"],
            "count": 3
        })
    );
    assert_eq!(e.breadcrumbs[0].message, "pin [REDACTED:card]");
    assert_eq!(
        Value::Object(e.breadcrumbs[0].data.clone()),
        json!({"sessionId": "[REDACTED]", "n": 1})
    );
    assert_eq!(e.fingerprint, "00000000000000aa");
}

#[test]
fn a_secret_cut_by_the_length_limit_is_not_stored_in_part() {
    // At most 100 bytes: 59 of the value and the marker.
    let s = Setup::new(|c| c.with_redaction(rules()).with_max_field_len(100));
    // The cut falls inside the password and inside the token: what is left of each is no
    // longer recognisable, so it must not be kept.
    let url = format!(
        "{}postgres://app:hunter2secret@db/shop/{}",
        "x".repeat(40),
        "z".repeat(40)
    );
    let token = format!(
        "{} ghp_1234567890abcdefghijABCDEFGHIJ123456 {}",
        "y".repeat(50),
        "w".repeat(20)
    );
    s.run(|| tracing::error!(url = %url, note = %token, "{url}"));
    let store = s.store();
    let groups = store.groups().unwrap();
    let (_, events) = store.group(&groups[0].id).unwrap().unwrap();
    let text = serde_json::to_string(&events).unwrap();
    for partial in ["hunt", "ghp_1234"] {
        assert!(!text.contains(partial), "{partial} kept: {text}");
    }
    assert!(text.contains("…[truncated "), "the cut is marked: {text}");
}
