//! The JSON formatter (strata-json) with arbitrary field names and values.
//!
//! Each input is one event: a preset, redaction on or off, a small or the default maximum
//! field length, a level, a field name, a value (text, bytes, integers, a float, a boolean,
//! an error with its cause) and a message (see [`read`] for the layout). `tracing`'s field names are static per call site; the target makes a call
//! site per name read at run time (as `strata_testkit::corpus::emit` does), at most
//! [`MAX_NAMES`] of them, then reuses those.
//!
//! Properties:
//! - exactly one line per event, ending in `\n`, with no raw control character;
//! - the line is one JSON object with no key twice;
//! - the message and the value come back exactly — or, past the maximum field length, their
//!   first bytes and the marker `…[truncated N bytes]` — under the key the schema gives them
//!   (the name, `fields.<name>` when the schema uses the name itself, `event` for a field
//!   named `event`; OpenTelemetry's under `Attributes`); with redaction on, at least the key.
#![no_main]

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use strata_core::encode::{TRUNCATION_MARKER_PREFIX, clip};
use strata_json::Preset;
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::{FieldSet, Value};
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, Level, Metadata};
use tracing_subscriber::prelude::*;

/// Call sites made for names read at run time; past this, names are taken from those made.
const MAX_NAMES: usize = 20_000;
/// The small maximum field length (the default is 16 KiB, larger than most inputs).
const SMALL_MAX: usize = 64;
const TARGET: &str = "strata_fuzz::json_event";
const PRESETS: [Preset; 4] = [
    Preset::Default,
    Preset::Ecs,
    Preset::Gcp,
    Preset::OpenTelemetry,
];
const LEVELS: [Level; 5] = [
    Level::TRACE,
    Level::DEBUG,
    Level::INFO,
    Level::WARN,
    Level::ERROR,
];

// ---- call sites for names read at run time --------------------------------------------------

struct DynCallsite(OnceLock<Metadata<'static>>);

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.0
            .get()
            .expect("metadata set when the callsite was made")
    }
}

#[derive(Default)]
struct Sites {
    by_key: HashMap<(Level, String), &'static DynCallsite>,
    names: Vec<String>,
}

/// The call site with the fields `message` and `name` at `level`, and the name it really has
/// (another one once [`MAX_NAMES`] names were made).
fn callsite(level: Level, name: &str) -> (&'static DynCallsite, String) {
    static SITES: OnceLock<Mutex<Sites>> = OnceLock::new();
    let mut sites = SITES.get_or_init(Mutex::default).lock().unwrap();
    let mut name = name.to_owned();
    if let Some(cs) = sites.by_key.get(&(level, name.clone())) {
        return (cs, name);
    }
    if sites.by_key.len() >= MAX_NAMES {
        let i = name
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        name = sites.names[i % sites.names.len()].clone();
        if let Some(cs) = sites.by_key.get(&(level, name.clone())) {
            return (cs, name);
        }
    }
    let cs: &'static DynCallsite = Box::leak(Box::new(DynCallsite(OnceLock::new())));
    let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
    let names: &'static [&'static str] = Box::leak(vec!["message", leaked].into_boxed_slice());
    let meta = Metadata::new(
        "event",
        TARGET,
        level,
        Some(file!()),
        Some(line!()),
        Some(module_path!()),
        FieldSet::new(names, Identifier(cs)),
        Kind::EVENT,
    );
    let _ = cs.0.set(meta);
    tracing_core::callsite::register(cs);
    sites.by_key.insert((level, name.clone()), cs);
    sites.names.push(name.clone());
    (cs, name)
}

// ---- the layers under test -----------------------------------------------------------------

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Setup {
    preset: Preset,
    redaction: bool,
    max: usize,
    dispatch: Dispatch,
    out: Buf,
}

/// One subscriber per (preset, redaction, maximum field length), made once.
fn setups() -> &'static [Setup] {
    static SETUPS: OnceLock<Vec<Setup>> = OnceLock::new();
    SETUPS.get_or_init(|| {
        let mut all = Vec::new();
        for preset in PRESETS {
            for redaction in [false, true] {
                for max in [strata_json::DEFAULT_MAX_FIELD_LEN, SMALL_MAX] {
                    let out = Buf::default();
                    let w = out.clone();
                    let layer = strata_json::layer()
                        .with_preset(preset)
                        .with_service("fuzz")
                        .with_gcp_project("p")
                        .with_max_field_len(max)
                        .with_redaction(
                            redaction.then(|| Arc::new(strata_core::redact::Redaction::new())),
                        )
                        .with_writer(move || w.clone());
                    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
                    all.push(Setup {
                        preset,
                        redaction,
                        max,
                        dispatch,
                        out,
                    });
                }
            }
        }
        all
    })
}

// ---- the input -----------------------------------------------------------------------------

#[derive(Debug)]
enum Val {
    Str(String),
    Bytes(Vec<u8>),
    I64(i64),
    U64(u64),
    I128(i128),
    F64(f64),
    Bool(bool),
    Error(Failure),
}

