//! The console line, independent of `tracing`: a [`Line`] in, terminal-safe bytes out.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_core::encode::{self, TRUNCATION_MARKER_PREFIX};
use strata_core::redact::{MASK, Redaction};
use strata_core::store::{ErrorLink, ErrorValue, FieldValue};
use strata_core::{CRITICAL_FIELD, Severity};

/// The longest text (in bytes) a value, message, target or field name keeps; the rest is cut
/// and replaced by a visible `…[truncated N bytes]`.
pub const MAX_VALUE_LEN: usize = 8 * 1024;

/// How lines look: colour, which columns are shown, and redaction.
///
/// [`Style::new`] (= `Default`) is colour off, time and target on, no redaction; change it with
/// the `with_*` setters or the public fields.
///
/// ```
/// let style = strata_console::Style::new().with_color(true).with_time(false);
/// assert!(style.color && !style.time && style.target);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Style {
    /// Colour with ANSI SGR codes; when off, not one escape byte is written.
    pub color: bool,
    /// Show the time column (`HH:MM:SS.mmm`, UTC).
    pub time: bool,
    /// Show the target (`shop::orders:`).
    pub target: bool,
    /// When set: a field whose name is [sensitive](Redaction::is_sensitive) shows as
    /// [`MASK`] whatever its type, and every string value, the message and error messages are
    /// passed through [`Redaction::redact`].
    pub redaction: Option<Arc<Redaction>>,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            color: false,
            time: true,
            target: true,
            redaction: None,
        }
    }
}

impl Style {
    /// Colour off, time and target on, no redaction.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Colours the line with ANSI escape codes (or not).
    #[must_use]
    pub fn with_color(mut self, on: bool) -> Self {
        self.color = on;
        self
    }

    /// Shows the time column (or not).
    #[must_use]
    pub fn with_time(mut self, on: bool) -> Self {
        self.time = on;
        self
    }

    /// Shows the target (or not).
    #[must_use]
    pub fn with_target(mut self, on: bool) -> Self {
        self.target = on;
        self
    }

    /// Masks secrets with these rules (or not).
    #[must_use]
    pub fn with_redaction(mut self, redaction: Option<Arc<Redaction>>) -> Self {
        self.redaction = redaction;
        self
    }
}

/// A field value as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// Text: shown as is, in double quotes when it is empty or holds whitespace, `"` or `=`.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A 128-bit signed integer.
    I128(i128),
    /// A 128-bit unsigned integer.
    U128(u128),
    /// A float (`NaN`, `inf`, `-inf` for non-finite values).
    F64(f64),
    /// An error: its message in the line, its `source()` chain on the lines below.
    Error(ErrorView<'a>),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}

impl<'a> From<&'a FieldValue> for Value<'a> {
    /// A value of the strata-core span store, borrowed.
    fn from(v: &'a FieldValue) -> Self {
        match v {
            FieldValue::Bool(b) => Value::Bool(*b),
            FieldValue::I64(n) => Value::I64(*n),
            FieldValue::U64(n) => Value::U64(*n),
            FieldValue::I128(n) => Value::I128(*n),
            FieldValue::U128(n) => Value::U128(*n),
            FieldValue::F64(n) => Value::F64(*n),
            FieldValue::Str(s) => Value::Str(s),
            FieldValue::Error(e) => Value::Error(ErrorView::from(&**e)),
            _ => Value::Str("?"),
        }
    }
}

/// An error to show: its type (where known), message and the errors below it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ErrorView<'a> {
    /// The outermost error's type name, where known.
    pub type_name: Option<&'a str>,
    /// The outermost error's message (its `Display` text).
    pub message: &'a str,
    /// The errors below it (`source()`), outermost first.
    pub chain: Chain<'a>,
}

impl<'a> ErrorView<'a> {
    /// An error with `message` and no chain.
    pub fn new(message: &'a str) -> Self {
        ErrorView {
            type_name: None,
            message,
            chain: Chain::Causes(&[]),
        }
    }

