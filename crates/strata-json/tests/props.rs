//! Property test: arbitrary field names and values, in an event and in its span. Every line
//! parses back with serde_json, keys are unique, and every value round-trips under its name
//! (or `fields.<name>` when the name is one the schema uses itself).

mod support;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use strata_json::layer;
use support::Capture;
use tracing_core::callsite::Callsite;
use tracing_core::field::{FieldSet, Value as TracingValue};
use tracing_core::metadata::{Kind, Level, Metadata};
use tracing_core::{Event, Interest};
use tracing_subscriber::prelude::*;

/// A callsite made at run time, so field names can be arbitrary strings.
struct DynCallsite(OnceLock<&'static Metadata<'static>>);

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.0.get().expect("metadata set at creation")
    }
}

fn leak_meta(names: &[String], kind: Kind) -> &'static Metadata<'static> {
    let cs: &'static DynCallsite = Box::leak(Box::new(DynCallsite(OnceLock::new())));
    let names: Vec<&'static str> = names.iter().map(|n| &*n.clone().leak()).collect();
    let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    let meta = Box::leak(Box::new(Metadata::new(
        "prop",
        "props",
        Level::INFO,
        None,
        None,
        None,
        FieldSet::new(names, tracing_core::identify_callsite!(cs)),
        kind,
    )));
    cs.0.set(meta).expect("set once");
    meta
}

#[derive(Debug, Clone)]
enum V {
    S(String),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

impl V {
    fn as_value(&self) -> &dyn TracingValue {
        match self {
            V::S(s) => s,
            V::I(v) => v,
            V::U(v) => v,
            V::F(v) => v,
            V::B(v) => v,
        }
    }

    fn matches(&self, got: &Value) -> bool {
        match self {
            V::S(s) => got.as_str() == Some(s.as_str()),
            V::I(v) => got.as_i64() == Some(*v),
            V::U(v) => got.as_u64() == Some(*v),
            V::F(v) if v.is_nan() => got == "NaN",
            V::F(v) if v.is_infinite() => got == if *v > 0.0 { "Infinity" } else { "-Infinity" },
            V::F(v) => got.as_f64() == Some(*v),
            V::B(v) => got.as_bool() == Some(*v),
        }
    }

    /// `message` and `event` are always strings: the value's text.
    fn matches_as_text(&self, got: &Value) -> bool {
        let text = match self {
            V::S(s) => s.clone(),
            V::I(v) => v.to_string(),
            V::U(v) => v.to_string(),
            V::F(v) => v.to_string(),
            V::B(v) => v.to_string(),
        };
        got.as_str() == Some(text.as_str())
    }
}

/// Emits one event with fields `ev` inside one span with fields `sp`, both with callsites
/// made at run time (so the names can be anything).
fn emit(ev: &[(String, V)], sp: &[(String, V)]) {
    let names = |fields: &[(String, V)]| fields.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let ev_meta = leak_meta(&names(ev), Kind::EVENT);
    let sp_meta = leak_meta(&names(sp), Kind::SPAN);
    let sf: Vec<_> = sp_meta.fields().iter().collect();
    let sv: [(&tracing_core::Field, Option<&dyn TracingValue>); 4] =
        std::array::from_fn(|i| (&sf[i], Some(sp[i].1.as_value())));
    let span = tracing::Span::new(sp_meta, &sp_meta.fields().value_set(&sv));
    let _e = span.enter();
    let ef: Vec<_> = ev_meta.fields().iter().collect();
    let evs: [(&tracing_core::Field, Option<&dyn TracingValue>); 8] =
        std::array::from_fn(|i| (&ef[i], Some(ev[i].1.as_value())));
    Event::dispatch(ev_meta, &ev_meta.fields().value_set(&evs));
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        any::<String>().prop_map(V::S),
        "[\"\\\\\\n\\r\\t\\x00-\\x1f\\x7f a-zé€😀]{0,40}".prop_map(V::S),
        any::<i64>().prop_map(V::I),
        any::<u64>().prop_map(V::U),
        any::<f64>().prop_map(V::F),
        Just(V::F(f64::NAN)),
        Just(V::F(f64::NEG_INFINITY)),
        any::<bool>().prop_map(V::B),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_][a-z0-9_.]{0,12}",
        1 => any::<String>().prop_filter("no marker", |s| s != strata_core::CRITICAL_FIELD),
        2 => prop::sample::select(vec![
            "timestamp", "level", "service", "env", "version", "target", "event", "message",
            "trace_id", "span_id", "span", "fields.level", "fields.x", "user_id", "request_id",
            "", "a\"b", "new\nline",
        ]).prop_map(String::from),
    ]
}

