//! The redaction corpus: secrets every strata output must mask, and ordinary values every
//! output must leave alone — and a way to log a field under any name read at run time.
//!
//! ```
//! use strata_testkit::corpus::{self, SecretKind};
//!
//! for s in corpus::secrets() {
//!     assert!(s.value.contains(&s.secret));
//!     if s.kind == SecretKind::Pattern {
//!         // recognisable anywhere: log it under any field, in a message, in an error
//!     }
//! }
//! assert!(!corpus::ordinary().is_empty());
//! ```
//!
//! The data is `crates/strata-core/tests/corpus/{secrets,ordinary}.tsv`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::{FieldSet, Value};
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, Metadata};

const SECRETS: &str = include_str!("../../strata-core/tests/corpus/secrets.tsv");
const ORDINARY: &str = include_str!("../../strata-core/tests/corpus/ordinary.tsv");

/// Why a secret must be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// Because of the name of the field holding it (`password = "hunter2"`).
    Name,
    /// Because of its shape, wherever it appears (a JWT, a card number…).
    Pattern,
}

/// One entry of the secrets corpus.
#[derive(Debug, Clone)]
pub struct Secret {
    /// Why it must be masked.
    pub kind: SecretKind,
    /// The field to log it under (for [`SecretKind::Name`], the name that makes it secret).
    pub field: String,
    /// The whole value logged.
    pub value: String,
    /// The part of `value` that must never appear in any output.
    pub secret: String,
}

/// One entry of the ordinary corpus: a value that must come out exactly as it went in.
#[derive(Debug, Clone)]
pub struct Ordinary {
    /// The field to log it under.
    pub field: String,
    /// The value.
    pub value: String,
}

fn rows(text: &'static str) -> impl Iterator<Item = Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').map(|c| c.replace("\\n", "\n")).collect())
}

/// The secrets corpus.
pub fn secrets() -> Vec<Secret> {
    rows(SECRETS)
        .map(|c| {
            assert_eq!(c.len(), 4, "secrets.tsv: four columns: {c:?}");
            Secret {
                kind: match c[0].as_str() {
                    "name" => SecretKind::Name,
                    "pattern" => SecretKind::Pattern,
                    k => panic!("secrets.tsv: unknown kind {k:?}"),
                },
                field: c[1].clone(),
                value: c[2].clone(),
                secret: c[3].clone(),
            }
        })
        .collect()
}

/// The ordinary corpus.
pub fn ordinary() -> Vec<Ordinary> {
    rows(ORDINARY)
        .map(|c| {
            assert_eq!(c.len(), 2, "ordinary.tsv: two columns: {c:?}");
            Ordinary {
                field: c[0].clone(),
                value: c[1].clone(),
            }
        })
        .collect()
}

/// The target of events logged with [`emit`].
pub const TARGET: &str = "strata_testkit::corpus";

struct DynCallsite(OnceLock<Metadata<'static>>);

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.0
            .get()
            .expect("metadata set when the callsite was made")
    }
}

/// A call site with the fields `message` and `name` at `level`, made once per pair and kept
/// for the life of the process (as `tracing`'s macros make static ones).
fn callsite(level: Level, name: &str) -> &'static DynCallsite {
    static SITES: OnceLock<Mutex<HashMap<(Level, String), &'static DynCallsite>>> = OnceLock::new();
    let mut sites = SITES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(cs) = sites.get(&(level, name.to_owned())) {
        return cs;
    }
    let cs: &'static DynCallsite = Box::leak(Box::new(DynCallsite(OnceLock::new())));
    let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let names: &'static [&'static str] = Box::leak(vec!["message", name].into_boxed_slice());
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
    sites.insert((level, name.to_owned()), cs);
    cs
}

/// Logs an event at `level` with the message `message` and one string field named `name`
/// (any name, read at run time — `tracing`'s macros need names known at compile time).
pub fn emit(level: Level, name: &str, value: &str, message: &str) {
    let meta = callsite(level, name).metadata();
    let fields = meta.fields();
    let (Some(m), Some(f)) = (fields.field("message"), fields.field(name)) else {
        return;
    };
    let message = format_args!("{message}");
    let values = [
        (&m, Some(&message as &dyn Value)),
        (&f, Some(&value as &dyn Value)),
    ];
    Event::dispatch(meta, &fields.value_set(&values));
}
