//! The development console format of strata: one coloured, aligned, human line per event, for
//! people reading a terminal — the `development` profile's output.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let layer = strata_console::layer()
//!     .with_color(false) // default: on when stdout is a terminal (see `color_default`)
//!     .with_backtraces(true);
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", request_id = "0193a5c2-7f3e-7d64", user_id = 42_u64);
//!     let _enter = span.enter();
//!     tracing::info!(order_id = 42, amount_cents = 1999, "order placed");
//!     let err = std::io::Error::other("read timed out after 5s");
//!     tracing::error!(error = &err as &dyn std::error::Error, "charging the card failed");
//! });
//! ```
//!
//! # Example output
//!
//! ```text
//! 09:12:03.418  INFO [0193a5c2-7f3e-7d64] shop::orders: order placed  order_id=42 amount_cents=1999 user_id=42
//! 09:12:03.502  WARN [0193a5c2-7f3e-7d64] shop::pay: card declined  error="insufficient funds" error.class=business user_id=42
//! 09:12:04.001 ERROR [0193a5c2-7f3e-7d64] shop::pay: charging the card failed  error="payment gateway request failed" error.class=external attempt=3 user_id=42
//!   caused by: POST https://gateway.example/charges failed on attempt 3
//!   caused by: std::io::Error: read timed out after 5s
//!     at shop::pay::charge (src/pay.rs:88)
//!     at shop::orders::place::{{closure}} (src/orders.rs:41)
//! 09:12:04.120  CRIT [0193a5c2-7f3e-7d64] shop::db: database unreachable  db.host=10.0.0.7 user_id=42
//! ```
//!
//! - Time (UTC, milliseconds), the level in five columns (TRACE dim, DEBUG blue, INFO green,
//!   WARN yellow, ERROR red, CRIT bold white on red), the request ID in brackets (a field named
//!   `request_id`, of the event or of any enclosing span), the target (dim), the message (bold
//!   from INFO up).
//! - Then `key=value` pairs (keys dim): the event's fields, then the fields of the enclosing
//!   spans, innermost first, each name once (the event's value wins, then the innermost
//!   span's). Text is quoted only when it is empty or holds whitespace, `"` or `=`.
//! - `trace_id=… span_id=…` (dim) at the end when a tracing layer (strata-otlp) has set the
//!   span's trace context.
//! - An error recorded as `error = &e as &dyn std::error::Error` shows its message in the line
//!   and each error of its `source()` chain on an indented `caused by:` line below.
//! - With [`ConsoleLayer::with_backtraces`], ERROR and CRITICAL lines are followed by the
//!   application's stack frames (the standard library, the runtime and the logging machinery
//!   are left out), at most 12.
//!
//! # Safe to print
//!
//! Control characters (ESC, CR, LF, NUL, BEL, DEL, C1), bidirectional overrides and isolates and
//! the Unicode line separators in any value, message, target or field name are written as
//! visible escapes (`\x1b`, `\n`, `\u{202e}`): a value can never end its line, move the cursor
//! or recolour the terminal. Text longer than [`MAX_VALUE_LEN`] is cut with a visible
//! `…[truncated N bytes]`. With colour off not one escape byte is written. With
//! [`ConsoleLayer::with_redaction`], secrets are masked as in every other strata output.
//!
//! # Rendering without `tracing`
//!
//! [`render`] turns a [`Line`] into bytes with a [`Style`]; the layer uses it, and so can a tool
//! that shows strata JSON logs to people.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod render;
mod stack;