/// Keys the default preset writes itself (with the default options).
const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "service",
    "env",
    "version",
    "target",
    "event",
    "message",
    "trace_id",
    "span_id",
    "span",
    "file",
    "line",
    "thread",
];

fn expected_key(name: &str) -> String {
    if RESERVED.contains(&name) || name.starts_with("fields.") {
        format!("fields.{name}")
    } else {
        name.to_owned()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_fields_round_trip(
        ev in prop::collection::vec((name(), value()), 8),
        sp in prop::collection::vec((name(), value()), 4),
    ) {
        let ev_names: Vec<String> = ev.iter().map(|(n, _)| n.clone()).collect();

        let cap = Capture::default();
        let sub = tracing_subscriber::registry().with(layer().with_writer(cap.clone()));
        tracing::subscriber::with_default(sub, || emit(&ev, &sp));

        let writes = cap.writes();
        prop_assert_eq!(writes.len(), 1);
        let line = support::parse_line(&writes[0]); // strict: no duplicate keys
        let obj = line.as_object().unwrap();
        prop_assert_eq!(obj["level"].as_str(), Some("INFO"));

        // Event fields: the first occurrence of each name round-trips.
        let mut event_keys = Vec::new();
        for (i, (n, v)) in ev.iter().enumerate() {
            let first = ev.iter().position(|(m, _)| m == n) == Some(i);
            let text = first && (n == "message" || n == "event");
            let key = if text { n.clone() } else { expected_key(n) };
            event_keys.push(key.clone());
            if first {
                let got = obj.get(&key);
                let ok = got.is_some_and(|g| if text { v.matches_as_text(g) } else { v.matches(g) });
                prop_assert!(ok, "event field {:?} = {:?} not under {:?} in {}", n, v, key, writes[0]);
            }
        }
        // Span fields: round-trip unless an event field took the same key (event wins).
        for (i, (n, v)) in sp.iter().enumerate() {
            let key = expected_key(if n == "message" || n == "event" { "message" } else { n });
            let key = if n == "event" { "fields.event".to_owned() } else { key };
            let first = sp.iter().rposition(|(m, _)| m == n) == Some(i); // a repeated span name keeps the last value
            if first && !event_keys.contains(&key) && !ev_names.contains(n) {
                let got = obj.get(&key);
                prop_assert!(got.is_some_and(|g| v.matches(g)), "span field {:?} = {:?} not under {:?} in {}", n, v, key, writes[0]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Every preset, every option: arbitrary names and values always give one valid JSON object
    /// per line with unique keys at every depth.
    #[test]
    fn every_preset_writes_valid_unique_json(
        ev in prop::collection::vec((name(), value()), 8),
        sp in prop::collection::vec((name(), value()), 4),
        preset in prop::sample::select(vec![
            strata_json::Preset::Default,
            strata_json::Preset::Ecs,
            strata_json::Preset::Gcp,
            strata_json::Preset::OpenTelemetry,
        ]),
        options in any::<(bool, bool, bool, bool)>(),
    ) {
        let (file_line, thread, span_name, span_close) = options;
        let cap = Capture::default();
        let json = layer()
            .with_preset(preset)
            .with_file_line(file_line)
            .with_thread(thread)
            .with_span_name(span_name)
            .with_span_close(span_close)
            .with_max_field_len(24)
            .with_writer(cap.clone());
        let sub = tracing_subscriber::registry().with(json);
        tracing::subscriber::with_default(sub, || emit(&ev, &sp));
        let writes = cap.writes();
        prop_assert!(!writes.is_empty());
        for w in &writes {
            support::parse_line(w); // strict: one object, one newline, no duplicate keys
        }
    }
}
