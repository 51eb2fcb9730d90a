//! A strata JSON line, whatever its preset (default, Elastic Common Schema, Google Cloud
//! Logging, OpenTelemetry), read into what the console shows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use strata_console::{Cause, ErrorView};
use strata_core::Severity;

/// One log line, borrowed from its parsed JSON.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) time: Option<SystemTime>,
    pub(crate) severity: Severity,
    pub(crate) target: &'a str,
    pub(crate) message: &'a str,
    pub(crate) request_id: Option<&'a Value>,
    pub(crate) trace_id: Option<&'a str>,
    pub(crate) span_id: Option<&'a str>,
    /// The other fields, in the line's order.
    pub(crate) fields: Vec<(&'a str, &'a Value)>,
}

/// The keys each preset writes itself (not shown as fields).
const DEFAULT_KEYS: &[&str] = &[
    "timestamp",
    "level",
    "service",
    "env",
    "version",
    "target",
    "message",
    "trace_id",
    "span_id",
    "span",
    "request_id",
];
const ECS_KEYS: &[&str] = &[
    "@timestamp",
    "log.level",
    "ecs.version",
    "service.name",
    "service.environment",
    "service.version",
    "log.logger",
    "message",
    "trace.id",
    "span.id",
    "span.name",
    "request_id",
];
const GCP_KEYS: &[&str] = &[
    "timestamp",
    "severity",
    "serviceContext",
    "env",
    "target",
    "message",
    "span",
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
    "logging.googleapis.com/sourceLocation",
    "request_id",
];
const OTEL_KEYS: &[&str] = &[
    "Timestamp",
    "ObservedTimestamp",
    "SeverityText",
    "SeverityNumber",
    "Resource",
    "InstrumentationScope",
    "Body",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "Attributes",
];

/// A JSON object's members in the order of the line (serde_json's `Map` sorts them unless its
/// `preserve_order` feature is on workspace-wide).
#[derive(Debug, Default)]
pub(crate) struct Object(Vec<(String, Value)>);

impl Object {
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(V)
    }
}

fn str_of<'a>(m: &'a Object, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// GCP's and OpenTelemetry's severity names, as well as strata's.
fn severity(name: &str) -> Option<Severity> {
    let name = name.trim();
    name.parse()
        .ok()
        .or(match name.to_ascii_uppercase().as_str() {
            "WARNING" => Some(Severity::Warn),
            "NOTICE" | "DEFAULT" => Some(Severity::Info),
            "FATAL" | "ALERT" | "EMERGENCY" => Some(Severity::Critical),
            _ => None,
        })
}

/// Nanoseconds since the epoch, as OpenTelemetry's JSON writes them (a string).
fn from_nanos(v: &Value) -> Option<SystemTime> {
    let n: u128 = match v {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => u128::from(n.as_u64()?),
        _ => return None,
    };
    let d = Duration::new(
        u64::try_from(n / 1_000_000_000).ok()?,
        u32::try_from(n % 1_000_000_000).ok()?,
    );
    UNIX_EPOCH.checked_add(d)
}

