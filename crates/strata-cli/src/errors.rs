//! `strata errors`: the local error store strata-capture keeps when no DSN is set — the
//! inbox of grouped errors.
//!
//! ```text
//! strata errors [list] [--db PATH]                    the groups, the most frequent first
//! strata errors show ID [--all-frames] [--db PATH]    one group and its latest event
//! ```
//!
//! PATH: `$STRATA_ERRORS_DB`, else `.strata/errors.db`. The store is opened read-only
//! ([`LocalStore::open_read_only`]): looking at it creates nothing and records no release, so
//! it never changes which groups count as new or as regressions.
//!
//! `list` shows each group as:
//!
//! ```text
//!     5 × ERROR    shop::PaymentError: payment gateway timed out after 3 attempts  REGRESSION
//!         3c91c52b63c5243b  last seen   3 min ago  2025-11-26 05:15:00 UTC  release 1.2
//!                           first seen  19 h ago   2025-11-25 10:00:00 UTC  release 1.0
//! ```
//!
//! `NEW`: first seen in the release that saw it last; `REGRESSION`: came back after a whole
//! release went by without it. `show ID` (any prefix of the ID that names one group) prints
//! the group's summary, then its latest event: time, level, class, message, where it was
//! logged, the request (request_id, user, method and route, trace and span), the error chain
//! (`caused by: Type: message`), the stack frames innermost first (the application's marked
//! `›`; runs of library frames summed up in one line unless `--all-frames`), the breadcrumbs
//! as the console shows log lines, the tags and the fields.
//!
//! Relative times ("3 min ago") are counted from now, or from the hidden option
//! `--now RFC3339` (for reproducible output: the tests' snapshots). Colours only on a terminal
//! (`--color auto`) or with `--color always`; every text from the store is made terminal-safe.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Subcommand;
use serde_json::Value;
use strata_capture::{ErrorEvent, Group, LocalStore};
use strata_console::{Line, Style, Value as Shown};
use strata_core::Severity;

use crate::Color;
use crate::term::{self, BOLD, BOLD_RED, BOLD_YELLOW, CYAN, DIM, Out, RED};

/// `strata errors`: the error groups of the local store.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
PATH: $STRATA_ERRORS_DB, else .strata/errors.db. The store is only read: looking at it changes \
nothing (no release is recorded, so the NEW and REGRESSION flags stay as they are).")]
pub(crate) struct ErrorsArgs {
    #[command(subcommand)]
    command: Option<ErrorsCommand>,
    /// The error store (default: $STRATA_ERRORS_DB or .strata/errors.db).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Colours.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    /// Counts relative times from this instant (RFC 3339) instead of now: reproducible output.
    #[arg(long, hide = true, global = true, value_parser = term::parse_rfc3339)]
    now: Option<SystemTime>,
}

#[derive(Debug, Subcommand)]
enum ErrorsCommand {
    /// The error groups, the most frequent first (the default): count, level, title, ID, last
    /// and first seen with their releases, the NEW and REGRESSION flags.
    List,
    /// One group: its counts, first and last seen, then its latest event with its context,
    /// error chain, stack frames and breadcrumbs.
    Show {
        /// The group's ID, or the start of it (enough to name one group).
        id: String,
        /// Every stack frame (by default a run of library frames is one line).
        #[arg(long)]
        all_frames: bool,
    },
}

