//! OTLP protobuf, written straight from the SDK's span and log records into one buffer per
//! batch — the `ExportTraceServiceRequest` / `ExportLogsServiceRequest` bytes that go on the
//! wire, with no intermediate message structs: the standard path (opentelemetry-proto's
//! conversion, then prost) deep-copies every batch (for a retry), allocates a message struct for
//! every span, event, attribute and value, and frees them all again; the bytes are the same
//! (tested: decoding them with opentelemetry-proto's types gives what its conversion gives).
//!
//! A nested message is written in place: its body after a one-byte length, moved right in the
//! rare case its length needs more bytes (a whole span or scope: one `memmove`).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::logs::AnyValue as LogValue;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::{encode_varint, encoded_len_varint};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags.CONTEXT_HAS_IS_REMOTE_MASK` and `CONTEXT_IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

#[inline]
fn key(buf: &mut Vec<u8>, field: u32, wire: u32) {
    encode_varint(u64::from(field << 3 | wire), buf);
}

#[inline]
fn bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(buf, field, LEN);
    encode_varint(b.len() as u64, buf);
    buf.extend_from_slice(b);
}

/// A string field, left out when empty (proto3's default).
#[inline]
fn string(buf: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        bytes(buf, field, s.as_bytes());
    }
}

/// A varint field, left out when zero.
#[inline]
fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, VARINT);
        encode_varint(v, buf);
    }
}

/// A `fixed64` field, left out when zero.
#[inline]
fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, FIXED64);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// A `fixed32` field, left out when zero.
#[inline]
fn fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(buf, field, FIXED32);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// A message field: `body` writes its fields, then the length goes in front.
#[inline]
fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    let n = encoded_len_varint(len as u64);
    if n > 1 {
        buf.resize(buf.len() + n - 1, 0);
        buf.copy_within(at + 1..at + 1 + len, at + n);
    }
    let mut slot = &mut buf[at..at + n];
    encode_varint(len as u64, &mut slot);
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// `AnyValue`'s fields (a oneof: written even when zero or empty).
const STRING_VALUE: u32 = 1;
const BOOL_VALUE: u32 = 2;
const INT_VALUE: u32 = 3;
const DOUBLE_VALUE: u32 = 4;
const ARRAY_VALUE: u32 = 5;
const KVLIST_VALUE: u32 = 6;
const BYTES_VALUE: u32 = 7;

#[inline]
fn any_string(buf: &mut Vec<u8>, s: &str) {
    bytes(buf, STRING_VALUE, s.as_bytes());
}

#[inline]
fn any_bool(buf: &mut Vec<u8>, b: bool) {
    key(buf, BOOL_VALUE, VARINT);
    buf.push(u8::from(b));
}

#[inline]
fn any_int(buf: &mut Vec<u8>, i: i64) {
    key(buf, INT_VALUE, VARINT);
    encode_varint(i as u64, buf);
}

#[inline]
fn any_double(buf: &mut Vec<u8>, f: f64) {
    key(buf, DOUBLE_VALUE, FIXED64);
    buf.extend_from_slice(&f.to_le_bytes());
}

/// An `ArrayValue` of `values`, each an `AnyValue` written by `one`.
fn any_array<T>(buf: &mut Vec<u8>, values: &[T], one: impl Fn(&mut Vec<u8>, &T)) {
    message(buf, ARRAY_VALUE, |buf| {
        for v in values {
            message(buf, 1, |buf| one(buf, v));
        }
    });
}

/// An `AnyValue`'s fields for a span attribute's value.
fn value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => any_string(buf, s.as_str()),
        Value::I64(i) => any_int(buf, *i),
        Value::Bool(b) => any_bool(buf, *b),
        Value::F64(f) => any_double(buf, *f),
        Value::Array(Array::String(a)) => any_array(buf, a, |b, s| any_string(b, s.as_str())),
        Value::Array(Array::I64(a)) => any_array(buf, a, |b, i| any_int(b, *i)),
        Value::Array(Array::Bool(a)) => any_array(buf, a, |b, x| any_bool(b, *x)),
        Value::Array(Array::F64(a)) => any_array(buf, a, |b, f| any_double(b, *f)),
        // A kind added to the API after this was written: opentelemetry-proto's conversion.
        #[allow(unreachable_patterns)]
        other => {
            use opentelemetry_proto::tonic::common::v1::AnyValue;
            prost::Message::encode_raw(&AnyValue::from(other.clone()), buf);
        }
    }
}

