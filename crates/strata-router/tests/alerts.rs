//! Alert sinks against a local HTTP receiver that checks each service's documented payload
//! format (Slack Block Kit, Discord webhooks, PagerDuty Events v2) and plays failing servers:
//! down, slow, 500, 429 with `Retry-After`.

mod support;

use std::time::Duration;

use serde_json::Value;
use strata_core::{Classify, ErrorClass, Severity, critical, log_error};
use strata_router::{
    AlertError, AlertPolicy, AlertSink, Destination, Retry, Route, RouteFilter, RouterLayer,
};
use support::{Receiver, Reply};
use tracing_subscriber::prelude::*;

fn fast_retry() -> Retry {
    Retry::default()
        .with_attempts(3)
        .with_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

/// Runs `f` with a router sending ERROR..CRITICAL (or `min`..) to `sink`.
fn with_alerts(sink: AlertSink, min: Severity, f: impl FnOnce()) {
    let filter = RouteFilter::default().with_levels(min, Severity::Critical);
    let router = RouterLayer::new().with_route(Route::alert(filter, sink));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), f);
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

#[derive(Debug)]
struct PaymentError(std::io::Error);
impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("charging the card failed")
    }
}
impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl Classify for PaymentError {
    fn class(&self) -> ErrorClass {
        ErrorClass::External
    }
}

#[derive(Debug)]
struct Declined;
impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}
impl std::error::Error for Declined {}
impl Classify for Declined {
    fn class(&self) -> ErrorClass {
        ErrorClass::Business
    }
}

const HOSTILE: &str =
    "db down <!channel> <@U123> <https://evil.example|click here> & @everyone\r\n\u{1b}[31mforged";

#[test]
fn slack_payload_follows_block_kit_limits_and_cannot_mention_or_link() {
    let rx = Receiver::start();
    let (sink, guard) = AlertSink::new(Destination::slack(&rx.url("/slack")).unwrap())
        .spawn()
        .unwrap();
    let long = "x".repeat(10_000);
    with_alerts(sink, Severity::Error, || {
        critical!(order_id = 42, detail = %long, "{HOSTILE}");
    });
    assert!(guard.flush(Duration::from_secs(10)));
    let hits = rx.wait_for_hits(1);
    let hit = &hits[0];
    assert_eq!(hit.path, "/slack");
    assert_eq!(hit.headers["content-type"], "application/json");
    let b = &hit.body;
    // `text` is required as the notification fallback when blocks are sent.
    assert!(chars(&b["text"]) > 0 && chars(&b["text"]) <= 3000);
    let blocks = b["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(block["text"]["type"], "plain_text");
                assert!(chars(&block["text"]["text"]) <= 150);
                assert!(block["text"]["text"].as_str().unwrap().contains("CRITICAL"));
            }
            "section" => {
                if let Some(t) = block.get("text") {
                    assert_eq!(t["type"], "mrkdwn");
                    assert!(chars(&t["text"]) <= 3000);
                }
                if let Some(fields) = block.get("fields") {
                    let fields = fields.as_array().unwrap();
                    assert!(fields.len() <= 10);
                    for f in fields {
                        assert!(chars(&f["text"]) <= 2000);
                    }
                }
                assert!(block.get("text").is_some() || block.get("fields").is_some());
            }
            "context" => {
                let el = block["elements"].as_array().unwrap();
                assert!(!el.is_empty() && el.len() <= 10);
            }
            other => panic!("unexpected block type {other}"),
        }
    }
    // Log content cannot ping a channel or user, or forge a link: <, > and & are escaped.
    let raw = b.to_string();
    for forbidden in ["<!channel>", "<@U123>", "<https://evil", "\u{1b}"] {
        assert!(
            !raw.contains(forbidden),
            "{forbidden:?} reached Slack: {raw}"
        );
    }
    assert!(raw.contains("&lt;!channel&gt;"));
    assert!(raw.contains("order_id"), "fields are shown");
}

