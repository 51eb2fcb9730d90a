//! Backtraces under ERROR and CRITICAL lines: the application's frames only.

mod support;

use support::{assert_safe, plain, run};

#[inline(never)]
fn place_order() {
    charge_card();
}

#[inline(never)]
fn charge_card() {
    tracing::error!(order_id = 42, "charging the card failed");
}

#[test]
fn error_lines_show_the_application_frames() {
    let writes = run(plain().with_backtraces(true), place_order);
    assert_eq!(writes.len(), 1, "one write per event: {writes:#?}");
    let w = &writes[0];
    assert_safe(w);
    let mut lines = w.lines();
    assert_eq!(
        lines.next(),
        Some("ERROR backtraces: charging the card failed  order_id=42")
    );
    let frames: Vec<&str> = lines.collect();
    assert!(!frames.is_empty(), "no frames: {w}");
    assert!(frames.len() <= 12, "{} frames", frames.len());
    for f in &frames {
        assert!(f.starts_with("    at "), "{f:?}");
        for foreign in [
            "strata_console",
            "strata_core",
            "tracing",
            " std::",
            " core::",
            "backtrace::",
            "<std::",
            "<core::",
            "<alloc::",
        ] {
            assert!(!f.contains(foreign), "foreign frame {f:?}");
        }
    }
    // Innermost first, with file and line.
    assert!(
        frames[0].starts_with("    at backtraces::charge_card ("),
        "{frames:#?}"
    );
    assert!(frames[0].contains("backtraces.rs:"), "{frames:#?}");
    assert!(
        frames[1].starts_with("    at backtraces::place_order ("),
        "{frames:#?}"
    );
}

#[test]
fn critical_lines_show_them_too_and_info_lines_never() {
    let writes = run(plain().with_backtraces(true), || {
        tracing::info!("fine");
        strata_core::critical!("down");
    });
    assert_eq!(writes[0], " INFO backtraces: fine\n");
    let mut lines = writes[1].lines();
    assert_eq!(lines.next(), Some(" CRIT backtraces: down"));
    let frames: Vec<&str> = lines.collect();
    assert!(
        frames.iter().any(|f| f
            .starts_with("    at backtraces::critical_lines_show_them_too_and_info_lines_never")),
        "{frames:#?}"
    );
}

#[test]
fn no_backtrace_when_off() {
    let writes = run(plain().with_backtraces(false), place_order);
    assert_eq!(
        writes,
        ["ERROR backtraces: charging the card failed  order_id=42\n"]
    );
}

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("database unreachable")
    }
}

impl std::error::Error for Down {}

impl strata_core::Classify for Down {
    fn class(&self) -> strata_core::ErrorClass {
        strata_core::ErrorClass::System
    }
}

#[inline(never)]
fn connect() {
    strata_core::log_error!(Down, "connecting failed");
}

#[test]
fn frames_of_macros_expanded_into_application_code_are_left_out() {
    let writes = run(plain().with_backtraces(true), connect);
    let mut lines = writes[0].lines();
    assert_eq!(
        lines.next(),
        Some(
            " CRIT backtraces: connecting failed  error=\"database unreachable\" error.class=system"
        )
    );
    let frames: Vec<&str> = lines.collect();
    assert!(
        frames[0].starts_with("    at backtraces::connect ("),
        "{frames:#?}"
    );
    assert!(frames[0].contains("tests/backtraces.rs:"), "{frames:#?}");
    for f in &frames {
        assert!(
            !f.contains("strata-core") && !f.contains("tracing-"),
            "{f:?}"
        );
    }
}
