//! `strata trace`: one trace of the local OTLP/JSON file drawn as a waterfall, or the traces
//! that started last listed.
//!
//! ```text
//! strata trace [FILE] --trace-id ID        one trace: its 32 hex digits, or the first 8 or more
//! strata trace [FILE] --request-id ID      the trace(s) with a span whose request_id is ID
//! strata trace [FILE] --last               the trace that started last
//! strata trace [FILE] --list [--limit N]   the N traces that started last (20; 0: all)
//! ```
//!
//! FILE is the file strata-otlp writes when no collector is set: `$STRATA_TELEMETRY_FILE`, else
//! `.strata/telemetry.jsonl` — the OpenTelemetry collector's file-exporter format, one
//! `ExportTraceServiceRequest` (or logs, or metrics request) per line, IDs in hex. `-` reads
//! standard input, except for `--request-id` and `--last`, which read the file twice.
//!
//! The file is read line by line and never held whole: only the spans of the trace shown are
//! kept (for `--list` and `--last`, a small summary per trace: start, end, span count, errors,
//! root name). A line that is not OTLP/JSON is skipped and counted; the count is said on
//! standard error at the end.
//!
//! # The waterfall
//!
//! ```text
//! trace 4bf92f3577b34da6a3ce929d0e0e4736 · shop, inventory, payments
//! started 2025-11-25 09:12:03.418 UTC · 250.00 ms · 8 spans · 2 errors
//!
//!  start ms  dur ms  span                              0         250.00 ms
//! *    0.00  250.00  ✗ POST /checkout (server)         ███████████████████
//!                    │  request_id=0193a5c2-7f3e http.response.status_code=502
//!                    │  @ 249.80 ms ERROR checkout failed  error.class=external
//!      1.20   12.80  ├─ SELECT orders (client)         ██
//!                    │     db.system=postgresql db.operation=SELECT
//!     15.00   30.00  ├─ GET (client)                    ███
//!                    │  │  http.response.status_code=200 url.full=http://inventory:8080/…
//!     17.00   26.00  │  └─ GET /inventory/{sku}         ███
//!                    │     │  service=inventory kind=server request_id=0193a5c2-7f3e
//! *   50.00  190.00  ├─ ✗ POST (client)                   ████████████████
//!                    │     http.response.status_code=504 url.full=http://payments:8080/payments
//!                    │     @ 239.50 ms ERROR payment gateway timed out after 3 attempts
//!                    │     (2 debug/trace events not shown)
//!    241.00    7.00  └─ render receipt                                   █
//!     60.00  170.00  gateway.charge [payments]             ██████████████
//!                       parent 00f067aa0ba902b7 is not in the file
//!
//! * slowest path: from the root, the child that takes the longest at each level · ✗ error
//! ```
//!
//! One row per span, children below their parent in the order they started: the start offset
//! from the trace's start and the duration in milliseconds, the name (with the span kind when
//! it is server, client, producer or consumer, and the service when it is not the root's), and
//! a bar at its offset, scaled so that the whole trace fills the width (`COLUMNS`, else 100).
//! Below a row: its key attributes (request_id, http.route when the name does not hold it,
//! http.response.status_code, url.full, db.*, messaging.*, rpc.*, job, error.type,
//! exception.*, the status message) and its events — on an error span those at INFO and above
//! (DEBUG and TRACE ones are counted), on others WARN and above; at most
//! [`MAX_EVENTS`] per span, the latest.
//!
//! - `✗` (red): an error span (status code 2, ERROR).
//! - `*` (bold): the slowest path. Start at the root (among several roots, the longest); at
//!   each level go to the child that takes the longest (on a tie, the one that ends last, then
//!   the first to start). It follows where the time went, down to the span that has no
//!   children: the first place to look when the trace is slow.
//! - A span whose parent is not in the file (a cut trace: the parent was dropped, sampled
//!   out, or is still running) is drawn as one more root, with its parent's ID below it.
//!
//! Colours only on a terminal (`--color auto`, strata-console's rule) or with
//! `--color always`; every name, attribute and message is made terminal-safe as the console
//! does it (control characters, escape sequences and bidirectional overrides are shown as
//! visible escapes).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};
use strata_core::Severity;

use crate::Color;
use crate::term::{self, BLUE, BOLD, BOLD_RED, CYAN, DIM, GREEN, Out, RED};

/// The most events shown below one span (the latest are kept).
pub(crate) const MAX_EVENTS: usize = 10;

/// The longest line read; a longer one is skipped as malformed (a file without newlines must
/// not be read whole).
const MAX_LINE: usize = 64 << 20;

/// The most traces `--request-id` draws.
const MAX_TRACES: usize = 20;

/// The longest span name kept in a `--list` summary.
const MAX_SUMMARY_NAME: usize = 120;

/// `strata trace`: the spans of one trace as a waterfall, or the recent traces.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
FILE: $STRATA_TELEMETRY_FILE, else .strata/telemetry.jsonl (the OTLP/JSON file strata writes \
when no collector is set); - reads standard input (not with --request-id or --last).