#[test]
fn discord_payload_follows_documented_limits_and_mentions_nobody() {
    let rx = Receiver::start();
    let (sink, guard) = AlertSink::new(Destination::discord(&rx.url("/discord")).unwrap())
        .spawn()
        .unwrap();
    let long = "y".repeat(10_000);
    with_alerts(sink, Severity::Error, || {
        let err = PaymentError(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            long.clone(),
        ));
        let span = tracing::info_span!(
            "request",
            request_id = %"r".repeat(300),
            f1 = %long, f2 = %long, f3 = %long, f4 = %long, f5 = %long,
            f6 = %long, f7 = %long, f8 = %long, blank = "   "
        );
        let _g = span.enter();
        tracing::error!(
            error = &err as &dyn std::error::Error,
            a = 1,
            b = "two",
            "{HOSTILE} [Reset your password](https://evil.example) **bold**"
        );
    });
    assert!(guard.flush(Duration::from_secs(10)));
    let b = &rx.wait_for_hits(1)[0].body;
    assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
    let embeds = b["embeds"].as_array().expect("embeds");
    assert!(!embeds.is_empty() && embeds.len() <= 10);
    let e = &embeds[0];
    assert!(chars(&e["title"]) <= 256 && chars(&e["title"]) > 0);
    assert!(chars(&e["description"]) <= 4096);
    assert!(e["color"].is_u64());
    let ts = e["timestamp"].as_str().unwrap();
    assert!(ts.len() >= 20 && ts.ends_with('Z'), "ISO 8601: {ts}");
    let fields = e["fields"].as_array().unwrap();
    assert!(fields.len() <= 25);
    let mut total = chars(&e["title"]) + chars(&e["description"]) + chars(&e["footer"]["text"]);
    for f in fields {
        assert!(chars(&f["name"]) > 0 && chars(&f["name"]) <= 256);
        assert!(chars(&f["value"]) > 0 && chars(&f["value"]) <= 1024);
        total += chars(&f["name"]) + chars(&f["value"]);
    }
    assert!(chars(&e["footer"]["text"]) <= 2048);
    assert!(total <= 6000, "embed total {total} > 6000");
    let description = e["description"].as_str().unwrap();
    assert!(description.contains("caused by"));
    // Markdown in log content is escaped: no masked link, no bold.
    assert!(
        !description.contains("[Reset your password](https"),
        "{description}"
    );
    assert!(
        description.contains("\\[Reset your password\\]"),
        "{description}"
    );
    assert!(!description.contains("**bold**"));
}

