//! Shared test support: an in-memory writer that records every `write` call separately, and a
//! runner that installs a console layer over it with `with_default` (no global subscriber).
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::sync::{Arc, Mutex};

use strata_console::ConsoleLayer;
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
    /// Every write call's bytes.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }

    /// Every write call's bytes, as text (panics if a write is not UTF-8).
    pub fn writes(&self) -> Vec<String> {
        self.raw()
            .into_iter()
            .map(|w| String::from_utf8(w).expect("output is UTF-8"))
            .collect()
    }
}

/// Runs `f` with `layer` writing into a fresh capture; returns each write (one per event).
pub fn run(layer: ConsoleLayer, f: impl FnOnce()) -> Vec<String> {
    let cap = Capture::default();
    let sub = tracing_subscriber::registry().with(layer.with_writer(cap.clone()));
    tracing::subscriber::with_default(sub, f);
    cap.writes()
}

/// A layer with colour off (whatever the environment says) and no time column, so lines can
/// be compared whole.
pub fn plain() -> ConsoleLayer {
    strata_console::layer().with_color(false).with_time(false)
}

/// Asserts that `write` is exactly one line: one trailing newline, no other, and no raw
/// control, C1, bidi-override or line-separator character anywhere.
pub fn assert_one_safe_line(write: &str) {
    assert!(write.ends_with('\n'), "no trailing newline: {write:?}");
    assert_eq!(
        write.matches('\n').count(),
        1,
        "more than one line: {write:?}"
    );
    assert_safe(write);
}

/// Asserts that nothing in `text` but newlines could steer a terminal.
pub fn assert_safe(text: &str) {
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}');
        assert!(!bad, "raw {:?} (U+{:04X}) in output: {text:?}", c, c as u32);
    }
}

/// `text` without its SGR colour codes; panics on any other escape sequence (`ESC` not
/// followed by `[`, digits and `;`, then `m`).
pub fn strip_sgr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        let seq = &rest[i + 1..];
        let end = seq
            .find('m')
            .unwrap_or_else(|| panic!("unterminated escape in {text:?}"));
        assert!(
            seq.starts_with('[') && seq[1..end].bytes().all(|b| b.is_ascii_digit() || b == b';'),
            "foreign escape sequence {:?} in {text:?}",
            &seq[..end.min(20)]
        );
        rest = &seq[end + 1..];
    }
    out.push_str(rest);
    out
}