In the waterfall: ✗ marks an error span (status ERROR); * marks the slowest path — from the \
root, at each level the child that takes the longest. A span whose parent is not in the file \
is drawn as one more root.")]
pub(crate) struct TraceArgs {
    /// The OTLP/JSON file (default: $STRATA_TELEMETRY_FILE or .strata/telemetry.jsonl).
    file: Option<PathBuf>,
    #[command(flatten)]
    which: Which,
    /// With --list: how many traces (0: all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// Colours.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// Draws this trace: its 32 hex digits, or the first 8 or more.
    #[arg(long, value_name = "ID")]
    trace_id: Option<String>,
    /// Draws the trace(s) with a span whose request_id attribute is ID.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// Draws the trace that started last.
    #[arg(long)]
    last: bool,
    /// Lists the traces that started last: start, duration, span count, status, ID, root span.
    #[arg(long)]
    list: bool,
}

/// Runs `strata trace`.
pub(crate) fn run(args: TraceArgs) -> io::Result<()> {
    let explicit = args.file.is_some();
    let path = args.file.unwrap_or_else(default_file);
    let input = Input {
        stdin: path == Path::new("-"),
        // How the hints name the file: as given, or not at all for the default.
        hint: if explicit {
            format!("strata trace {} ", path.display())
        } else {
            "strata trace ".to_owned()
        },
        path,
    };
    let color = term::use_color(args.color);
    let width = term::width();
    let mut stats = Stats::default();
    let result = match args.which {
        Which {
            trace_id: Some(id), ..
        } => by_trace_id(&input, &id, &mut stats, color, width),
        Which {
            request_id: Some(id),
            ..
        } => by_request_id(&input, &id, &mut stats, color, width),
        Which { last: true, .. } => last(&input, &mut stats, color, width),
        _ => list(&input, args.limit, &mut stats, color, width),
    };
    stats.report(&input);
    let text = result?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn default_file() -> PathBuf {
    std::env::var_os("STRATA_TELEMETRY_FILE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(".strata/telemetry.jsonl"), PathBuf::from)
}

fn fail(message: String) -> io::Error {
    io::Error::other(message)
}

/// Where the spans come from.
#[derive(Debug)]
struct Input {
    path: PathBuf,
    stdin: bool,
    hint: String,
}

impl Input {
    fn name(&self) -> String {
        if self.stdin {
            "standard input".to_owned()
        } else {
            self.path.display().to_string()
        }
    }

    fn open(&self) -> io::Result<Box<dyn BufRead>> {
        if self.stdin {
            return Ok(Box::new(BufReader::with_capacity(1 << 16, io::stdin())));
        }
        match File::open(&self.path) {
            Ok(f) => Ok(Box::new(BufReader::with_capacity(1 << 16, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(fail(format!(
                "no telemetry file at {}: nothing exported yet, or set STRATA_TELEMETRY_FILE",
                self.path.display()
            ))),
            Err(e) => Err(fail(format!("{}: {e}", self.path.display()))),
        }
    }

    /// `--request-id` and `--last` read the input twice.
    fn twice(&self, option: &str) -> io::Result<()> {
        if self.stdin {
            return Err(fail(format!(
                "{option} reads the file twice: give a file, not standard input \
                 (or find the trace ID with --list and use --trace-id)"
            )));
        }
        Ok(())
    }

    fn no_spans(&self, stats: &Stats) -> io::Error {
        fail(format!(
            "no spans in {} ({} lines read): no trace exported yet, or not an OTLP/JSON file",
            self.name(),
            stats.lines
        ))
    }
}

/// What the reading found, for the closing remark.
#[derive(Debug, Default)]
struct Stats {
    /// Lines read by the first pass (the counts are the first pass's).
    lines: u64,
    spans: u64,
    malformed: u64,
    first_malformed: Option<u64>,
    bad_ids: u64,
    /// Which pass is running: the remark counts the first only.
    pass: u32,
}

impl Stats {
    fn report(&self, input: &Input) {
        if self.malformed > 0 {
            eprintln!(
                "strata: skipped {} line{} of {} that {} not OTLP/JSON (the first: line {})",
                self.malformed,
                plural(self.malformed),
                input.name(),
                if self.malformed == 1 { "is" } else { "are" },
                self.first_malformed.unwrap_or(0)
            );
        }
        if self.bad_ids > 0 {
            eprintln!(
                "strata: skipped {} span{} without a valid trace ID",
                self.bad_ids,
                plural(self.bad_ids)
            );
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Reads `input` line by line and calls `each` with every span and its service's name.
fn scan(
    input: &Input,
    stats: &mut Stats,
    mut each: impl FnMut(&RawSpan<'_>, &str),
) -> io::Result<()> {
    stats.pass += 1;
    let first_pass = stats.pass == 1;
    let mut reader = input.open()?;
    let mut line = Vec::with_capacity(1 << 16);
    let mut number = 0u64;
    while let Some(whole) = next_line(&mut reader, &mut line)? {
        number += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let parsed = if whole {
            serde_json::from_slice::<ExportLine<'_>>(text).ok()
        } else {
            None
        };
        let Some(export) = parsed.filter(ExportLine::is_otlp) else {
            if first_pass {
                stats.malformed += 1;
                stats.first_malformed.get_or_insert(number);
            }
            continue;
        };
        for resource in &export.resource_spans {
            let service = resource
                .resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .map(|kv| kv.value.text())
                .unwrap_or_default();
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    if first_pass {
                        stats.spans += 1;
                    }
                    each(span, &service);
                }
            }
        }
    }
    if first_pass {
        stats.lines = number;
    }
    Ok(())
}

/// Reads one line (without its newline) into `buf`; `None` at the end, `Some(false)` when the
/// line is longer than [`MAX_LINE`] (its start is not kept).
fn next_line(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let mut any = false;
    let mut too_long = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(!too_long));
        }
        any = true;
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let data = &chunk[..if done { used - 1 } else { used }];
        if !too_long {
            if buf.len() + data.len() > MAX_LINE {
                too_long = true;
                buf.clear();
                buf.shrink_to(1 << 16);
            } else {
                buf.extend_from_slice(data);
            }
        }
        r.consume(used);
        if done {
            return Ok(Some(!too_long));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The four ways to pick traces.

fn by_trace_id(
    input: &Input,
    id: &str,
    stats: &mut Stats,
    color: bool,
    width: usize,
) -> io::Result<String> {
    let want = id.trim().to_ascii_lowercase();
    if want.len() < 8 || want.len() > 32 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(format!(
            "--trace-id {:?}: expected a trace ID (32 hex digits) or its first 8 or more",
            id
        )));
    }
    let mut found: Option<String> = None;
    let mut others = BTreeSet::new();
    let mut spans = Vec::new();
    scan(input, stats, |raw, service| {
        let tid = raw.trace_id.as_bytes();
        if tid.len() < want.len() || !tid[..want.len()].eq_ignore_ascii_case(want.as_bytes()) {
            return;
        }
        let tid = raw.trace_id.to_ascii_lowercase();
        match &found {
            None => found = Some(tid),
            Some(f) if *f == tid => {}
            Some(_) => {
                if others.len() < 3 {
                    others.insert(tid);
                }
                return;
            }
        }
        spans.push(Span::from_raw(raw, service));
    })?;
    let Some(found) = found else {
        if stats.spans == 0 {
            return Err(input.no_spans(stats));
        }
        return Err(fail(format!(
            "no trace with id {want} in {}; see `{}--list`",
            input.name(),
            input.hint
        )));
    };
    if !others.is_empty() {
        let all: Vec<String> = std::iter::once(found).chain(others).collect();
        return Err(fail(format!(
            "--trace-id {want} is the start of more than one trace in {}: {}…; give more digits",
            input.name(),
            all.join(", ")
        )));
    }
    let mut out = Out::new(color);
    draw(&mut out, &found, spans, width);
    Ok(out.buf)
}

fn by_request_id(
    input: &Input,
    id: &str,
    stats: &mut Stats,
    color: bool,
    width: usize,
) -> io::Result<String> {
    input.twice("--request-id")?;
    // First pass: the traces of the request.
    let mut traces = BTreeSet::new();
    let mut more = false;
    scan(input, stats, |raw, _| {
        let of_request = raw
            .attributes
            .iter()
            .any(|kv| kv.key == "request_id" && kv.value.text() == id);
        if of_request {
            let tid = lower(&raw.trace_id);
            if traces.len() < MAX_TRACES || traces.contains(tid.as_ref()) {
                traces.insert(tid.into_owned());
            } else {
                more = true;
            }
        }
    })?;
    if traces.is_empty() {
        if stats.spans == 0 {
            return Err(input.no_spans(stats));
        }
        return Err(fail(format!(
            "no trace with request_id {} in {}; see `{}--list`",
            strata_console::Clean(id),
            input.name(),
            input.hint
        )));
    }
    // Second pass: their spans.
    let mut spans: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    scan(input, stats, |raw, service| {
        let tid = lower(&raw.trace_id);
        if traces.contains(tid.as_ref()) {
            spans
                .entry(tid.into_owned())
                .or_default()
                .push(Span::from_raw(raw, service));
        }
    })?;
    if spans.is_empty() {
        return Err(changed(input));
    }
    let mut traces: Vec<(String, Vec<Span>)> = spans.into_iter().collect();
    traces.sort_by_key(|(id, spans)| (spans.iter().map(|s| s.start).min(), id.clone()));
    let mut out = Out::new(color);
    for (i, (trace_id, spans)) in traces.into_iter().enumerate() {
        if i > 0 {
            out.nl();
        }
        draw(&mut out, &trace_id, spans, width);
    }
    if more {
        let _ = writeln!(
            out,
            "\n(more than {MAX_TRACES} traces have request_id {}: the first {MAX_TRACES} found are shown)",
            strata_console::Clean(id)
        );
    }
    Ok(out.buf)
}

/// The second reading did not find what the first one did.
fn changed(input: &Input) -> io::Error {
    fail(format!(
        "{} changed while it was read (rotated?); try again",
        input.name()
    ))
}

fn last(input: &Input, stats: &mut Stats, color: bool, width: usize) -> io::Result<String> {
    input.twice("--last")?;
    let summaries = summarize(input, stats)?;
    let Some((&id, _)) = summaries
        .iter()
        .max_by_key(|(id, s)| (s.start, s.end, **id))
    else {
        return Err(input.no_spans(stats));
    };
    drop(summaries);
    let hex = format!("{id:032x}");
    let mut spans = Vec::new();
    scan(input, stats, |raw, service| {
        if raw.trace_id.eq_ignore_ascii_case(&hex) {
            spans.push(Span::from_raw(raw, service));
        }
    })?;
    if spans.is_empty() {
        return Err(changed(input));
    }
    let mut out = Out::new(color);
    draw(&mut out, &hex, spans, width);
    Ok(out.buf)
}

fn list(
    input: &Input,
    limit: usize,
    stats: &mut Stats,
    color: bool,
    width: usize,
) -> io::Result<String> {
    let summaries = summarize(input, stats)?;
    if summaries.is_empty() {
        return Err(input.no_spans(stats));
    }
    let total = summaries.len();
    let mut recent: Vec<(u128, Summary)> = summaries.into_iter().collect();
    recent.sort_by_key(|(id, s)| Reverse((s.start, s.end, *id)));
    if limit > 0 {
        recent.truncate(limit);
    }
    let mut out = Out::new(color);
    // START 23, DURATION 12, SPANS 5, STATUS 6, TRACE ID 32, then the root's name.
    let used = 23 + 2 + 12 + 2 + 5 + 2 + 6 + 2 + 32 + 2;
    let name_max = width.saturating_sub(used).max(60);
    out.on(DIM);
    let _ = write!(
        out,
        "{:<23}  {:>12}  {:>5}  {:<6}  {:<32}  ROOT",
        "START (UTC)", "DURATION", "SPANS", "STATUS", "TRACE ID"
    );
    out.off(DIM).nl();
    for (id, s) in &recent {
        let _ = write!(
            out,
            "{:<23}  {:>12}  {:>5}  ",
            term::utc_nanos(s.start),
            format!("{} ms", ms(s.end.saturating_sub(s.start))),
            s.spans
        );
        if s.errors > 0 {
            out.paint(RED, "error ");
        } else {
            out.paint(GREEN, "ok    ");
        }
        let _ = write!(out, "  {id:032x}  ");
        let name = match &s.root {
            Some(root) => root.clone(),
            None => format!("{} (no root span)", s.first.1),
        };
        out.on(BOLD)
            .text(&term::cut(&name, name_max))
            .off(BOLD)
            .nl();
    }
    let shown = recent.len();
    out.nl();
    if shown < total {
        let _ = write!(
            out,
            "the {shown} traces that started last of {total} in {}",
            input.name()
        );
    } else {
        let _ = write!(
            out,
            "{total} trace{} in {}",
            plural(total as u64),
            input.name()
        );
    }
    let _ = writeln!(out, "; `{}--trace-id ID` draws one", input.hint);
    Ok(out.buf)
}

/// What `--list` and `--last` keep of a trace.
#[derive(Debug, Clone)]
struct Summary {
    start: u64,
    end: u64,
    spans: u64,
    errors: u64,
    /// The root span's name and kind, when the root is in the file.
    root: Option<String>,
    /// The earliest span's start and name (for traces without their root).
    first: (u64, String),
}

fn summarize(input: &Input, stats: &mut Stats) -> io::Result<HashMap<u128, Summary>> {
    let mut traces: HashMap<u128, Summary> = HashMap::new();
    let mut bad_ids = 0;
    scan(input, stats, |raw, _| {
        let Some(id) = parse_trace_id(&raw.trace_id) else {
            bad_ids += 1;
            return;
        };
        let (start, end) = raw.times();
        let label = || term::cut(&name_with_kind(&raw.name, raw.kind.0), MAX_SUMMARY_NAME);
        let s = traces.entry(id).or_insert_with(|| Summary {
            start,
            end,
            spans: 0,
            errors: 0,
            root: None,
            first: (start, label()),
        });
        s.start = s.start.min(start);
        s.end = s.end.max(end);
        s.spans += 1;
        if raw.status.code.0 == 2 {
            s.errors += 1;
        }
        if raw.parent_span_id.is_empty() {
            s.root = Some(label());
        }
        if start < s.first.0 {
            s.first = (start, label());
        }
    })?;
    stats.bad_ids += bad_ids;
    Ok(traces)
}

/// A hex ID in lower case (borrowed when it already is).
fn lower(id: &str) -> std::borrow::Cow<'_, str> {
    if id.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(id.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(id)
    }
}

fn parse_trace_id(id: &str) -> Option<u128> {
    if id.len() != 32 {
        return None;
    }
    u128::from_str_radix(id, 16).ok()
}

fn name_with_kind(name: &str, kind: i128) -> String {
    match kind_name(kind) {
        Some(k) => format!("{name} ({k})"),
        None => name.to_owned(),
    }
}

fn kind_name(kind: i128) -> Option<&'static str> {
    match kind {
        2 => Some("server"),
        3 => Some("client"),
        4 => Some("producer"),
        5 => Some("consumer"),
        _ => None,
    }
}

/// Nanoseconds as milliseconds with two decimals.
fn ms(ns: u64) -> String {
    format!("{}.{:02}", ns / 1_000_000, (ns % 1_000_000) / 10_000)
}

// ---------------------------------------------------------------------------------------------
// The spans kept for drawing.

/// The attributes shown below a span, in this order.
const KEY_ATTRIBUTES: &[&str] = &[
    "request_id",
    "http.route",
    "http.response.status_code",
    "url.full",
    "db.system.name",
    "db.system",
    "db.operation.name",
    "db.operation",
    "db.query.text",
    "db.statement",
    "messaging.system",
    "messaging.destination.name",
    "rpc.service",
    "rpc.method",
    "job",
    "error.type",
    "exception.type",
    "exception.message",
];

/// Event attributes never shown (where the event was logged, not what it says).
fn quiet_event_attribute(key: &str) -> bool {
    matches!(key, "level" | "target" | "exception.stacktrace")
        || key.starts_with("code.")
        || key.starts_with("thread.")
}

/// One span, as much of it as the waterfall shows.
#[derive(Debug)]
struct Span {
    span_id: String,
    parent: String,
    name: String,
    kind: i128,
    start: u64,
    end: u64,
    error: bool,
    service: String,
    attributes: Vec<(&'static str, String)>,
    events: Vec<Event>,
    /// Events left out for their level (on an error span: DEBUG and TRACE).
    quiet_events: usize,
    /// Events left out beyond [`MAX_EVENTS`] (the earliest).
    earlier_events: usize,
}

#[derive(Debug)]
struct Event {
    time: u64,
    severity: Option<Severity>,
    name: String,
    attributes: Vec<(String, String)>,
}

impl Span {
    fn from_raw(raw: &RawSpan<'_>, service: &str) -> Span {
        let (start, end) = raw.times();
        let error = raw.status.code.0 == 2;
        let mut attributes = Vec::new();
        for &key in KEY_ATTRIBUTES {
            let Some(kv) = raw.attributes.iter().find(|kv| kv.key == key) else {
                continue;
            };
            let value = kv.value.text();
            if value.is_empty() || (key == "http.route" && raw.name.contains(value.as_str())) {
                continue;
            }
            attributes.push((key, value));
        }
        if !raw.status.message.is_empty() {
            attributes.push(("status.message", raw.status.message.to_string()));
        }
        // INFO and up on an error span, WARN and up elsewhere.
        let floor = if error {
            Severity::Info
        } else {
            Severity::Warn
        };
        let mut events = Vec::new();
        let mut quiet_events = 0;
        let mut earlier_events = 0;
        for e in &raw.events {
            let severity = e
                .attributes
                .iter()
                .find(|kv| kv.key == "level")
                .and_then(|kv| kv.value.text().parse::<Severity>().ok());
            // An event without a level (an OpenTelemetry `exception` event, say) counts as
            // ERROR when it is an exception, else INFO.
            let rank = severity.unwrap_or(if e.name == "exception" {
                Severity::Error
            } else {
                Severity::Info
            });
            if rank < floor {
                if error {
                    quiet_events += 1;
                }
                continue;
            }
            if events.len() == MAX_EVENTS {
                events.remove(0);
                earlier_events += 1;
            }
            let attributes = e
                .attributes
                .iter()
                .filter(|kv| !quiet_event_attribute(&kv.key))
                .map(|kv| (kv.key.to_string(), kv.value.text()))
                .filter(|(_, v)| !v.is_empty() && *v != "[]" && *v != e.name)
                .collect();
            events.push(Event {
                time: e.time_unix_nano.nanos(),
                severity,
                name: e.name.to_string(),
                attributes,
            });
        }
        Span {
            span_id: raw.span_id.to_ascii_lowercase(),
            parent: raw.parent_span_id.to_ascii_lowercase(),
            name: raw.name.to_string(),
            kind: raw.kind.0,
            start,
            end,
            error,
            service: service.to_owned(),
            attributes,
            events,
            quiet_events,
            earlier_events,
        }
    }

    fn duration(&self) -> u64 {
        self.end - self.start
    }
}

/// One row of the waterfall.
#[derive(Debug)]
struct Row {
    span: usize,
    /// The tree glyphs before the name.
    prefix: String,
    /// The tree glyphs before the lines below the row.
    below: String,
}

/// Draws one trace.
fn draw(out: &mut Out, trace_id: &str, mut spans: Vec<Span>, width: usize) {
    spans.sort_by(|a, b| (a.start, &a.span_id).cmp(&(b.start, &b.span_id)));
    // A span written twice (an export retried, files concatenated) is drawn once.
    let before = spans.len();
    let mut ids = std::collections::HashSet::with_capacity(before);
    spans.retain(|s| s.span_id.is_empty() || ids.insert(s.span_id.clone()));
    drop(ids);
    let duplicates = before - spans.len();
    let n = spans.len();
    let t0 = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let t1 = spans.iter().map(|s| s.end).max().unwrap_or(t0);
    let total = t1 - t0;

    // The tree: a span whose parent is not here is one more root.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, s) in spans.iter().enumerate() {
        index.entry(s.span_id.as_str()).or_insert(i);
    }
    let mut children = vec![Vec::new(); n];
    let mut roots = Vec::new();
    let mut cut = vec![false; n];
    for (i, s) in spans.iter().enumerate() {
        match index.get(s.parent.as_str()) {
            Some(&p) if !s.parent.is_empty() && p != i => children[p].push(i),
            _ => {
                cut[i] = !s.parent.is_empty();
                roots.push(i);
            }
        }
    }

    // The slowest path: from the longest root, the child that takes the longest.
    let key = |i: usize| (spans[i].duration(), spans[i].end, Reverse(i));
    let mut slow = vec![false; n];
    let mut on_path = roots.iter().copied().max_by_key(|&i| key(i));
    while let Some(i) = on_path.filter(|&i| !slow[i]) {
        slow[i] = true;
        on_path = children[i].iter().copied().max_by_key(|&c| key(c));
    }

    // Rows, depth first (iteratively: a trace may be deep); spans in a parent cycle last.
    let mut rows = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    let mut stack: Vec<(usize, String, Option<bool>)> = roots
        .iter()
        .rev()
        .map(|&r| (r, String::new(), None))
        .collect();
    let mut next_unseen = 0;
    loop {
        let Some((i, above, last)) = stack.pop() else {
            while next_unseen < n && seen[next_unseen] {
                next_unseen += 1;
            }
            if next_unseen == n {
                break;
            }
            stack.push((next_unseen, String::new(), None));
            continue;
        };
        if seen[i] {
            continue;
        }
        seen[i] = true;
        let (glyph, own) = match last {
            None => ("", ""),
            Some(true) => ("└─ ", "   "),
            Some(false) => ("├─ ", "│  "),
        };
        let kids: Vec<usize> = children[i].iter().copied().filter(|&c| !seen[c]).collect();
        let inner = format!("{above}{own}");
        for (k, &c) in kids.iter().enumerate().rev() {
            stack.push((c, inner.clone(), Some(k + 1 == kids.len())));
        }
        rows.push(Row {
            span: i,
            prefix: format!("{above}{glyph}"),
            below: format!("{inner}{}", if kids.is_empty() { "   " } else { "│  " }),
        });
    }

    // The services, the root's first.
    let main_service = roots
        .first()
        .map(|&r| spans[r].service.as_str())
        .unwrap_or("");
    let mut services: Vec<&str> = Vec::new();
    for r in &rows {
        let s = spans[r.span].service.as_str();
        if !s.is_empty() && !services.contains(&s) {
            services.push(s);
        }
    }
    let errors = spans.iter().filter(|s| s.error).count();

    out.on(BOLD).raw("trace ").text(trace_id).off(BOLD);
    if !services.is_empty() {
        out.raw(" · ");
        for (k, s) in services.iter().take(5).enumerate() {
            if k > 0 {
                out.raw(", ");
            }
            out.text(s);
        }
        if services.len() > 5 {
            out.raw(", …");
        }
    }
    out.nl();
    let _ = write!(
        out,
        "started {} UTC · {} ms · {} span{}",
        term::utc_nanos(t0),
        ms(total),
        n,
        plural(n as u64)
    );
    if errors > 0 {
        out.raw(" · ");
        out.paint(RED, &format!("{errors} error{}", plural(errors as u64)));
    }
    if duplicates > 0 {
        let _ = write!(
            out,
            " · {duplicates} duplicate span{} left out",
            plural(duplicates as u64)
        );
    }
    out.nl().nl();

    // Columns: mark, start, duration, tree and name, bar.
    let labels: Vec<Label> = rows
        .iter()
        .map(|r| Label::of(&spans[r.span], main_service))
        .collect();
    let w_start = rows
        .iter()
        .map(|r| ms(spans[r.span].start - t0).len())
        .max()
        .unwrap_or(0)
        .max("start ms".len());
    let w_dur = rows
        .iter()
        .map(|r| ms(spans[r.span].duration()).len())
        .max()
        .unwrap_or(0)
        .max("dur ms".len());
    let left = 1 + w_start + 2 + w_dur + 2;
    let wanted = rows
        .iter()
        .zip(&labels)
        .map(|(r, l)| term::columns(&r.prefix) + l.columns())
        .max()
        .unwrap_or(0);
    let name_w = wanted.min((width * 9 / 20).max(24)).max("span".len());
    let bar_w = width.saturating_sub(left + name_w + 2).max(10);

    out.on(DIM);
    let _ = write!(
        out,
        " {:>w_start$}  {:>w_dur$}  {:<name_w$}  ",
        "start ms", "dur ms", "span"
    );
    let scale_end = format!("{} ms", ms(total));
    if bar_w > scale_end.len() + 2 {
        let _ = write!(out, "0{:>w$}", scale_end, w = bar_w - 1);
    } else {
        out.raw("0");
    }
    out.off(DIM).nl();

    for (row, label) in rows.iter().zip(&labels) {
        let s = &spans[row.span];
        let mark = slow[row.span];
        if mark {
            out.paint(BOLD, "*");
        } else {
            out.raw(" ");
        }
        let _ = write!(
            out,
            "{:>w_start$}  {:>w_dur$}  ",
            ms(s.start - t0),
            ms(s.duration())
        );
        out.paint(DIM, &row.prefix);
        let room = name_w.saturating_sub(term::columns(&row.prefix));
        // When the name does not fit, the service and then the kind go below the row.
        let mut label = label.clone();
        let mut moved: Vec<(&str, &str)> = Vec::new();
        if label.columns() > room && label.service.take().is_some() {
            moved.push(("service", &s.service));
        }
        if label.columns() > room
            && let Some(kind) = label.kind.take()
        {
            moved.push(("kind", kind));
        }
        let used = label.draw(out, room, s.error, mark);
        out.spaces(name_w.saturating_sub(term::columns(&row.prefix) + used) + 2);
        let (a, b) = bar(s.start - t0, s.duration(), total, bar_w);
        out.spaces(a);
        let code = if s.error {
            RED
        } else if mark {
            CYAN
        } else {
            BLUE
        };
        out.paint(code, &"█".repeat(b - a));
        out.nl();

        // Below the row: the cut parent, the key attributes, the events.
        let below = |out: &mut Out| {
            out.spaces(left);
            out.paint(DIM, &row.below);
        };
        if cut[row.span] {
            below(out);
            out.on(DIM)
                .raw("parent ")
                .text(&s.parent)
                .raw(" is not in the file")
                .off(DIM)
                .nl();
        }
        if !s.attributes.is_empty() || !moved.is_empty() {
            below(out);
            let pairs = moved
                .iter()
                .copied()
                .chain(s.attributes.iter().map(|(k, v)| (*k, v.as_str())));
            for (k, (key, value)) in pairs.enumerate() {
                if k > 0 {
                    out.raw(" ");
                }
                out.pair(key, value);
            }
            out.nl();
        }
        if s.earlier_events > 0 {
            below(out);
            let _ = writeln!(
                out,
                "({} earlier event{} not shown)",
                s.earlier_events,
                plural(s.earlier_events as u64)
            );
        }
        for e in &s.events {
            below(out);
            out.paint(DIM, &format!("@ {} ms", ms(e.time.saturating_sub(t0))))
                .raw(" ");
            if let Some(severity) = e.severity {
                let (label, code) = term::level_style(severity);
                out.paint(code, label.trim_start()).raw(" ");
            }
            out.text(&e.name);
            for (k, (key, value)) in e.attributes.iter().enumerate() {
                out.raw(if k == 0 { "  " } else { " " });
                out.pair(key, value);
            }
            out.nl();
        }
        if s.quiet_events > 0 {
            below(out);
            out.on(DIM);
            let _ = write!(
                out,
                "({} debug/trace event{} not shown)",
                s.quiet_events,
                plural(s.quiet_events as u64)
            );
            out.off(DIM).nl();
        }
    }
    out.nl();
    out.on(DIM)
        .raw("* slowest path: from the root, the child that takes the longest at each level · ✗ error")
        .off(DIM)
        .nl();
}

/// The name column of a row: `✗ name (kind) [service]`.
#[derive(Debug, Clone)]
struct Label {
    name: String,
    kind: Option<&'static str>,
    service: Option<String>,
}

impl Label {
    fn of(s: &Span, main_service: &str) -> Label {
        // Made terminal-safe here: the cut and the widths count what is shown.
        let name = strata_console::Clean(&s.name);
        Label {
            name: if s.error {
                format!("✗ {name}")
            } else {
                name.to_string()
            },
            kind: kind_name(s.kind),
            service: (!s.service.is_empty() && s.service != main_service)
                .then(|| strata_console::Clean(&s.service).to_string()),
        }
    }

    fn extra(&self) -> usize {
        self.kind.map_or(0, |k| k.len() + 3)
            + self.service.as_ref().map_or(0, |s| term::columns(s) + 3)
    }

    fn columns(&self) -> usize {
        term::columns(&self.name) + self.extra()
    }

    /// Writes the label in at most `room` columns (the name is cut first); returns the columns
    /// written.
    fn draw(&self, out: &mut Out, room: usize, error: bool, slow: bool) -> usize {
        let name = term::cut(&self.name, room.saturating_sub(self.extra()).max(1));
        let code = match (error, slow) {
            (true, true) => BOLD_RED,
            (true, false) => RED,
            (false, true) => BOLD,
            (false, false) => "",
        };
        // Already terminal-safe.
        out.paint(code, &name);
        let mut used = term::columns(&name);
        if let Some(k) = self.kind {
            out.raw(" ").paint(DIM, &format!("({k})"));
            used += k.len() + 3;
        }
        if let Some(s) = &self.service {
            out.raw(" ").paint(CYAN, &format!("[{s}]"));
            used += term::columns(s) + 3;
        }
        used
    }
}

/// The columns a span's bar covers: `[a, b)` of `width`, at least one.
fn bar(offset: u64, duration: u64, total: u64, width: usize) -> (usize, usize) {
    if total == 0 {
        return (0, width);
    }
    let w = width as u128;
    let a = (u128::from(offset) * w / u128::from(total)) as usize;
    let b = (u128::from(offset + duration) * w).div_ceil(u128::from(total)) as usize;
    let a = a.min(width - 1);
    (a, b.clamp(a + 1, width))
}

// ---------------------------------------------------------------------------------------------
// OTLP/JSON, as the collector's file exporter (and strata-otlp) writes it. Unknown fields are
// skipped; integers may be numbers or strings (proto3 JSON writes 64-bit integers as strings);
// enums may be numbers or names.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportLine<'a> {
    #[serde(default, borrow)]
    resource_spans: Vec<ResourceSpans<'a>>,
    #[serde(default)]
    resource_logs: Option<IgnoredAny>,
    #[serde(default)]
    resource_metrics: Option<IgnoredAny>,
}

impl ExportLine<'_> {
    /// Whether the line is one of the three OTLP export requests (an object of another shape
    /// is not).
    fn is_otlp(&self) -> bool {
        !self.resource_spans.is_empty()
            || self.resource_logs.is_some()
            || self.resource_metrics.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(default, borrow)]
    resource: Resource<'a>,
    #[serde(default, borrow)]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct Resource<'a> {
    #[serde(default, borrow)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Debug, Deserialize)]
struct ScopeSpans<'a> {
    #[serde(default, borrow)]
    spans: Vec<RawSpan<'a>>,
}

/// A span as the file has it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpan<'a> {
    #[serde(default, borrow)]
    trace_id: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    span_id: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    parent_span_id: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default)]
    kind: Int,
    #[serde(default)]
    start_time_unix_nano: Int,
    #[serde(default)]
    end_time_unix_nano: Int,
    #[serde(default, borrow)]
    attributes: Vec<KeyValue<'a>>,
    #[serde(default, borrow)]
    events: Vec<RawEvent<'a>>,
    #[serde(default, borrow)]
    status: Status<'a>,
}

