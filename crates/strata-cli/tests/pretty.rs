//! `strata pretty`: its output on fixed inputs (snapshots), the filters, colours, terminal
//! safety, `--follow` through a rotation, constant memory on a large input.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod golden;
use golden::snapshot;

fn fixture(name: &str) -> PathBuf {
    golden::fixtures().join(name)
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("strata runs")
}

fn stdout(args: &[&str]) -> String {
    let out = strata(args);
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn every_preset_and_shape_reads_like_the_console() {
    let mixed = fixture("mixed.jsonl");
    snapshot(
        "pretty_mixed.txt",
        &stdout(&["pretty", "--color", "never", mixed.to_str().unwrap()]),
    );
}

#[test]
fn filters_pick_lines_and_leave_text_lines_out() {
    let mixed = fixture("mixed.jsonl");
    let f = mixed.to_str().unwrap();
    let messages = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["pretty", "--color", "never", "--no-time"];
        all.extend_from_slice(args);
        all.push(f);
        stdout(&all).lines().map(str::to_owned).collect()
    };
    let warn = messages(&["--level", "warn"]);
    assert_eq!(warn.len(), 6 + 2, "{warn:#?}"); // two chain/frame lines below
    assert!(
        warn.iter()
            .all(|l| !l.contains("INFO") && !l.contains("DEBUG"))
    );
    let req1 = messages(&["--request-id", "req-1"]);
    assert_eq!(req1.len(), 5, "{req1:#?}");
    assert!(req1.iter().all(|l| l.contains("[req-1]")));
    let trace = messages(&["--trace-id", "4BF92F3577B34DA6A3CE929D0E0E4736"]);
    assert_eq!(
        trace.len(),
        5,
        "every preset's trace ID, any case: {trace:#?}"
    );
    let target = messages(&["--target", "shop::orders"]);
    assert_eq!(target.len(), 3, "{target:#?}");
    assert!(
        messages(&["--target", "shop::ord"]).is_empty(),
        "whole modules only"
    );
    let window = messages(&[
        "--since",
        "2026-12-05T10:00:03Z",
        "--until",
        "2026-12-05T10:00:05.050Z",
    ]);
    assert_eq!(window.len(), 3 + 2, "{window:#?}");
    let grep = messages(&["--grep", "(?i)slow QUERY"]);
    assert_eq!(grep.len(), 3, "{grep:#?}");
    // --grep alone keeps text lines that match.
    assert_eq!(messages(&["--grep", "not JSON"]).len(), 1);
    assert!(
        messages(&["--level", "trace"])
            .iter()
            .all(|l| !l.contains("not JSON")),
        "structured filters leave text lines out"
    );
}

#[test]
fn colours_only_when_asked_and_never_from_the_data() {
    let mixed = fixture("mixed.jsonl");
    let f = mixed.to_str().unwrap();
    let plain = stdout(&["pretty", "--color", "never", "--level", "info", f]);
    assert!(
        !plain.contains('\u{1b}'),
        "no escape byte from values: {plain}"
    );
    let coloured = stdout(&["pretty", "--color", "always", f]);
    assert!(coloured.contains("\u{1b}[31mERROR") || coloured.contains("\u{1b}[31m"));
    // Not a terminal and `auto`: plain.
    let auto = stdout(&["pretty", f]);
    let json_lines: String = auto
        .lines()
        .filter(|l| !l.starts_with("raw "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!json_lines.contains('\u{1b}'));
    // The hostile line: every escape shown, none live.
    let evil = plain.lines().find(|l| l.contains("evil")).unwrap();
    for shown in [r"\x1b[2J", r"\r\nforged", r"\u{202e}", r"\x07", r"\x00"] {
        assert!(evil.contains(shown), "{shown} in {evil}");
    }
    assert!(!plain.contains("\nforged"), "no forged line");
}

#[test]
fn text_lines_pass_through_untouched_into_a_pipe() {
    let mixed = fixture("mixed.jsonl");
    let out = stdout(&["pretty", "--color", "never", mixed.to_str().unwrap()]);
    assert!(out.contains("raw \u{1b}[31mansi\u{1b}[0m in a non-JSON line\n"));
    assert!(
        out.contains(
            "{\"level\": \"LOUD\", \"message\": \"an unknown level is not a log line\"}\n"
        )
    );
}

#[test]
fn invalid_utf8_passes_through_byte_for_byte() {
    let input: &[u8] = b"plain \xff\xfe not UTF-8\n{\"level\":\"INFO\",\"target\":\"t\",\"message\":\"\xc3\x28\"}\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["pretty", "--color", "never", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // Neither is a readable log line: a pipe gets the bytes as they were.
    assert_eq!(
        out.stdout,
        input,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn standard_input_and_bad_arguments() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["pretty", "--color", "never", "--no-time", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"timestamp\":\"2026-12-05T10:00:00Z\",\"level\":\"INFO\",\"target\":\"t\",\"message\":\"from stdin\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        " INFO t: from stdin\n"
    );

    for (args, needle) in [
        (vec!["pretty", "--level", "loud"], "expected trace, debug"),
        (vec!["pretty", "--since", "yesterday"], "RFC 3339"),
        (vec!["pretty", "--grep", "(unclosed"], "regex"),
        (vec!["pretty", "/no/such/file.jsonl"], "/no/such/file.jsonl"),
    ] {
        let out = strata(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// Reads the child's output until `needle` shows up (or fails after 20 s).
fn wait_for(lines: &mut impl Iterator<Item = String>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for line in lines.by_ref() {
        if line.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{needle} never came");
    }
    panic!("the output ended before {needle}");
}

fn log_line(message: &str) -> String {
    format!(
        "{{\"timestamp\":\"2026-12-05T10:00:00Z\",\"level\":\"INFO\",\"target\":\"t\",\"message\":\"{message}\"}}\n"
    )
}

#[test]
fn follow_shows_appended_lines_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, log_line("first")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["pretty", "--color", "never", "--follow"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    wait_for(&mut lines, "first");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    // A line written in two parts shows once, whole.
    f.write_all(b"{\"timestamp\":\"2026-12-05T10:00:00Z\",\"level\":\"WARN\",")
        .unwrap();
    f.flush().unwrap();
    f.write_all(b"\"target\":\"t\",\"message\":\"second\"}\n")
        .unwrap();
    wait_for(&mut lines, "WARN t: second");
    // Rotation: the file is renamed and a new one takes its place.
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&path, log_line("after rotation")).unwrap();
    wait_for(&mut lines, "after rotation");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_large_input_streams_in_constant_memory() {
    // 48 MB of lines and one 12 MB line (longer than a line is ever read whole: 1 MiB).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let line = log_line(&"x".repeat(400));
        for _ in 0..(48 << 20) / line.len() {
            f.write_all(line.as_bytes()).unwrap();
        }
        f.write_all(b"{\"level\":\"INFO\",\"message\":\"").unwrap();
        f.write_all(&vec![b'y'; 12 << 20]).unwrap();
        f.write_all(b"\"}\n").unwrap();
        f.write_all(log_line("the end").as_bytes()).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["pretty", "--color", "never"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut last = String::new();
    let mut cut = false;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        cut |= line.contains("bytes not shown]");
        last = line;
    }
    assert!(child.wait().unwrap().success());
    assert!(last.ends_with("INFO t: the end"), "{last}");
    assert!(cut, "the long line is cut and says so");
    // The largest resident set of the children this test waited for: strata.
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let max_mb = usage.ru_maxrss / 1024;
    assert!(max_mb < 24, "{max_mb} MB for a 60 MB input");
}
