//! The console layer over an in-memory writer: what a line says, and that it is always exactly
//! one terminal-safe line.

mod support;

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_core::redact::Redaction;
use strata_core::{Classify, ErrorClass, SpanFields, TraceContext};
use support::{assert_one_safe_line, assert_safe, plain, run};
use tracing_core::Subscriber;
use tracing_core::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

#[test]
fn a_line_has_time_level_request_id_target_message_and_fields() {
    let writes = run(strata_console::layer().with_color(false), || {
        let span = tracing::info_span!(
            "request",
            request_id = "0193a5c2-7f3e-7d64-a07e",
            user_id = 7_u64
        );
        let _g = span.enter();
        tracing::info!(order_id = 42, amount_cents = 1999, "order placed");
    });
    assert_eq!(writes.len(), 1);
    let line = &writes[0];
    assert_one_safe_line(line);
    // HH:MM:SS.mmm, UTC, close to now.
    let (time, rest) = line.split_at(12);
    let b = time.as_bytes();
    assert!(
        b.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        }),
        "time shape: {time:?}"
    );
    let secs = |s: &str| s.parse::<u64>().unwrap();
    let of_day = secs(&time[0..2]) * 3600 + secs(&time[3..5]) * 60 + secs(&time[6..8]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 86_400;
    let diff = (now + 86_400 - of_day) % 86_400;
    assert!(
        diff <= 5,
        "time {time} is not now (UTC second of day {now})"
    );
    assert_eq!(
        rest,
        "  INFO [0193a5c2-7f3e-7d64-a07e] console: order placed  order_id=42 amount_cents=1999 user_id=7\n"
    );
}

#[test]
fn every_level_is_padded_to_five_columns() {
    let writes = run(plain(), || {
        tracing::trace!("t");
        tracing::debug!("d");
        tracing::info!("i");
        tracing::warn!("w");
        tracing::error!("e");
        strata_core::critical!("c");
    });
    assert_eq!(
        writes,
        [
            "TRACE console: t\n",
            "DEBUG console: d\n",
            " INFO console: i\n",
            " WARN console: w\n",
            "ERROR console: e\n",
            " CRIT console: c\n",
        ]
    );
}

#[test]
fn critical_is_detected_and_its_marker_never_printed() {
    let writes = run(plain(), || {
        strata_core::critical!(db.host = "10.0.0.7", "database unreachable");
    });
    assert_eq!(
        writes,
        [" CRIT console: database unreachable  db.host=10.0.0.7\n"]
    );
    assert!(!writes[0].contains("strata.critical"));
}

#[test]
fn fields_come_from_the_event_then_the_spans_innermost_first_each_name_once() {
    let writes = run(plain(), || {
        let parent = tracing::info_span!(
            "request",
            request_id = "req-1",
            user_id = 1_u64,
            region = "eu"
        );
        let _p = parent.enter();
        let child = tracing::info_span!(
            "charge",
            user_id = 2_u64,
            step = "pay",
            note = tracing::field::Empty
        );
        let _c = child.enter();
        child.record("note", "gift wrap");
        tracing::info!(step = "charge", n = 3, ok = true, ratio = 0.5, "charging");
        tracing::info!(request_id = "req-override", "own id");
    });
    assert_eq!(
        writes,
        [
            " INFO [req-1] console: charging  step=charge n=3 ok=true ratio=0.5 user_id=2 note=\"gift wrap\" region=eu\n",
            " INFO [req-override] console: own id  user_id=2 step=pay note=\"gift wrap\" region=eu\n",
        ]
    );
}

#[test]
fn quoting_and_odd_values() {
    let writes = run(plain().with_target(false), || {
        tracing::info!(
            empty = "",
            spaced = "a b",
            eq = "k=v",
            plain = "abc",
            dbg = ?Some(1),
            neg = -5_i64,
            big = u128::MAX,
            inf = f64::INFINITY,
            numeric_id = 42_u64,
        );
        tracing::info!(request_id = 42_u64, "numeric request id");
    });
    assert_eq!(
        writes,
        [
            " INFO  empty=\"\" spaced=\"a b\" eq=\"k=v\" plain=abc dbg=Some(1) neg=-5 \
             big=340282366920938463463374607431768211455 inf=inf numeric_id=42\n",
            " INFO [42] numeric request id\n",
        ]
    );
}

