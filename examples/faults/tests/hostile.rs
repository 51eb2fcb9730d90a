//! Hostile input through every output at once: forged lines (CR/LF), NUL, BEL, ANSI and OSC 8
//! escapes, C1 controls, bidi overrides and line separators, a 1 MB value, invalid UTF-8, a
//! value nested 1000 deep, a 100-link error chain of hostile messages, a hostile field name.
//!
//! JSON outputs (stdout, a routed file, the OTLP file) stay one well-formed line per event with
//! the data intact (cut where too long); the text outputs people read (a routed text file, the
//! development console) never carry a raw control character or bidi override.

use std::path::Path;
use std::process::Command;

use example_faults::{HOSTILE_EVENTS, json_lines};
use serde_json::Value;

/// What must never reach a terminal raw (as `strata_core::encode::is_terminal_unsafe`).
fn unsafe_char(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}'
        | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn run(dir: &Path, toml: &str) -> String {
    std::fs::write(dir.join("strata.toml"), toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faults-service"));
    strata_testkit::scrub_env(&mut cmd);
    let out = cmd
        .arg("hostile")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the outputs are UTF-8")
}

/// Checks that text lines are terminal-safe, and returns them.
fn safe_text(what: &str, text: &str) -> Vec<String> {
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = line.chars().find(|&c| unsafe_char(c)) {
            panic!("{what}, line {i}: raw {c:?} in {line:?}");
        }
        assert!(
            !line.starts_with("{\"level\"") && !line.starts_with("2026-12-05T00:00:00Z"),
            "{what}: a forged line: {line:?}"
        );
    }
    text.lines().map(str::to_owned).collect()
}

fn check_json(what: &str, lines: &[Value]) {
    assert_eq!(lines.len(), HOSTILE_EVENTS, "{what}: one line per event");
    let by = |m: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|s| s.starts_with(m)))
            .unwrap_or_else(|| panic!("{what}: no {m:?} line"))
    };
    assert!(
        by("login")["user"]
            .as_str()
            .unwrap()
            .starts_with("ok\r\n{\"level\":\"CRITICAL\""),
        "{what}: the data itself is kept, escaped"
    );
    assert!(by("escapes")["term"].as_str().unwrap().contains("\x1b[2J"));
    assert!(
        by("bidi")["filename"]
            .as_str()
            .unwrap()
            .contains('\u{202e}')
    );
    let huge = by("a 1 MB value")["huge"].as_str().unwrap();
    assert!(
        huge.len() < 64 * 1024 && huge.contains("…[truncated"),
        "{what}: a huge value is cut, visibly ({} bytes)",
        huge.len()
    );
    assert!(
        by("invalid UTF-8")["bytes"]
            .as_str()
            .unwrap()
            .contains('\u{FFFD}')
    );
    let nest = by("deeply nested")["nest"].as_str().unwrap();
    assert!(nest.starts_with("Node(Node(") && nest.len() < 64 * 1024);
    let chain = by("a hostile chain");
    assert!(
        chain["error"]["chain"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(
        by("a hostile field name")["evil\nname=\"x\" \x1b[2J"],
        "value",
        "{what}: the field under its own name"
    );
}

#[test]
fn hostile_values_leave_json_lines_whole_and_text_lines_terminal_safe() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run(
        dir.path(),
        r#"
env = "staging"
service = "faults"
[capture]
store = "errors.db"
[otlp]
file = "telemetry.jsonl"
[[router.route]]
sink = "file"
dir = "logs"
prefix = "app"
[[router.route]]
sink = "file"
dir = "logs"
prefix = "text"
format = "text"
"#,
    );
    let stdout: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout: {e}: {l:?}")))
        .collect();
    check_json("stdout", &stdout);
    check_json(
        "logs/app.log",
        &json_lines(&dir.path().join("logs/app.log")),
    );
    let text = std::fs::read_to_string(dir.path().join("logs/text.log")).unwrap();
    let text = safe_text("logs/text.log", &text);
    assert_eq!(text.len(), HOSTILE_EVENTS, "text: one line per event");
    // The OTLP file: one JSON document per line, whatever the spans and logs carried.
    let otlp = json_lines(&dir.path().join("telemetry.jsonl"));
    assert!(!otlp.is_empty());
}

#[test]
fn the_development_console_shows_hostile_values_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let console = run(dir.path(), "env = \"development\"\nservice = \"faults\"\n");
    let lines = safe_text("the console", &console);
    let events = lines
        .iter()
        .filter(|l| {
            let b = l.as_bytes();
            b.len() > 12 && b[2] == b':' && b[5] == b':' && b[8] == b'.'
        })
        .count();
    assert_eq!(
        events, HOSTILE_EVENTS,
        "one headed line per event:\n{console}"
    );
    assert!(console.contains(r"\x1b[2J"), "escapes shown, not run");
    assert!(console.contains(r"\u{202e}"), "bidi overrides shown");
}