#[test]
fn pagerduty_trigger_dedups_by_fingerprint_and_maps_severity() {
    let rx = Receiver::start();
    let key = "R0UT1NGKEY0123456789abcdefABCDEF";
    let (sink, guard) =
        AlertSink::new(Destination::pagerduty_at(key, &rx.url("/pagerduty")).unwrap())
            .with_policy(AlertPolicy::default().with_throttle(Duration::ZERO))
            .spawn()
            .unwrap();
    with_alerts(sink, Severity::Warn, || {
        critical!("disk 91% full on volume 3");
        critical!("disk 97% full on volume 8");
        tracing::error!("queue consumer stopped");
        tracing::warn!("cache cold");
    });
    assert!(guard.flush(Duration::from_secs(10)));
    let hits = rx.wait_for_hits(4);
    let bodies: Vec<&Value> = hits.iter().map(|h| &h.body).collect();
    for b in &bodies {
        assert_eq!(b["routing_key"], key);
        assert_eq!(b["event_action"], "trigger");
        let dedup = b["dedup_key"].as_str().unwrap();
        assert!(!dedup.is_empty() && dedup.len() <= 255);
        let p = &b["payload"];
        assert!(chars(&p["summary"]) > 0 && chars(&p["summary"]) <= 1024);
        assert!(chars(&p["source"]) > 0);
        assert!(
            ["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap())
        );
    }
    let by_summary = |needle: &str| {
        bodies
            .iter()
            .find(|b| b["payload"]["summary"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no alert with {needle}"))
    };
    let (d1, d2) = (by_summary("disk 91%"), by_summary("disk 97%"));
    assert_eq!(
        d1["dedup_key"], d2["dedup_key"],
        "same error, other numbers: one incident"
    );
    assert_eq!(d1["payload"]["severity"], "critical");
    let q = by_summary("queue consumer");
    assert_ne!(q["dedup_key"], d1["dedup_key"]);
    assert_eq!(q["payload"]["severity"], "error");
    assert_eq!(by_summary("cache cold")["payload"]["severity"], "warning");
}

#[test]
fn webhook_sends_the_event_and_configured_headers() {
    let rx = Receiver::start();
    let dest = Destination::webhook(&rx.url("/hook"))
        .unwrap()
        .with_header("Authorization", "Bearer s3cret")
        .unwrap();
    let (sink, guard) = AlertSink::new(dest).spawn().unwrap();
    with_alerts(sink, Severity::Error, || {
        let span = tracing::info_span!("request", request_id = "req-7", route = "/pay");
        let _g = span.enter();
        let err = PaymentError(std::io::Error::other("connection reset"));
        tracing::error!(
            error = &err as &dyn std::error::Error,
            amount = 1999,
            "payment failed"
        );
    });
    assert!(guard.flush(Duration::from_secs(10)));
    let hit = &rx.wait_for_hits(1)[0];
    assert_eq!(hit.headers["authorization"], "Bearer s3cret");
    let b = &hit.body;
    assert_eq!(b["kind"], "first");
    assert_eq!(b["severity"], "ERROR");
    assert_eq!(b["message"], "payment failed");
    assert_eq!(b["request_id"], "req-7");
    assert_eq!(b["occurrences"], 1);
    assert_eq!(b["event"]["amount"], 1999);
    assert_eq!(b["event"]["route"], "/pay");
    assert_eq!(b["fingerprint"].as_str().unwrap().len(), 16);
    let chain = b["error_chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert!(chain[1].as_str().unwrap().contains("connection reset"));
}

#[test]
fn policy_end_to_end_first_at_once_digest_business_never_external_escalates() {
    let rx = Receiver::start();
    let policy = AlertPolicy::default()
        .with_throttle(Duration::from_millis(400))
        .with_escalation(3, Duration::from_secs(60));
    let (sink, guard) = AlertSink::new(Destination::webhook(&rx.url("/hook")).unwrap())
        .with_policy(policy)
        .spawn()
        .unwrap();
    assert_eq!(sink.stats().accepted, 0);
    let filter = RouteFilter::default().with_levels(Severity::Warn, Severity::Critical);
    let router = RouterLayer::new().with_route(Route::alert(filter, sink));
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(router));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..38 {
            critical!(attempt = i, "worker {i} crashed");
        }
        for _ in 0..5 {
            log_error!(Declined, "payment refused");
        }
        for i in 0..2 {
            log_error!(PaymentError(std::io::Error::other(format!("timeout {i}"))));
        }
    });
    assert!(guard.flush(Duration::from_secs(10)));
    // The first crash at once; business errors never; the external error held at 2 of 3.
    let hits = rx.hits();
    assert_eq!(
        hits.len(),
        1,
        "{:?}",
        hits.iter().map(|h| &h.body["title"]).collect::<Vec<_>>()
    );
    assert_eq!(hits[0].body["kind"], "first");
    assert!(
        hits[0].body["message"]
            .as_str()
            .unwrap()
            .starts_with("worker 0 crashed")
    );

    tracing::dispatcher::with_default(&dispatch, || {
        log_error!(PaymentError(std::io::Error::other("timeout 3")));
    });
    // The third external error escalates; the crash repeats arrive as one digest when the
    // throttle window ends.
    let hits = rx.wait_for_hits(3);
    let kinds: Vec<&str> = hits
        .iter()
        .map(|h| h.body["kind"].as_str().unwrap())
        .collect();
    let escalated = hits
        .iter()
        .find(|h| h.body["kind"] == "repeated")
        .expect("escalated");
    assert_eq!(escalated.body["occurrences"], 3);
    assert_eq!(escalated.body["class"], "external");
    assert_eq!(escalated.body["text"], "occurred 3 times in the last 1 min");
    let digest = hits
        .iter()
        .find(|h| h.body["kind"] == "digest")
        .expect("digest");
    assert_eq!(digest.body["occurrences"], 37, "{kinds:?}");
    assert!(
        digest.body["text"]
            .as_str()
            .unwrap()
            .starts_with("occurred 37 more times in the last"),
        "{}",
        digest.body["text"]
    );
    assert_eq!(digest.body["fingerprint"], hits[0].body["fingerprint"]);
    // Received one window after the first alert, not before.
    assert!(digest.at.duration_since(hits[0].at) >= Duration::from_millis(350));
    drop(guard);
    assert_eq!(rx.hits().len(), 3, "no further alerts: {kinds:?}");
}

#[test]
fn server_errors_are_retried_until_accepted() {
    let rx = Receiver::start();
    rx.then(Reply::Status(500)).then(Reply::Status(503));
    let (sink, guard) = AlertSink::new(Destination::slack(&rx.url("/slack")).unwrap())
        .with_retry(fast_retry())
        .spawn()
        .unwrap();
    let stats = sink_stats_after(sink, &guard, || critical!("boom"));
    assert_eq!(rx.hits().len(), 3);
    assert_eq!((stats.sent, stats.retries, stats.failed), (1, 2, 0));
    let hits = rx.hits();
    assert!(
        hits.windows(2).all(|w| w[0].body == w[1].body),
        "each retry sends the same alert"
    );
}

/// Emits with `f` into an ERROR..CRITICAL route, flushes, and returns the sink's stats.
fn sink_stats_after(
    sink: AlertSink,
    guard: &strata_router::AlertGuard,
    f: impl FnOnce(),
) -> strata_router::AlertStats {
    with_alerts(sink, Severity::Error, f);
    assert!(guard.flush(Duration::from_secs(20)), "flush timed out");
    guard.stats()
}

#[test]
fn rate_limits_are_honoured_from_retry_after_and_discord_body() {
    let rx = Receiver::start();
    rx.then(Reply::RateLimited { header: "1" });
    let (sink, guard) = AlertSink::new(Destination::slack(&rx.url("/slack")).unwrap())
        .with_retry(fast_retry())
        .spawn()
        .unwrap();
    let stats = sink_stats_after(sink, &guard, || critical!("rate limited"));
    let hits = rx.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(stats.sent, 1);
    let gap = hits[1].at.duration_since(hits[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {gap:?}"
    );

    let rx = Receiver::start();
    rx.then(Reply::DiscordRateLimited { seconds: 0.6 });
    let (sink, guard) = AlertSink::new(Destination::discord(&rx.url("/discord")).unwrap())
        .with_retry(fast_retry())
        .spawn()
        .unwrap();
    let stats = sink_stats_after(sink, &guard, || critical!("rate limited"));
    let hits = rx.hits();
    assert_eq!((hits.len(), stats.sent), (2, 1));
    assert!(hits[1].at.duration_since(hits[0].at) >= Duration::from_millis(550));

    // A hostile Retry-After is capped.
    let rx = Receiver::start();
    rx.then(Reply::RateLimited { header: "99999999" });
    let (sink, guard) = AlertSink::new(Destination::slack(&rx.url("/slack")).unwrap())
        .with_retry(fast_retry().with_max_retry_after(Duration::from_millis(200)))
        .spawn()
        .unwrap();
    let stats = sink_stats_after(sink, &guard, || critical!("rate limited"));
    assert_eq!(stats.sent, 1);
}

#[test]
fn permanent_refusals_are_not_retried_and_down_receivers_are_given_up_on() {
    let rx = Receiver::start();
    rx.then(Reply::Status(404));
    let (sink, guard) = AlertSink::new(Destination::slack(&rx.url("/slack")).unwrap())
        .with_retry(fast_retry())
        .spawn()
        .unwrap();
    let stats = sink_stats_after(sink, &guard, || critical!("to a revoked webhook"));
    assert_eq!(rx.hits().len(), 1);
    assert_eq!((stats.sent, stats.failed, stats.retries), (0, 1, 0));

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (sink, guard) =
        AlertSink::new(Destination::webhook(&format!("http://127.0.0.1:{port}/x")).unwrap())
            .with_retry(fast_retry())
            .spawn()
            .unwrap();
    let stats = sink_stats_after(sink, &guard, || critical!("nobody home"));
    assert_eq!((stats.sent, stats.failed, stats.retries), (0, 1, 2));
}

#[test]
fn a_hanging_receiver_never_blocks_the_caller_and_memory_stays_bounded() {
    let rx = Receiver::start();
    rx.shared
        .hang_all
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (sink, guard) = AlertSink::new(Destination::webhook(&rx.url("/hook")).unwrap())
        .with_queue_capacity(32)
        .with_concurrency(2)
        .with_timeout(Duration::from_secs(30))
        .with_policy(AlertPolicy::default().with_throttle(Duration::ZERO))
        .spawn()
        .unwrap();
    let guard = guard.with_timeout(Duration::from_millis(200));
    let filter = RouteFilter::default().with_levels(Severity::Error, Severity::Critical);
    let router = RouterLayer::new().with_route(Route::alert(filter, sink));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let total = 20_000u64;
    let emitter = std::thread::spawn(move || {
        tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
            for i in 0..total {
                tracing::error!(code = i, "distinct failure {i} at {}", i * 7919 % 104_729);
            }
        });
        done_tx.send(()).unwrap();
    });
    // The receiver never answers; if the caller waited on it this would time out.
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the caller was blocked by a hanging receiver");
    emitter.join().unwrap();
    let stats = guard.stats();
    assert_eq!(stats.accepted + stats.dropped, total);
    // In memory at most: the queue, plus one line taken by the worker waiting for a slot,
    // plus the deliveries in flight.
    assert!(stats.accepted <= 32 + 1 + 2, "{stats:?}");
    assert!(stats.dropped >= total - 35, "{stats:?}");
    assert!(rx.hits().len() <= 2, "at most 2 requests in flight");
    drop(guard); // bounded: gives up waiting after its timeout
}

