//! Allocation-free JSON encoding primitives shared by every strata output.
//!
//! Strings are escaped per RFC 8259 (quote, backslash and every control character, so a value can
//! never end a line or inject a terminal escape), optionally truncated at a UTF-8 boundary with a
//! visible marker. Non-finite floats become the strings `"NaN"`, `"Infinity"` and `"-Infinity"`,
//! as in the proto3 JSON mapping OpenTelemetry uses, so no line is ever invalid JSON.

use std::fmt;

/// `ESCAPE[b]` is 0 when byte `b` can be copied as is, else the escape letter (`u` for `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0x7f] = b'u';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether any byte of the 8 in `w` needs escaping (control, `"`, `\\`, DEL): a SWAR test.
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn has_zero(v: u64) -> u64 {
        v.wrapping_sub(LO) & !v & HI
    }
    // bytes < 0x20 (bytes >= 0x80 are excluded by `!w`), == '"', == '\\', == 0x7f
    let lt20 = w.wrapping_sub(LO * 0x20) & !w & HI;
    (lt20
        | has_zero(w ^ (LO * b'"' as u64))
        | has_zero(w ^ (LO * b'\\' as u64))
        | has_zero(w ^ (LO * 0x7f)))
        != 0
}

/// Whether `c` must never reach a terminal raw, in the outputs people read (the console, text
/// lines, `strata pretty`): control characters (C0, DEL, C1), bidirectional marks, embeddings,
/// overrides and isolates, and the line and paragraph separators. They can end a line, move
/// the cursor, recolour the terminal or reorder what is shown; those outputs print them as
/// visible escapes (`\x1b`, `\u{202e}`). (JSON escapes the control characters; the others
/// are plain data to a JSON reader.)
#[inline]
pub fn is_terminal_unsafe(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}'
        | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `s` escaped (without quotes).
#[inline]
pub fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Fast path: scan 8 bytes at a time; most values need no escaping at all.
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if word_needs_escape(w) {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && ESCAPE[bytes[i] as usize] == 0 {
        i += 1;
    }
    if i == bytes.len() {
        buf.extend_from_slice(bytes);
        return;
    }
    buf.extend_from_slice(&bytes[..i]);
    escape_slow(buf, &bytes[i..]);
}

#[cold]
fn escape_slow(buf: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        buf.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            buf.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Whether `s` needs escaping to be written between quotes.
#[inline]
pub fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| ESCAPE[b as usize] != 0)
}

/// Appends `"s"`, escaped.
#[inline]
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    escape_into(buf, s);
    buf.push(b'"');
}

/// Appends `"s"`, escaped, keeping at most `max` bytes of `s` (cut at a character boundary)
/// followed by the marker `…[truncated N bytes]` when anything was cut.
#[inline]
pub fn write_str_truncated(buf: &mut Vec<u8>, s: &str, max: usize) {
    if s.len() <= max {
        return write_str(buf, s);
    }
    let kept = clip(s, max);
    buf.push(b'"');
    escape_into(buf, kept);
    write_truncation_marker(buf, s.len() - kept.len());
    buf.push(b'"');
}

/// The text that ends a truncated value: `…[truncated N bytes]`.
pub const TRUNCATION_MARKER_PREFIX: &str = "…[truncated ";

fn write_truncation_marker(buf: &mut Vec<u8>, cut_bytes: usize) {
    buf.extend_from_slice(TRUNCATION_MARKER_PREFIX.as_bytes());
    buf.extend_from_slice(itoa::Buffer::new().format(cut_bytes).as_bytes());
    buf.extend_from_slice(b" bytes]");
}

