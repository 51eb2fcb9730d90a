//! The default schema, key de-duplication, reserved keys, errors, options and hostile input.

mod support;

use serde_json::{Value, json};
use strata_core::{Classify, ErrorClass, critical, log_error};
use strata_json::{Preset, layer};
use support::{Capture, capture};
use tracing::{info, info_span, warn};
use tracing_subscriber::prelude::*;

fn obj(v: &Value) -> &serde_json::Map<String, Value> {
    v.as_object().expect("object")
}

#[test]
fn default_schema_has_the_documented_keys_in_order() {
    let lines = capture(
        layer()
            .with_service("payment_api")
            .with_env("production")
            .with_version("1.4.2"),
        || {
            let req = info_span!("request", request_id = "0193a5c2", user_id = 314159_u64);
            let _r = req.enter();
            info!(
                event = "charge_created",
                duration_ms = 142,
                status_code = 200,
                "Payment successful"
            );
        },
    );
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    let keys: Vec<&str> = obj(l).keys().map(String::as_str).collect();
    // serde_json's map is sorted; check content, then check raw order separately below.
    for k in [
        "timestamp",
        "level",
        "service",
        "env",
        "version",
        "target",
        "event",
        "message",
    ] {
        assert!(keys.contains(&k), "missing {k} in {l}");
    }
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["service"], "payment_api");
    assert_eq!(l["env"], "production");
    assert_eq!(l["version"], "1.4.2");
    assert_eq!(l["target"], "schema");
    assert_eq!(l["event"], "charge_created");
    assert_eq!(l["message"], "Payment successful");
    assert_eq!(l["span"], "request");
    assert_eq!(l["request_id"], "0193a5c2");
    assert_eq!(l["user_id"], 314159);
    assert_eq!(l["duration_ms"], 142);
    assert_eq!(l["status_code"], 200);
    let ts = l["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2025-01-01T12:00:00.000000Z".len(), "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.');
}

#[test]
fn header_keys_come_first_in_the_written_line() {
    let cap = Capture::default();
    let sub =
        tracing_subscriber::registry().with(layer().with_service("s").with_writer(cap.clone()));
    tracing::subscriber::with_default(sub, || info!(a = 1, "m"));
    let raw = &cap.writes()[0];
    let pos = |k: &str| {
        raw.find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("{k} in {raw}"))
    };
    assert!(pos("timestamp") < pos("level"));
    assert!(pos("level") < pos("service"));
    assert!(pos("service") < pos("target"));
    assert!(pos("target") < pos("message"));
    assert!(pos("message") < pos("a"));
}

#[test]
fn event_beats_span_and_child_beats_parent() {
    let lines = capture(layer(), || {
        let outer = info_span!("outer", id = "outer", who = "parent", only_outer = 1);
        let _o = outer.enter();
        let inner = info_span!("inner", who = "child", id = "inner");
        let _i = inner.enter();
        info!(id = "event", "x");
        info!("y");
    });
    assert_eq!(lines[0]["id"], "event");
    assert_eq!(lines[0]["who"], "child");
    assert_eq!(lines[0]["only_outer"], 1);
    assert_eq!(lines[1]["id"], "inner");
    assert_eq!(lines[1]["span"], "inner");
}

#[test]
fn span_record_updates_instead_of_duplicating() {
    let lines = capture(layer(), || {
        let req = info_span!(
            "request",
            user_id = tracing::field::Empty,
            status_code = tracing::field::Empty
        );
        let _r = req.enter();
        info!("before login");
        req.record("user_id", 7);
        req.record("user_id", 8);
        req.record("status_code", 200);
        let child = info_span!("db");
        child.in_scope(|| info!("after login"));
    });
    assert!(
        obj(&lines[0]).get("user_id").is_none(),
        "empty fields are not written"
    );
    assert_eq!(lines[1]["user_id"], 8);
    assert_eq!(lines[1]["status_code"], 200);
}