#[test]
fn destinations_reject_bad_input_with_typed_errors_and_never_show_secrets() {
    for bad in ["not a url", "ftp://hooks.example.com/x", "http://", ""] {
        let err = Destination::slack(bad).unwrap_err();
        assert!(matches!(err, AlertError::InvalidUrl { .. }), "{bad}: {err}");
    }
    let err = Destination::pagerduty("key with spaces").unwrap_err();
    assert!(matches!(
        err,
        AlertError::Invalid {
            what: "pagerduty routing key",
            ..
        }
    ));
    assert!(Destination::pagerduty("").is_err());
    let err = Destination::webhook("http://127.0.0.1:1/x")
        .unwrap()
        .with_header("X-Token", "a\r\nInjected: yes")
        .unwrap_err();
    assert!(matches!(err, AlertError::InvalidHeader { .. }), "{err}");
    assert!(
        Destination::webhook("http://127.0.0.1:1/x")
            .unwrap()
            .with_header("Bad Name", "v")
            .is_err()
    );
    let err = Destination::email("smtp://127.0.0.1:25", "not an address", &["a@example.com"])
        .unwrap_err();
    assert!(matches!(err, AlertError::InvalidAddress { .. }), "{err}");
    assert!(err.to_string().contains("not an address"));
    let err = Destination::email("smtp://127.0.0.1:25", "a@example.com", &[]).unwrap_err();
    assert!(matches!(err, AlertError::Invalid { .. }));
    assert!(matches!(
        Destination::email("gopher://x", "a@example.com", &["b@example.com"]).unwrap_err(),
        AlertError::InvalidUrl { .. }
    ));

    let secret = "https://hooks.slack.com/services/T0001/B0002/S3CR3TT0K3N";
    let d = Destination::slack(secret).unwrap();
    let shown = format!("{d:?}");
    assert!(!shown.contains("S3CR3T"), "{shown}");
    assert!(shown.contains("hooks.slack.com"));
    let d = Destination::email(
        "smtps://alice:hunter2@127.0.0.1:2525",
        "a@example.com",
        &["b@example.com"],
    )
    .unwrap();
    assert!(!format!("{d:?}").contains("hunter2"));
    // A password over plain SMTP would cross the network in clear text.
    let err = Destination::email(
        "smtp://alice:hunter2@127.0.0.1:2525",
        "a@example.com",
        &["b@example.com"],
    )
    .unwrap_err();
    assert!(matches!(err, AlertError::InvalidUrl { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"));
    assert!(
        Destination::email(
            "smtp://alice:hunter2@127.0.0.1:587?tls=required",
            "a@example.com",
            &["b@example.com"]
        )
        .is_ok()
    );
}