/// An `AnyValue`'s fields for a log record's body or attribute.
fn log_value(buf: &mut Vec<u8>, v: &LogValue) {
    match v {
        LogValue::String(s) => any_string(buf, s.as_str()),
        LogValue::Int(i) => any_int(buf, *i),
        LogValue::Boolean(b) => any_bool(buf, *b),
        LogValue::Double(f) => any_double(buf, *f),
        LogValue::Bytes(b) => bytes(buf, BYTES_VALUE, b),
        LogValue::ListAny(list) => any_array(buf, list, log_value),
        LogValue::Map(map) => message(buf, KVLIST_VALUE, |buf| {
            for (k, v) in map.iter() {
                key_value(buf, 1, k.as_str(), |buf| log_value(buf, v));
            }
        }),
        #[allow(unreachable_patterns)]
        other => {
            use opentelemetry_proto::tonic::common::v1::AnyValue;
            prost::Message::encode_raw(&AnyValue::from(other.clone()), buf);
        }
    }
}

/// A `KeyValue` field: `key`, and the `AnyValue` that `value` writes.
#[inline]
fn key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
    message(buf, field, |buf| {
        string(buf, 1, key);
        message(buf, 2, value);
    });
}

/// Repeated `KeyValue` fields.
fn attributes<'a>(buf: &mut Vec<u8>, field: u32, kvs: impl IntoIterator<Item = &'a KeyValue>) {
    for kv in kvs {
        key_value(buf, field, kv.key.as_str(), |buf| value(buf, &kv.value));
    }
}

/// An `InstrumentationScope` message, named `name`.
fn scope(buf: &mut Vec<u8>, field: u32, name: &str, scope: &InstrumentationScope) {
    message(buf, field, |buf| {
        string(buf, 1, name);
        string(buf, 2, scope.version().unwrap_or_default());
        attributes(buf, 3, scope.attributes());
    });
}

/// The resource, encoded once: its `Resource` message body and its schema URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct EncodedResource {
    body: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    pub(crate) fn new(resource: &Resource) -> EncodedResource {
        let mut body = Vec::new();
        for (k, v) in resource.iter() {
            key_value(&mut body, 1, k.as_str(), |buf| value(buf, v));
        }
        EncodedResource {
            body,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }

    /// A `ResourceSpans` / `ResourceLogs` (field 1 of the export request) around `scopes`.
    fn around(&self, out: &mut Vec<u8>, scopes: impl FnOnce(&mut Vec<u8>)) {
        message(out, 1, |buf| {
            bytes(buf, 1, &self.body);
            scopes(buf);
            string(buf, 3, &self.schema_url);
        });
    }
}

/// Groups `items` by a key, keeping first-seen order (a batch has one scope, or a few).
fn groups<'a, T, K: PartialEq>(
    items: impl Iterator<Item = &'a T>,
    key: impl Fn(&'a T) -> K,
) -> Vec<(K, Vec<&'a T>)>
where
    T: 'a,
{
    let mut out: Vec<(K, Vec<&'a T>)> = Vec::new();
    for item in items {
        let k = key(item);
        match out.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(item),
            None => out.push((k, vec![item])),
        }
    }
    out
}

fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn span(buf: &mut Vec<u8>, s: &SpanData) {
    let sc = &s.span_context;
    bytes(buf, 1, &sc.trace_id().to_bytes());
    bytes(buf, 2, &sc.span_id().to_bytes());
    string(buf, 3, &sc.trace_state().header());
    if s.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(buf, 4, &s.parent_span_id.to_bytes());
    }
    string(buf, 5, &s.name);
    uint(buf, 6, span_kind(&s.span_kind));
    fixed64(buf, 7, nanos(s.start_time));
    fixed64(buf, 8, nanos(s.end_time));
    attributes(buf, 9, &s.attributes);
    uint(buf, 10, u64::from(s.dropped_attributes_count));
    for e in &s.events.events {
        message(buf, 11, |buf| {
            fixed64(buf, 1, nanos(e.timestamp));
            string(buf, 2, &e.name);
            attributes(buf, 3, &e.attributes);
            uint(buf, 4, u64::from(e.dropped_attributes_count));
        });
    }
    uint(buf, 12, u64::from(s.events.dropped_count));
    for l in &s.links.links {
        message(buf, 13, |buf| {
            let lc = &l.span_context;
            bytes(buf, 1, &lc.trace_id().to_bytes());
            bytes(buf, 2, &lc.span_id().to_bytes());
            string(buf, 3, &lc.trace_state().header());
            attributes(buf, 4, &l.attributes);
            uint(buf, 5, u64::from(l.dropped_attributes_count));
            let remote = if lc.is_remote() { IS_REMOTE } else { 0 };
            fixed32(
                buf,
                6,
                u32::from(lc.trace_flags().to_u8()) | HAS_IS_REMOTE | remote,
            );
        });
    }
    uint(buf, 14, u64::from(s.links.dropped_count));
    message(buf, 15, |buf| match &s.status {
        Status::Unset => {}
        Status::Ok => uint(buf, 3, 1),
        Status::Error { description } => {
            string(buf, 2, description);
            uint(buf, 3, 2);
        }
    });
    let remote = if s.parent_span_is_remote {
        IS_REMOTE
    } else {
        0
    };
    fixed32(
        buf,
        16,
        u32::from(sc.trace_flags().to_u8()) | HAS_IS_REMOTE | remote,
    );
}

