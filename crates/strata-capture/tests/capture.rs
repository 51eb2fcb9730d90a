//! The capture layer with the local store: what an error event carries, breadcrumbs per
//! request, business errors as breadcrumbs, grouping, redaction, bounded queues, bad input.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use strata_capture::{Capture, CaptureError, ErrorEvent, LocalStore};
use strata_core::{Classify, ErrorClass, critical, log_error};
use tracing_subscriber::prelude::*;

mod support;
use support::{FakeTrace, PaymentError};

#[derive(Debug)]
struct Declined(u32);
impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "card {} declined", self.0)
    }
}
impl std::error::Error for Declined {}
impl Classify for Declined {
    fn class(&self) -> ErrorClass {
        ErrorClass::Business
    }
}

struct Setup {
    dir: tempfile::TempDir,
    guard: strata_capture::CaptureGuard,
    dispatch: tracing::Dispatch,
}

impl Setup {
    fn new(capture: impl FnOnce(Capture) -> Capture) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = capture(
            Capture::new()
                .with_release("1.0.0")
                .with_environment("test")
                .with_service("shop")
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
        assert!(self.guard.flush(Duration::from_secs(10)));
    }

    fn store(&self) -> LocalStore {
        LocalStore::open(self.dir.path().join("errors.db"), "1.0.0").unwrap()
    }

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

#[test]
fn an_error_event_carries_chain_context_fields_breadcrumbs_and_stack() {
    let s = Setup::new(|c| c);
    s.run(|| {
        let request = tracing::info_span!(
            "request",
            request_id = "req-42",
            method = "POST",
            route = "/v1/charges",
            user_id = 314_159_u64
        );
        let _r = request.enter();
        tracing::info!(amount_cents = 500, "charging the card");
        tracing::warn!(attempt = 2, "gateway slow");
        let handler = tracing::info_span!("charge", currency = "EUR");
        let _h = handler.enter();
        log_error!(
            PaymentError(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "read timed out after 5s"
            )),
            attempt = 3,
            "payment gateway request failed"
        );
    });
    let events = s.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.level, "ERROR");
    assert_eq!(e.message, "payment gateway request failed");
    assert_eq!(e.class.as_deref(), Some("external"));
    assert_eq!(e.chain.len(), 2);
    assert_eq!(
        e.chain[0].ty.as_deref(),
        Some("capture::support::PaymentError")
    );
    assert_eq!(e.chain[0].message, "charging the card failed");
    assert_eq!(e.chain[1].ty.as_deref(), Some("std::io::Error"));
    assert_eq!(e.chain[1].message, "read timed out after 5s");
    assert_eq!(e.request.request_id.as_deref(), Some("req-42"));
    assert_eq!(e.request.method.as_deref(), Some("POST"));
    assert_eq!(e.request.route.as_deref(), Some("/v1/charges"));
    assert_eq!(e.request.user_id.as_deref(), Some("314159"));
    assert_eq!(e.request.trace_id.as_deref(), Some(&*"ab".repeat(16)));
    assert_eq!(e.request.span_id.as_deref(), Some(&*"cd".repeat(8)));
    assert_eq!(e.fields["attempt"], 3);
    assert_eq!(e.fields["currency"], "EUR");
    assert_eq!(e.tags["service"], "shop");
    assert_eq!(e.tags["environment"], "test");
    assert_eq!(e.tags["release"], "1.0.0");
    assert!(e.tags.contains_key("host"));
    assert_eq!(e.release.as_deref(), Some("1.0.0"));
    let crumbs: Vec<&str> = e.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(crumbs, ["charging the card", "gateway slow"]);
    assert_eq!(e.breadcrumbs[1].level, "WARN");
    assert_eq!(e.breadcrumbs[0].data["amount_cents"], 500);
    assert_eq!(e.fingerprint.len(), 16);
    // The stack: this test's function is an in-app frame, the capture machinery is cut.
    let f = e
        .frames
        .iter()
        .find(|f| f.function.contains("an_error_event_carries"))
        .expect("the test function is on the stack");
    assert!(f.in_app, "{f:?}");
    assert!(
        !e.frames
            .last()
            .unwrap()
            .function
            .starts_with("strata_capture::"),
        "innermost frame: {:?}",
        e.frames.last()
    );
}