/// Runs `strata errors`.
pub(crate) fn run(args: ErrorsArgs) -> io::Result<()> {
    let hint = match &args.db {
        Some(p) => format!("strata errors --db {} ", p.display()),
        None => "strata errors ".to_owned(),
    };
    let path = args.db.unwrap_or_else(default_db);
    let ctx = Ctx {
        now_ms: term::millis(args.now.unwrap_or_else(SystemTime::now)),
        color: term::use_color(args.color),
        hint,
    };
    let store = open(&path)?;
    let text = match args.command.unwrap_or(ErrorsCommand::List) {
        ErrorsCommand::List => list(&store, &path, &ctx)?,
        ErrorsCommand::Show { id, all_frames } => show(&store, &path, &id, all_frames, &ctx)?,
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn default_db() -> PathBuf {
    std::env::var_os("STRATA_ERRORS_DB")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(".strata/errors.db"), PathBuf::from)
}

fn fail(message: String) -> io::Error {
    io::Error::other(message)
}

/// How to show things.
#[derive(Debug)]
struct Ctx {
    now_ms: i64,
    color: bool,
    /// `strata errors [--db PATH] `, for the hints.
    hint: String,
}

fn open(path: &Path) -> io::Result<LocalStore> {
    if !path.exists() {
        return Err(fail(format!(
            "no error store at {}: nothing captured yet, or set STRATA_ERRORS_DB",
            path.display()
        )));
    }
    LocalStore::open_read_only(path).map_err(|e| fail(format!("{e} (not a strata error store?)")))
}

fn store_error(e: strata_capture::StoreError) -> io::Error {
    fail(e.to_string())
}

fn level_code(level: &str) -> &'static str {
    level
        .parse::<Severity>()
        .map_or("", |s| term::level_style(s).1)
}

fn flags(out: &mut Out, g: &Group) {
    if g.new_in_release {
        out.raw("  ").paint(BOLD_YELLOW, "NEW");
    }
    if g.regression {
        out.raw("  ").paint(BOLD_RED, "REGRESSION");
    }
}

fn list(store: &LocalStore, path: &Path, ctx: &Ctx) -> io::Result<String> {
    let mut groups = store.groups().map_err(store_error)?;
    let mut out = Out::new(ctx.color);
    if groups.is_empty() {
        let _ = writeln!(out, "no errors in {}", path.display());
        return Ok(out.buf);
    }
    groups.sort_by(|a, b| (b.count, b.last_seen_ms, &a.id).cmp(&(a.count, a.last_seen_ms, &b.id)));
    let count_w = groups
        .iter()
        .map(|g| g.count.to_string().len())
        .max()
        .unwrap_or(1)
        .max(5);
    let id_w = groups
        .iter()
        .map(|g| term::columns(&g.id))
        .max()
        .unwrap_or(16);
    let ago_w = groups
        .iter()
        .flat_map(|g| [g.first_seen_ms, g.last_seen_ms])
        .map(|t| term::ago(ctx.now_ms, t).len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{} error group{} in {}, the most frequent first\n",
        groups.len(),
        if groups.len() == 1 { "" } else { "s" },
        path.display()
    );
    for g in &groups {
        let _ = write!(out, "{:>count_w$} × ", g.count);
        let level = strata_console::Clean(&g.level).to_string();
        out.paint(level_code(&g.level), &format!("{level:<8}"))
            .raw(" ");
        out.paint_text(BOLD, &g.title);
        flags(&mut out, g);
        out.nl();
        out.spaces(count_w + 3);
        out.on(CYAN).text(&g.id).off(CYAN);
        out.spaces(id_w - term::columns(&g.id) + 2);
        seen(
            &mut out,
            "last seen ",
            g.last_seen_ms,
            &g.last_release,
            ago_w,
            ctx,
        );
        out.spaces(count_w + 3 + id_w + 2);
        seen(
            &mut out,
            "first seen",
            g.first_seen_ms,
            &g.first_release,
            ago_w,
            ctx,
        );
        out.nl();
    }
    let _ = writeln!(
        out,
        "`{}show ID` shows a group and its latest event (the start of the ID is enough)",
        ctx.hint
    );
    Ok(out.buf)
}

/// `last seen   3 min ago   2025-11-26 05:15:00 UTC  release 1.2`
fn seen(out: &mut Out, label: &str, at_ms: i64, release: &str, ago_w: usize, ctx: &Ctx) {
    out.paint(DIM, label);
    let _ = write!(
        out,
        "  {:<ago_w$}  {} UTC",
        term::ago(ctx.now_ms, at_ms),
        term::utc_ms(at_ms)
    );
    if !release.is_empty() {
        out.raw("  ").paint(DIM, "release").raw(" ").text(release);
    }
    out.nl();
}

