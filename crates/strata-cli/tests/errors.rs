//! `strata errors`: the list and one group of a store built with fixed events (snapshots, with
//! relative times counted from the hidden `--now`), the default path, read-only opening that
//! leaves the new/regression flags alone, colours, terminal safety, and the errors.

mod golden;

use std::path::Path;

use golden::{assert_terminal_safe, fails, ok, snapshot, strata, strip_sgr};
use serde_json::{Value, json};
use strata_capture::{ErrorEvent, LocalStore};

const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;
/// 2025-11-25T09:00:00Z
const T0: i64 = 1_764_061_200_000;
/// What the snapshots take as now: 2025-11-26T05:18:00Z.
const NOW: &str = "2025-11-26T05:18:00Z";

fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    strata_core::time::rfc3339(t)
}

/// An event of group `fingerprint` at `at`, with `more` merged over the defaults.
fn event(fingerprint: &str, at: i64, release: &str, more: Value) -> ErrorEvent {
    let mut e = json!({
        "event_id": format!("{:032x}", at),
        "timestamp": rfc3339(at),
        "unix_ms": at,
        "level": "ERROR",
        "message": "payment gateway timed out after 3 attempts",
        "target": "shop::payments",
        "fingerprint": fingerprint,
        "release": release,
        "environment": "staging",
        "tags": {"environment": "staging", "host": "web-1", "release": release, "service": "shop"},
    });
    let obj = e.as_object_mut().unwrap();
    for (k, v) in more.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    serde_json::from_value(e).unwrap()
}

/// The payment timeout as it is captured: chain, stack, request, breadcrumbs, fields.
fn timeout(at: i64, release: &str) -> ErrorEvent {
    event(
        "3c91c52b63c5243b",
        at,
        release,
        json!({
            "module": "shop::payments",
            "location": "src/payments.rs:88",
            "class": "external",
            "thread": "tokio-rt-worker",
            "chain": [
                {"type": "shop::PaymentError", "message": "payment gateway timed out after 3 attempts"},
                {"type": "std::io::Error", "message": "POST https://gateway.example/v1/charges: no answer within 50ms"}
            ],
            "frames": [
                {"function": "tokio::runtime::task::raw::poll", "file": "/cargo/tokio-1.47.0/src/runtime/task/raw.rs", "line": 255, "in_app": false},
                {"function": "<axum::routing::route::RouteFuture<E> as core::future::future::Future>::poll", "file": "/cargo/axum-0.8.4/src/routing/route.rs", "line": 149, "in_app": false},
                {"function": "<F as axum::handler::Handler<(M,T1),S>>::call::{{closure}}", "file": "/cargo/axum-0.8.4/src/handler/mod.rs", "line": 255, "in_app": false},
                {"function": "shop::checkout::place_order::{{closure}}", "file": "src/checkout.rs", "line": 41, "in_app": true},
                {"function": "shop::payments::charge", "file": "src/payments.rs", "line": 88, "in_app": true},
                {"function": "tracing_core::event::Event::dispatch", "file": "/cargo/tracing-core-0.1.35/src/event.rs", "line": 35, "in_app": false},
                {"function": "<tracing_subscriber::layer::layered::Layered<L,S> as tracing_core::subscriber::Subscriber>::event", "in_app": false}
            ],
            "request": {
                "request_id": "0193a5c2-7f3e",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
                "user_id": "314159",
                "route": "/checkout",
                "method": "POST"
            },
            "breadcrumbs": [
                {"timestamp": rfc3339(at - 240), "level": "INFO", "target": "shop::checkout", "message": "order received", "data": {"order_id": 42, "items": 2}},
                {"timestamp": rfc3339(at - 230), "level": "DEBUG", "target": "shop::db", "message": "SELECT orders", "data": {"duration_ms": 1.8}},
                {"timestamp": rfc3339(at - 120), "level": "WARN", "target": "shop::payments", "message": "Retry attempt 1: the gateway timed out", "data": {"attempt": 1, "backoff_ms": 20, "gateway": {"name": "acme", "region": "eu"}}}
            ],
            "fields": {"amount_cents": 1999, "attempt": 3, "error.class": "external", "order_id": 42, "request_id": "0193a5c2-7f3e"}
        }),
    )
}