/// `spans` as an `ExportTraceServiceRequest`, appended to `out`.
pub(crate) fn traces(out: &mut Vec<u8>, resource: &EncodedResource, spans: &[SpanData]) {
    resource.around(out, |buf| {
        for (sc, members) in groups(spans.iter(), |s| &s.instrumentation_scope) {
            message(buf, 2, |buf| {
                scope(buf, 1, sc.name(), sc);
                for s in members {
                    message(buf, 2, |buf| span(buf, s));
                }
                string(buf, 3, sc.schema_url().unwrap_or_default());
            });
        }
    });
}

fn log_record(buf: &mut Vec<u8>, r: &SdkLogRecord) {
    fixed64(buf, 1, r.timestamp().map_or(0, nanos));
    uint(buf, 2, r.severity_number().map_or(0, |s| s as u64));
    string(buf, 3, r.severity_text().unwrap_or_default());
    if let Some(body) = r.body() {
        message(buf, 5, |buf| log_value(buf, body));
    }
    for (k, v) in r.attributes_iter() {
        key_value(buf, 6, k.as_str(), |buf| log_value(buf, v));
    }
    if let Some(cx) = r.trace_context() {
        fixed32(buf, 8, cx.trace_flags.map_or(0, |f| u32::from(f.to_u8())));
        bytes(buf, 9, &cx.trace_id.to_bytes());
        bytes(buf, 10, &cx.span_id.to_bytes());
    }
    fixed64(buf, 11, r.observed_timestamp().map_or(0, nanos));
    string(buf, 12, r.event_name().unwrap_or_default());
}

/// `logs` as an `ExportLogsServiceRequest`, appended to `out`. Each record's scope is named
/// after its target (as opentelemetry-proto does), otherwise its logger's.
pub(crate) fn logs(out: &mut Vec<u8>, resource: &EncodedResource, logs: &LogBatch<'_>) {
    let items: Vec<(&SdkLogRecord, &InstrumentationScope)> = logs.iter().collect();
    resource.around(out, |buf| {
        let by_scope = groups(items.iter(), |(r, sc)| {
            let name = r.target().map_or_else(|| sc.name(), |t| t.as_ref());
            (name, *sc)
        });
        for ((name, sc), members) in by_scope {
            message(buf, 2, |buf| {
                scope(buf, 1, name, sc);
                for (r, _) in members {
                    message(buf, 2, |buf| log_record(buf, r));
                }
                string(buf, 3, sc.schema_url().unwrap_or_default());
            });
        }
    });
}

