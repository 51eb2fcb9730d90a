//! A plain human-readable line: `TIMESTAMP LEVEL target: message key=value …`.

use std::fmt::{self, Write as _};

use strata_core::{CRITICAL_FIELD, Severity, store};
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Escapes control characters so a value can never end the line.
struct Clean<'a>(&'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

struct Fields<'a> {
    message: String,
    rest: &'a mut String,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Clean(value).to_string();
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = Clean(&format!("{value:?}")).to_string(),
            CRITICAL_FIELD => {}
            name => {
                let _ = write!(self.rest, " {name}={}", Clean(&format!("{value:?}")));
            }
        }
    }
}

/// Renders `event` as one text line appended to `out`.
pub(crate) fn format_event<S>(event: &Event<'_>, ctx: &Context<'_, S>, out: &mut Vec<u8>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    let mut rest = String::new();
    let mut v = Fields {
        message: String::new(),
        rest: &mut rest,
    };
    event.record(&mut v);
    let message = v.message;
    if let Some(span) = ctx.event_span(event) {
        for (name, value) in store::inherited(&span) {
            let _ = write!(rest, " {name}={}", Clean(&value.to_string()));
        }
    }
    let line = format!(
        "{} {:>8} {}: {}{}\n",
        strata_core::encode::rfc3339_now(),
        Severity::of(meta).as_str(),
        meta.target(),
        message,
        rest
    );
    out.extend_from_slice(line.as_bytes());
}