#[test]
fn reserved_names_are_prefixed_never_dropped() {
    let lines = capture(layer().with_service("svc"), || {
        let sp = info_span!(
            "s",
            message = "span message",
            level = "span level",
            target = "t"
        );
        let _e = sp.enter();
        info!(
            timestamp = "user ts",
            level = 5,
            service = "user svc",
            fields.x = 1,
            "real message"
        );
    });
    let l = &lines[0];
    assert_eq!(l["message"], "real message");
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["service"], "svc");
    assert_eq!(l["fields.timestamp"], "user ts");
    assert_eq!(
        l["fields.level"], 5,
        "event beats span for the prefixed key too"
    );
    assert_eq!(l["fields.service"], "user svc");
    assert_eq!(l["fields.fields.x"], 1);
    assert_eq!(l["fields.message"], "span message");
    assert_eq!(l["fields.target"], "t");
}

#[test]
fn duplicate_field_names_in_one_event_are_kept() {
    let lines = capture(layer(), || info!(a = 1, a = 2, "dup"));
    assert_eq!(lines[0]["a"], 1);
    assert_eq!(lines[0]["fields.a"], 2);
}

#[derive(Debug)]
struct GatewayError {
    source: std::io::Error,
}
impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment gateway failed")
    }
}
impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
impl Classify for GatewayError {
    fn class(&self) -> ErrorClass {
        ErrorClass::External
    }
}

#[test]
fn errors_render_with_type_message_and_chain() {
    let lines = capture(layer(), || {
        let err = GatewayError {
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out after 5s"),
        };
        log_error!(err, attempt = 3, "charging failed");
        let plain = std::io::Error::other("disk full");
        warn!(error = &plain as &dyn std::error::Error, "write failed");
    });
    let l = &lines[0];
    assert_eq!(l["level"], "ERROR");
    assert_eq!(l["error.class"], "external");
    assert_eq!(l["attempt"], 3);
    assert_eq!(
        l["error"],
        json!({
            "type": std::any::type_name::<GatewayError>(),
            "message": "payment gateway failed",
            "chain": [{"type": "std::io::Error", "message": "read timed out after 5s"}]
        })
    );
    assert_eq!(
        lines[1]["error"],
        json!({"type": "std::io::Error", "message": "disk full", "chain": []})
    );
}

#[test]
fn critical_events_are_critical_and_the_marker_is_hidden() {
    let lines = capture(layer(), || {
        critical!(db = "primary", "database unreachable");
        tracing::error!("an ordinary error");
    });
    assert_eq!(lines[0]["level"], "CRITICAL");
    assert_eq!(lines[0]["db"], "primary");
    assert!(
        !obj(&lines[0]).keys().any(|k| k.contains("critical")),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["level"], "ERROR");
}