/// An error with an optional cause, recorded as `&dyn Error` (strata's error object).
#[derive(Debug)]
struct Failure {
    message: String,
    source: Option<Box<Failure>>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

impl Val {
    /// A value of kind `kind` from `raw`: text as it is (invalid UTF-8 replaced), numbers
    /// from the first bytes (little-endian, zero-padded).
    fn from(kind: u8, raw: &[u8]) -> Val {
        let mut n = [0u8; 16];
        let k = raw.len().min(16);
        n[..k].copy_from_slice(&raw[..k]);
        let n8: [u8; 8] = n[..8].try_into().unwrap();
        match kind % 8 {
            0 => Val::Str(String::from_utf8_lossy(raw).into_owned()),
            1 => Val::Bytes(raw.to_vec()),
            2 => Val::I64(i64::from_le_bytes(n8)),
            3 => Val::U64(u64::from_le_bytes(n8)),
            4 => Val::I128(i128::from_le_bytes(n)),
            5 => Val::F64(f64::from_le_bytes(n8)),
            6 => Val::Bool(raw.first().is_some_and(|b| b & 1 == 1)),
            // `message 0xfe cause`
            _ => {
                let mut parts = raw.splitn(2, |&b| b == 0xfe);
                let message = String::from_utf8_lossy(parts.next().unwrap_or_default()).into();
                let source = parts.next().map(|c| {
                    Box::new(Failure {
                        message: String::from_utf8_lossy(c).into(),
                        source: None,
                    })
                });
                Val::Error(Failure { message, source })
            }
        }
    }

    /// The text a string-valued key (`message`, `event`) shows, before any cut.
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Val::I64(n) => n.to_string(),
            Val::U64(n) => n.to_string(),
            Val::I128(n) => n.to_string(),
            Val::F64(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Error(e) => e.message.clone(),
        }
    }

