//! Shared test support: an in-memory writer that records every write call, and a strict JSON
//! parser that rejects duplicate keys (serde_json's `Value` would silently keep the last one).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use strata_json::JsonLayer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Records each `write` call's bytes separately.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<Vec<u8>>>>);

pub struct CaptureWriter(Arc<Mutex<Vec<Vec<u8>>>>);

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

impl Capture {
    /// Every write call's bytes, as text.
    pub fn writes(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|w| String::from_utf8(w.clone()).expect("output is UTF-8"))
            .collect()
    }

    /// Each write parsed strictly; panics if a write is not exactly one JSON line.
    pub fn lines(&self) -> Vec<Value> {
        self.writes().iter().map(|w| parse_line(w)).collect()
    }
}

/// Runs `f` with `layer` (writing into a fresh capture) as the default subscriber.
pub fn capture(layer: JsonLayer, f: impl FnOnce()) -> Vec<Value> {
    let cap = Capture::default();
    let sub = tracing_subscriber::registry().with(layer.with_writer(cap.clone()));
    tracing::subscriber::with_default(sub, f);
    cap.lines()
}

/// Parses one written line: exactly one JSON object, one trailing newline, no other newline,
/// no duplicate keys at any depth.
pub fn parse_line(line: &str) -> Value {
    assert!(
        line.ends_with('\n'),
        "line must end with a newline: {line:?}"
    );
    let body = &line[..line.len() - 1];
    assert!(
        !body.contains('\n'),
        "line contains a raw newline: {line:?}"
    );
    let v: Strict = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(v.0.is_object(), "not an object: {line}");
    v.0
}

/// A JSON value whose deserialization fails on a duplicate key.
pub struct Strict(pub Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = BTreeSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format!("duplicate key {k:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}