#[test]
fn span_close_lines_are_off_by_default_and_carry_duration() {
    let quiet = capture(layer(), || {
        info_span!("work", job = "a").in_scope(|| {});
    });
    assert!(quiet.is_empty());
    let lines = capture(layer().with_span_close(true), || {
        let parent = info_span!("request", request_id = "r1");
        let _p = parent.enter();
        info_span!("work", job = "a", duration_ms = "user").in_scope(|| {
            std::hint::black_box(0);
        });
    });
    let close = &lines[0];
    assert_eq!(close["event"], "span_close");
    assert_eq!(close["message"], "work closed");
    assert_eq!(close["span"], "work");
    assert_eq!(close["job"], "a");
    assert_eq!(close["request_id"], "r1");
    assert!(close["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(close["fields.duration_ms"], "user");
    assert_eq!(lines[1]["message"], "request closed");
}

#[test]
fn file_line_and_thread_are_optional() {
    let plain = capture(layer(), || info!("x"));
    assert!(obj(&plain[0]).get("file").is_none() && obj(&plain[0]).get("thread").is_none());
    let lines = capture(layer().with_file_line(true).with_thread(true), || {
        info!(line = "user line", "x")
    });
    let l = &lines[0];
    assert!(l["file"].as_str().unwrap().ends_with("schema.rs"));
    assert!(l["line"].as_u64().unwrap() > 0);
    assert_eq!(l["fields.line"], "user line");
    assert!(l["thread"].is_string());
}

#[test]
fn hostile_values_cannot_forge_lines_or_break_json() {
    let cap = Capture::default();
    let sub = tracing_subscriber::registry()
        .with(layer().with_max_field_len(64).with_writer(cap.clone()));
    let forged = "ok\n{\"level\":\"CRITICAL\",\"message\":\"forged\"}\r\n\x1b[2J\x00\u{7f}\"\\";
    let huge = "x".repeat(10_000);
    tracing::subscriber::with_default(sub, || {
        info!(user_input = forged, "{}", forged);
        info!(big = %huge, "huge");
        info!(
            nan = f64::NAN,
            inf = f64::INFINITY,
            ninf = f64::NEG_INFINITY,
            "floats"
        );
        info!(bytes = &b"abc\xff\xfedef"[..], "bytes");
        info!(big = huge.as_str(), "huge str");
        let wide = "é".repeat(100);
        info!(wide = wide.as_str(), "multibyte cut");
        info!(debug = ?vec!["a\nb"; 3], "debug");
    });
    let writes = cap.writes();
    assert_eq!(writes.len(), 7, "one write per event: {writes:?}");
    let lines: Vec<Value> = writes.iter().map(|w| support::parse_line(w)).collect();
    assert_eq!(lines[0]["level"], "INFO");
    assert!(
        lines[0]["user_input"]
            .as_str()
            .unwrap()
            .starts_with("ok\n{")
    );
    assert!(!writes[0].contains('\x1b') && !writes[0].contains('\0'));
    let big = lines[1]["big"].as_str().unwrap();
    assert!(
        big.starts_with(&"x".repeat(64)) && big.ends_with("…[truncated 9936 bytes]"),
        "{big}"
    );
    assert_eq!(lines[2]["nan"], "NaN");
    assert_eq!(lines[2]["inf"], "Infinity");
    assert_eq!(lines[2]["ninf"], "-Infinity");
    assert_eq!(lines[3]["bytes"], "abc\u{FFFD}\u{FFFD}def");
    assert!(
        lines[4]["big"]
            .as_str()
            .unwrap()
            .ends_with("…[truncated 9936 bytes]")
    );
    let wide = lines[5]["wide"].as_str().unwrap();
    assert_eq!(wide, format!("{}…[truncated 136 bytes]", "é".repeat(32)));
    assert_eq!(lines[6]["debug"], format!("{:?}", vec!["a\nb"; 3]));
}

#[test]
fn span_values_are_truncated_too() {
    let lines = capture(layer().with_max_field_len(8), || {
        info_span!("s", payload = "0123456789abcdef").in_scope(|| info!("x"));
    });
    assert_eq!(lines[0]["payload"], "01234567…[truncated 8 bytes]");
}

#[test]
fn threads_never_interleave_and_each_line_is_one_write() {
    let cap = Capture::default();
    let sub = tracing_subscriber::registry().with(layer().with_writer(cap.clone()));
    let dispatch = tracing::Dispatch::new(sub);
    std::thread::scope(|s| {
        for t in 0..4 {
            let d = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    let sp = info_span!("worker", thread_no = t);
                    let _e = sp.enter();
                    for i in 0..500 {
                        info!(i, payload = "p".repeat(i % 300).as_str(), "line");
                    }
                })
            });
        }
    });
    let lines = cap.lines();
    assert_eq!(lines.len(), 2000);
    for t in 0..4 {
        let mine: Vec<u64> = lines
            .iter()
            .filter(|l| l["thread_no"] == t)
            .map(|l| l["i"].as_u64().unwrap())
            .collect();
        assert_eq!(mine, (0..500).collect::<Vec<_>>());
    }
}

