//! `strata trace`: the waterfall and the list on a fixed OTLP/JSON file (snapshots), the ways to
//! name a trace, colours, terminal safety, malformed lines, and the errors.
//!
//! `tests/fixtures/telemetry.jsonl` holds four traces as strata-otlp's file exporter writes them,
//! with a logs and a metrics line between: a checkout (a server span, client spans, a database
//! span, an error span with events, a span of another service whose parent was not exported),
//! a job, a request whose root is missing, and a request written with the other spellings
//! OTLP/JSON allows (numbers as numbers, enums by name). `hostile.jsonl` puts terminal escapes,
//! CR/LF and bidirectional overrides in names, attributes, events and the service.

mod golden;

use std::io::Write;
use std::process::{Command, Stdio};

use golden::{assert_terminal_safe, fails, fixtures, ok, snapshot, strata, strip_sgr};

const CHECKOUT: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn trace(args: &[&str]) -> String {
    let mut all = vec!["trace", "telemetry.jsonl", "--color", "never"];
    all.extend_from_slice(args);
    ok(&fixtures(), &all, &[])
}

#[test]
fn the_list_shows_the_traces_that_started_last() {
    let list = trace(&["--list"]);
    snapshot("trace_list.txt", &list);

    let two = trace(&["--list", "--limit", "2"]);
    let rows: Vec<&str> = two.lines().skip(1).take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 2, "{two}");
    assert!(
        rows[0].contains("0af7651916cd43dd8448eb211c80319c"),
        "{two}"
    );
    assert!(
        two.contains("the 2 traces that started last of 4 in telemetry.jsonl"),
        "{two}"
    );
}

#[test]
fn the_waterfall_of_one_trace() {
    let waterfall = trace(&["--trace-id", CHECKOUT]);
    snapshot("trace_waterfall.txt", &waterfall);

    // The same trace by a prefix of its ID (any case), by its request ID, from standard input.
    assert_eq!(trace(&["--trace-id", "4BF92F35"]), waterfall);
    assert_eq!(trace(&["--request-id", "0193a5c2-7f3e"]), waterfall);
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["trace", "-", "--trace-id", CHECKOUT, "--color", "never"])
        .env("COLUMNS", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read(fixtures().join("telemetry.jsonl")).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), waterfall);
}

#[test]
fn the_bars_follow_the_width() {
    let narrow = ok(
        &fixtures(),
        &[
            "trace",
            "telemetry.jsonl",
            "--trace-id",
            CHECKOUT,
            "--color",
            "never",
        ],
        &[("COLUMNS", "72")],
    );
    snapshot("trace_waterfall_72.txt", &narrow);
    let longest = narrow.lines().map(|l| l.chars().count());
    // Rows with attributes and events may be longer; the bars end at the width.
    let row = narrow
        .lines()
        .find(|l| l.contains("POST /checkout"))
        .unwrap();
    assert_eq!(row.chars().count(), 72, "{row}");
    assert!(
        longest.max().unwrap() > 72,
        "the attribute lines are not cut"
    );
}

#[test]
fn last_is_the_trace_that_started_last() {
    let last = trace(&["--last"]);
    snapshot("trace_last.txt", &last);
    assert!(
        last.starts_with("trace 0af7651916cd43dd8448eb211c80319c"),
        "{last}"
    );
}

#[test]
fn the_file_defaults_to_the_environment_then_the_strata_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("telemetry.jsonl");
    let list = trace(&["--list"]);
    let from_env = ok(
        dir.path(),
        &["trace", "--list", "--color", "never"],
        &[("STRATA_TELEMETRY_FILE", fixture.to_str().unwrap())],
    );
    assert_eq!(
        from_env,
        list.replace(
            "in telemetry.jsonl; `strata trace telemetry.jsonl --trace-id",
            &format!("in {}; `strata trace --trace-id", fixture.display())
        )
    );
    std::fs::create_dir(dir.path().join(".strata")).unwrap();
    std::fs::copy(&fixture, dir.path().join(".strata/telemetry.jsonl")).unwrap();
    let from_dir = ok(dir.path(), &["trace", "--list", "--color", "never"], &[]);
    assert!(from_dir.contains("4 traces in .strata/telemetry.jsonl; `strata trace --trace-id ID`"));
}

#[test]
fn colours_only_when_asked() {
    let plain = trace(&["--trace-id", CHECKOUT]);
    assert!(!plain.contains('\x1b'));
    let coloured = ok(
        &fixtures(),
        &[
            "trace",
            "telemetry.jsonl",
            "--trace-id",
            CHECKOUT,
            "--color",
            "always",
        ],
        &[],
    );
    assert!(
        coloured.contains("\x1b[1;31m✗ POST /checkout\x1b[0m"),
        "{coloured}"
    );
    assert!(coloured.contains("\x1b[31m█"), "error bars are red");
    assert_eq!(strip_sgr(&coloured), plain);
    // `auto` into a pipe: none; NO_COLOR wins over nothing, CLICOLOR_FORCE forces.
    let auto = ok(&fixtures(), &["trace", "telemetry.jsonl", "--last"], &[]);
    assert!(!auto.contains('\x1b'));
    let forced = ok(
        &fixtures(),
        &["trace", "telemetry.jsonl", "--last"],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(forced.contains("\x1b["));
}

#[test]
fn hostile_names_and_attributes_are_escaped() {
    for color in ["always", "never"] {
        for mode in [&["--last"][..], &["--list"]] {
            let mut args = vec!["trace", "hostile.jsonl", "--color", color];
            args.extend_from_slice(mode);
            let out = ok(&fixtures(), &args, &[]);
            assert_terminal_safe(&out);
            let plain = strip_sgr(&out);
            assert!(plain.contains(r"GET /\x1b[31mred\x1b[0m"), "{plain}");
            if mode == ["--last"] {
                for shown in [
                    r"evil\x1b[2J\x1b]0;pwned\x07 name",
                    r#"request_id="id\x1b[5mblink\u{2028}x""#,
                    r"http.route=/\u{9b}31mroute",
                    r#"status.message="bad\x1b[0m\nstatus""#,
                    r"boom \x1b[2K\rover\u{202e}written  note=a\x00b\x7fc",
                    r"· svc\x1b[7m",
                ] {
                    assert!(plain.contains(shown), "{shown} in\n{plain}");
                }
            }
        }
    }
}

#[test]
fn malformed_lines_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixtures().join("telemetry.jsonl")).unwrap();
    let mut bad = String::from("not json at all\n");
    bad.push_str(&good);
    bad.push_str("{\"name\":\"an object, but not OTLP\"}\n\n");
    bad.push_str(&good.lines().nth(4).unwrap()[..200]); // cut short, as after a crash
    std::fs::write(dir.path().join("bad.jsonl"), bad).unwrap();
    let out = strata(
        dir.path(),
        &[
            "trace",
            "bad.jsonl",
            "--trace-id",
            CHECKOUT,
            "--color",
            "never",
        ],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        trace(&["--trace-id", CHECKOUT])
    );
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "strata: skipped 3 lines of bad.jsonl that are not OTLP/JSON (the first: line 1)\n"
    );
}

