//! A plain human-readable line: `TIMESTAMP LEVEL target: message key=value …`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

use strata_core::redact::{MASK, Redaction};
use strata_core::{CRITICAL_FIELD, FieldValue, Severity, store};
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Escapes control characters, bidi overrides and line separators, so a value can never end
/// the line or reorder what a terminal shows.
struct Clean<'a>(&'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printable ASCII, by far the most common: as it is.
        if self.0.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return f.write_str(self.0);
        }
        for c in self.0.chars() {
            if strata_core::encode::is_terminal_unsafe(c) {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// A router's redaction rules, with the id its decisions about field names are remembered
/// under.
#[derive(Clone, Copy)]
pub(crate) struct Rules<'a> {
    pub(crate) redaction: &'a Redaction,
    /// Unique to this set of rules in this router (never reused).
    pub(crate) id: u64,
}

/// Names remembered per thread at most (then forgotten all at once).
const MAX_NAMES: usize = 4096;

thread_local! {
    /// Whether a field name is sensitive, by the rules' id and the name's address and length:
    /// field names are `&'static str`, so an address always holds the same name. Deciding
    /// costs ~150 ns a name; looking up, a few.
    static SENSITIVE: RefCell<HashMap<(u64, usize, usize), bool>> = RefCell::new(HashMap::new());
}

/// `text` with value patterns masked, when there are rules.
fn redacted<'t>(rules: Option<Rules<'_>>, text: &'t str) -> Cow<'t, str> {
    match rules {
        Some(r) => r.redaction.redact(text),
        None => Cow::Borrowed(text),
    }
}

/// Whether the value of a field named `name` is written as [`MASK`].
fn masked(rules: Option<Rules<'_>>, name: &'static str) -> bool {
    let Some(r) = rules else { return false };
    let key = (r.id, name.as_ptr() as usize, name.len());
    SENSITIVE
        .try_with(|cell| {
            let Ok(mut names) = cell.try_borrow_mut() else {
                return r.redaction.is_sensitive(name);
            };
            if let Some(&s) = names.get(&key) {
                return s;
            }
            let s = r.redaction.is_sensitive(name);
            if names.len() >= MAX_NAMES {
                names.clear();
            }
            names.insert(key, s);
            s
        })
        .unwrap_or_else(|_| r.redaction.is_sensitive(name))
}

struct Fields<'a> {
    message: String,
    rest: &'a mut String,
    rules: Option<Rules<'a>>,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Clean(&redacted(self.rules, value)).to_string();
        } else if masked(self.rules, field.name()) {
            let _ = write!(self.rest, " {}={MASK}", Clean(field.name()));
        } else {
            let _ = write!(
                self.rest,
                " {}={:?}",
                Clean(field.name()),
                redacted(self.rules, value)
            );
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let text = format!("{value:?}");
                self.message = Clean(&redacted(self.rules, &text)).to_string();
            }
            CRITICAL_FIELD => {}
            name if masked(self.rules, name) => {
                let _ = write!(self.rest, " {}={MASK}", Clean(name));
            }
            name => {
                let text = format!("{value:?}");
                let _ = write!(
                    self.rest,
                    " {}={}",
                    Clean(name),
                    Clean(&redacted(self.rules, &text))
                );
            }
        }
    }
}

/// Renders `event` as one text line appended to `out`, masking secrets with `rules`:
/// values of sensitive fields (the event's and its spans') become [`MASK`] whatever their
/// type; the message and every text value go through [`Redaction::redact`].
pub(crate) fn format_event<S>(
    event: &Event<'_>,
    ctx: &Context<'_, S>,
    rules: Option<Rules<'_>>,
    out: &mut Vec<u8>,
) where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    let mut rest = String::new();
    let mut v = Fields {
        message: String::new(),
        rest: &mut rest,
        rules,
    };
    event.record(&mut v);
    let message = v.message;
    if let Some(span) = ctx.event_span(event) {
        for (name, value) in store::inherited(&span) {
            if masked(rules, name) {
                let _ = write!(rest, " {}={MASK}", Clean(name));
                continue;
            }
            let text = value.to_string();
            let text = match value {
                FieldValue::Str(_) | FieldValue::Error(_) => redacted(rules, &text),
                _ => Cow::Borrowed(text.as_str()),
            };
            let _ = write!(rest, " {}={}", Clean(name), Clean(&text));
        }
    }
    let line = format!(
        "{} {:>8} {}: {}{}\n",
        strata_core::encode::rfc3339_now(),
        Severity::of(meta).as_str(),
        Clean(meta.target()),
        message,
        rest
    );
    out.extend_from_slice(line.as_bytes());
}