#[test]
fn presets_map_the_same_record() {
    let run = |p: Preset| {
        capture(
            layer()
                .with_preset(p)
                .with_service("api")
                .with_env("prod")
                .with_version("2.0")
                .with_file_line(true),
            || {
                info_span!("request", request_id = "r-9").in_scope(|| {
                    info!(event = "login", user_id = 5, "User logged in");
                })
            },
        )
        .remove(0)
    };
    let ecs = run(Preset::Ecs);
    assert_eq!(ecs["log.level"], "info");
    assert_eq!(ecs["ecs.version"], strata_json::ECS_VERSION);
    assert_eq!(ecs["service.name"], "api");
    assert_eq!(ecs["service.environment"], "prod");
    assert_eq!(ecs["service.version"], "2.0");
    assert_eq!(ecs["log.logger"], "schema");
    assert_eq!(ecs["event.action"], "login");
    assert_eq!(ecs["message"], "User logged in");
    assert_eq!(ecs["request_id"], "r-9");
    assert!(ecs["@timestamp"].is_string());
    assert!(ecs["log.origin.file.line"].is_u64());

    let gcp = run(Preset::Gcp);
    assert_eq!(gcp["severity"], "INFO");
    assert_eq!(
        gcp["serviceContext"],
        json!({"service": "api", "version": "2.0"})
    );
    assert_eq!(gcp["message"], "User logged in");
    let loc = &gcp["logging.googleapis.com/sourceLocation"];
    assert!(loc["file"].as_str().unwrap().ends_with("schema.rs"));
    assert!(loc["line"].as_str().unwrap().parse::<u32>().is_ok());
    assert_eq!(gcp["user_id"], 5);

    let otel = run(Preset::OpenTelemetry);
    assert_eq!(otel["SeverityText"], "INFO");
    assert_eq!(otel["SeverityNumber"], 9);
    assert_eq!(otel["Body"], "User logged in");
    assert_eq!(otel["EventName"], "login");
    assert_eq!(otel["InstrumentationScope"]["Name"], "schema");
    assert_eq!(
        otel["Resource"],
        json!({"service.name": "api", "deployment.environment.name": "prod", "service.version": "2.0"})
    );
    assert_eq!(otel["Attributes"]["request_id"], "r-9");
    assert_eq!(otel["Attributes"]["user_id"], 5);
    assert!(otel["Attributes"]["code.lineno"].is_u64());
    let ts: u128 = otel["Timestamp"].as_str().unwrap().parse().unwrap();
    assert!(ts > 1_700_000_000_000_000_000);

    let critical = capture(layer().with_preset(Preset::Gcp), || critical!("down")).remove(0);
    assert_eq!(critical["severity"], "CRITICAL");
    let critical = capture(layer().with_preset(Preset::OpenTelemetry), || {
        critical!("down")
    })
    .remove(0);
    assert_eq!(critical["SeverityNumber"], 21);
    assert_eq!(critical["Attributes"], json!({}));
}

#[test]
fn gcp_reserved_prefix_is_protected() {
    let l = capture(layer().with_preset(Preset::Gcp), || {
        info!(severity = "fake", "logging.googleapis.com/trace" = 1, "m")
    })
    .remove(0);
    assert_eq!(l["severity"], "INFO");
    assert_eq!(l["fields.severity"], "fake");
    assert_eq!(l["fields.logging.googleapis.com/trace"], 1);
}

#[test]
fn write_failures_are_counted_not_panicked() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk gone"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let layer = layer().with_writer(|| Broken);
    let handle = layer.handle();
    let sub = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(sub, || {
        for _ in 0..3 {
            info!("lost");
        }
    });
    assert_eq!(handle.write_errors(), 3);
}

#[test]
fn message_and_event_are_always_strings() {
    let lines = capture(layer(), || {
        // the macro's message comes first; a second `message` field is a user field
        info!(event = 3, message = 4.5, "the message");
        info!(event = true, message = 7);
    });
    assert_eq!(lines[0]["event"], "3");
    assert_eq!(lines[0]["message"], "the message");
    assert_eq!(lines[0]["fields.message"], 4.5);
    assert_eq!(lines[1]["event"], "true");
    assert_eq!(lines[1]["message"], "7");
}