#[cfg(test)]
mod tests {
    //! The bytes, decoded with opentelemetry-proto's message types, equal what its own
    //! conversion (the one opentelemetry-otlp sends) makes of the same records.

    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::time::Duration;

    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
    use opentelemetry::trace::{Event, Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry::{Key, StringValue};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::logs::SdkLoggerProvider;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn resource() -> Resource {
        Resource::builder()
            .with_service_name("checkout")
            .with_attributes([
                KeyValue::new("process.pid", 4242_i64),
                KeyValue::new("host.name", "web-1"),
            ])
            .with_schema_url(
                Vec::<KeyValue>::new(),
                "https://opentelemetry.io/schemas/1.30.0",
            )
            .build()
    }

    fn context(trace: u128, span: u64, remote: bool, state: &str) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            if state.is_empty() {
                TraceState::NONE
            } else {
                state.parse().unwrap()
            },
        )
    }

    /// Every kind of value, an empty and a long (multi-byte length) string.
    fn every_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("s", "text ü 🚀"),
            KeyValue::new("empty", ""),
            KeyValue::new("long", "x".repeat(20_000)),
            KeyValue::new("i", -42_i64),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("f", 2.5_f64),
            KeyValue::new("t", true),
            KeyValue::new("no", false),
            KeyValue::new(
                "strings",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from(""),
                ])),
            ),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -2, 0]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![0.0, -1.5]))),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("none", Value::Array(Array::I64(vec![]))),
        ]
    }

    fn span(
        name: &'static str,
        scope: &InstrumentationScope,
        id: u64,
        parent: u64,
        status: Status,
    ) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut events = SpanEvents::default();
        events.events = vec![
            Event::new(
                "request completed",
                start + Duration::from_micros(5),
                every_value(),
                0,
            ),
            Event::new("", start, vec![], 3),
        ];
        events.dropped_count = 2;
        let mut links = SpanLinks::default();
        links.links = vec![
            Link::new(
                context(9, 10, true, "k=v"),
                vec![KeyValue::new("l", 1_i64)],
                1,
            ),
            Link::new(context(11, 12, false, ""), vec![], 0),
        ];
        links.dropped_count = 1;
        SpanData {
            span_context: context(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c, id, false, "a=1"),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: parent == 7,
            span_kind: if id.is_multiple_of(2) {
                SpanKind::Server
            } else {
                SpanKind::Internal
            },
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: start + Duration::from_millis(3),
            attributes: every_value(),
            dropped_attributes_count: 4,
            events,
            links,
            status,
            instrumentation_scope: scope.clone(),
        }
    }

    #[test]
    fn spans_decode_to_what_opentelemetry_proto_makes_of_them() {
        let strata = InstrumentationScope::builder("strata").build();
        let other = InstrumentationScope::builder("other")
            .with_version("1.2.3")
            .with_schema_url("https://example.com/schema")
            .with_attributes([KeyValue::new("scope.attr", "yes")])
            .build();
        let spans = vec![
            span("GET /users/{id}", &strata, 2, 7, Status::error("boom")),
            span("child", &other, 3, 2, Status::Ok),
            span("", &strata, 4, 0, Status::Unset),
            span("naïve", &other, 5, 0, Status::error("")),
        ];
        let resource = resource();
        let mut bytes = Vec::new();
        traces(&mut bytes, &EncodedResource::new(&resource), &spans);
        let ours = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(ours.resource_spans[0].scope_spans.len(), 2);
        assert_eq!(ours, theirs);
        // And the bytes are prost's, byte for byte (so no collector parses them differently).
        assert_eq!(bytes, theirs.encode_to_vec());
    }

    #[test]
    fn an_empty_batch_is_one_resource() {
        let mut bytes = Vec::new();
        traces(&mut bytes, &EncodedResource::new(&resource()), &[]);
        let ours = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(ours.resource_spans.len(), 1);
        assert!(ours.resource_spans[0].scope_spans.is_empty());
    }

    #[test]
    fn log_records_decode_to_what_opentelemetry_proto_makes_of_them() {
        let provider = SdkLoggerProvider::builder().build();
        let logger = provider.logger("strata");
        let mut records = Vec::new();
        for (i, target) in ["app::http", "app::db", "app::http"]
            .into_iter()
            .enumerate()
        {
            let mut r = logger.create_log_record();
            r.set_event_name("request_completed");
            r.set_target(target);
            let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_000 + i as u64);
            r.set_timestamp(t);
            r.set_observed_timestamp(t + Duration::from_micros(1));
            r.set_trace_context(
                TraceId::from(7_u128),
                SpanId::from(9_u64),
                Some(TraceFlags::SAMPLED),
            );
            r.set_severity_text("WARN");
            r.set_severity_number(Severity::Warn);
            r.set_body(LogValue::from("card declined ü"));
            r.add_attribute("s", "v");
            r.add_attribute("long", "y".repeat(300));
            r.add_attribute("i", -1_i64);
            r.add_attribute("f", 0.25_f64);
            r.add_attribute("b", false);
            r.add_attribute("bytes", LogValue::Bytes(Box::new(vec![0, 255, 10])));
            r.add_attribute(
                "list",
                LogValue::ListAny(Box::new(vec![LogValue::Int(1), LogValue::from("two")])),
            );
            let mut map = HashMap::new();
            map.insert(Key::from("k"), LogValue::Boolean(true));
            r.add_attribute("map", LogValue::Map(Box::new(map)));
            records.push(r);
        }
        // One without a target, trace context, timestamp or body.
        let mut bare = logger.create_log_record();
        bare.set_observed_timestamp(UNIX_EPOCH + Duration::from_secs(1));
        records.push(bare);
        let scope = InstrumentationScope::builder("strata")
            .with_version("0.1")
            .build();
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            records.iter().map(|r| (r, &scope)).collect();
        let batch = LogBatch::new(&refs);
        let resource = resource();
        let mut bytes = Vec::new();
        logs(&mut bytes, &EncodedResource::new(&resource), &batch);
        let mut ours = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
        let mut theirs = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(
                &batch,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        // opentelemetry-proto's scopes come out of a HashMap: compare in name order.
        for r in [&mut ours, &mut theirs] {
            r.resource_logs[0].scope_logs.sort_by(|a, b| {
                a.scope
                    .as_ref()
                    .unwrap()
                    .name
                    .cmp(&b.scope.as_ref().unwrap().name)
            });
        }
        assert_eq!(ours.resource_logs[0].scope_logs.len(), 3);
        assert_eq!(ours, theirs);
    }
}