/// A store across three releases: the payment timeout in 1.0, gone in 1.1, back in 1.2 (a
/// regression); a panic once in 1.0; a sync error new in 1.1.
fn store(dir: &Path) {
    let db = dir.join("errors.db");
    let mut v10 = LocalStore::open_at(&db, "1.0", T0).unwrap();
    for h in 1..=3 {
        v10.record(&timeout(T0 + h * HOUR, "1.0")).unwrap();
    }
    v10.record(&event(
        "350d6d05a39876da",
        T0 + 4 * HOUR,
        "1.0",
        json!({
            "level": "CRITICAL",
            "message": "panicked: order 13's shipping label is missing",
            "target": "shop::fulfilment",
            "location": "src/fulfilment.rs:120",
            "frames": [
                {"function": "std::panicking::begin_panic", "in_app": false},
                {"function": "shop::fulfilment::ship", "file": "src/fulfilment.rs", "line": 120, "in_app": true}
            ],
            "request": {"route": "ship_order"}
        }),
    ))
    .unwrap();
    drop(v10);
    let mut v11 = LocalStore::open_at(&db, "1.1", T0 + 10 * HOUR).unwrap();
    for h in 11..=14 {
        v11.record(&event(
            "92eda502ed807626",
            T0 + h * HOUR,
            "1.1",
            json!({
                "message": "stock reconciliation failed",
                "chain": [{"type": "shop::SyncError", "message": "stock reconciliation failed"}],
                "target": "shop::stock",
            }),
        ))
        .unwrap();
    }
    drop(v11);
    let mut v12 = LocalStore::open_at(&db, "1.2", T0 + 20 * HOUR).unwrap();
    v12.record(&timeout(T0 + 20 * HOUR + 5 * MIN, "1.2"))
        .unwrap();
    let r = v12
        .record(&timeout(T0 + 20 * HOUR + 15 * MIN, "1.2"))
        .unwrap();
    assert!(r.group.regression);
}

fn errors(dir: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "errors",
        "--db",
        "errors.db",
        "--color",
        "never",
        "--now",
        NOW,
    ];
    all.extend_from_slice(args);
    ok(dir, &all, &[])
}

#[test]
fn the_list_by_count() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let list = errors(dir.path(), &["list"]);
    snapshot("errors_list.txt", &list);
    assert_eq!(errors(dir.path(), &[]), list, "list is the default");
}

#[test]
fn one_group_and_its_latest_event() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let show = errors(dir.path(), &["show", "3c91c52b63c5243b"]);
    snapshot("errors_show.txt", &show);
    // A prefix is enough, in any case; --db may come after the subcommand.
    assert_eq!(errors(dir.path(), &["show", "3C91"]), show);
    assert_eq!(
        ok(
            dir.path(),
            &[
                "errors",
                "show",
                "3c91",
                "--db",
                "errors.db",
                "--color",
                "never",
                "--now",
                NOW
            ],
            &[]
        ),
        show
    );
    // Every frame on request, innermost first.
    let all = errors(dir.path(), &["show", "3c91", "--all-frames"]);
    let stack: Vec<&str> = all
        .lines()
        .skip_while(|l| !l.starts_with("stack"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            l.split_whitespace()
                .nth(if l.trim_start().starts_with('›') {
                    1
                } else {
                    0
                })
                .unwrap()
        })
        .collect();
    assert_eq!(
        stack,
        [
            "<tracing_subscriber::layer::layered::Layered<L,S>",
            "tracing_core::event::Event::dispatch",
            "shop::payments::charge",
            "shop::checkout::place_order::{{closure}}",
            "<F",
            "<axum::routing::route::RouteFuture<E>",
            "tokio::runtime::task::raw::poll",
        ],
        "{all}"
    );
    let panic = errors(dir.path(), &["show", "350d"]);
    assert!(
        panic.starts_with("CRITICAL  panicked: order 13's shipping label is missing  NEW\n"),
        "{panic}"
    );
    assert!(panic.contains("  route       ship_order\n"), "{panic}");
    assert!(
        !panic.contains("\nerror\n"),
        "no chain, no error section: {panic}"
    );
}

#[test]
fn the_store_is_found_by_environment_then_in_the_strata_directory() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let list = errors(dir.path(), &["list"]);
    let db = dir.path().join("errors.db");
    let elsewhere = tempfile::tempdir().unwrap();
    let from_env = ok(
        elsewhere.path(),
        &["errors", "--color", "never", "--now", NOW],
        &[("STRATA_ERRORS_DB", db.to_str().unwrap())],
    );
    let expected = list
        .replace("in errors.db,", &format!("in {},", db.display()))
        .replace(
            "`strata errors --db errors.db show ID`",
            "`strata errors show ID`",
        );
    assert_eq!(from_env, expected);
    std::fs::create_dir(elsewhere.path().join(".strata")).unwrap();
    std::fs::copy(&db, elsewhere.path().join(".strata/errors.db")).unwrap();
    let from_dir = ok(
        elsewhere.path(),
        &["errors", "--color", "never", "--now", NOW],
        &[],
    );
    assert_eq!(
        from_dir,
        expected.replace(&db.display().to_string(), ".strata/errors.db")
    );
}