#[test]
fn a_span_written_twice_is_drawn_once() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixtures().join("telemetry.jsonl")).unwrap();
    std::fs::write(dir.path().join("twice.jsonl"), good.repeat(2)).unwrap();
    let twice = ok(
        dir.path(),
        &[
            "trace",
            "twice.jsonl",
            "--trace-id",
            CHECKOUT,
            "--color",
            "never",
        ],
        &[],
    );
    let once = trace(&["--trace-id", CHECKOUT]);
    assert_eq!(
        twice,
        once.replacen(
            " · 2 errors\n",
            " · 2 errors · 8 duplicate spans left out\n",
            1
        )
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let f = fixtures();
    let cases: &[(&[&str], &str)] = &[
        (
            &["trace", "nope.jsonl", "--last"],
            "strata: no telemetry file at nope.jsonl: nothing exported yet, or set STRATA_TELEMETRY_FILE\n",
        ),
        (
            &["trace", "--list"],
            "strata: no telemetry file at .strata/telemetry.jsonl: nothing exported yet, or set STRATA_TELEMETRY_FILE\n",
        ),
        (
            &[
                "trace",
                "telemetry.jsonl",
                "--trace-id",
                "0123456789abcdef0123456789abcdef",
            ],
            "strata: no trace with id 0123456789abcdef0123456789abcdef in telemetry.jsonl; see `strata trace telemetry.jsonl --list`\n",
        ),
        (
            &[
                "trace",
                "telemetry.jsonl",
                "--request-id",
                "no-such-request",
            ],
            "strata: no trace with request_id no-such-request in telemetry.jsonl; see `strata trace telemetry.jsonl --list`\n",
        ),
        (
            &["trace", "telemetry.jsonl", "--trace-id", "4bf9"],
            "strata: --trace-id \"4bf9\": expected a trace ID (32 hex digits) or its first 8 or more\n",
        ),
        (
            &["trace", "-", "--request-id", "0193a5c2-7f3e"],
            "strata: --request-id reads the file twice: give a file, not standard input (or find the trace ID with --list and use --trace-id)\n",
        ),
        (
            &["trace", "-", "--last"],
            "strata: --last reads the file twice: give a file, not standard input (or find the trace ID with --list and use --trace-id)\n",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(&fails(&f, args, &[]), expected, "{args:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let logs_only = fixtures().join("telemetry.jsonl");
    let logs_only = std::fs::read_to_string(logs_only).unwrap();
    std::fs::write(
        dir.path().join("logs.jsonl"),
        logs_only.lines().next().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    assert_eq!(
        fails(dir.path(), &["trace", "logs.jsonl", "--list"], &[]),
        "strata: no spans in logs.jsonl (1 lines read): no trace exported yet, or not an OTLP/JSON file\n"
    );
    assert_eq!(
        fails(
            dir.path(),
            &["trace", "empty.jsonl", "--trace-id", CHECKOUT],
            &[]
        ),
        "strata: no spans in empty.jsonl (0 lines read): no trace exported yet, or not an OTLP/JSON file\n"
    );

    // Two traces that start alike: a prefix naming both is refused.
    let twins: String = ["aaaaaaaa000000000000000000000001", "aaaaaaaa000000000000000000000002"]
        .iter()
        .map(|id| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{id}","spanId":"01","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#
            ) + "\n"
        })
        .collect();
    std::fs::write(dir.path().join("twins.jsonl"), twins).unwrap();
    assert_eq!(
        fails(
            dir.path(),
            &["trace", "twins.jsonl", "--trace-id", "aaaaaaaa"],
            &[]
        ),
        "strata: --trace-id aaaaaaaa is the start of more than one trace in twins.jsonl: \
         aaaaaaaa000000000000000000000001, aaaaaaaa000000000000000000000002…; give more digits\n"
    );
    let one = ok(
        dir.path(),
        &[
            "trace",
            "twins.jsonl",
            "--trace-id",
            "aaaaaaaa000000000000000000000002",
            "--color",
            "never",
        ],
        &[],
    );
    assert!(
        one.starts_with("trace aaaaaaaa000000000000000000000002\n"),
        "{one}"
    );

    // Exactly one way to pick the trace.
    let out = strata(&f, &["trace", "telemetry.jsonl"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = strata(&f, &["trace", "telemetry.jsonl", "--last", "--list"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