use std::fmt::{self, Write as _};
use std::io::{self, IsTerminal, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

pub use render::{
    Cause, Chain, Clean, ErrorView, Frame, Line, MAX_VALUE_LEN, Style, Value, render,
};
pub use stack::backtrace_frames;

use smallvec::SmallVec;
use strata_core::redact::Redaction;
use strata_core::store::{self, ErrorValue, KeySet, SpanFields, TraceContext};
use strata_core::{CRITICAL_FIELD, Severity};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{Extensions, LookupSpan, SpanRef};

/// A new console layer writing to stdout (see [`ConsoleLayer`] for the defaults).
#[must_use]
pub fn layer() -> ConsoleLayer {
    ConsoleLayer::default()
}

/// Whether to colour by default: not when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>); yes when `CLICOLOR_FORCE` is set to anything non-empty but `0`;
/// otherwise when stdout is a terminal.
pub fn color_default() -> bool {
    color_from(
        std::env::var_os("NO_COLOR"),
        std::env::var_os("CLICOLOR_FORCE"),
        || io::stdout().is_terminal(),
    )
}

fn color_from(
    no_color: Option<std::ffi::OsString>,
    force: Option<std::ffi::OsString>,
    is_terminal: impl FnOnce() -> bool,
) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if force.is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    is_terminal()
}

/// Where lines go: anything `tracing-subscriber` can write to, behind one object-safe call.
trait LineWriter: Send + Sync + 'static {
    fn write_line(&self, meta: &Metadata<'_>, line: &[u8]) -> io::Result<()>;
}

struct MakeWriterLines<M>(M);

impl<M> LineWriter for MakeWriterLines<M>
where
    M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn write_line(&self, meta: &Metadata<'_>, line: &[u8]) -> io::Result<()> {
        self.0.make_writer_for(meta).write_all(line)
    }
}

/// The console layer: renders each event as one human line (plus indented error-chain and
/// backtrace lines) and writes it with one `write_all`.
///
/// Defaults: stdout, colour per [`color_default`], time and target shown, no redaction, no
/// backtraces. The `with_*` setters never change the type. It maintains strata-core's span
/// store, so events show the fields of their spans whatever other strata layers are installed.
pub struct ConsoleLayer {
    /// This layer's id as a span-store owner.
    id: u64,
    style: Style,
    backtraces: bool,
    writer: Arc<dyn LineWriter>,
    write_failed: AtomicBool,
}

impl fmt::Debug for ConsoleLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleLayer")
            .field("style", &self.style)
            .field("backtraces", &self.backtraces)
            .finish_non_exhaustive()
    }
}

impl Default for ConsoleLayer {
    fn default() -> Self {
        ConsoleLayer {
            id: store::next_id(),
            style: Style::new().with_color(color_default()),
            backtraces: false,
            writer: Arc::new(MakeWriterLines(io::stdout)),
            write_failed: AtomicBool::new(false),
        }
    }
}

impl ConsoleLayer {
    /// Same as [`layer()`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes lines to `make_writer` (anything implementing `tracing-subscriber`'s
    /// [`MakeWriter`]: `std::io::stderr`, a `Mutex<File>`, a test buffer…). Each event's
    /// lines are handed over in one `write_all` call. Default: stdout.
    #[must_use]
    pub fn with_writer<M>(mut self, make_writer: M) -> Self
    where
        M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.writer = Arc::new(MakeWriterLines(make_writer));
        self
    }

    /// Colours lines with ANSI escape codes, or writes not one escape byte. Default:
    /// [`color_default`].
    #[must_use]
    pub fn with_color(mut self, on: bool) -> Self {
        self.style.color = on;
        self
    }

    /// Masks secrets: a field whose name is [sensitive](Redaction::is_sensitive) shows as
    /// `[REDACTED]` whatever its type; string values, messages and error messages are passed
    /// through [`Redaction::redact`]. Default: `None`.
    #[must_use]
    pub fn with_redaction(mut self, redaction: Option<Arc<Redaction>>) -> Self {
        self.style.redaction = redaction;
        self
    }

    /// Shows the application's stack frames (at most 12) below ERROR and CRITICAL lines.
    /// Default: off. Resolving symbols is slow the first time (debug info is read); this is a
    /// development aid.
    #[must_use]
    pub fn with_backtraces(mut self, on: bool) -> Self {
        self.backtraces = on;
        self
    }

    /// Shows the event's target. Default: on.
    #[must_use]
    pub fn with_target(mut self, on: bool) -> Self {
        self.style.target = on;
        self
    }

    /// Shows the time (UTC, `HH:MM:SS.mmm`). Default: on.
    #[must_use]
    pub fn with_time(mut self, on: bool) -> Self {
        self.style.time = on;
        self
    }

    /// The style lines are rendered with.
    pub fn style(&self) -> &Style {
        &self.style
    }

    fn write(&self, meta: &Metadata<'_>, line: &[u8]) {
        if let Err(e) = self.writer.write_line(meta, line)
            && !self.write_failed.swap(true, Ordering::Relaxed)
        {
            // The log itself is what failed: say so once on stderr.
            eprintln!(
                "strata-console: writing a log line failed: {e}; further failures are silent"
            );
        }
    }
}