#[test]
fn optional_keys_are_reserved_even_when_off() {
    let l = capture(layer().with_span_name(false), || {
        info!(line = "abc", file = 1, thread = "t", span = "s", "m")
    })
    .remove(0);
    assert_eq!(l["fields.line"], "abc");
    assert_eq!(l["fields.file"], 1);
    assert_eq!(l["fields.thread"], "t");
    assert_eq!(l["fields.span"], "s");
    assert!(obj(&l).get("line").is_none());
}

#[test]
fn the_critical_marker_never_shows_on_spans() {
    let lines = capture(layer().with_span_close(true), || {
        info_span!("s", strata.critical = true, a = 1).in_scope(|| info!("inside"));
    });
    for l in &lines {
        assert!(!obj(l).keys().any(|k| k.contains("critical")), "{l}");
        assert_eq!(l["a"], 1);
    }
}

/// A value whose `Debug` counts its calls and logs (re-entering the subscriber).
struct Noisy(std::sync::Arc<std::sync::atomic::AtomicUsize>);
impl std::fmt::Debug for Noisy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tracing::info!("logged from inside Debug");
        f.write_str("noisy")
    }
}

#[test]
fn record_is_applied_once_and_may_log_from_debug() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let cap = Capture::default();
    let ecs = Capture::default();
    // Three strata layers share one span store: the first owns it and applies each record once.
    let sub = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::new())
        .with(layer().with_writer(cap.clone()))
        .with(layer().with_preset(Preset::Ecs).with_writer(ecs.clone()));
    tracing::subscriber::with_default(sub, || {
        let span = info_span!("request", v = tracing::field::Empty, n = 1);
        let _e = span.enter();
        span.record("v", tracing::field::debug(Noisy(calls.clone())));
        span.record("n", 2);
        info!("after");
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "Debug ran once for three layers"
    );
    let lines = cap.lines();
    let after = lines.iter().find(|l| l["message"] == "after").unwrap();
    assert_eq!(after["v"], "noisy");
    assert_eq!(after["n"], 2);
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "logged from inside Debug")
    );
    let after = ecs
        .lines()
        .into_iter()
        .find(|l| l["message"] == "after")
        .unwrap();
    assert_eq!(
        (after["v"].as_str(), after["n"].as_i64()),
        (Some("noisy"), Some(2))
    );
}

#[test]
fn many_fields_spill_past_the_inline_key_set() {
    let lines = capture(layer(), || {
        let outer = info_span!(
            "outer",
            s0 = 0,
            s1 = 1,
            s2 = 2,
            s3 = 3,
            s4 = 4,
            s5 = 5,
            s6 = 6,
            s7 = 7,
            s8 = 8,
            s9 = 9,
            s10 = 10,
            s11 = 11,
            s12 = 12,
            s13 = 13,
            s14 = 14,
            s15 = 15,
            s16 = 16,
            s17 = 17,
            s18 = 18,
            s19 = 19,
            shared = "outer"
        );
        let _o = outer.enter();
        let inner = info_span!("inner", shared = "inner", s3 = "inner");
        let _i = inner.enter();
        info!(
            e0 = 0,
            e1 = 1,
            e2 = 2,
            e3 = 3,
            e4 = 4,
            e5 = 5,
            e6 = 6,
            e7 = 7,
            e8 = 8,
            e9 = 9,
            e10 = 10,
            e11 = 11,
            e12 = 12,
            e13 = 13,
            e14 = 14,
            e15 = 15,
            e16 = 16,
            e17 = 17,
            e18 = 18,
            e19 = 19,
            s19 = "event",
            "many"
        );
    });
    let l = obj(&lines[0]);
    for i in 0..20 {
        assert_eq!(l[&format!("e{i}")], i, "e{i}");
        if i != 3 && i != 19 {
            assert_eq!(l[&format!("s{i}")], i, "s{i}");
        }
    }
    assert_eq!(l["s3"], "inner");
    assert_eq!(l["s19"], "event");
    assert_eq!(l["shared"], "inner");
}