/// `s` cut to at most `max` bytes in all, the cut marked with `…[truncated N bytes]` (so a
/// reader, and redaction, can tell a value was cut); borrowed when it fits. Below 48 bytes
/// there is no room for the marker: plain [`clip`].
pub fn clip_marked(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    const RESERVE: usize = TRUNCATION_MARKER_PREFIX.len() + 20 + " bytes]".len();
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    if max < 48 {
        return std::borrow::Cow::Borrowed(clip(s, max));
    }
    let kept = clip(s, max - RESERVE);
    std::borrow::Cow::Owned(format!(
        "{kept}{TRUNCATION_MARKER_PREFIX}{} bytes]",
        s.len() - kept.len()
    ))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
#[inline]
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The current time as an RFC 3339 UTC timestamp with microseconds.
pub fn rfc3339_now() -> String {
    crate::time::rfc3339(std::time::SystemTime::now())
}

/// Appends an integer.
#[inline]
pub fn write_int<I: itoa::Integer>(buf: &mut Vec<u8>, v: I) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a float: shortest round-trip form; `"NaN"`, `"Infinity"`, `"-Infinity"` for
/// non-finite values.
#[inline]
pub fn write_f64(buf: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        buf.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else if v.is_nan() {
        buf.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        buf.extend_from_slice(b"\"Infinity\"");
    } else {
        buf.extend_from_slice(b"\"-Infinity\"");
    }
}

/// Appends `true` or `false`.
#[inline]
pub fn write_bool(buf: &mut Vec<u8>, v: bool) {
    buf.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Appends bytes as a string, replacing invalid UTF-8 with U+FFFD.
pub fn write_bytes_lossy(buf: &mut Vec<u8>, bytes: &[u8], max: usize) {
    match std::str::from_utf8(bytes) {
        Ok(s) => write_str_truncated(buf, s, max),
        Err(_) => {
            let mut w = EscapeWriter::new(buf, max);
            for chunk in bytes.utf8_chunks() {
                let _ = fmt::Write::write_str(&mut w, chunk.valid());
                if !chunk.invalid().is_empty() {
                    let _ = fmt::Write::write_str(&mut w, "\u{FFFD}");
                }
            }
            w.finish();
        }
    }
}

/// Appends `"value"` formatted with `Debug`, escaped on the fly with no intermediate `String`.
#[inline]
pub fn write_debug(buf: &mut Vec<u8>, value: &dyn fmt::Debug, max: usize) {
    let mut w = EscapeWriter::new(buf, max);
    let _ = fmt::write(&mut w, format_args!("{value:?}"));
    w.finish();
}

/// Appends `"value"` formatted with `Display`, escaped on the fly with no intermediate `String`.
#[inline]
pub fn write_display(buf: &mut Vec<u8>, value: &dyn fmt::Display, max: usize) {
    let mut w = EscapeWriter::new(buf, max);
    let _ = fmt::write(&mut w, format_args!("{value}"));
    w.finish();
}

/// A [`fmt::Write`] that appends a JSON string (opening quote on creation, closing quote and
/// truncation marker on [`finish`](EscapeWriter::finish)) to a byte buffer.
#[derive(Debug)]
pub struct EscapeWriter<'a> {
    buf: &'a mut Vec<u8>,
    remaining: usize,
    cut: usize,
}

impl<'a> EscapeWriter<'a> {
    /// Opens a string in `buf` that keeps at most `max` bytes of what is written to it.
    #[inline]
    pub fn new(buf: &'a mut Vec<u8>, max: usize) -> Self {
        buf.push(b'"');
        EscapeWriter {
            buf,
            remaining: max,
            cut: 0,
        }
    }

    /// Closes the string, adding the truncation marker if anything was cut.
    #[inline]
    pub fn finish(self) {
        if self.cut > 0 {
            write_truncation_marker(self.buf, self.cut);
        }
        self.buf.push(b'"');
    }
}

impl fmt::Write for EscapeWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.remaining {
            self.remaining -= s.len();
            escape_into(self.buf, s);
        } else {
            let kept = clip(s, self.remaining);
            escape_into(self.buf, kept);
            self.remaining = 0;
            self.cut += s.len() - kept.len();
        }
        Ok(())
    }
}

/// Appends the lower-case hex encoding of `bytes`.
#[inline]
pub fn write_hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        buf.push(HEX[(b >> 4) as usize]);
        buf.push(HEX[(b & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(s: &str, max: usize) -> String {
        let mut b = Vec::new();
        write_str_truncated(&mut b, s, max);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn control_characters_and_quotes_are_escaped() {
        let out = enc("a\"b\\c\nd\x1b[31me\u{7f}\t", usize::MAX);
        assert_eq!(out, r#""a\"b\\c\nd\u001b[31me\u007f\t""#);
        let v: String = serde_json::from_str(&out).unwrap();
        assert_eq!(v, "a\"b\\c\nd\x1b[31me\u{7f}\t");
    }

    #[test]
    fn truncation_cuts_on_a_char_boundary_and_says_so() {
        let out = enc("ééé", 3); // é is 2 bytes: keep one
        let v: String = serde_json::from_str(&out).unwrap();
        assert_eq!(v, "é…[truncated 4 bytes]");
    }

    #[test]
    fn non_finite_floats_stay_valid_json() {
        for (v, want) in [
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
            (1.5, "1.5"),
        ] {
            let mut b = Vec::new();
            write_f64(&mut b, v);
            assert_eq!(std::str::from_utf8(&b).unwrap(), want);
        }
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut b = Vec::new();
        write_bytes_lossy(&mut b, b"ok\xff\xfe end", 100);
        let v: String = serde_json::from_slice(&b).unwrap();
        assert_eq!(v, "ok\u{FFFD}\u{FFFD} end");
    }

    proptest! {
        #[test]
        fn swar_check_agrees_with_the_table(bytes in proptest::array::uniform8(any::<u8>())) {
            let w = u64::from_le_bytes(bytes);
            let want = bytes.iter().any(|&b| ESCAPE[b as usize] != 0);
            prop_assert_eq!(word_needs_escape(w), want, "{:?}", bytes);
        }

        #[test]
        fn any_string_round_trips(s in any::<String>()) {
            let out = enc(&s, usize::MAX);
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn debug_writer_matches_debug_and_truncates(s in any::<String>(), max in 0usize..64) {
            let mut b = Vec::new();
            write_debug(&mut b, &s, max);
            let back: String = serde_json::from_slice(&b).unwrap();
            let full = format!("{s:?}");
            if full.len() <= max {
                prop_assert_eq!(back, full);
            } else {
                prop_assert!(back.contains(TRUNCATION_MARKER_PREFIX));
                let kept = back.split(TRUNCATION_MARKER_PREFIX).next().unwrap();
                prop_assert!(full.starts_with(kept));
                prop_assert!(kept.len() <= max);
            }
        }
    }
}
