//! The local store across simulated releases: counts, first/last seen, new and regression
//! flags, surviving a restart, and its size bounds.

use serde_json::json;
use strata_capture::{ErrorEvent, LocalStore};

const HOUR: i64 = 3_600_000;

fn event(fingerprint: &str, at_ms: i64, message: &str) -> ErrorEvent {
    serde_json::from_value(json!({
        "event_id": format!("{:032x}", at_ms),
        "timestamp": "2026-11-25T00:00:00.000000Z",
        "unix_ms": at_ms,
        "level": "ERROR",
        "message": message,
        "target": "shop::orders",
        "chain": [{"type": "shop::OrderError", "message": message}],
        "fingerprint": fingerprint,
        "breadcrumbs": [{"timestamp": "2026-11-25T00:00:00.000000Z", "level": "INFO",
                          "target": "shop", "message": "before", "data": {"n": 1}}],
    }))
    .unwrap()
}

#[test]
fn groups_are_new_in_their_first_release_and_regress_after_a_clean_release() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("errors.db");
    let t0 = 1_700_000_000_000;

    // 1.0: two errors, one of them twice.
    let mut v1 = LocalStore::open_at(&db, "1.0", t0).unwrap();
    let r = v1
        .record(&event("aaaa", t0 + HOUR, "order 1 failed"))
        .unwrap();
    assert!(r.first && r.group.new_in_release && !r.group.regression);
    let r = v1
        .record(&event("aaaa", t0 + 2 * HOUR, "order 2 failed"))
        .unwrap();
    assert!(!r.first);
    assert_eq!(r.group.count, 2);
    assert_eq!(r.group.first_seen_ms, t0 + HOUR);
    assert_eq!(r.group.last_seen_ms, t0 + 2 * HOUR);
    assert_eq!(r.group.title, "shop::OrderError: order 2 failed");
    v1.record(&event("bbbb", t0 + 3 * HOUR, "sync failed"))
        .unwrap();
    drop(v1);

    // 1.1 (a restart): "bbbb" continues — neither new nor a regression; "aaaa" is not seen.
    let mut v11 = LocalStore::open_at(&db, "1.1", t0 + 10 * HOUR).unwrap();
    let b = v11
        .record(&event("bbbb", t0 + 11 * HOUR, "sync failed"))
        .unwrap();
    assert!(!b.group.new_in_release && !b.group.regression, "{b:?}");
    assert_eq!(
        (
            b.group.first_release.as_str(),
            b.group.last_release.as_str()
        ),
        ("1.0", "1.1")
    );
    let c = v11
        .record(&event("cccc", t0 + 12 * HOUR, "new in 1.1"))
        .unwrap();
    assert!(c.first && c.group.new_in_release);
    drop(v11);

    // 1.2: "aaaa" comes back after 1.1 went by without it — a regression.
    let mut v12 = LocalStore::open_at(&db, "1.2", t0 + 20 * HOUR).unwrap();
    let a = v12
        .record(&event("aaaa", t0 + 21 * HOUR, "order 3 failed"))
        .unwrap();
    assert!(a.group.regression, "{a:?}");
    assert!(!a.group.new_in_release);
    assert_eq!(a.group.count, 3);
    assert_eq!(a.group.last_release, "1.2");

    drop(v12);
    // 1.3: it continues — no longer a regression (the flag is about its return).
    let mut v13 = LocalStore::open_at(&db, "1.3", t0 + 30 * HOUR).unwrap();
    let a = v13
        .record(&event("aaaa", t0 + 31 * HOUR, "order 4 failed"))
        .unwrap();
    assert!(!a.group.regression, "{a:?}");
    let v12 = v13;

    // Everything survived the restarts and reads back, most recently seen first.
    let groups = v12.groups().unwrap();
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["aaaa", "cccc", "bbbb"]);
    let (g, events) = v12.group("aaaa").unwrap().unwrap();
    assert_eq!(g.count, 4);
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].message, "order 4 failed", "latest first");
    assert_eq!(events[0].breadcrumbs[0].data["n"], 1);
    assert!(v12.group("zzzz").unwrap().is_none());
}

#[test]
fn the_store_is_bounded_in_events_per_group_events_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LocalStore::open(dir.path().join("errors.db"), "1.0")
        .unwrap()
        .with_limits(3, 20, 10);
    let t0 = 1_700_000_000_000;
    for i in 0..50 {
        store.record(&event("same", t0 + i, "again")).unwrap();
    }
    let (g, events) = store.group("same").unwrap().unwrap();
    assert_eq!(g.count, 50, "the count keeps counting");
    assert_eq!(events.len(), 3);
    for i in 0..100 {
        store
            .record(&event(&format!("g{i:03}"), t0 + 1000 + i, "distinct"))
            .unwrap();
    }
    let groups = store.groups().unwrap();
    assert_eq!(groups.len(), 10);
    assert_eq!(groups[0].id, "g099", "the most recently seen are kept");
    assert!(store.event_count().unwrap() <= 20);
}

#[test]
fn a_corrupt_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("errors.db");
    std::fs::write(
        &db,
        b"this is not a database, just some text that is long enough",
    )
    .unwrap();
    let err = LocalStore::open(&db, "1.0").unwrap_err();
    assert!(err.to_string().contains("errors.db"), "{err}");
}