#[derive(Debug)]
struct Gateway {
    attempt: u32,
    source: std::io::Error,
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "POST https://gateway.example/charges failed on attempt {}",
            self.attempt
        )
    }
}

impl Error for Gateway {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

#[derive(Debug)]
enum PaymentError {
    Gateway(Gateway),
    DatabaseUnreachable,
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentError::Gateway(_) => f.write_str("payment gateway request failed"),
            PaymentError::DatabaseUnreachable => f.write_str("database unreachable"),
        }
    }
}

impl Error for PaymentError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PaymentError::Gateway(g) => Some(g),
            PaymentError::DatabaseUnreachable => None,
        }
    }
}

impl Classify for PaymentError {
    fn class(&self) -> ErrorClass {
        match self {
            PaymentError::Gateway(_) => ErrorClass::External,
            PaymentError::DatabaseUnreachable => ErrorClass::System,
        }
    }
}

fn gateway_error() -> PaymentError {
    PaymentError::Gateway(Gateway {
        attempt: 3,
        source: std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out after 5s"),
    })
}

#[test]
fn an_error_shows_its_message_then_its_chain_with_types() {
    let writes = run(plain(), || {
        let span = tracing::info_span!("request", request_id = "req-9");
        let _g = span.enter();
        let err = gateway_error();
        tracing::error!(
            error = &err as &dyn Error,
            amount_cents = 500,
            "charging the card failed"
        );
        strata_core::log_error!(err, attempt = 3, "charging the card failed");
        strata_core::log_error!(PaymentError::DatabaseUnreachable);
    });
    assert_eq!(writes.len(), 3, "{writes:#?}");
    assert_eq!(
        writes[0],
        "ERROR [req-9] console: charging the card failed  error=\"payment gateway request failed\" amount_cents=500\n\
         \x20 caused by: POST https://gateway.example/charges failed on attempt 3\n\
         \x20 caused by: std::io::Error: read timed out after 5s\n"
    );
    assert_eq!(
        writes[1],
        "ERROR [req-9] console: charging the card failed  error=\"payment gateway request failed\" \
         error.class=external attempt=3\n\
         \x20 caused by: POST https://gateway.example/charges failed on attempt 3\n\
         \x20 caused by: std::io::Error: read timed out after 5s\n"
    );
    assert_eq!(
        writes[2],
        " CRIT [req-9] console:  error=\"database unreachable\" error.class=system\n"
    );
    for w in &writes {
        assert_safe(w);
    }
}

#[test]
fn an_error_recorded_on_a_span_is_shown_with_its_chain() {
    let writes = run(plain(), || {
        let err = gateway_error();
        let span = tracing::info_span!("job", cause = &err as &dyn Error);
        let _g = span.enter();
        tracing::warn!("retrying");
    });
    assert_eq!(
        writes,
        [
            " WARN console: retrying  cause=\"payment gateway request failed\"\n\
         \x20 cause caused by: POST https://gateway.example/charges failed on attempt 3\n\
         \x20 cause caused by: std::io::Error: read timed out after 5s\n"
        ]
    );
}