#[test]
fn breadcrumbs_belong_to_their_request_and_business_errors_are_only_breadcrumbs() {
    let s = Setup::new(|c| c);
    s.run(|| {
        let a = tracing::info_span!("request", request_id = "a");
        let b = tracing::info_span!("request", request_id = "b");
        // Interleaved on one thread, as async requests are.
        a.in_scope(|| tracing::info!("a1"));
        b.in_scope(|| tracing::info!("b1"));
        a.in_scope(|| log_error!(Declined(7), "declined"));
        b.in_scope(|| tracing::info!("b2"));
        a.in_scope(|| critical!("ledger unreachable"));
        // Logged after the error: not part of its history (copied later, on the capture thread).
        a.in_scope(|| tracing::info!("a-after"));
        b.in_scope(|| tracing::error!("b failed"));
        // Outside any request: the process's breadcrumbs.
        tracing::info!("startup done");
        tracing::error!("background job failed");
    });
    let events = s.events();
    let by = |m: &str| events.iter().find(|e| e.message == m).unwrap();
    let crumbs = |e: &ErrorEvent| -> Vec<String> {
        e.breadcrumbs.iter().map(|b| b.message.clone()).collect()
    };
    assert_eq!(events.len(), 3, "the business error is not an issue");
    assert_eq!(crumbs(by("ledger unreachable")), ["a1", "declined"]);
    assert_eq!(by("ledger unreachable").level, "CRITICAL");
    assert_eq!(crumbs(by("b failed")), ["b1", "b2"]);
    assert!(crumbs(by("background job failed")).contains(&"startup done".to_owned()));
    assert_eq!(s.guard.stats().business, 1);
}

#[test]
fn a_failed_request_is_one_issue_and_a_bare_500_is_still_captured() {
    let s = Setup::new(|c| c);
    s.run(|| {
        // The handler logs why; the middleware's access line then says the request failed.
        tracing::info_span!("request", request_id = "a").in_scope(|| {
            tracing::error!("payment gateway timed out");
            tracing::error!(target: "strata_request_id::server", event = "http_request", status_code = 502_u64, "request failed");
        });
        // A handler that answered 500 without logging anything: the access line is all there is.
        tracing::info_span!("request", request_id = "b").in_scope(|| {
            tracing::error!(target: "strata_request_id::server", event = "http_request", status_code = 500_u64, "request failed");
        });
    });
    let events = s.events();
    let mut seen: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (e.message.as_str(), e.request.request_id.as_deref()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("payment gateway timed out", Some("a")),
            ("request failed", Some("b"))
        ],
        "{events:#?}"
    );
}

#[test]
fn requests_inside_a_long_lived_span_keep_their_own_breadcrumbs() {
    let s = Setup::new(|c| c);
    s.run(|| {
        let server = tracing::info_span!("server");
        let _s = server.enter();
        tracing::info!("listening");
        let a = tracing::info_span!("request", request_id = "a");
        let b = tracing::info_span!("request", request_id = "b");
        a.in_scope(|| tracing::info!("a1"));
        b.in_scope(|| tracing::info!("b1"));
        b.in_scope(|| tracing::error!("b failed"));
    });
    let events = s.events();
    let crumbs: Vec<&str> = events[0]
        .breadcrumbs
        .iter()
        .map(|b| b.message.as_str())
        .collect();
    assert_eq!(crumbs, ["b1"], "not the server's nor request a's");
}

#[test]
fn the_same_error_groups_and_a_different_one_does_not() {
    let s = Setup::new(|c| c);
    s.run(|| {
        for order in [17, 912] {
            log_error!(
                PaymentError(std::io::Error::other(format!("order {order} refused"))),
                "charging order {order} failed"
            );
        }
        tracing::error!("inventory sync failed");
    });
    let store = s.store();
    let groups = store.groups().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    let payment = groups
        .iter()
        .find(|g| g.title.contains("PaymentError"))
        .unwrap();
    assert_eq!(payment.count, 2);
    assert!(payment.new_in_release && !payment.regression);
    assert_eq!(payment.first_release, "1.0.0");
    let other = groups
        .iter()
        .find(|g| g.title.contains("inventory"))
        .unwrap();
    assert_eq!(other.count, 1);
}