    /// The same error with its type name.
    #[must_use]
    pub fn with_type(mut self, type_name: Option<&'a str>) -> Self {
        self.type_name = type_name;
        self
    }

    /// The same error with the errors below it.
    #[must_use]
    pub fn with_chain(mut self, chain: &'a [Cause<'a>]) -> Self {
        self.chain = Chain::Causes(chain);
        self
    }

    /// The errors below this one, outermost first.
    pub fn causes(&self) -> impl Iterator<Item = Cause<'a>> + 'a {
        let (causes, stored): (&'a [Cause<'a>], &'a [ErrorLink]) = match self.chain {
            Chain::Causes(c) => (c, &[]),
            Chain::Stored(s) => (&[], s),
        };
        causes.iter().copied().chain(stored.iter().map(|l| Cause {
            type_name: l.type_name,
            message: &l.message,
        }))
    }
}

impl<'a> From<&'a ErrorValue> for ErrorView<'a> {
    fn from(e: &'a ErrorValue) -> Self {
        ErrorView {
            type_name: e.type_name,
            message: &e.message,
            chain: Chain::Stored(&e.chain),
        }
    }
}

/// The errors below an [`ErrorView`], in one of two representations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chain<'a> {
    /// Given link by link (a parsed log line, say).
    Causes(&'a [Cause<'a>]),
    /// As strata-core captured it ([`ErrorValue::chain`]).
    Stored(&'a [ErrorLink]),
}

/// One error of a `source()` chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause<'a> {
    /// Its type name, where known.
    pub type_name: Option<&'a str>,
    /// Its message.
    pub message: &'a str,
}

/// One stack frame of a backtrace shown below a line: `at function (file:line)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The function, demangled, without its hash (`shop::orders::place`).
    pub function: &'a str,
    /// The source file, where known.
    pub file: Option<&'a str>,
    /// The line in `file`, where known.
    pub line: Option<u32>,
}

/// One event, ready to be shown. Build it with [`Line::new`] and set the public fields.
///
/// ```
/// use strata_console::{render, Line, Style, Value};
/// use strata_core::Severity;
///
/// let fields = [("order_id", Value::U64(42)), ("note", Value::Str("gift wrap"))];
/// let mut line = Line::new(Severity::Info, "order placed");
/// line.target = "shop::orders";
/// line.request_id = Some(Value::Str("0193a5c2-7f3e"));
/// line.fields = &fields;
/// let mut out = Vec::new();
/// render(&line, &Style::new(), &mut out);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     " INFO [0193a5c2-7f3e] shop::orders: order placed  order_id=42 note=\"gift wrap\"\n"
/// );
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Line<'a> {
    /// When it happened; shown as `HH:MM:SS.mmm` UTC when [`Style::time`] is on.
    pub time: Option<SystemTime>,
    /// How bad it is.
    pub severity: Severity,
    /// Where it came from (a module path).
    pub target: &'a str,
    /// The message (may be empty).
    pub message: &'a str,
    /// The request ID, shown in brackets right after the level.
    pub request_id: Option<Value<'a>>,
    /// The other fields, in the order shown; names should be unique.
    /// [`CRITICAL_FIELD`] is never shown.
    pub fields: &'a [(&'a str, Value<'a>)],
    /// The trace ID (hex), shown dim at the end as `trace_id=…`.
    pub trace_id: Option<&'a str>,
    /// The span ID (hex), shown dim at the end as `span_id=…`.
    pub span_id: Option<&'a str>,
    /// Stack frames shown below the line (and below any error chain), innermost first.
    pub backtrace: &'a [Frame<'a>],
}

impl<'a> Line<'a> {
    /// A line with a severity and a message, and nothing else.
    pub fn new(severity: Severity, message: &'a str) -> Self {
        Line {
            time: None,
            severity,
            target: "",
            message,
            request_id: None,
            fields: &[],
            trace_id: None,
            span_id: None,
            backtrace: &[],
        }
    }
}

