//! `strata pretty`: strata JSON lines for people, streaming, filtered.
//!
//! [`run`] reads files (or standard input) line by line; [`format_line`] renders one line.
//! A line that is strata JSON (any preset) is shown as the development console shows events:
//! one line, then one indented line per link of an error's chain and per application frame
//! of a panic's backtrace. Any other line is passed through (made terminal-safe when
//! [`Options::terminal`] is set). Text from the input never reaches a terminal raw: control
//! characters, ANSI escapes and bidirectional overrides are written as visible escapes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use regex::Regex;
use serde_json::Value;
use strata_console::{Line, Style, Value as Shown, render};
use strata_core::Severity;

use crate::record::{ErrorParts, Object, Record};

/// The longest line read whole (strata cuts values at 16 KiB: its lines stay far below); the
/// rest of a longer line is skipped, and said so, so one huge line cannot take the memory.
pub const MAX_LINE: usize = 1 << 20;

/// Which lines to show; the default shows every line.
///
/// When any filter but `grep` is set, lines that are not strata JSON are left out.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Filter {
    /// Only lines at this level or above.
    pub level: Option<Severity>,
    /// Only lines of this request (`request_id`, compared as text).
    pub request_id: Option<String>,
    /// Only lines of this trace (compared ignoring ASCII case).
    pub trace_id: Option<String>,
    /// Only lines whose target is this module or below it (`shop` keeps `shop::orders`).
    pub target: Option<String>,
    /// Only lines from this time on.
    pub since: Option<SystemTime>,
    /// Only lines up to this time.
    pub until: Option<SystemTime>,
    /// Only lines matching this regular expression (on the raw line).
    pub grep: Option<Regex>,
}

impl Filter {
    /// Whether any filter but `--grep` is set: lines that are not strata JSON are then left out.
    fn structured(&self) -> bool {
        self.level.is_some()
            || self.request_id.is_some()
            || self.trace_id.is_some()
            || self.target.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    fn keeps(&self, r: &Record<'_>) -> bool {
        self.level.is_none_or(|l| r.severity >= l)
            && self
                .request_id
                .as_ref()
                .is_none_or(|id| r.request_id_text().as_deref() == Some(id.as_str()))
            && self
                .trace_id
                .as_ref()
                .is_none_or(|id| r.trace_id.is_some_and(|t| t.eq_ignore_ascii_case(id)))
            && self.target.as_ref().is_none_or(|p| {
                r.target.starts_with(p.as_str())
                    && (r.target.len() == p.len() || r.target[p.len()..].starts_with("::"))
            })
            && self.since.is_none_or(|s| r.time.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| r.time.is_some_and(|t| t <= u))
    }
}

/// How `strata pretty` runs.
#[derive(Debug)]
#[non_exhaustive]
pub struct Options {
    /// The files to read, in order (`-` or none: standard input).
    pub files: Vec<PathBuf>,
    /// Keep reading the last file as it grows (and when it is rotated).
    pub follow: bool,
    /// Which lines to show.
    pub filter: Filter,
    /// How records are shown: colours, the time (strata-console's style).
    pub style: Style,
    /// Whether the output is a terminal: lines that are not JSON are passed through as they
    /// are into a pipe, and made terminal-safe on a terminal.
    pub terminal: bool,
}

impl Options {
    /// Standard input, every line shown with `style`; `terminal` says whether the output is
    /// a terminal (see [`Options::terminal`]).
    pub fn new(style: Style, terminal: bool) -> Options {
        Options {
            files: Vec::new(),
            follow: false,
            filter: Filter::default(),
            style,
            terminal,
        }
    }
}

/// What [`run`] read and showed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Lines read.
    pub read: u64,
    /// Lines shown (the others were filtered out).
    pub shown: u64,
}

/// Reads one line (without its newline) into `buf`, at most [`MAX_LINE`] bytes of it; returns
/// `None` at the end of the input, else the line's full length.
fn read_line(r: &mut (impl BufRead + ?Sized), buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    buf.clear();
    let mut total = 0;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((total > 0).then_some(total));
        }
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let data = &chunk[..if done { used - 1 } else { used }];
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        total += data.len();
        r.consume(used);
        if done {
            return Ok(Some(total));
        }
    }
}

/// Shows the lines of `input`; keeps going at the end when `follow` (a file that grows).
fn show(
    input: &mut dyn BufRead,
    opts: &Options,
    out: &mut dyn Write,
    counts: &mut Counts,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut rendered = Vec::with_capacity(4096);
    while let Some(len) = read_line(input, &mut line)? {
        counts.read += 1;
        rendered.clear();
        if format_line(&line, len, opts, &mut rendered) {
            counts.shown += 1;
            out.write_all(&rendered)?;
        }
    }
    Ok(())
}