impl<'a> Record<'a> {
    /// Reads a line's object; `None` when it is not a strata log line of a known shape.
    pub(crate) fn from_json(m: &'a Object) -> Option<Record<'a>> {
        let (severity, skip): (Severity, &[&str]) = if let Some(l) = str_of(m, "level") {
            (severity(l)?, DEFAULT_KEYS)
        } else if let Some(l) = str_of(m, "log.level") {
            (severity(l)?, ECS_KEYS)
        } else if let Some(l) = str_of(m, "severity") {
            (severity(l)?, GCP_KEYS)
        } else if let Some(l) = str_of(m, "SeverityText") {
            (severity(l)?, OTEL_KEYS)
        } else {
            return None;
        };
        let time = ["timestamp", "@timestamp"]
            .iter()
            .find_map(|k| str_of(m, k))
            .and_then(strata_core::time::parse_rfc3339)
            .or_else(|| m.get("Timestamp").and_then(from_nanos));
        let target = ["target", "log.logger"]
            .iter()
            .find_map(|k| str_of(m, k))
            .or_else(|| {
                m.get("InstrumentationScope")
                    .and_then(|s| s.get("Name"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("");
        let message = ["message", "Body"]
            .iter()
            .find_map(|k| str_of(m, k))
            .unwrap_or("");
        let attributes = m.get("Attributes").and_then(Value::as_object);
        let lookup = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| m.get(k).or_else(|| attributes.and_then(|a| a.get(*k))))
        };
        let request_id = lookup(&["request_id"]);
        let trace_id = lookup(&[
            "trace_id",
            "trace.id",
            "TraceId",
            "logging.googleapis.com/trace",
        ])
        .and_then(Value::as_str)
        // GCP: projects/<project>/traces/<id>
        .map(|t| t.rsplit('/').next().unwrap_or(t));
        let span_id = lookup(&[
            "span_id",
            "span.id",
            "SpanId",
            "logging.googleapis.com/spanId",
        ])
        .and_then(Value::as_str);
        let mut fields: Vec<(&str, &Value)> = m.iter().filter(|(k, _)| !skip.contains(k)).collect();
        if let Some(a) = attributes {
            fields.extend(
                a.iter()
                    .filter(|(k, _)| k.as_str() != "request_id")
                    .map(|(k, v)| (k.as_str(), v)),
            );
        }
        Some(Record {
            time,
            severity,
            target,
            message,
            request_id,
            trace_id,
            span_id,
            fields,
        })
    }

    /// The request ID as text (an ID may be a number).
    pub(crate) fn request_id_text(&self) -> Option<String> {
        self.request_id.map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// An error object of strata's schema (`{"type", "message", "chain"}`): its message, its type
/// and the errors below it.
#[derive(Debug)]
pub(crate) struct ErrorParts<'a> {
    pub(crate) message: &'a str,
    pub(crate) type_name: Option<&'a str>,
    pub(crate) causes: Vec<Cause<'a>>,
}

impl<'a> ErrorParts<'a> {
    /// `v` as an error, when it is an object of strata's error shape.
    pub(crate) fn of(v: &'a Value) -> Option<ErrorParts<'a>> {
        let o = v.as_object()?;
        let message = o.get("message")?.as_str()?;
        if !o
            .keys()
            .all(|k| ["type", "message", "chain", "backtrace"].contains(&k.as_str()))
        {
            return None;
        }
        let causes = o
            .get("chain")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|link| {
                Some(Cause {
                    type_name: link.get("type").and_then(Value::as_str),
                    message: link.get("message")?.as_str()?,
                })
            })
            .collect();
        Some(ErrorParts {
            message,
            type_name: o.get("type").and_then(Value::as_str),
            causes,
        })
    }

    /// What the console shows.
    pub(crate) fn view(&self) -> ErrorView<'_> {
        ErrorView::new(self.message)
            .with_type(self.type_name)
            .with_chain(&self.causes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str) -> (Object, ()) {
        (serde_json::from_str(line).unwrap(), ())
    }

    #[test]
    fn every_preset_reads_the_same() {
        for line in [
            r#"{"timestamp":"2026-11-25T09:12:03.418207Z","level":"INFO","service":"payment_api","target":"payments::charge","message":"Payment successful","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","duration_ms":142,"request_id":"0193a5c2"}"#,
            r#"{"@timestamp":"2026-11-25T09:12:03.418207Z","log.level":"info","ecs.version":"8.11.0","service.name":"payment_api","log.logger":"payments::charge","message":"Payment successful","trace.id":"4bf92f3577b34da6a3ce929d0e0e4736","span.id":"00f067aa0ba902b7","duration_ms":142,"request_id":"0193a5c2"}"#,
            r#"{"timestamp":"2026-11-25T09:12:03.418207Z","severity":"INFO","serviceContext":{"service":"payment_api"},"target":"payments::charge","message":"Payment successful","logging.googleapis.com/trace":"projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736","logging.googleapis.com/spanId":"00f067aa0ba902b7","logging.googleapis.com/trace_sampled":true,"duration_ms":142,"request_id":"0193a5c2"}"#,
            r#"{"Timestamp":"1795597923418207000","ObservedTimestamp":"1795597923418207000","SeverityText":"INFO","SeverityNumber":9,"Resource":{"service.name":"payment_api"},"InstrumentationScope":{"Name":"payments::charge"},"Body":"Payment successful","TraceId":"4bf92f3577b34da6a3ce929d0e0e4736","SpanId":"00f067aa0ba902b7","TraceFlags":1,"Attributes":{"duration_ms":142,"request_id":"0193a5c2"}}"#,
        ] {
            let (m, ()) = rec(line);
            let r = Record::from_json(&m).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(r.severity, Severity::Info, "{line}");
            assert_eq!(r.target, "payments::charge", "{line}");
            assert_eq!(r.message, "Payment successful", "{line}");
            assert_eq!(r.request_id_text().as_deref(), Some("0193a5c2"), "{line}");
            assert_eq!(
                r.trace_id,
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                "{line}"
            );
            assert_eq!(r.span_id, Some("00f067aa0ba902b7"), "{line}");
            let names: Vec<&str> = r.fields.iter().map(|(k, _)| *k).collect();
            assert_eq!(names, ["duration_ms"], "{line}");
            assert!(r.time.is_some(), "{line}");
        }
        let (m, ()) = rec(r#"{"name":"not a log line"}"#);
        assert!(Record::from_json(&m).is_none());
        let (m, ()) = rec(r#"{"level":"LOUD","message":"x"}"#);
        assert!(Record::from_json(&m).is_none());
    }

    #[test]
    fn errors_keep_their_chain() {
        let v: Value = serde_json::from_str(
            r#"{"type":"shop::PaymentError","message":"gateway failed","chain":[{"type":"std::io::Error","message":"timed out"}]}"#,
        )
        .unwrap();
        let parts = ErrorParts::of(&v).unwrap();
        let e = parts.view();
        assert_eq!(e.message, "gateway failed");
        assert_eq!(e.type_name, Some("shop::PaymentError"));
        let chain: Vec<&str> = e.causes().map(|c| c.message).collect();
        assert_eq!(chain, ["timed out"]);
        let plain: Value = serde_json::from_str(r#"{"message":"x","other":1}"#).unwrap();
        assert!(ErrorParts::of(&plain).is_none());
    }
}