// SGR parameters.
const DIM: &str = "2";
const BOLD: &str = "1";
const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const BLUE: &str = "34";
const CYAN: &str = "36";
const CRIT: &str = "1;37;41";

fn sgr(out: &mut Vec<u8>, color: bool, code: &str) {
    if color {
        out.extend_from_slice(b"\x1b[");
        out.extend_from_slice(code.as_bytes());
        out.push(b'm');
    }
}

fn reset(out: &mut Vec<u8>, color: bool) {
    if color {
        out.extend_from_slice(b"\x1b[0m");
    }
}

/// The level label (right-aligned in five columns) and its colour.
fn level(severity: Severity) -> (&'static str, &'static str, &'static str) {
    match severity {
        Severity::Trace => ("", "TRACE", DIM),
        Severity::Debug => ("", "DEBUG", BLUE),
        Severity::Info => (" ", "INFO", GREEN),
        Severity::Warn => (" ", "WARN", YELLOW),
        Severity::Error => ("", "ERROR", RED),
        Severity::Critical => (" ", "CRIT", CRIT),
    }
}

/// Appends `line`, rendered, to `out`: the line itself with its newline, then one indented
/// line per link of each error's chain and per backtrace frame.
///
/// ```text
/// 12:00:01.234  INFO [0193a5c2-7f3e] shop::orders: order placed  order_id=42 amount_cents=1999
/// 12:00:01.301 ERROR [0193a5c2-7f3e] shop::pay: charge failed  error="gateway request failed" error.class=external
///   caused by: std::io::Error: read timed out after 5s
/// ```
///
/// Every piece of text — values, message, target, field names, error messages, frames — is
/// made terminal-safe: control characters (C0, DEL, C1), bidirectional overrides and isolates
/// and the Unicode line/paragraph separators are written as visible escapes (`\x1b`, `\n`,
/// `\u{202e}`), so nothing can end the line, move the cursor or recolour the terminal; text
/// longer than [`MAX_VALUE_LEN`] is cut with a visible `…[truncated N bytes]`. Backslashes are
/// not escaped: the output is for people, not for parsing back.
pub fn render(line: &Line<'_>, style: &Style, out: &mut Vec<u8>) {
    let c = style.color;
    let redaction = style.redaction.as_deref();
    if style.time
        && let Some(t) = line.time
    {
        sgr(out, c, DIM);
        write_clock(out, t);
        reset(out, c);
        out.push(b' ');
    }
    let (pad, label, code) = level(line.severity);
    out.extend_from_slice(pad.as_bytes());
    sgr(out, c, code);
    out.extend_from_slice(label.as_bytes());
    reset(out, c);
    if let Some(id) = &line.request_id {
        out.push(b' ');
        sgr(out, c, CYAN);
        out.push(b'[');
        write_value(out, id, None, false);
        out.push(b']');
        reset(out, c);
    }
    if style.target && !line.target.is_empty() {
        out.push(b' ');
        sgr(out, c, DIM);
        write_text(out, line.target, false);
        out.push(b':');
        reset(out, c);
    }
    if !line.message.is_empty() {
        out.push(b' ');
        let bold = line.severity >= Severity::Info;
        if bold {
            sgr(out, c, BOLD);
        }
        write_text(out, &redacted(redaction, line.message), false);
        if bold {
            reset(out, c);
        }
    }
    let mut sep: &[u8] = b"  ";
    let mut has_errors = false;
    for (name, value) in line.fields {
        if *name == CRITICAL_FIELD {
            continue;
        }
        out.extend_from_slice(sep);
        sep = b" ";
        write_key(out, c, name);
        if redaction.is_some_and(|r| r.is_sensitive(name)) {
            out.extend_from_slice(MASK.as_bytes());
            continue;
        }
        if matches!(value, Value::Error(_)) {
            has_errors = true;
            sgr(out, c, RED);
            write_value(out, value, redaction, true);
            reset(out, c);
        } else {
            write_value(out, value, redaction, true);
        }
    }
    for (name, id) in [("trace_id", line.trace_id), ("span_id", line.span_id)] {
        if let Some(id) = id {
            out.extend_from_slice(sep);
            sep = b" ";
            sgr(out, c, DIM);
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            write_text(out, id, false);
            reset(out, c);
        }
    }
    out.push(b'\n');
    if has_errors {
        for (name, value) in line.fields {
            let Value::Error(e) = value else { continue };
            if redaction.is_some_and(|r| r.is_sensitive(name)) {
                continue;
            }
            for cause in e.causes() {
                out.extend_from_slice(b"  ");
                sgr(out, c, RED);
                if *name != "error" {
                    write_text(out, name, false);
                    out.push(b' ');
                }
                out.extend_from_slice(b"caused by:");
                reset(out, c);
                out.push(b' ');
                if let Some(ty) = cause.type_name {
                    sgr(out, c, BOLD);
                    write_text(out, ty, false);
                    reset(out, c);
                    out.extend_from_slice(b": ");
                }
                write_text(out, &redacted(redaction, cause.message), false);
                out.push(b'\n');
            }
        }
    }
    for frame in line.backtrace {
        out.extend_from_slice(b"    ");
        sgr(out, c, DIM);
        out.extend_from_slice(b"at");
        reset(out, c);
        out.push(b' ');
        write_text(out, frame.function, false);
        if let Some(file) = frame.file {
            out.push(b' ');
            sgr(out, c, DIM);
            out.push(b'(');
            write_text(out, file, false);
            if let Some(n) = frame.line {
                out.push(b':');
                encode::write_int(out, n);
            }
            out.push(b')');
            reset(out, c);
        }
        out.push(b'\n');
    }
}