    fn emit(&self, meta: &'static Metadata<'static>, message: &str) {
        let fields = meta.fields();
        let mut it = fields.iter();
        let (m, f) = (it.next().unwrap(), it.next().unwrap());
        let message = format_args!("{message}");
        let bytes: &[u8];
        let error: &(dyn std::error::Error + 'static);
        let v: &dyn Value = match self {
            Val::Str(s) => s,
            Val::Bytes(b) => {
                bytes = b;
                &bytes
            }
            Val::I64(n) => n,
            Val::U64(n) => n,
            Val::I128(n) => n,
            Val::F64(n) => n,
            Val::Bool(b) => b,
            Val::Error(e) => {
                error = e;
                &error
            }
        };
        let values = [(&m, Some(&message as &dyn Value)), (&f, Some(v))];
        Event::dispatch(meta, &fields.value_set(&values));
    }
}

/// Any JSON value, refused when an object (at any depth) has a key twice — which
/// `serde_json::Value` would hide.
struct Strict(Json);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(Json::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(Json::String(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Json::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                let mut items = Vec::new();
                while let Some(Strict(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Strict(Json::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
                let mut members = serde_json::Map::new();
                while let Some((k, Strict(v))) = map.next_entry::<String, Strict>()? {
                    if members.insert(k.clone(), v).is_some() {
                        return Err(A::Error::custom(format!("key {k:?} twice")));
                    }
                }
                Ok(Strict(Json::Object(members)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `text` as a value of at most `max` bytes shows it: whole, or cut and marked.
fn shown(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let kept = clip(text, max);
    format!(
        "{kept}{TRUNCATION_MARKER_PREFIX}{} bytes]",
        text.len() - kept.len()
    )
}

fn check_value(got: &Json, val: &Val, max: usize, ctx: &str) {
    match (val, got) {
        (Val::Str(_) | Val::Bytes(_), Json::String(s)) => {
            assert_eq!(*s, shown(&val.text(), max), "{ctx}")
        }
        (Val::I64(n), Json::Number(j)) => assert_eq!(j.as_i64(), Some(*n), "{ctx}"),
        (Val::U64(n), Json::Number(j)) => assert_eq!(j.as_u64(), Some(*n), "{ctx}"),
        (Val::I128(n), Json::Number(j)) => {
            // serde_json reads what fits in 64 bits exactly; larger ones as a float.
            if let Ok(small) = i64::try_from(*n) {
                assert_eq!(j.as_i64(), Some(small), "{ctx}");
            } else if let Ok(small) = u64::try_from(*n) {
                assert_eq!(j.as_u64(), Some(small), "{ctx}");
            } else {
                let f = j.as_f64().expect("a number");
                assert!((f - *n as f64).abs() <= (*n as f64).abs() * 1e-15, "{ctx}");
            }
        }
        (Val::F64(n), Json::Number(j)) => {
            assert!(n.is_finite(), "{ctx}");
            assert_eq!(j.as_f64(), Some(*n), "{ctx}");
        }
        (Val::F64(n), Json::String(s)) => {
            let want = if n.is_nan() {
                "NaN"
            } else if *n > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            assert!(!n.is_finite() && s == want, "{ctx}");
        }
        (Val::Bool(b), Json::Bool(j)) => assert_eq!(b, j, "{ctx}"),
        (Val::Error(e), Json::Object(o)) => {
            let message = |v: &Json| v.get("message").cloned();
            assert_eq!(
                message(got),
                Some(Json::String(shown(&e.message, max))),
                "{ctx}"
            );
            let chain = o.get("chain").and_then(Json::as_array).expect("a chain");
            let want: Vec<Option<Json>> = e
                .source
                .iter()
                .map(|c| Some(Json::String(shown(&c.message, max))))
                .collect();
            assert_eq!(chain.iter().map(message).collect::<Vec<_>>(), want, "{ctx}");
        }
        _ => panic!("{ctx}: value of the wrong JSON type"),
    }
}

/// The input: a byte each for the setup (preset, redaction, maximum length), the level and
/// the value's kind, then the name, the value and the message separated by `0xff` (a byte
/// UTF-8 never has).
fn read(data: &[u8]) -> Option<(usize, Level, String, Val, String)> {
    let [setup, level, kind, rest @ ..] = data else {
        return None;
    };
    let mut parts = rest.splitn(3, |&b| b == 0xff);
    let name = String::from_utf8_lossy(parts.next()?).into_owned();
    let value = Val::from(*kind, parts.next().unwrap_or_default());
    let message = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    Some((
        usize::from(*setup) % setups().len(),
        LEVELS[usize::from(*level) % LEVELS.len()],
        name,
        value,
        message,
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((setup, level, name, value, message)) = read(data) else {
        return;
    };
    // Field names are identifiers in practice; keep them short so call sites stay small.
    let name = clip(&name, 256).to_owned();
    let s = &setups()[setup];
    let (cs, name) = callsite(level, &name);
    let meta: &'static Metadata<'static> = cs.0.get().unwrap();
    s.out.0.lock().unwrap().clear();
    tracing_core::dispatcher::with_default(&s.dispatch, || value.emit(meta, &message));
    let out = std::mem::take(&mut *s.out.0.lock().unwrap());
    let ctx = format!(
        "preset {:?}, redaction {}, max {}, name {name:?}, value {value:?}, message {message:?}\nline: {}",
        s.preset,
        s.redaction,
        s.max,
        String::from_utf8_lossy(&out)
    );

    // One line, no raw control character.
    assert_eq!(out.last(), Some(&b'\n'), "{ctx}");
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "{ctx}");
    assert!(
        !out[..out.len() - 1].iter().any(|&b| b < 0x20 || b == 0x7f),
        "raw control character: {ctx}"
    );
    // One JSON object, no key twice (at any depth).
    let Strict(line) = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {ctx}"));
    let Json::Object(members) = line else {
        panic!("not an object: {ctx}")
    };
    let top = |k: &str| members.get(k);

    // The message.
    let message_key = if s.preset == Preset::OpenTelemetry {
        "Body"
    } else {
        "message"
    };
    let got = top(message_key).unwrap_or_else(|| panic!("no {message_key}: {ctx}"));
    if !s.redaction {
        assert_eq!(got, &Json::String(shown(&message, s.max)), "message: {ctx}");
    }
    if s.preset == Preset::Default {
        let critical = level == Level::ERROR && name == strata_core::CRITICAL_FIELD;
        let want = if critical { "CRITICAL" } else { level.as_str() };
        assert_eq!(top("level"), Some(&Json::String(want.into())), "{ctx}");
    }

    // The value, under the key the schema gives it.
    if name == strata_core::CRITICAL_FIELD {
        return; // a marker, never printed
    }
    let event_key = match s.preset {
        Preset::Ecs => "event.action",
        Preset::OpenTelemetry => "EventName",
        _ => "event",
    };
    if name == "event" {
        let got = top(event_key).unwrap_or_else(|| panic!("no {event_key}: {ctx}"));
        if !s.redaction {
            assert_eq!(
                got,
                &Json::String(shown(&value.text(), s.max)),
                "event: {ctx}"
            );
        }
        return;
    }
    let user = if s.preset == Preset::OpenTelemetry {
        match top("Attributes") {
            Some(Json::Object(attrs)) => attrs,
            _ => panic!("no Attributes: {ctx}"),
        }
    } else {
        &members
    };
    check_user(user, &name, &value, s, &ctx);
});

fn check_user(
    members: &serde_json::Map<String, Json>,
    name: &str,
    value: &Val,
    s: &Setup,
    ctx: &str,
) {
    // `fields.<name>` when the schema uses the name itself (or it starts with `fields.`):
    // then it is the user's, whatever `<name>` holds.
    let prefixed = format!("{}{name}", strata_core::RESERVED_PREFIX);
    let got = members
        .get(&prefixed)
        .or_else(|| members.get(name))
        .unwrap_or_else(|| panic!("value not found under {name:?} or {prefixed:?}: {ctx}"));
    if s.redaction {
        return;
    }
    check_value(got, value, s.max, ctx);
}