impl RawSpan<'_> {
    /// Start and end in nanoseconds since the epoch; the end no earlier than the start.
    fn times(&self) -> (u64, u64) {
        let start = self.start_time_unix_nano.nanos();
        (start, self.end_time_unix_nano.nanos().max(start))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent<'a> {
    #[serde(default)]
    time_unix_nano: Int,
    #[serde(default, borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct Status<'a> {
    #[serde(default, borrow)]
    message: std::borrow::Cow<'a, str>,
    #[serde(default)]
    code: Int,
}

#[derive(Debug, Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow)]
    key: std::borrow::Cow<'a, str>,
    #[serde(default)]
    value: AnyValue,
}

/// An attribute's value.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<Int>,
    double_value: Option<Float>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KvList>,
    bytes_value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ArrayValue {
    #[serde(default)]
    values: Vec<AnyValue>,
}

#[derive(Debug, Default, Deserialize)]
struct KvList {
    #[serde(default)]
    values: Vec<OwnedKeyValue>,
}

/// A key-value pair inside a value (owned: values are not borrowed).
#[derive(Debug, Deserialize)]
struct OwnedKeyValue {
    key: String,
    #[serde(default)]
    value: AnyValue,
}

impl AnyValue {
    /// The value as text: strings as they are, numbers and booleans as JSON writes them,
    /// arrays as `[a, b]`, key-value lists as `{k: v}`.
    fn text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, out: &mut String) {
        if let Some(v) = &self.string_value {
            out.push_str(v);
        } else if let Some(v) = self.bool_value {
            let _ = write!(out, "{v}");
        } else if let Some(v) = self.int_value {
            let _ = write!(out, "{}", v.0);
        } else if let Some(v) = self.double_value {
            let _ = write!(out, "{}", v.0);
        } else if let Some(a) = &self.array_value {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                v.write(out);
            }
            out.push(']');
        } else if let Some(l) = &self.kvlist_value {
            out.push('{');
            for (i, kv) in l.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&kv.key);
                out.push_str(": ");
                kv.value.write(out);
            }
            out.push('}');
        } else if let Some(b) = &self.bytes_value {
            out.push_str(b);
        }
    }
}

