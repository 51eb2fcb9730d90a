//! `strata pretty`'s reader and renderer (`strata_cli::pretty::format_line`) on arbitrary
//! input lines: strata JSON of any preset, other JSON, anything.
//!
//! Each input is a flags byte then the text, cut into lines at `\n` as the reader does.
//! Properties, for every line:
//! - on a terminal without colour, the output holds no control character but the newlines
//!   that end its lines, and none of the characters that reorder or break terminal text
//!   (C1 controls, bidirectional overrides and isolates, line and paragraph separators);
//! - it is one line, then only the renderer's own indented lines (an error chain's
//!   `caused by:` and a backtrace's `at` frames), and ends in `\n`;
//! - with colour, the only escapes are SGR colour codes, and without them the output is the
//!   colourless one;
//! - into a pipe, a record renders the same as on a terminal, and any other line comes out
//!   byte for byte;
//! - a level filter only leaves lines out: what it shows is shown the same without it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_cli::pretty::{self, Options};
use strata_console::Style;
use strata_core::Severity;

const LEVELS: [Severity; 6] = [
    Severity::Trace,
    Severity::Debug,
    Severity::Info,
    Severity::Warn,
    Severity::Error,
    Severity::Critical,
];

fn options(color: bool, time: bool, terminal: bool, level: Option<Severity>) -> Options {
    let mut o = Options::new(Style::new().with_color(color).with_time(time), terminal);
    o.filter.level = level;
    o
}

fn render(line: &[u8], len: usize, opts: &Options) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let shown = pretty::format_line(line, len, opts, &mut out);
    if shown {
        Some(out)
    } else {
        assert!(out.is_empty(), "a line left out wrote something");
        None
    }
}

/// Characters that must never reach a terminal raw.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` without its SGR sequences (`ESC [ digits and ; m`); `None` when another escape is
/// there.
fn strip_sgr(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        let seq = rest[i + 1..].strip_prefix('[')?;
        let end = seq.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
        if !seq[end..].starts_with('m') {
            return None;
        }
        rest = &seq[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn check_plain(out: &[u8], line: &[u8]) -> String {
    let text = std::str::from_utf8(out)
        .unwrap_or_else(|_| panic!("not UTF-8 on a terminal: {out:?} from {line:?}"));
    assert!(text.ends_with('\n'), "{text:?}");
    if let Some(c) = text.chars().find(|&c| unsafe_char(c)) {
        panic!(
            "raw {c:?} on a terminal: {text:?} from {:?}",
            String::from_utf8_lossy(line)
        );
    }
    for extra in text.lines().skip(1) {
        let own = extra.starts_with("    at ")
            || (extra.starts_with("  ") && extra.contains("caused by:"));
        assert!(
            own,
            "a second line that is not the renderer's: {extra:?} in {text:?}"
        );
    }
    text.to_owned()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let time = flags & 1 != 0;
    let level = (flags & 2 != 0).then(|| LEVELS[usize::from(flags >> 2) % LEVELS.len()]);
    // Sometimes the line was cut by the reader: say how long it was.
    let extra = if flags & 0x80 != 0 {
        usize::from(flags & 0x7f)
    } else {
        0
    };
    let plain = options(false, time, true, None);
    let coloured = options(true, time, true, None);
    let pipe = options(false, time, false, None);
    let filtered = level.map(|l| options(false, time, true, Some(l)));
    for line in text.split(|&b| b == b'\n') {
        let len = line.len() + extra;
        let Some(out) = render(line, len, &plain) else {
            panic!(
                "no filter, yet left out: {:?}",
                String::from_utf8_lossy(line)
            );
        };
        let shown = check_plain(&out, line);

        let out_c = render(line, len, &coloured).expect("shown without colour");
        let text_c = String::from_utf8(out_c).expect("UTF-8");
        let stripped = strip_sgr(&text_c)
            .unwrap_or_else(|| panic!("an escape that is not a colour: {text_c:?}"));
        assert_eq!(stripped, shown, "colour changed more than colours");

        // A record as on a terminal, anything else as it is.
        let out_p = render(line, len, &pipe).expect("shown into a pipe");
        assert!(
            out_p == out || out_p == passthrough(line, len),
            "into a pipe: {:?}",
            String::from_utf8_lossy(&out_p)
        );

        if let Some(f) = &filtered
            && let Some(out_f) = render(line, len, f)
        {
            assert_eq!(out_f, out, "a filter changed a line it kept");
        }
    }
});

/// What a pipe gets for a line that is not a record.
fn passthrough(line: &[u8], len: usize) -> Vec<u8> {
    let mut v = line.to_vec();
    if len > line.len() {
        v.extend_from_slice(
            format!("…[line cut: {} bytes not shown]", len - line.len()).as_bytes(),
        );
    }
    v.push(b'\n');
    v
}