#[test]
fn looking_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    // Looked at with today's clock…
    errors(dir.path(), &["list"]);
    let out = strata(
        dir.path(),
        &["errors", "--db", "errors.db", "show", "9"],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    // …the store has no new release: the sync error, last seen in 1.1, goes on in 1.2
    // without counting as a regression (a release recorded by looking would have made it one).
    let mut v12 = LocalStore::open_at(dir.path().join("errors.db"), "1.2", T0 + 20 * HOUR).unwrap();
    let r = v12
        .record(&event("92eda502ed807626", T0 + 21 * HOUR, "1.2", json!({})))
        .unwrap();
    assert!(!r.group.regression, "{r:?}");
    assert_eq!(r.group.count, 5);
}

#[test]
fn colours_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    for args in [&["list"][..], &["show", "3c91"]] {
        let plain = errors(dir.path(), args);
        assert!(!plain.contains('\x1b'));
        let mut all = vec![
            "errors",
            "--db",
            "errors.db",
            "--color",
            "always",
            "--now",
            NOW,
        ];
        all.extend_from_slice(args);
        let coloured = ok(dir.path(), &all, &[]);
        assert!(
            coloured.contains("\x1b[1;31mREGRESSION\x1b[0m"),
            "{coloured}"
        );
        assert_eq!(strip_sgr(&coloured), plain);
    }
}

#[test]
fn hostile_text_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LocalStore::open_at(dir.path().join("errors.db"), "1.0\x1b[2J", T0).unwrap();
    let evil = "boom\x1b[2J\x1b]0;pwned\x07\r\nFAKE LINE \u{202e}gnp.exe\u{2028}";
    store
        .record(&event(
            "eeee",
            T0 + HOUR,
            "1.0\x1b[2J",
            json!({
                "level": "ERROR\x1b[5m",
                "message": evil,
                "chain": [{"type": "x\x1b[31m::E", "message": evil}, {"message": evil}],
                "frames": [{"function": "evil\x1b[2J::f", "file": "a\rb.rs", "line": 1, "in_app": true}],
                "request": {"request_id": evil, "user_id": evil, "route": evil, "method": evil, "trace_id": evil},
                "breadcrumbs": [{"timestamp": rfc3339(T0), "level": "INFO", "target": evil, "message": evil, "data": {evil: evil}}],
                "tags": {evil: evil},
                "fields": {evil: evil, "n": [evil]}
            }),
        ))
        .unwrap();
    drop(store);
    for color in ["always", "never"] {
        for args in [&["list"][..], &["show", "eeee"]] {
            let mut all = vec![
                "errors",
                "--db",
                "errors.db",
                "--color",
                color,
                "--now",
                NOW,
            ];
            all.extend_from_slice(args);
            let out = ok(dir.path(), &all, &[]);
            assert_terminal_safe(&out);
            assert!(
                strip_sgr(&out)
                    .contains(r"boom\x1b[2J\x1b]0;pwned\x07\r\nFAKE LINE \u{202e}gnp.exe\u{2028}"),
                "{out}"
            );
        }
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        fails(d, &["errors", "--db", "nope.db"], &[]),
        "strata: no error store at nope.db: nothing captured yet, or set STRATA_ERRORS_DB\n"
    );
    assert_eq!(
        fails(d, &["errors", "show", "3c91"], &[]),
        "strata: no error store at .strata/errors.db: nothing captured yet, or set STRATA_ERRORS_DB\n"
    );
    assert!(!d.join(".strata").exists(), "looking created nothing");
    std::fs::write(
        d.join("notes.db"),
        "some notes, not a database, long enough to tell",
    )
    .unwrap();
    let e = fails(d, &["errors", "--db", "notes.db"], &[]);
    assert!(e.starts_with("strata: error store notes.db: "), "{e}");
    assert!(e.ends_with(" (not a strata error store?)\n"), "{e}");

    store(d);
    assert_eq!(
        fails(d, &["errors", "--db", "errors.db", "show", "ffff"], &[]),
        "strata: no error group ffff in errors.db; see `strata errors --db errors.db list`\n"
    );
    assert_eq!(
        fails(d, &["errors", "--db", "errors.db", "show", "3"], &[]),
        "strata: 3 is the start of 2 error groups in errors.db: 350d6d05a39876da, 3c91c52b63c5243b; \
         give more of the ID\n"
    );
    assert_eq!(
        fails(d, &["errors", "--db", "errors.db", "show", ""], &[]),
        "strata: no error group  in errors.db; see `strata errors --db errors.db list`\n"
    );

    let empty = tempfile::tempdir().unwrap();
    drop(LocalStore::open(empty.path().join("errors.db"), "1.0").unwrap());
    assert_eq!(
        ok(empty.path(), &["errors", "--db", "errors.db"], &[]),
        "no errors in errors.db\n"
    );
}