/// An integer or an enum: a JSON number, a string of digits, or an enum's name
/// (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Int(i128);

impl Int {
    fn nanos(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, a string of digits or an enum name")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
                if v.fract() == 0.0 && v.abs() < 1e30 {
                    Ok(Int(v as i128))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                if let Ok(n) = v.trim().parse() {
                    return Ok(Int(n));
                }
                Ok(Int(match v {
                    "SPAN_KIND_INTERNAL" | "STATUS_CODE_OK" => 1,
                    "SPAN_KIND_SERVER" | "STATUS_CODE_ERROR" => 2,
                    "SPAN_KIND_CLIENT" => 3,
                    "SPAN_KIND_PRODUCER" => 4,
                    "SPAN_KIND_CONSUMER" => 5,
                    _ => 0,
                }))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Int, E> {
                Ok(Int(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A float: a JSON number, or a string (`"NaN"`, `"Infinity"`, digits).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Float(f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Float, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Float;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Float, E> {
                Ok(Float(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Float, E> {
                v.trim()
                    .parse()
                    .map(Float)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_cover_their_share() {
        assert_eq!(bar(0, 100, 100, 10), (0, 10));
        assert_eq!(bar(50, 50, 100, 10), (5, 10));
        assert_eq!(bar(0, 1, 100, 10), (0, 1), "at least one column");
        assert_eq!(bar(100, 0, 100, 10), (9, 10), "an instant at the end");
        assert_eq!(bar(0, 0, 0, 10), (0, 10), "a trace without duration");
    }

    #[test]
    fn milliseconds() {
        assert_eq!(ms(0), "0.00");
        assert_eq!(ms(1_234_567), "1.23");
        assert_eq!(ms(3_052_931_220), "3052.93");
    }

    #[test]
    fn otlp_numbers_and_enums() {
        let line = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeSpans":[{"spans":[
            {"traceId":"AB","spanId":"01","name":"a","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"5","endTimeUnixNano":7,
             "status":{"code":"STATUS_CODE_ERROR"},
             "attributes":[{"key":"n","value":{"intValue":"-3"}},{"key":"f","value":{"doubleValue":"NaN"}},
                           {"key":"l","value":{"arrayValue":{"values":[{"stringValue":"x"},{"boolValue":true}]}}},
                           {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"intValue":1}}]}}}]}]}]}]}"#;
        let export: ExportLine<'_> = serde_json::from_str(line).unwrap();
        assert!(export.is_otlp());
        let span = &export.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!((span.kind, span.status.code), (Int(2), Int(2)));
        assert_eq!(span.times(), (5, 7));
        let values: Vec<String> = span.attributes.iter().map(|kv| kv.value.text()).collect();
        assert_eq!(values, ["-3", "NaN", "[x, true]", "{k: 1}"]);
        let other: ExportLine<'_> = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert!(!other.is_otlp());
        let logs: ExportLine<'_> = serde_json::from_str(r#"{"resourceLogs":[]}"#).unwrap();
        assert!(logs.is_otlp());
    }
}
