//! Error events to a real Sentry-protocol server: Bugsink, installed by `scripts/test.sh`
//! (`scripts/bugsink.sh`) and started here on 127.0.0.1; what arrived is read back through its
//! REST API.

use std::time::Duration;

use strata_capture::Capture;
use strata_core::log_error;
use strata_testkit::Bugsink;
use tracing_subscriber::prelude::*;

mod support;
use support::{FakeTrace, PaymentError};

#[test]
fn errors_reach_bugsink_grouped_with_breadcrumbs_tags_user_request_and_trace() {
    let Some(bugsink) = Bugsink::start() else {
        return;
    };
    let (layer, guard) = Capture::new()
        .with_dsn(bugsink.dsn())
        .unwrap()
        .with_release("2.0.0")
        .with_environment("ci")
        .with_service("shop")
        .start()
        .unwrap();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(FakeTrace(
                [0x4b; 16],
                [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
            ))
            .with(layer),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        for order in [17, 912] {
            let request = tracing::info_span!(
                "request",
                request_id = %format!("req-{order}"),
                user_id = 314_159_u64,
                method = "POST",
                route = "/v1/charges"
            );
            let _r = request.enter();
            tracing::info!(order, "charging the card");
            log_error!(
                PaymentError(std::io::Error::other(format!(
                    "order {order} refused by the gateway"
                ))),
                "charging order {order} failed"
            );
        }
        tracing::error!(shard = 3, "inventory sync failed");
    });
    assert!(guard.flush(Duration::from_secs(20)), "flush timed out");
    assert_eq!(guard.stats().sent, 3);

    // Bugsink digests synchronously in the ingest request (TASK_ALWAYS_EAGER).
    let issues = bugsink.issues();
    assert_eq!(
        issues.len(),
        2,
        "same error twice → one issue; another → a second: {issues:#?}"
    );
    let payment = issues
        .iter()
        .find(|i| {
            i["calculated_type"]
                .as_str()
                .unwrap_or_default()
                .contains("PaymentError")
        })
        .expect("the payment issue");
    assert_eq!(payment["digested_event_count"], 2);
    let events = bugsink.events(payment["id"].as_str().unwrap());
    assert_eq!(events.len(), 2);
    let e = events
        .iter()
        .find(|e| e["tags"]["request_id"] == "req-912")
        .expect("the second occurrence");
    // `error` is Sentry's default level, which the sentry crate leaves out.
    assert!(
        e["level"].is_null() || e["level"] == "error",
        "{}",
        e["level"]
    );
    assert_eq!(e["release"], "2.0.0");
    assert_eq!(e["environment"], "ci");
    assert_eq!(e["tags"]["service"], "shop");
    assert_eq!(e["tags"]["error.class"], "external");
    assert_eq!(e["user"]["id"], "314159");
    assert_eq!(e["request"]["method"], "POST");
    assert_eq!(e["contexts"]["trace"]["trace_id"], "4b".repeat(16));
    assert_eq!(e["contexts"]["trace"]["span_id"], "00f067aa0ba902b7");
    let values = e["exception"]["values"].as_array().unwrap();
    assert_eq!(values.len(), 2, "the chain, innermost first");
    assert_eq!(values[0]["type"], "std::io::Error");
    assert_eq!(values[0]["value"], "order 912 refused by the gateway");
    assert_eq!(values[1]["type"], "bugsink::support::PaymentError");
    let frames = values[1]["stacktrace"]["frames"]
        .as_array()
        .expect("a stack");
    assert!(frames.iter().any(|f| {
        f["in_app"] == true
            && f["function"]
                .as_str()
                .unwrap()
                .contains("errors_reach_bugsink")
    }));
    let crumbs = e["breadcrumbs"]["values"].as_array().unwrap();
    assert_eq!(
        crumbs.len(),
        1,
        "this request's breadcrumbs only: {crumbs:?}"
    );
    assert_eq!(crumbs[0]["message"], "charging the card");
    assert_eq!(crumbs[0]["data"]["order"], 912);
    assert_eq!(e["fingerprint"][0].as_str().unwrap().len(), 16);
}

#[test]
fn secrets_never_reach_bugsink_with_redaction_on() {
    let Some(bugsink) = Bugsink::start() else {
        return;
    };
    let (layer, guard) = Capture::new()
        .with_dsn(bugsink.dsn())
        .unwrap()
        .with_service("shop")
        .with_redaction(Some(std::sync::Arc::new(strata_core::Redaction::new())))
        .start()
        .unwrap();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::default())
            .with(layer),
    );
    tracing::dispatcher::with_default(&dispatch, || {
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
            note = "retrying with bearer AbCdEf0123456789AbCdEf",
            "calling https://admin:adm1n!@intranet.example.com/reports"
        );
        log_error!(
            PaymentError(std::io::Error::other(
                "Cookie: session=9f8e7d6c5b4a; theme=dark"
            )),
            password = "hunter2",
            cvv = 737_u64,
            "charging card 4111111111111111 failed: Authorization: Bearer mF_9.B5f-4.1JqM"
        );
    });
    assert!(guard.flush(Duration::from_secs(20)), "flush timed out");
    assert_eq!(guard.stats().sent, 1);
    let issues = bugsink.issues();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let events = bugsink.events(issues[0]["id"].as_str().unwrap());
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let stored = format!("{e}\n{}", issues[0]);
    for secret in [
        "hunter2",
        "at-77f1e2d3c4b5",
        "sess_5f2b8c1d9e",
        "t-secret-1",
        "AbCdEf0123456789AbCdEf",
        "adm1n!",
        "9f8e7d6c5b4a",
        "4111111111111111",
        "mF_9.B5f-4.1JqM",
    ] {
        assert!(
            !stored.contains(secret),
            "{secret:?} reached Bugsink: {stored}"
        );
    }
    assert_eq!(
        e["message"]
            .as_str()
            .or_else(|| e["logentry"]["message"].as_str()),
        Some("charging card [REDACTED:card] failed: Authorization: [REDACTED]"),
        "{e}"
    );
    for key in ["password", "cvv", "session_id"] {
        assert_eq!(e["extra"][key], "[REDACTED]", "{key}: {e}");
    }
    assert_eq!(e["user"]["id"], "42");
    assert_eq!(
        e["transaction"],
        "/login?next=/home&access_token=[REDACTED]"
    );
    let values = e["exception"]["values"].as_array().unwrap();
    assert_eq!(values[0]["value"], "Cookie: [REDACTED]");
    let crumb = &e["breadcrumbs"]["values"][0];
    assert_eq!(
        crumb["message"],
        "calling https://admin:[REDACTED]@intranet.example.com/reports"
    );
    assert_eq!(crumb["data"]["token"], "[REDACTED]");
    assert_eq!(
        crumb["data"]["note"],
        "retrying with bearer [REDACTED:bearer]"
    );
}