/// A captured event field value; text lives in [`Captured::arena`].
#[derive(Debug, Clone, Copy)]
enum Slot {
    Str(usize, usize),
    Bool(bool),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    /// An index into [`Captured::errors`].
    Error(usize),
}

/// An event's fields, captured by its visitor.
#[derive(Debug, Default)]
struct Captured {
    arena: String,
    message: Option<(usize, usize)>,
    slots: Vec<(&'static str, Slot)>,
    errors: Vec<ErrorValue>,
}

/// Per-thread buffers, reused from event to event.
#[derive(Debug, Default)]
struct Scratch {
    captured: Captured,
    out: Vec<u8>,
}

impl Captured {
    fn clear(&mut self) {
        self.arena.clear();
        self.message = None;
        self.slots.clear();
        self.errors.clear();
    }

    fn text(&mut self, f: impl FnOnce(&mut String)) -> Slot {
        let start = self.arena.len();
        f(&mut self.arena);
        Slot::Str(start, self.arena.len())
    }

    fn put(&mut self, field: &Field, slot: Slot) {
        if field.name() != CRITICAL_FIELD {
            self.slots.push((field.name(), slot));
        }
    }

    fn put_text(&mut self, field: &Field, slot: Slot) {
        match (field.name(), slot) {
            ("message", Slot::Str(a, b)) if self.message.is_none() => self.message = Some((a, b)),
            _ => self.put(field, slot),
        }
    }

    fn message(&self) -> &str {
        self.message.map_or("", |(a, b)| &self.arena[a..b])
    }

    fn value(&self, slot: Slot) -> Value<'_> {
        match slot {
            Slot::Str(a, b) => Value::Str(&self.arena[a..b]),
            Slot::Bool(v) => Value::Bool(v),
            Slot::I64(v) => Value::I64(v),
            Slot::U64(v) => Value::U64(v),
            Slot::I128(v) => Value::I128(v),
            Slot::U128(v) => Value::U128(v),
            Slot::F64(v) => Value::F64(v),
            Slot::Error(i) => Value::Error(ErrorView::from(&self.errors[i])),
        }
    }
}

impl Visit for Captured {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Slot::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Slot::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Slot::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Slot::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Slot::U128(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Slot::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = self.text(|a| a.push_str(value));
        self.put_text(field, slot);
    }
    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        let slot = self.text(|a| {
            for chunk in value.utf8_chunks() {
                a.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    a.push('\u{FFFD}');
                }
            }
        });
        self.put_text(field, slot);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.errors.push(ErrorValue::capture(value));
        self.put(field, Slot::Error(self.errors.len() - 1));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let slot = self.text(|a| {
            let _ = write!(a, "{value:?}");
        });
        self.put_text(field, slot);
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers, cleared (or fresh ones when they are in use:
/// rendering re-entered, e.g. a `Debug` impl that logs).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut f = Some(f);
    let res = SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            s.captured.clear();
            s.out.clear();
            let out = (f.take().expect("called once"))(&mut s);
            // Do not let one huge value pin memory forever.
            if s.captured.arena.capacity() > 1 << 20 || s.out.capacity() > 1 << 20 {
                *s = Scratch::default();
            }
            Some(out)
        }
        Err(_) => None,
    });
    match res {
        Ok(Some(out)) => out,
        _ => (f.take().expect("not called yet"))(&mut Scratch::default()),
    }
}