#[test]
fn colour_codes_only_when_colour_is_on() {
    fn events() {
        let span = tracing::info_span!("request", request_id = "req-1");
        let _g = span.enter();
        tracing::trace!("t");
        tracing::debug!("d");
        tracing::info!(k = "v", "i");
        tracing::warn!("w");
        tracing::error!(error = &gateway_error() as &dyn Error, "e");
        strata_core::critical!("c");
    }
    let coloured = run(strata_console::layer().with_color(true), events).concat();
    for code in [
        "\x1b[2mTRACE\x1b[0m",
        "\x1b[34mDEBUG\x1b[0m",
        "\x1b[32mINFO\x1b[0m",
        "\x1b[33mWARN\x1b[0m",
        "\x1b[31mERROR\x1b[0m",
        "\x1b[1;37;41mCRIT\x1b[0m",
        "\x1b[36m[req-1]\x1b[0m",
        "\x1b[2mconsole:\x1b[0m",
        "\x1b[1mi\x1b[0m",
        "\x1b[2mk=\x1b[0mv",
        "\x1b[31m\"payment gateway request failed\"\x1b[0m",
        "\x1b[31mcaused by:\x1b[0m",
    ] {
        assert!(coloured.contains(code), "{code:?} missing in {coloured:?}");
    }
    let raw = {
        let cap = support::Capture::default();
        let sub = tracing_subscriber::registry().with(
            strata_console::layer()
                .with_color(false)
                .with_writer(cap.clone()),
        );
        tracing::subscriber::with_default(sub, events);
        cap.raw().concat()
    };
    assert!(!raw.is_empty());
    assert!(
        !raw.contains(&0x1b),
        "an ESC byte with colour off: {:?}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn hostile_values_stay_on_one_safe_line() {
    let megabyte = "A".repeat(1 << 20);
    let nasty = "ok\x1b[2J\x1b[31mred\rover\nnext line\0nul\x07bel\x7fdel\u{9b}31m\u{85}\u{202e}evil\u{2066}\u{2028}\u{2029}end";
    let writes = run(strata_console::layer().with_color(true), || {
        let span = tracing::info_span!("request", request_id = nasty, span_field = nasty);
        let _g = span.enter();
        tracing::info!(value = nasty, shown = %nasty, debug = ?nasty, "message {nasty}");
        tracing::info!(huge = megabyte.as_str(), "big");
        tracing::info!(bytes = &b"raw\xff\xfe\x1b[0mbytes"[..], "invalid utf-8");
        tracing::info!(target: "evil\x1b]0;title\x07target", "hostile target");
        tracing::info!("{megabyte}");
    });
    assert_eq!(writes.len(), 5, "{writes:#?}");
    // The only ESC bytes are our own colour codes; without them, one safe line each.
    let writes: Vec<String> = writes.iter().map(|w| support::strip_sgr(w)).collect();
    for w in &writes {
        assert_one_safe_line(w);
    }
    let first = &writes[0];
    for visible in [
        "\\x1b[2J",
        "\\x1b[31mred",
        "\\rover",
        "\\nnext line",
        "\\x00nul",
        "\\x07bel",
        "\\x7fdel",
        "\\u{9b}31m",
        "\\u{85}",
        "\\u{202e}evil",
        "\\u{2066}",
        "\\u{2028}",
        "\\u{2029}end",
    ] {
        assert!(
            first.contains(visible),
            "{visible:?} not shown in {first:?}"
        );
    }
    // The request ID, message, event fields and span field all went through the same cleaning.
    assert_eq!(first.matches("\\u{202e}evil").count(), 6, "{first:?}");
    // A 1 MB value or message is cut visibly.
    for w in [&writes[1], &writes[4]] {
        assert!(w.contains("…[truncated "), "{}", &w[w.len() - 80..]);
        assert!(w.len() < 10 * 1024, "line of {} bytes", w.len());
    }
    assert!(writes[1].contains(&format!("…[truncated {} bytes]", (1 << 20) - 8 * 1024)));
    assert!(
        writes[2].contains("bytes=raw\u{FFFD}\u{FFFD}\\x1b[0mbytes"),
        "{:?}",
        writes[2]
    );
    assert!(
        writes[3].contains("evil\\x1b]0;title\\x07target:"),
        "{:?}",
        writes[3]
    );
}

#[test]
fn a_hostile_error_chain_stays_safe() {
    #[derive(Debug)]
    struct Evil(&'static str, Option<Box<Evil>>);
    impl fmt::Display for Evil {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Evil {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }
    let err = Evil(
        "top\nforged line",
        Some(Box::new(Evil("inner\r\x1b[1A\x1b[2Kerased\u{202e}", None))),
    );
    let writes = run(plain(), || {
        tracing::error!(error = &err as &dyn Error, "failed");
    });
    assert_eq!(writes.len(), 1);
    assert_eq!(
        writes[0],
        "ERROR console: failed  error=\"top\\nforged line\"\n\
         \x20 caused by: inner\\r\\x1b[1A\\x1b[2Kerased\\u{202e}\n"
    );
    assert_safe(&writes[0]);
}

#[test]
fn redaction_masks_secrets_and_leaves_the_rest() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let events = || {
        let span = tracing::info_span!(
            "request",
            request_id = "req-1",
            api_key = "k-123456",
            user = "bob"
        );
        let _g = span.enter();
        tracing::info!(
            password = "hunter2",
            pin_attempts = 2,
            session_id = 991_u64,
            url = "postgres://app:s3cr3t@db/shop",
            "login with {jwt} and Authorization Bearer abcDEF123456789xyz"
        );
        let err = std::io::Error::other("connect to https://u:pw-leak@host/ failed");
        tracing::error!(error = &err as &dyn Error, "db");
    };
    let masked = run(
        plain().with_redaction(Some(Arc::new(Redaction::new()))),
        events,
    );
    assert_eq!(
        masked,
        [
            " INFO [req-1] console: login with [REDACTED:jwt] and Authorization Bearer [REDACTED:bearer]  \
             password=[REDACTED] pin_attempts=2 session_id=[REDACTED] url=postgres://app:[REDACTED]@db/shop \
             api_key=[REDACTED] user=bob\n",
            "ERROR [req-1] console: db  error=\"connect to https://u:[REDACTED]@host/ failed\" \
             api_key=[REDACTED] user=bob\n",
        ]
    );
    for secret in [
        "hunter2",
        "k-123456",
        "s3cr3t",
        "pw-leak",
        "abcDEF123456789xyz",
        "eyJ",
    ] {
        assert!(!masked.concat().contains(secret), "{secret} leaked");
    }
    // Without redaction nothing is touched.
    let clear = run(plain(), events).concat();
    for secret in ["hunter2", "k-123456", "s3cr3t", jwt] {
        assert!(clear.contains(secret), "{secret} missing without redaction");
    }
}

#[test]
fn time_and_target_can_be_hidden() {
    let writes = run(
        strata_console::layer()
            .with_color(false)
            .with_time(false)
            .with_target(false),
        || {
            tracing::warn!(n = 1, "careful");
        },
    );
    assert_eq!(writes, [" WARN careful  n=1\n"]);
    let writes = run(strata_console::layer().with_color(false), || {
        tracing::warn!("careful")
    });
    assert_eq!(&writes[0][12..], "  WARN console: careful\n");
}

#[test]
fn backtraces_are_off_by_default_and_never_for_warnings() {
    let writes = run(plain(), || tracing::error!("no trace"));
    assert_eq!(writes, ["ERROR console: no trace\n"]);
    let writes = run(plain().with_backtraces(true), || {
        tracing::warn!("no trace either")
    });
    assert_eq!(writes, [" WARN console: no trace either\n"]);
}

/// Sets a trace context on every new span, as strata-otlp does.
struct FakeTracer;

impl<S> Layer<S> for FakeTracer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(f) = span.extensions_mut().get_mut::<SpanFields>() {
            let mut trace_id = [0u8; 16];
            trace_id.copy_from_slice(&[
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36,
            ]);
            f.set_trace_context(TraceContext::new(
                trace_id,
                [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
                true,
            ));
        }
    }
}

#[test]
fn trace_and_span_ids_come_last() {
    let cap = support::Capture::default();
    let sub = tracing_subscriber::registry()
        .with(plain().with_writer(cap.clone()))
        .with(FakeTracer);
    tracing::subscriber::with_default(sub, || {
        let span = tracing::info_span!("request", request_id = "r");
        let _g = span.enter();
        tracing::info!(k = 1, "traced");
    });
    assert_eq!(
        cap.writes(),
        [
            " INFO [r] console: traced  k=1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7\n"
        ]
    );
}

#[test]
fn a_debug_impl_that_logs_does_not_break_the_line() {
    struct Chatty;
    impl fmt::Debug for Chatty {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            tracing::info!("from inside Debug");
            f.write_str("Chatty")
        }
    }
    let writes = run(plain(), || {
        tracing::info!(value = ?Chatty, "outer");
    });
    // `tracing` does not dispatch an event emitted while another is being dispatched on the
    // same thread; what matters is that the outer line is whole and nothing panics.
    assert_eq!(writes, [" INFO console: outer  value=Chatty\n"]);
}

#[test]
fn the_store_is_shared_with_other_strata_layers() {
    // With strata-core's own store layer installed first, it owns the span stores and the
    // console layer still reads them (and `record` is applied once).
    let cap = support::Capture::default();
    let sub = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::new())
        .with(plain().with_writer(cap.clone()));
    tracing::subscriber::with_default(sub, || {
        let span =
            tracing::info_span!("request", request_id = "r", user_id = tracing::field::Empty);
        let _g = span.enter();
        span.record("user_id", 5_u64);
        tracing::info!("inside");
    });
    assert_eq!(cap.writes(), [" INFO [r] console: inside  user_id=5\n"]);
}
