//! `strata`: strata's outputs for people.
//!
//! ```text
//! strata pretty [FILE…|-] [--follow] [--level warn] [--request-id ID] [--trace-id ID]
//!               [--target PREFIX] [--since 10m|RFC3339] [--until …] [--grep REGEX] [--color auto|always|never]
//! strata trace [FILE] (--trace-id ID | --request-id ID | --last | --list [--limit N]) [--color …]
//! strata errors [list | show ID [--all-frames]] [--db PATH] [--color …]
//! strata config check
//! ```
//!
//! - `pretty`: strata JSON lines (any preset: default, ECS, GCP, OpenTelemetry) as the
//!   development console shows them — coloured on a terminal, aligned, the request ID first,
//!   error chains below the line. It streams (constant memory whatever the input's size), passes
//!   lines that are not strata JSON through as they are (made terminal-safe on a terminal), and
//!   neutralises control characters and ANSI escapes inside values: a log line cannot take over
//!   the terminal.
//! - `trace`: a trace of the local OTLP/JSON file (`.strata/telemetry.jsonl`) as a waterfall —
//!   spans nested by parent, start offsets and durations drawn as bars, error spans marked, the
//!   slowest path highlighted — or the recent traces listed; read streaming, never whole.
//! - `errors`: the local error store (`.strata/errors.db`), read only — the groups by count
//!   with first/last seen, releases and new/regression flags, or one group with its latest
//!   event: context, error chain, stack frames, breadcrumbs.
//! - `config check`: the configuration strata would use here (the profile, `strata.toml` or
//!   `STRATA_CONFIG`, the environment), every value with its origin, secrets masked; exits 1
//!   with the key, its origin, the value and what was expected when something is invalid.

// `strata pretty`'s reader and renderer are the library's (`src/lib.rs`); the other commands
// live here.
mod errors;
mod term;
mod trace;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand, ValueEnum};
use strata_cli::pretty;
use strata_core::Severity;

/// strata's outputs for people: logs, traces, errors, configuration.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Shows strata JSON log lines for people: coloured, aligned, filtered.
    Pretty(PrettyArgs),
    /// Draws one trace of the local OTLP/JSON file as a waterfall, or lists the recent traces.
    Trace(trace::TraceArgs),
    /// The local error store: the error groups by count, or one group with its latest event.
    Errors(errors::ErrorsArgs),
    /// The configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Checks the configuration (profile, strata.toml, environment) and prints what strata
    /// would use, each value with its origin, secrets masked.
    Check,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    /// When standard output is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
struct PrettyArgs {
    /// Files to read, in order (`-` or none: standard input).
    files: Vec<PathBuf>,
    /// Keep reading the last file as it grows (and when it is rotated).
    #[arg(short, long)]
    follow: bool,
    /// Only lines at this level or above: trace, debug, info, warn, error, critical.
    #[arg(short, long, value_parser = parse_level)]
    level: Option<Severity>,
    /// Only lines of this request.
    #[arg(long)]
    request_id: Option<String>,
    /// Only lines of this trace.
    #[arg(long)]
    trace_id: Option<String>,
    /// Only lines whose target is this module or below it.
    #[arg(long)]
    target: Option<String>,
    /// Only lines from this time: RFC 3339 (`2026-12-05T10:00:00Z`) or an age (`10m`, `2h`, `1d`).
    #[arg(long, value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only lines up to this time (as `--since`).
    #[arg(long, value_parser = parse_time)]
    until: Option<SystemTime>,
    /// Only lines matching this regular expression (on the raw line).
    #[arg(short, long)]
    grep: Option<regex::Regex>,
    /// Colours.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Leave the time out.
    #[arg(long)]
    no_time: bool,
}

fn parse_level(s: &str) -> Result<Severity, String> {
    s.parse::<Severity>()
        .map_err(|_| format!("{s:?}: expected trace, debug, info, warn, error or critical"))
}

/// RFC 3339, or an age before now: `90s`, `10m`, `2h`, `1d`.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Some(t) = strata_core::time::parse_rfc3339(s.trim()) {
        return Ok(t);
    }
    let expected = || format!("{s:?}: expected an RFC 3339 time or an age such as 10m, 2h, 1d");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(expected)?;
    let n: u64 = t[..split].parse().map_err(|_| expected())?;
    let unit = match &t[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(expected()),
    };
    let age = Duration::from_secs(n.checked_mul(unit).ok_or_else(expected)?);
    SystemTime::now().checked_sub(age).ok_or_else(expected)
}

fn pretty(args: PrettyArgs) -> io::Result<()> {
    let terminal = io::stdout().is_terminal();
    let color = match args.color {
        Color::Auto => strata_console::color_default(),
        Color::Always => true,
        Color::Never => false,
    };
    let style = strata_console::Style::new()
        .with_color(color)
        .with_time(!args.no_time);
    let mut opts = pretty::Options::new(style, terminal);
    opts.files = args.files;
    opts.follow = args.follow;
    let filter = &mut opts.filter;
    filter.level = args.level;
    filter.request_id = args.request_id;
    filter.trace_id = args.trace_id;
    filter.target = args.target;
    filter.since = args.since;
    filter.until = args.until;
    filter.grep = args.grep;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    pretty::run(&opts, &mut out)?;
    out.flush()
}

fn config_check() -> ExitCode {
    match strata::config::effective() {
        Ok(config) => {
            // A closed pipe (`| head`) is not an error.
            let _ = write!(io::stdout().lock(), "{config}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strata: invalid configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pretty(args) => pretty(args),
        Command::Trace(args) => trace::run(args),
        Command::Errors(args) => errors::run(args),
        Command::Config {
            command: ConfigCommand::Check,
        } => return config_check(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `strata pretty … | head`: the reader is gone, nothing is wrong.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e}");
            ExitCode::FAILURE
        }
    }
}