/// Lower-case hex of `bytes` into `buf` (twice as long).
fn hex<'b>(bytes: &[u8], buf: &'b mut [u8]) -> &'b str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[(b >> 4) as usize];
        buf[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
    std::str::from_utf8(&buf[..2 * bytes.len()]).expect("hex is ASCII")
}

impl ConsoleLayer {
    /// Renders `event` into `scratch.out`.
    fn render_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, scratch: &mut Scratch)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        let severity = Severity::of(meta);
        let Scratch { captured, out } = scratch;
        // User code (`Debug` impls) runs here, before any span's store is locked.
        event.record(captured);
        let owned_frames = if self.backtraces && severity >= Severity::Error {
            stack::capture()
        } else {
            Vec::new()
        };
        let frames: SmallVec<[Frame<'_>; 12]> = owned_frames
            .iter()
            .map(stack::OwnedFrame::as_frame)
            .collect();

        // The enclosing spans, innermost first, and their stores (read-locked until the line
        // is rendered; nothing below runs user code).
        let spans: SmallVec<[SpanRef<'_, S>; 8]> = ctx
            .event_span(event)
            .into_iter()
            .flat_map(|s| s.scope())
            .collect();
        let exts: SmallVec<[Extensions<'_>; 8]> = spans.iter().map(|s| s.extensions()).collect();

        let mut seen = KeySet::default();
        let mut fields: SmallVec<[(&str, Value<'_>); 16]> = SmallVec::new();
        let mut request_id = None;
        let mut trace: Option<TraceContext> = None;
        let captured = &*captured;
        for &(name, slot) in &captured.slots {
            if !seen.insert(false, name) {
                continue;
            }
            let value = captured.value(slot);
            if name == "request_id" {
                request_id = Some(value);
            } else {
                fields.push((name, value));
            }
        }
        for ext in &exts {
            let Some(span_fields) = ext.get::<SpanFields>() else {
                continue;
            };
            if trace.is_none() {
                trace = span_fields.trace_context().copied();
            }
            for f in span_fields.fields() {
                let name = f.name();
                if name == CRITICAL_FIELD || !seen.insert(false, name) {
                    continue;
                }
                let value = Value::from(f.value());
                if name == "request_id" {
                    request_id = Some(value);
                } else {
                    fields.push((name, value));
                }
            }
        }
        let mut trace_buf = [0u8; 32];
        let mut span_buf = [0u8; 16];
        let (trace_id, span_id) = match &trace {
            Some(t) => (
                Some(hex(&t.trace_id, &mut trace_buf)),
                Some(hex(&t.span_id, &mut span_buf)),
            ),
            None => (None, None),
        };
        let line = Line {
            time: self.style.time.then(SystemTime::now),
            severity,
            target: meta.target(),
            message: captured.message(),
            request_id,
            fields: &fields,
            trace_id,
            span_id,
            backtrace: &frames,
        };
        render(&line, &self.style, out);
    }
}

impl<S> Layer<S> for ConsoleLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        store::on_new_span(attrs, id, &ctx, self.id);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        store::on_record(id, values, &ctx, self.id);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        with_scratch(|s| {
            self.render_event(event, &ctx, s);
            self.write(event.metadata(), &s.out);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn colour_default_follows_no_color_then_clicolor_force_then_the_terminal() {
        let s = |v: &str| Some(OsString::from(v));
        assert!(!color_from(s("1"), s("1"), || true));
        assert!(color_from(s(""), None, || true));
        assert!(!color_from(None, None, || false));
        assert!(color_from(None, s("1"), || false));
        assert!(!color_from(None, s("0"), || false));
        assert!(!color_from(None, s(""), || false));
        assert!(color_from(None, s("0"), || true));
    }

    #[test]
    fn hex_ids() {
        let mut b = [0u8; 16];
        assert_eq!(
            hex(&[0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7], &mut b),
            "00f067aa0ba902b7"
        );
    }
}