fn write_key(out: &mut Vec<u8>, color: bool, name: &str) {
    sgr(out, color, DIM);
    write_text(out, name, false);
    out.push(b'=');
    reset(out, color);
}

fn redacted<'t>(redaction: Option<&Redaction>, text: &'t str) -> std::borrow::Cow<'t, str> {
    match redaction {
        Some(r) => r.redact(text),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// Appends a value: numbers as they are, text (and an error's message) redacted, cut and
/// escaped, in quotes when `quote_if_needed` and the text is empty or holds whitespace,
/// `"` or `=`.
fn write_value(
    out: &mut Vec<u8>,
    value: &Value<'_>,
    redaction: Option<&Redaction>,
    quote_if_needed: bool,
) {
    match value {
        Value::Str(s) => write_text(out, &redacted(redaction, s), quote_if_needed),
        Value::Error(e) => write_text(out, &redacted(redaction, e.message), quote_if_needed),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I64(n) => encode::write_int(out, *n),
        Value::U64(n) => encode::write_int(out, *n),
        Value::I128(n) => encode::write_int(out, *n),
        Value::U128(n) => encode::write_int(out, *n),
        Value::F64(n) => {
            if n.is_finite() {
                encode::write_f64(out, *n);
            } else {
                let _ = write!(out, "{n}");
            }
        }
    }
}

/// Whether a value needs quotes to read as one `key=value` pair.
fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.bytes()
            .any(|b| b == b' ' || b == b'"' || b == b'=' || b == b'\t')
        || (!s.is_ascii() && s.chars().any(char::is_whitespace))
}

/// Appends `text`, cut to [`MAX_VALUE_LEN`] and made terminal-safe, quoted when
/// `quote_if_needed` says it must be.
fn write_text(out: &mut Vec<u8>, text: &str, quote_if_needed: bool) {
    let kept = encode::clip(text, MAX_VALUE_LEN);
    let cut = text.len() - kept.len();
    let quoted = quote_if_needed && (cut > 0 || needs_quotes(kept));
    if quoted {
        out.push(b'"');
    }
    write_clean(out, kept, quoted);
    if cut > 0 {
        out.extend_from_slice(TRUNCATION_MARKER_PREFIX.as_bytes());
        encode::write_int(out, cut);
        out.extend_from_slice(b" bytes]");
    }
    if quoted {
        out.push(b'"');
    }
}

