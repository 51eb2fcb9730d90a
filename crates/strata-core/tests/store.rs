//! The span-field store seen from a layer: capture, record, inheritance, CRITICAL.

use std::sync::{Arc, Mutex};

use strata_core::store::{self, SpanFields};
use strata_core::{Classify, ErrorClass, FieldValue, Severity, StoreLayer, critical, log_error};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

type Seen = Vec<(Severity, Vec<(&'static str, FieldValue)>)>;

/// Records, for each event, its severity and the fields it inherits.
#[derive(Clone, Default)]
struct Probe(Arc<Mutex<Seen>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Probe {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let fields = ctx
            .event_span(event)
            .map(|s| store::inherited(&s))
            .unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push((Severity::of(event.metadata()), fields));
    }
}

fn run(f: impl FnOnce()) -> Seen {
    let probe = Probe::default();
    let sub = tracing_subscriber::registry()
        .with(StoreLayer::new())
        .with(probe.clone());
    tracing::subscriber::with_default(sub, f);

    probe.0.lock().unwrap().clone()
}

#[test]
fn child_fields_override_parent_and_record_updates() {
    let events = run(|| {
        let outer = tracing::info_span!(
            "request",
            request_id = "r-1",
            user_id = tracing::field::Empty,
            route = "/a"
        );
        let _o = outer.enter();
        let inner = tracing::info_span!("handler", route = "/a/{id}", attempt = 2_u64);
        let _i = inner.enter();
        tracing::info!("before");
        outer.record("user_id", 42_i64);
        inner.record("attempt", 3_u64);
        tracing::info!("after");
    });
    assert_eq!(events.len(), 2);
    let before = &events[0].1;
    assert_eq!(
        before,
        &vec![
            ("route", FieldValue::Str("/a/{id}".into())),
            ("attempt", FieldValue::U64(2)),
            ("request_id", FieldValue::Str("r-1".into())),
        ]
    );
    let after = &events[1].1;
    assert!(
        after.contains(&("user_id", FieldValue::I64(42))),
        "{after:?}"
    );
    assert!(
        after.contains(&("attempt", FieldValue::U64(3))),
        "{after:?}"
    );
    assert_eq!(after.iter().filter(|(n, _)| *n == "attempt").count(), 1);
}

#[test]
fn critical_macro_is_seen_as_critical() {
    let events = run(|| {
        tracing::error!("plain error");
        critical!("system down");
        critical!(target: "db", host = "db1", "unreachable");
    });
    let sev: Vec<_> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        sev,
        [Severity::Error, Severity::Critical, Severity::Critical]
    );
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

#[derive(Debug)]
struct DbDown;
impl std::fmt::Display for DbDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("db down")
    }
}
impl std::error::Error for DbDown {}
impl Classify for DbDown {
    fn class(&self) -> ErrorClass {
        ErrorClass::System
    }
}

#[test]
fn log_error_uses_the_class_level() {
    let events = run(|| {
        log_error!(Declined, "payment refused");
        log_error!(DbDown);
    });
    let sev: Vec<_> = events.iter().map(|e| e.0).collect();
    assert_eq!(sev, [Severity::Warn, Severity::Critical]);
}

#[test]
fn span_errors_are_captured_with_their_chain() {
    let probe = Probe::default();
    let seen: Arc<Mutex<Option<FieldValue>>> = Arc::default();
    struct Grab(Arc<Mutex<Option<FieldValue>>>);
    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Grab {
        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let span = ctx.event_span(event).unwrap();
            let ext = span.extensions();
            *self.0.lock().unwrap() = ext.get::<SpanFields>().unwrap().get("err").cloned();
        }
    }
    let sub = tracing_subscriber::registry()
        .with(StoreLayer::new())
        .with(probe)
        .with(Grab(seen.clone()));
    tracing::subscriber::with_default(sub, || {
        let io = std::io::Error::other("connection reset");
        let span = tracing::info_span!("job", err = &io as &dyn std::error::Error);
        span.in_scope(|| tracing::info!("x"));
    });
    let Some(FieldValue::Error(e)) = seen.lock().unwrap().clone() else {
        panic!("no error captured")
    };
    assert_eq!(&*e.message, "connection reset");
    assert_eq!(e.type_name, Some("std::io::Error"));
}
