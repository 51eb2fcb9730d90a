//! Redaction of exported spans and log records, on the export thread (never the caller's):
//! attributes whose key is a sensitive name become `"[REDACTED]"` whatever their type, and
//! every other string — attribute values (arrays and nested maps too), span and span event
//! names (a span event's name is the tracing event's message), the status description, log
//! bodies — goes through [`Redaction::redact`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::SpanData;
use strata_core::redact::{MASK, Redaction};

/// `text` masked, or `None` when there was nothing to mask.
fn masked(r: &Redaction, text: &str) -> Option<String> {
    match r.redact(text) {
        Cow::Borrowed(_) => None,
        Cow::Owned(o) => Some(o),
    }
}

fn string(r: &Redaction, s: &mut StringValue) {
    if let Some(m) = masked(r, s.as_str()) {
        *s = m.into();
    }
}

fn cow(r: &Redaction, s: &mut Cow<'static, str>) {
    if let Some(m) = masked(r, s) {
        *s = m.into();
    }
}

/// A hash of a key's length and first and last 8 bytes: constant time whatever the key's
/// length (FNV over every byte was the export thread's largest cost). The cache below is only
/// ever filled by this process, with at most [`MAX_NAMES`] keys.
#[derive(Default)]
struct Quick(u64);

impl Hasher for Quick {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        fn word(b: &[u8]) -> u64 {
            let mut w = [0_u8; 8];
            let n = b.len().min(8);
            w[..n].copy_from_slice(&b[..n]);
            u64::from_le_bytes(w)
        }
        let head = word(bytes);
        let tail = word(&bytes[bytes.len().saturating_sub(8)..]);
        self.0 = (self.0.rotate_left(5) ^ head.rotate_left(23) ^ tail ^ bytes.len() as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The rules, with the decisions about attribute keys remembered: keys are few (field names),
/// and deciding one costs far more than looking it up.
pub(crate) struct Rules {
    rules: Arc<Redaction>,
    names: HashMap<Box<str>, bool, BuildHasherDefault<Quick>>,
}

/// Keys remembered at most (past that, decided each time: keys made at run time cannot grow
/// the cache without bound).
const MAX_NAMES: usize = 4096;

impl Rules {
    pub(crate) fn new(rules: Arc<Redaction>) -> Rules {
        Rules {
            rules,
            names: HashMap::default(),
        }
    }

    fn is_sensitive(&mut self, key: &str) -> bool {
        if let Some(&s) = self.names.get(key) {
            return s;
        }
        let s = self.rules.is_sensitive(key);
        if self.names.len() < MAX_NAMES {
            self.names.insert(key.into(), s);
        }
        s
    }
}

/// Masks attributes in place. The callsite's location (`code.*`: the source file, module and
/// line, constants of the program) is not scanned.
fn attributes(r: &mut Rules, attrs: &mut [KeyValue]) {
    for kv in attrs {
        if matches!(
            kv.key.as_str(),
            "code.file.path" | "code.module.name" | "code.line.number"
        ) {
            continue;
        }
        if r.is_sensitive(kv.key.as_str()) {
            kv.value = Value::String(MASK.into());
            continue;
        }
        let rules = &*r.rules;
        match &mut kv.value {
            Value::String(s) => string(rules, s),
            Value::Array(Array::String(list)) => list.iter_mut().for_each(|s| string(rules, s)),
            _ => {}
        }
    }
}

/// Masks a span: its name, attributes, status description, and its events' names and
/// attributes and its links' attributes.
pub(crate) fn span(r: &mut Rules, span: &mut SpanData) {
    cow(&r.rules, &mut span.name);
    attributes(r, &mut span.attributes);
    if let Status::Error { description } = &mut span.status {
        cow(&r.rules, description);
    }
    for event in &mut span.events.events {
        cow(&r.rules, &mut event.name);
        attributes(r, &mut event.attributes);
    }
    for link in &mut span.links.links {
        attributes(r, &mut link.attributes);
    }
}

/// `v` masked, or `None` when nothing in it needed masking.
fn any(r: &mut Rules, v: &AnyValue) -> Option<AnyValue> {
    match v {
        AnyValue::String(s) => masked(&r.rules, s.as_str()).map(|m| AnyValue::String(m.into())),
        AnyValue::ListAny(list) => {
            let changed: Vec<Option<AnyValue>> = list.iter().map(|v| any(r, v)).collect();
            changed.iter().any(Option::is_some).then(|| {
                AnyValue::ListAny(Box::new(
                    list.iter()
                        .zip(changed)
                        .map(|(v, c)| c.unwrap_or_else(|| v.clone()))
                        .collect(),
                ))
            })
        }
        AnyValue::Map(map) => {
            let mut out = None;
            for (k, v) in map.iter() {
                let new = if r.is_sensitive(k.as_str()) {
                    Some(AnyValue::String(MASK.into()))
                } else {
                    any(r, v)
                };
                if let Some(new) = new {
                    out.get_or_insert_with(|| map.clone())
                        .insert(k.clone(), new);
                }
            }
            out.map(AnyValue::Map)
        }
        _ => None,
    }
}

/// Rebuilds log records with their secrets masked. `SdkLogRecord`'s attributes cannot be
/// changed or removed in place (opentelemetry_sdk 0.33 only appends), so a record that needs
/// masking is copied into a new one, made by a logger of a provider of our own.
pub(crate) struct LogRedactor {
    rules: Rules,
    logger: SdkLogger,
}

impl LogRedactor {
    pub(crate) fn new(rules: Arc<Redaction>) -> LogRedactor {
        let provider = SdkLoggerProvider::builder().build();
        let logger = provider.logger("strata-otlp-redaction");
        // Records are only ever created with it, never emitted: nothing to keep running.
        let _ = provider.shutdown();
        LogRedactor {
            rules: Rules::new(rules),
            logger,
        }
    }

    /// The record with its body and attributes masked, or `None` when it holds no secret.
    pub(crate) fn redact(&mut self, record: &SdkLogRecord) -> Option<SdkLogRecord> {
        let r = &mut self.rules;
        let body = record.body().and_then(|b| any(r, b));
        let mut changes: Vec<(usize, AnyValue)> = Vec::new();
        for (i, (key, value)) in record.attributes_iter().enumerate() {
            let new = if r.is_sensitive(key.as_str()) {
                Some(AnyValue::String(MASK.into()))
            } else {
                any(r, value)
            };
            if let Some(new) = new {
                changes.push((i, new));
            }
        }
        if body.is_none() && changes.is_empty() {
            return None;
        }
        // Every field of the record (opentelemetry_sdk 0.33), copied.
        let mut out = self.logger.create_log_record();
        if let Some(name) = record.event_name() {
            out.set_event_name(name);
        }
        if let Some(target) = record.target() {
            out.set_target(target.clone());
        }
        if let Some(t) = record.timestamp() {
            out.set_timestamp(t);
        }
        if let Some(t) = record.observed_timestamp() {
            out.set_observed_timestamp(t);
        }
        if let Some(tc) = record.trace_context() {
            out.set_trace_context(tc.trace_id, tc.span_id, tc.trace_flags);
        }
        if let Some(text) = record.severity_text() {
            out.set_severity_text(text);
        }
        if let Some(n) = record.severity_number() {
            out.set_severity_number(n);
        }
        if let Some(b) = body.or_else(|| record.body().cloned()) {
            out.set_body(b);
        }
        let mut changes = changes.into_iter().peekable();
        for (i, (key, value)) in record.attributes_iter().enumerate() {
            let value = match changes.next_if(|(at, _)| *at == i) {
                Some((_, new)) => new,
                None => value.clone(),
            };
            out.add_attribute(key.clone(), value);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::SystemTime;

    use opentelemetry::Key;
    use opentelemetry::logs::Severity;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn log_records_are_rebuilt_with_every_field_and_masked_values() {
        let mut redactor = LogRedactor::new(Arc::new(Redaction::new()));
        let mut rec = redactor.logger.create_log_record();
        rec.set_event_name("login");
        rec.set_target("app::auth");
        let t = SystemTime::now();
        rec.set_timestamp(t);
        rec.set_observed_timestamp(t);
        let (trace, span) = (TraceId::from(7_u128), SpanId::from(9_u64));
        rec.set_trace_context(trace, span, Some(TraceFlags::SAMPLED));
        rec.set_severity_text("WARN");
        rec.set_severity_number(Severity::Warn);
        rec.set_body(AnyValue::from("card 4111111111111111 declined"));
        rec.add_attribute("user", "bob");
        rec.add_attribute("password", 1234_i64);
        let mut nested = HashMap::new();
        nested.insert(Key::from("api_key"), AnyValue::from("k-1"));
        nested.insert(Key::from("dsn"), AnyValue::from("redis://u:pw@cache/0"));
        rec.add_attribute("db", AnyValue::Map(Box::new(nested)));
        rec.add_attribute(
            "list",
            AnyValue::ListAny(Box::new(vec![
                AnyValue::from(1_i64),
                AnyValue::from("Bearer abcDEF123456789xyz"),
            ])),
        );
        let out = redactor.redact(&rec).expect("something to mask");
        assert_eq!(out.event_name(), Some("login"));
        assert_eq!(out.target().map(|t| t.as_ref()), Some("app::auth"));
        assert_eq!(
            (out.timestamp(), out.observed_timestamp()),
            (Some(t), Some(t))
        );
        let tc = out.trace_context().unwrap();
        assert_eq!(
            (tc.trace_id, tc.span_id, tc.trace_flags),
            (trace, span, Some(TraceFlags::SAMPLED))
        );
        assert_eq!(out.severity_text(), Some("WARN"));
        assert_eq!(out.severity_number(), Some(Severity::Warn));
        assert_eq!(
            out.body(),
            Some(&AnyValue::from("card [REDACTED:card] declined"))
        );
        let attrs: Vec<(String, AnyValue)> = out
            .attributes_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut db = HashMap::new();
        db.insert(Key::from("api_key"), AnyValue::from(MASK));
        db.insert(
            Key::from("dsn"),
            AnyValue::from("redis://u:[REDACTED]@cache/0"),
        );
        assert_eq!(
            attrs,
            vec![
                ("user".to_owned(), AnyValue::from("bob")),
                ("password".to_owned(), AnyValue::from(MASK)),
                ("db".to_owned(), AnyValue::Map(Box::new(db))),
                (
                    "list".to_owned(),
                    AnyValue::ListAny(Box::new(vec![
                        AnyValue::from(1_i64),
                        AnyValue::from("Bearer [REDACTED:bearer]"),
                    ]))
                ),
            ]
        );
        // Nothing to mask: no copy.
        let mut clean = redactor.logger.create_log_record();
        clean.set_body(AnyValue::from("order placed"));
        clean.add_attribute("order_id", 42_i64);
        assert!(redactor.redact(&clean).is_none());
    }

    #[test]
    fn spans_are_masked_in_name_attributes_status_events_and_links() {
        let r = &mut Rules::new(Arc::new(Redaction::new()));
        let cx = SpanContext::new(
            TraceId::from(1_u128),
            SpanId::from(2_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let mut s = SpanData {
            span_context: cx.clone(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: opentelemetry::trace::SpanKind::Internal,
            name: "GET https://u:pw1@host/x".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: vec![
                KeyValue::new("session_id", 42_i64),
                KeyValue::new("note", "token ghp_1234567890abcdefghijABCDEFGHIJ123456"),
                KeyValue::new(
                    "exception.stacktrace",
                    Value::Array(Array::String(vec!["ok".into(), "password=x1".into()])),
                ),
                KeyValue::new("n", 3_i64),
            ],
            dropped_attributes_count: 0,
            events: opentelemetry_sdk::trace::SpanEvents::default(),
            links: opentelemetry_sdk::trace::SpanLinks::default(),
            status: Status::error("Authorization: Bearer abcDEF123456789xyz"),
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("t").build(),
        };
        s.events.events.push(opentelemetry::trace::Event::new(
            "card 4111111111111111 declined",
            SystemTime::now(),
            vec![KeyValue::new("cvv", "737"), KeyValue::new("user", "bob")],
            0,
        ));
        s.links.links.push(opentelemetry::trace::Link::new(
            cx,
            vec![KeyValue::new("api_key", "k-1")],
            0,
        ));
        span(r, &mut s);
        assert_eq!(s.name, "GET https://u:[REDACTED]@host/x");
        assert_eq!(
            s.attributes,
            vec![
                KeyValue::new("session_id", MASK),
                KeyValue::new("note", "token [REDACTED:token]"),
                KeyValue::new(
                    "exception.stacktrace",
                    Value::Array(Array::String(vec![
                        "ok".into(),
                        "password=[REDACTED]".into()
                    ])),
                ),
                KeyValue::new("n", 3_i64),
            ]
        );
        assert_eq!(s.status, Status::error("Authorization: [REDACTED]"));
        let e = &s.events.events[0];
        assert_eq!(e.name, "card [REDACTED:card] declined");
        assert_eq!(
            e.attributes,
            vec![KeyValue::new("cvv", MASK), KeyValue::new("user", "bob")]
        );
        assert_eq!(
            s.links.links[0].attributes,
            vec![KeyValue::new("api_key", MASK)]
        );
    }
}
