//! What `strata trace` and `strata errors` share: colours (the console's SGR codes, only when
//! asked), terminal-safe text, the width, UTC times.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_console::Clean;
use strata_core::Severity;

use crate::Color;

// SGR parameters, as strata-console's lines use them (its constants are private).
/// Dim.
pub(crate) const DIM: &str = "2";
/// Bold.
pub(crate) const BOLD: &str = "1";
/// Red: errors.
pub(crate) const RED: &str = "31";
/// Green: INFO, ok.
pub(crate) const GREEN: &str = "32";
/// Yellow: WARN.
pub(crate) const YELLOW: &str = "33";
/// Blue: DEBUG, the bars.
pub(crate) const BLUE: &str = "34";
/// Cyan: IDs, services, the slowest path's bars.
pub(crate) const CYAN: &str = "36";
/// White on red: CRITICAL.
pub(crate) const CRIT: &str = "1;37;41";
/// Bold red: an error span on the slowest path, REGRESSION.
pub(crate) const BOLD_RED: &str = "1;31";
/// Bold yellow: NEW.
pub(crate) const BOLD_YELLOW: &str = "1;33";

/// Whether to colour: `auto` is strata-console's rule (not with `NO_COLOR`, yes with
/// `CLICOLOR_FORCE`, else when standard output is a terminal).
pub(crate) fn use_color(choice: Color) -> bool {
    match choice {
        Color::Auto => strata_console::color_default(),
        Color::Always => true,
        Color::Never => false,
    }
}

/// The width to draw for: `COLUMNS` when it is a number, else 100 (at least 40).
pub(crate) fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(100)
        .max(40)
}

/// Text output with optional colour; everything that comes from data goes through
/// [`Out::text`] (terminal-safe).
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) buf: String,
    pub(crate) color: bool,
}

impl Out {
    /// An empty output, coloured or not.
    pub(crate) fn new(color: bool) -> Out {
        Out {
            buf: String::with_capacity(8192),
            color,
        }
    }

    /// Our own text (labels, numbers, glyphs): as it is.
    pub(crate) fn raw(&mut self, s: &str) -> &mut Self {
        self.buf.push_str(s);
        self
    }

    /// Text from the data, made terminal-safe.
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        let _ = write!(self.buf, "{}", Clean(s));
        self
    }

    /// `s` (our own text) in colour `code`.
    pub(crate) fn paint(&mut self, code: &str, s: &str) -> &mut Self {
        if s.is_empty() {
            return self;
        }
        self.on(code);
        self.buf.push_str(s);
        self.off(code)
    }

    /// Data text in colour `code`, made terminal-safe.
    pub(crate) fn paint_text(&mut self, code: &str, s: &str) -> &mut Self {
        self.on(code);
        self.text(s);
        self.off(code)
    }

    /// Starts colour `code` (nothing when colour is off or `code` is empty).
    pub(crate) fn on(&mut self, code: &str) -> &mut Self {
        if self.color && !code.is_empty() {
            self.buf.push_str("\x1b[");
            self.buf.push_str(code);
            self.buf.push('m');
        }
        self
    }

    /// Ends the colour started by [`Out::on`] with the same `code`.
    pub(crate) fn off(&mut self, code: &str) -> &mut Self {
        if self.color && !code.is_empty() {
            self.buf.push_str("\x1b[0m");
        }
        self
    }

    /// `n` spaces.
    pub(crate) fn spaces(&mut self, n: usize) -> &mut Self {
        self.buf.extend(std::iter::repeat_n(' ', n));
        self
    }

    /// A newline.
    pub(crate) fn nl(&mut self) -> &mut Self {
        self.buf.push('\n');
        self
    }

    /// `key=value` as the console writes it: the key dim, the value terminal-safe and in
    /// quotes when it is empty or holds whitespace, `"` or `=`.
    pub(crate) fn pair(&mut self, key: &str, value: &str) -> &mut Self {
        self.on(DIM).text(key).raw("=").off(DIM);
        if needs_quotes(value) {
            let clean = Clean(value).to_string();
            self.raw("\"").raw(&clean.replace('"', "\\\"")).raw("\"")
        } else {
            self.text(value)
        }
    }
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"' || c == '=')
}

/// The console's level label (five columns, right-aligned) and its colour.
pub(crate) fn level_style(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Trace => ("TRACE", DIM),
        Severity::Debug => ("DEBUG", BLUE),
        Severity::Info => (" INFO", GREEN),
        Severity::Warn => (" WARN", YELLOW),
        Severity::Error => ("ERROR", RED),
        Severity::Critical => (" CRIT", CRIT),
    }
}

/// The number of characters `s` takes (one column each: good enough for alignment).
pub(crate) fn columns(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to `max` characters, the last one `…` when something was cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if columns(s) <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) of a time in nanoseconds since the Unix epoch.
pub(crate) fn utc_nanos(ns: u64) -> String {
    utc(UNIX_EPOCH + Duration::from_nanos(ns), true)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a time in milliseconds since the Unix epoch.
pub(crate) fn utc_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    utc(t, false)
}

/// `YYYY-MM-DD HH:MM:SS[.mmm]` (UTC).
pub(crate) fn utc(t: SystemTime, millis: bool) -> String {
    let rfc = strata_core::time::rfc3339(t); // YYYY-MM-DDTHH:MM:SS.ffffffZ
    let end = if millis { 23 } else { 19 };
    let mut s = rfc[..end].to_owned();
    s.replace_range(10..11, " ");
    s
}

/// How long before `now` a time was, for people: `42 s ago`, `3 min ago`, `5 h ago`,
/// `12 days ago`; `in 3 min` for a time after `now` (a clock ahead).
pub(crate) fn ago(now_ms: i64, then_ms: i64) -> String {
    let d = now_ms.saturating_sub(then_ms);
    let span = relative(d.unsigned_abs() / 1000);
    if d < 0 {
        format!("in {span}")
    } else if d < 1000 {
        "just now".to_owned()
    } else {
        format!("{span} ago")
    }
}

fn relative(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses `--now` (RFC 3339).
pub(crate) fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    strata_core::time::parse_rfc3339(s.trim())
        .ok_or_else(|| format!("{s:?}: expected an RFC 3339 time such as 2026-12-05T10:00:00Z"))
}

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buf.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = 1_800_000_000_000;
        assert_eq!(ago(now, now - 400), "just now");
        assert_eq!(ago(now, now - 42_000), "42 s ago");
        assert_eq!(ago(now, now - 3 * 60_000 - 5_000), "3 min ago");
        assert_eq!(ago(now, now - 5 * 3_600_000), "5 h ago");
        assert_eq!(ago(now, now - 47 * 3_600_000), "47 h ago");
        assert_eq!(ago(now, now - 12 * 86_400_000), "12 days ago");
        assert_eq!(ago(now, now + 120_000), "in 2 min");
    }

    #[test]
    fn utc_text() {
        assert_eq!(utc_ms(1_764_062_000_123), "2025-11-25 09:13:20");
        assert_eq!(
            utc_nanos(1_764_062_000_123_456_789),
            "2025-11-25 09:13:20.123"
        );
    }

    #[test]
    fn pairs_are_quoted_and_safe() {
        let mut out = Out::new(false);
        out.pair("a", "x").raw(" ").pair("b", "two words").raw(" ");
        out.pair("c", "say \"hi\"\x1b[2J").raw(" ").pair("d", "");
        assert_eq!(
            out.buf,
            "a=x b=\"two words\" c=\"say \\\"hi\\\"\\x1b[2J\" d=\"\""
        );
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