/// `TRIGGER[b]`: byte `b` may start a character that must be escaped — C0 controls, DEL, and
/// the lead bytes of C1 controls (0xC2), U+061C (0xD8) and the U+2000 block (0xE2).
static TRIGGER: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[0x7f] = true;
    t[0xc2] = true;
    t[0xd8] = true;
    t[0xe2] = true;
    t
};

/// Appends `s` with every unsafe character as a visible escape (and `"` as `\"` when
/// `quoted`).
fn write_clean(out: &mut Vec<u8>, s: &str, quoted: bool) {
    let bytes = s.as_bytes();
    let first = bytes
        .iter()
        .position(|&b| TRIGGER[b as usize] || (quoted && b == b'"'));
    let Some(first) = first else {
        out.extend_from_slice(bytes);
        return;
    };
    // `first` is an ASCII byte or a lead byte: a character boundary.
    out.extend_from_slice(&bytes[..first]);
    let rest = &s[first..];
    let mut run = 0;
    for (i, ch) in rest.char_indices() {
        let escaped = (quoted && ch == '"') || strata_core::encode::is_terminal_unsafe(ch);
        if !escaped {
            continue;
        }
        out.extend_from_slice(&rest.as_bytes()[run..i]);
        run = i + ch.len_utf8();
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\0'..='\x7f' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = ch as u8;
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
            }
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", ch as u32);
            }
        }
    }
    out.extend_from_slice(&rest.as_bytes()[run..]);
}

/// Appends `HH:MM:SS.mmm` (UTC) for `t`.
fn write_clock(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86_400;
    let ms = d.subsec_millis();
    let two = |v: u64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    out.extend_from_slice(&two(s / 3600));
    out.push(b':');
    out.extend_from_slice(&two((s / 60) % 60));
    out.push(b':');
    out.extend_from_slice(&two(s % 60));
    out.push(b'.');
    out.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
}