#[test]
fn the_before_send_hook_redacts_and_long_values_are_cut() {
    let s = Setup::new(|c| {
        c.with_max_field_len(64).with_before_send(|e| {
            if e.message.contains("drop me") {
                return false;
            }
            e.visit_text(|key, text| {
                if key == Some("api_key") {
                    *text = "[redacted]".to_owned();
                }
                *text = text.replace("hunter2", "[redacted]");
            });
            true
        })
    });
    let huge = "x".repeat(100_000);
    s.run(|| {
        tracing::error!(api_key = "sk_live_51H8", "login with hunter2 failed");
        tracing::error!("drop me");
        tracing::error!(blob = %huge, "{huge}");
    });
    let events = s.events();
    assert_eq!(events.len(), 2);
    assert_eq!(s.guard.stats().filtered, 1);
    let login = events
        .iter()
        .find(|e| e.message.starts_with("login"))
        .unwrap();
    assert_eq!(login.message, "login with [redacted] failed");
    assert_eq!(login.fields["api_key"], "[redacted]");
    let body = serde_json::to_string(&events).unwrap();
    assert!(!body.contains("hunter2") && !body.contains("sk_live_"));
    let big = events.iter().find(|e| e.message.starts_with('x')).unwrap();
    assert!(big.message.len() <= 64, "{}", big.message.len());
    assert!(big.fields["blob"].as_str().unwrap().len() <= 64);
}

#[test]
fn a_full_queue_drops_and_counts_without_holding_up_the_caller() {
    // The hook blocks the capture thread until released: the queue (2) fills.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let g = Arc::clone(&gate);
    let s = Setup::new(move |c| {
        c.with_queue_capacity(2).with_before_send(move |_| {
            let (open, cv) = &*g;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            true
        })
    });
    tracing::dispatcher::with_default(&s.dispatch, || {
        for i in 0..50 {
            tracing::error!(i, "failure {i}");
        }
    });
    let stats = s.guard.stats();
    assert_eq!(stats.queued + stats.dropped, 50);
    assert!(stats.queued <= 3, "{stats:?}");
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    assert!(s.guard.flush(Duration::from_secs(10)));
    assert_eq!(s.guard.stats().stored, stats.queued);
}

#[test]
fn report_logs_at_the_class_level_and_captures_when_the_class_says_so() {
    let s = Setup::new(|c| c);
    s.run(|| {
        strata_capture::report(&PaymentError(std::io::Error::other("reset")));
        strata_capture::report(&Declined(3));
    });
    let events = s.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "charging the card failed");
    assert_eq!(events[0].class.as_deref(), Some("external"));
    // The call site is the caller's, not strata-capture's.
    let at = events[0].location.as_deref().unwrap();
    assert!(at.contains("tests/capture.rs:"), "{at}");
    assert_eq!(s.guard.stats().business, 1);
}

#[test]
fn bad_dsns_are_rejected_at_start_without_echoing_the_key() {
    for bad in [
        "not a dsn",
        "https://o1.ingest.sentry.io/1",
        "https://SECRETKEY@o1.ingest.sentry.io/",
        "ftp://SECRETKEY@host/1",
    ] {
        let err = Capture::new().with_dsn(bad).unwrap_err();
        assert!(
            matches!(err, CaptureError::InvalidDsn { .. }),
            "{bad}: {err}"
        );
        assert!(!err.to_string().contains("SECRETKEY"), "{err}");
    }
    let ok = Capture::new()
        .with_dsn("https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42")
        .unwrap();
    assert!(!format!("{ok:?}").contains("0123456789abcdef"));
}

#[test]
fn an_unreachable_sentry_server_leaves_the_application_unaffected() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (layer, guard) = Capture::new()
        .with_dsn(&format!(
            "http://0123456789abcdef0123456789abcdef@127.0.0.1:{port}/1"
        ))
        .unwrap()
        .start()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..200 {
            tracing::error!(i, "failure {i}");
        }
    });
    // Everything is either handed to the transport or counted as dropped; nothing panicked.
    assert!(guard.flush(Duration::from_secs(10)));
    let stats = guard.stats();
    assert_eq!(stats.sent + stats.dropped, 200, "{stats:?}");
    // And what the transport could not deliver is counted too: every event is lost, and says so.
    assert_eq!(stats.undelivered, stats.sent, "{stats:?}");
    assert_eq!(stats.lost(), 200, "{stats:?}");
}