/// Renders one input line into `out`; `false` when the filters leave it out.
///
/// `line` is the line without its newline, possibly cut short (the reader keeps at most
/// [`MAX_LINE`] bytes); `len` is the length the line had, so a cut line that is passed
/// through says how much was left out. What is appended ends with a newline: the rendered
/// line, then for a strata record the lines of its errors' chains and backtrace frames.
pub fn format_line(line: &[u8], len: usize, opts: &Options, out: &mut Vec<u8>) -> bool {
    if let Some(grep) = &opts.filter.grep
        && !grep.is_match(&String::from_utf8_lossy(line))
    {
        return false;
    }
    let parsed = (line.first() == Some(&b'{'))
        .then(|| serde_json::from_slice::<Object>(line).ok())
        .flatten();
    let record = parsed.as_ref().and_then(Record::from_json);
    let Some(r) = record else {
        // Not a strata log line: as it is (terminal-safe on a terminal), unless filtered on.
        if opts.filter.structured() {
            return false;
        }
        if opts.terminal {
            let text = String::from_utf8_lossy(line);
            out.extend_from_slice(strata_console::Clean(&text).to_string().as_bytes());
        } else {
            out.extend_from_slice(line);
        }
        if len > line.len() {
            let _ = write!(out, "…[line cut: {} bytes not shown]", len - line.len());
        }
        out.push(b'\n');
        return true;
    };
    if !opts.filter.keeps(&r) {
        return false;
    }
    render_record(&r, &opts.style, out);
    true
}

/// What a field shows, owned where the JSON has no text to borrow.
enum Prepared<'a> {
    Shown(Shown<'a>),
    Text(String),
    Error(ErrorParts<'a>),
}

/// Renders a record with the console format.
fn render_record(r: &Record<'_>, style: &Style, out: &mut Vec<u8>) {
    // A panic's backtrace (a text field) is shown as the application's frames below the line.
    let mut frames = Vec::new();
    let prepared: Vec<(&str, Prepared<'_>)> = r
        .fields
        .iter()
        .filter(|(name, v)| match (*name, v) {
            ("backtrace", Value::String(text)) => {
                frames = strata_console::backtrace_frames(text);
                false
            }
            _ => true,
        })
        .map(|(name, v)| {
            let p = match v {
                Value::String(s) => Prepared::Shown(Shown::Str(s)),
                Value::Bool(b) => Prepared::Shown(Shown::Bool(*b)),
                Value::Number(n) => Prepared::Shown(
                    n.as_u64()
                        .map(Shown::U64)
                        .or_else(|| n.as_i64().map(Shown::I64))
                        .unwrap_or_else(|| Shown::F64(n.as_f64().unwrap_or(f64::NAN))),
                ),
                Value::Null => Prepared::Text("null".to_owned()),
                // Errors of strata's schema keep their chain; other nested values are shown as
                // compact JSON.
                other => ErrorParts::of(other)
                    .map_or_else(|| Prepared::Text(other.to_string()), Prepared::Error),
            };
            (*name, p)
        })
        .collect();
    let fields: Vec<(&str, Shown<'_>)> = prepared
        .iter()
        .map(|(name, p)| {
            let shown = match p {
                Prepared::Shown(s) => *s,
                Prepared::Text(t) => Shown::Str(t),
                Prepared::Error(e) => Shown::Error(e.view()),
            };
            (*name, shown)
        })
        .collect();
    let request_id = r.request_id.map(|v| match v {
        Value::String(s) => Shown::Str(s),
        Value::Number(n) => n.as_u64().map_or(Shown::Str("?"), Shown::U64),
        _ => Shown::Str("?"),
    });
    let mut line = Line::new(r.severity, r.message);
    line.time = r.time;
    line.target = r.target;
    line.request_id = request_id;
    line.fields = &fields;
    line.trace_id = r.trace_id;
    line.span_id = r.span_id;
    line.backtrace = &frames;
    render(&line, style, out);
}

/// Opens `path` for reading, `-` being standard input.
fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::with_capacity(1 << 16, io::stdin())));
    }
    Ok(Box::new(BufReader::with_capacity(
        1 << 16,
        File::open(path)?,
    )))
}

/// Runs `strata pretty`: shows the lines of every file of `opts` on `out` (with
/// [`Options::follow`], until interrupted); returns the counts.
///
/// # Errors
///
/// A file that cannot be opened or read (the error names it), or `out` failing.
pub fn run(opts: &Options, out: &mut dyn Write) -> io::Result<Counts> {
    let mut counts = Counts::default();
    let files: Vec<PathBuf> = if opts.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        opts.files.clone()
    };
    for (i, path) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        if opts.follow && last && path != Path::new("-") {
            follow(path, opts, out, &mut counts)?;
        } else {
            let mut input = open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            show(&mut input, opts, out, &mut counts)?;
        }
        out.flush()?;
    }
    Ok(counts)
}

/// `--follow`: shows the file, then what is appended to it, reopening it when it is rotated
/// (a new file at the path) or truncated. Runs until interrupted.
fn follow(path: &Path, opts: &Options, out: &mut dyn Write, counts: &mut Counts) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let open_file = || {
        File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    };
    let mut file = open_file()?;
    let mut ino = file.metadata()?.ino();
    let mut pos: u64 = 0;
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut chunk)?;
        if n > 0 {
            pos += n as u64;
            pending.extend_from_slice(&chunk[..n]);
            // Whole lines only: a line being written is shown once complete.
            if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
                let mut lines = &pending[..=end];
                show(&mut lines, opts, out, counts)?;
                out.flush()?;
                pending.drain(..=end);
            } else if pending.len() > MAX_LINE {
                pending.clear();
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
        match std::fs::metadata(path) {
            Ok(m) if m.ino() != ino || m.len() < pos => {
                file = open_file()?;
                ino = file.metadata()?.ino();
                pos = 0;
                pending.clear();
            }
            _ => {}
        }
    }
}