/// Text made terminal-safe exactly as [`render`] does it (without quoting): for callers that
/// print something else next to rendered lines.
///
/// ```
/// assert_eq!(
///     strata_console::Clean("a\x1b[31mb\n\u{202e}").to_string(),
///     "a\\x1b[31mb\\n\\u{202e}"
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Clean<'a>(pub &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(self.0.len().min(MAX_VALUE_LEN + 32));
        write_text(&mut buf, self.0, false);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(s: &str, quote: bool) -> String {
        let mut out = Vec::new();
        write_text(&mut out, s, quote);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unsafe_characters_become_visible_escapes() {
        assert_eq!(text("plain ascii", false), "plain ascii");
        assert_eq!(text("héllo ✓ 日本", false), "héllo ✓ 日本");
        assert_eq!(
            text("a\x1b[2Jb\rc\nd\0e\x07f\x7fg\th", false),
            "a\\x1b[2Jb\\rc\\nd\\x00e\\x07f\\x7fg\\th"
        );
        assert_eq!(text("x\u{9b}31m\u{85}y", false), "x\\u{9b}31m\\u{85}y");
        assert_eq!(
            text(
                "\u{202e}evil\u{2066}\u{2069}\u{2028}\u{2029}\u{200f}\u{61c}",
                false
            ),
            "\\u{202e}evil\\u{2066}\\u{2069}\\u{2028}\\u{2029}\\u{200f}\\u{61c}"
        );
        // Neighbours of the escaped ranges stay as they are.
        assert_eq!(
            text("\u{a0}\u{2027}\u{2030}\u{2065}\u{206a}", false),
            "\u{a0}\u{2027}\u{2030}\u{2065}\u{206a}"
        );
    }

    #[test]
    fn quoting_only_when_needed() {
        assert_eq!(text("abc", true), "abc");
        assert_eq!(text("", true), "\"\"");
        assert_eq!(text("a b", true), "\"a b\"");
        assert_eq!(text("a=b", true), "\"a=b\"");
        assert_eq!(text("say \"hi\"", true), "\"say \\\"hi\\\"\"");
        assert_eq!(text("a\u{3000}b", true), "\"a\u{3000}b\"");
        assert_eq!(text("a\nb", true), "a\\nb");
        assert_eq!(text("say \"hi\"", false), "say \"hi\"");
    }

    #[test]
    fn long_text_is_cut_visibly() {
        let long = "é".repeat(MAX_VALUE_LEN); // 2 bytes each
        let out = text(&long, true);
        assert!(
            out.starts_with('"') && out.ends_with(" bytes]\""),
            "{}",
            &out[out.len() - 40..]
        );
        assert!(out.contains(&format!("…[truncated {} bytes]", MAX_VALUE_LEN)));
        assert!(out.len() < MAX_VALUE_LEN + 64);
    }

    #[test]
    fn clock_is_utc_millis() {
        let mut out = Vec::new();
        write_clock(
            &mut out,
            UNIX_EPOCH
                + Duration::from_secs(1_735_732_800 + 3_661)
                + Duration::from_micros(234_567),
        );
        assert_eq!(out, b"13:01:01.234");
    }

    #[test]
    fn colour_off_has_no_escape_and_on_has_codes() {
        let causes = [Cause {
            type_name: Some("std::io::Error"),
            message: "timed out",
        }];
        let fields = [
            (
                "error",
                Value::Error(ErrorView::new("gateway failed").with_chain(&causes)),
            ),
            ("n", Value::F64(f64::NAN)),
            ("x", Value::F64(1.5)),
            ("ok", Value::Bool(true)),
            (
                "big",
                Value::I128(-170_141_183_460_469_231_731_687_303_715_884_105_728),
            ),
        ];
        let mut line = Line::new(Severity::Critical, "down");
        line.time = Some(UNIX_EPOCH);
        line.target = "db";
        line.fields = &fields;
        line.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736");
        let mut plain = Vec::new();
        render(&line, &Style::new(), &mut plain);
        let plain = String::from_utf8(plain).unwrap();
        assert_eq!(
            plain,
            "00:00:00.000  CRIT db: down  error=\"gateway failed\" n=NaN x=1.5 ok=true \
             big=-170141183460469231731687303715884105728 trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n  \
             caused by: std::io::Error: timed out\n"
        );
        let mut coloured = Vec::new();
        render(&line, &Style::new().with_color(true), &mut coloured);
        let coloured = String::from_utf8(coloured).unwrap();
        assert!(
            coloured.contains("\x1b[1;37;41mCRIT\x1b[0m"),
            "{coloured:?}"
        );
        assert!(
            coloured.contains("\x1b[31m\"gateway failed\"\x1b[0m"),
            "{coloured:?}"
        );
        let stripped = strip_sgr(&coloured);
        assert_eq!(stripped, plain);
    }

    fn strip_sgr(s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c == '\x1b' {
                for d in it.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn redaction_masks_names_and_patterns() {
        let fields = [
            ("password", Value::Str("hunter2")),
            ("api_key", Value::U64(12345)),
            ("user", Value::Str("bob")),
            ("auth", Value::Str("Bearer abcDEF123456789xyz")),
        ];
        let mut line = Line::new(
            Severity::Info,
            "login with token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        );
        line.fields = &fields;
        let style = Style::new().with_redaction(Some(Arc::new(Redaction::new())));
        let mut out = Vec::new();
        render(&line, &style, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            " INFO login with token [REDACTED:jwt]  password=[REDACTED] api_key=[REDACTED] \
             user=bob auth=\"Bearer [REDACTED:bearer]\"\n"
        );
    }
}
