//! For the CLI's tests: runs the built `strata` binary in a known environment and compares its
//! output with the snapshot files of `tests/snapshots/`. Each test binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `tests/fixtures/`.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `strata args…` in `dir` with `COLUMNS=100`, no colour variables, no
/// `STRATA_TELEMETRY_FILE` or `STRATA_ERRORS_DB`, and `env` on top.
pub(crate) fn strata(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args)
        .current_dir(dir)
        .env("COLUMNS", "100")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("STRATA_TELEMETRY_FILE")
        .env_remove("STRATA_ERRORS_DB");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("strata runs")
}

/// The standard output of a run that must succeed without a word on standard error.
pub(crate) fn ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = strata(dir, args, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "strata {args:?} failed: {stderr}");
    assert!(stderr.is_empty(), "strata {args:?} said: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The standard error of a run that must fail with exit status 1 and print nothing.
pub(crate) fn fails(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = strata(dir, args, env);
    assert_eq!(out.status.code(), Some(1), "strata {args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "strata {args:?} printed {out:?}");
    String::from_utf8(out.stderr).expect("UTF-8 error")
}

/// Compares `actual` with `tests/snapshots/<name>`; with `UPDATE_SNAPSHOTS=1`, writes it
/// instead (then read the new file: it is what a person will see).
pub(crate) fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the snapshot from line {} on (UPDATE_SNAPSHOTS=1 rewrites \
             it):\n--- expected\n{expected}\n--- actual\n{actual}",
            line + 1
        );
    }
}

/// `s` without its SGR colour sequences (`ESC [ digits/semicolons m`).
pub(crate) fn strip_sgr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = sgr_len(after).unwrap_or_else(|| {
            panic!(
                "an escape that is not a colour: {:?}",
                &rest[i..rest.len().min(i + 12)]
            )
        });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The length of `[…m` at the start of `s` when it is a colour sequence.
fn sgr_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix('[')?;
    let end = body.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
    (body[end..].starts_with('m')).then_some(end + 2)
}

/// Asserts that `out` holds no character that could act on a terminal other than our own
/// colour sequences: no other escape, no CR or other control character, no C1 control,
/// no bidirectional override or isolate, no line or paragraph separator.
pub(crate) fn assert_terminal_safe(out: &str) {
    let plain = strip_sgr(out);
    for (i, c) in plain.char_indices() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if bad {
            let start = plain[..i].rfind('\n').map_or(0, |n| n + 1);
            let end = plain[i..].find('\n').map_or(plain.len(), |n| i + n);
            panic!(
                "{c:?} reached the output, in the line:\n{}",
                &plain[start..end]
            );
        }
    }
}