/// The one group `id` names: itself, or the only group whose ID starts with it.
fn resolve(store: &LocalStore, path: &Path, id: &str, ctx: &Ctx) -> io::Result<String> {
    let want = id.trim().to_ascii_lowercase();
    let groups = store.groups().map_err(store_error)?;
    if let Some(g) = groups.iter().find(|g| g.id.eq_ignore_ascii_case(&want)) {
        return Ok(g.id.clone());
    }
    let mut matching: Vec<&Group> = if want.is_empty() {
        Vec::new()
    } else {
        groups
            .iter()
            .filter(|g| g.id.to_ascii_lowercase().starts_with(&want))
            .collect()
    };
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    match matching.as_slice() {
        [g] => Ok(g.id.clone()),
        [] => Err(fail(format!(
            "no error group {} in {}; see `{}list`",
            strata_console::Clean(id),
            path.display(),
            ctx.hint
        ))),
        many => Err(fail(format!(
            "{} is the start of {} error groups in {}: {}; give more of the ID",
            strata_console::Clean(id),
            many.len(),
            path.display(),
            many.iter()
                .take(5)
                .map(|g| strata_console::Clean(&g.id).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The width of the labels of `show`.
const LABEL: usize = 11;

fn label(out: &mut Out, indent: usize, name: &str) {
    out.spaces(indent);
    out.paint(DIM, &format!("{name:<LABEL$}"));
    out.raw(" ");
}

fn show(
    store: &LocalStore,
    path: &Path,
    id: &str,
    all_frames: bool,
    ctx: &Ctx,
) -> io::Result<String> {
    let id = resolve(store, path, id, ctx)?;
    let Some((g, events)) = store.group(&id).map_err(store_error)? else {
        return Err(fail(format!(
            "error group {id} is no longer in {}",
            path.display()
        )));
    };
    let mut out = Out::new(ctx.color);
    out.paint_text(level_code(&g.level), &g.level).raw("  ");
    out.paint_text(BOLD, &g.title);
    flags(&mut out, &g);
    out.nl().nl();
    label(&mut out, 0, "group");
    out.on(CYAN).text(&g.id).off(CYAN).nl();
    label(&mut out, 0, "count");
    let _ = writeln!(
        out,
        "{} ({} event{} kept, the latest below)",
        g.count,
        events.len(),
        if events.len() == 1 { "" } else { "s" }
    );
    let ago_w = term::ago(ctx.now_ms, g.first_seen_ms)
        .len()
        .max(term::ago(ctx.now_ms, g.last_seen_ms).len());
    label(&mut out, 0, "first seen");
    seen_rest(&mut out, g.first_seen_ms, &g.first_release, ago_w, ctx);
    label(&mut out, 0, "last seen");
    seen_rest(&mut out, g.last_seen_ms, &g.last_release, ago_w, ctx);

    let Some(event) = events.first() else {
        let _ = writeln!(
            out,
            "\nno event of this group is kept any more (the store keeps the latest ones only)"
        );
        return Ok(out.buf);
    };
    out.nl();
    event_summary(&mut out, event, ctx);
    chain(&mut out, event);
    frames(&mut out, event, all_frames);
    breadcrumbs(&mut out, event, ctx);
    let tags: Vec<(&str, String)> = event
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    table(&mut out, "tags", &tags);
    let fields: Vec<(&str, String)> = event
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), json_text(v)))
        .collect();
    table(&mut out, "fields", &fields);
    Ok(out.buf)
}

/// `3 min ago   2025-11-26 05:15:00 UTC  release 1.2`
fn seen_rest(out: &mut Out, at_ms: i64, release: &str, ago_w: usize, ctx: &Ctx) {
    let _ = write!(
        out,
        "{:<ago_w$}  {} UTC",
        term::ago(ctx.now_ms, at_ms),
        term::utc_ms(at_ms)
    );
    if !release.is_empty() {
        out.raw("  ").paint(DIM, "release").raw(" ").text(release);
    }
    out.nl();
}

fn event_summary(out: &mut Out, e: &ErrorEvent, ctx: &Ctx) {
    out.on(BOLD).raw("latest event").off(BOLD);
    if !e.event_id.is_empty() {
        out.raw(" ").on(DIM).text(&e.event_id).off(DIM);
    }
    out.nl();
    label(out, 2, "time");
    let time = strata_core::time::parse_rfc3339(&e.timestamp);
    match time {
        Some(t) => {
            let _ = write!(out, "{} UTC", term::utc(t, true));
        }
        None => {
            out.text(&e.timestamp);
        }
    }
    let _ = writeln!(out, " ({})", term::ago(ctx.now_ms, e.unix_ms));
    label(out, 2, "level");
    out.paint_text(level_code(&e.level), &e.level);
    if let Some(class) = &e.class {
        out.raw("  ").paint(DIM, "class").raw(" ").text(class);
    }
    out.nl();
    label(out, 2, "message");
    out.on(BOLD).text(&e.message).off(BOLD).nl();
    let place = e.module.as_deref().unwrap_or(&e.target);
    if !place.is_empty() || e.location.is_some() {
        label(out, 2, "logged at");
        out.text(place);
        if let Some(loc) = &e.location {
            out.raw(" ").on(DIM).raw("(").text(loc).raw(")").off(DIM);
        }
        if let Some(thread) = &e.thread {
            out.raw("  ").paint(DIM, "thread").raw(" ").text(thread);
        }
        out.nl();
    }
    if e.release.is_some() || e.environment.is_some() {
        label(out, 2, "release");
        out.text(e.release.as_deref().unwrap_or("?"));
        if let Some(env) = &e.environment {
            out.raw("  ").paint(DIM, "environment").raw(" ").text(env);
        }
        out.nl();
    }
    let r = &e.request;
    if r.method.is_some() || r.route.is_some() {
        label(out, 2, "route");
        if let Some(m) = &r.method {
            out.text(m).raw(" ");
        }
        out.text(r.route.as_deref().unwrap_or("")).nl();
    }
    for (name, value) in [("request_id", &r.request_id), ("user", &r.user_id)] {
        if let Some(v) = value {
            label(out, 2, name);
            out.text(v).nl();
        }
    }
    if let Some(trace) = &r.trace_id {
        label(out, 2, "trace");
        out.text(trace);
        if let Some(span) = &r.span_id {
            out.raw("  ").paint(DIM, "span").raw(" ").text(span);
        }
        out.nl();
        label(out, 2, "");
        out.on(DIM)
            .raw("strata trace --trace-id ")
            .text(trace)
            .raw("  draws it")
            .off(DIM)
            .nl();
    }
}

fn chain(out: &mut Out, e: &ErrorEvent) {
    let Some((first, causes)) = e.chain.split_first() else {
        return;
    };
    out.nl().on(BOLD).raw("error").off(BOLD).nl();
    out.raw("  ");
    if let Some(ty) = &first.ty {
        out.on(BOLD).text(ty).off(BOLD).raw(": ");
    }
    out.text(&first.message).nl();
    for cause in causes {
        out.raw("  ").paint(RED, "caused by:").raw(" ");
        if let Some(ty) = &cause.ty {
            out.on(BOLD).text(ty).off(BOLD).raw(": ");
        }
        out.text(&cause.message).nl();
    }
}

/// The crate a frame's function belongs to (`<tokio::…>` and `<F as axum::…>` too).
fn crate_of(function: &str) -> &str {
    let f = function.trim_start_matches('<');
    let first = f
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    // `<F as axum::handler::Handler>`: a generic parameter, the trait names the crate.
    if first.len() <= 1
        && let Some((_, rest)) = f.split_once(" as ")
    {
        return crate_of(rest);
    }
    first
}

fn frames(out: &mut Out, e: &ErrorEvent, all: bool) {
    if e.frames.is_empty() {
        return;
    }
    out.nl()
        .on(BOLD)
        .raw("stack")
        .off(BOLD)
        .raw(", innermost first (› the application's code)")
        .nl();
    // Stored outermost first.
    let frames: Vec<&strata_capture::Frame> = e.frames.iter().rev().collect();
    let mut i = 0;
    while i < frames.len() {
        let f = frames[i];
        if f.in_app || all {
            if f.in_app {
                out.raw("  ")
                    .paint(BOLD, "›")
                    .raw(" ")
                    .on(BOLD)
                    .text(&f.function)
                    .off(BOLD);
            } else {
                out.raw("    ").text(&f.function);
            }
            if let Some(file) = &f.file {
                out.raw("  ").on(DIM).text(file);
                if let Some(line) = f.line {
                    let _ = write!(out, ":{line}");
                }
                out.off(DIM);
            }
            out.nl();
            i += 1;
            continue;
        }
        // A run of library frames: one line.
        let run = frames[i..].iter().take_while(|f| !f.in_app).count();
        let mut crates: Vec<&str> = Vec::new();
        for f in &frames[i..i + run] {
            let c = crate_of(&f.function);
            if !c.is_empty() && !crates.contains(&c) {
                crates.push(c);
            }
        }
        out.raw("    ").on(DIM);
        let _ = write!(
            out,
            "… {run} library frame{}",
            if run == 1 { "" } else { "s" }
        );
        if !crates.is_empty() {
            out.raw(": ");
            for (k, c) in crates.iter().take(4).enumerate() {
                if k > 0 {
                    out.raw(", ");
                }
                out.text(c);
            }
            if crates.len() > 4 {
                out.raw(", …");
            }
        }
        out.off(DIM).nl();
        i += run;
    }
}

fn breadcrumbs(out: &mut Out, e: &ErrorEvent, ctx: &Ctx) {
    if e.breadcrumbs.is_empty() {
        return;
    }
    out.nl()
        .on(BOLD)
        .raw("breadcrumbs")
        .off(BOLD)
        .raw(", oldest first")
        .nl();
    let style = Style::new().with_color(ctx.color);
    let mut line_buf = Vec::new();
    for b in &e.breadcrumbs {
        // Nested values are shown as compact JSON.
        let nested: Vec<Option<String>> = b
            .data
            .values()
            .map(|v| match v {
                Value::Array(_) | Value::Object(_) | Value::Null => Some(v.to_string()),
                _ => None,
            })
            .collect();
        let fields: Vec<(&str, Shown<'_>)> = b
            .data
            .iter()
            .zip(&nested)
            .map(|((k, v), n)| {
                let shown = match (v, n) {
                    (_, Some(text)) => Shown::Str(text),
                    (Value::String(s), _) => Shown::Str(s),
                    (Value::Bool(b), _) => Shown::Bool(*b),
                    (Value::Number(n), _) => n
                        .as_u64()
                        .map(Shown::U64)
                        .or_else(|| n.as_i64().map(Shown::I64))
                        .unwrap_or_else(|| Shown::F64(n.as_f64().unwrap_or(f64::NAN))),
                    _ => Shown::Str(""),
                };
                (k.as_str(), shown)
            })
            .collect();
        let mut line = Line::new(b.level.parse().unwrap_or(Severity::Info), &b.message);
        line.time = strata_core::time::parse_rfc3339(&b.timestamp);
        line.target = &b.target;
        line.fields = &fields;
        line_buf.clear();
        strata_console::render(&line, &style, &mut line_buf);
        // The console's output is terminal-safe and UTF-8.
        for l in String::from_utf8_lossy(&line_buf).lines() {
            out.raw("  ").raw(l).nl();
        }
    }
}

/// A titled list of `name  value` lines.
fn table(out: &mut Out, title: &str, rows: &[(&str, String)]) {
    if rows.is_empty() {
        return;
    }
    let w = rows
        .iter()
        .map(|(k, _)| term::columns(&strata_console::Clean(k).to_string()))
        .max()
        .unwrap_or(0);
    out.nl().on(BOLD).raw(title).off(BOLD).nl();
    for (k, v) in rows {
        let key = strata_console::Clean(k).to_string();
        out.raw("  ").paint(DIM, &key);
        out.spaces(w - term::columns(&key) + 2);
        out.text(v).nl();
    }
}

/// A JSON value as text: a string as it is, anything else as compact JSON.
fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_of_frames() {
        assert_eq!(crate_of("tokio::runtime::task::raw::poll"), "tokio");
        assert_eq!(
            crate_of("<futures_util::future::Map<Fut,F> as core::future::Future>::poll"),
            "futures_util"
        );
        assert_eq!(
            crate_of("<F as axum::handler::Handler<(M,T1),S>>::call::{{closure}}"),
            "axum"
        );
        assert_eq!(crate_of("shop::orders::place"), "shop");
    }
}
