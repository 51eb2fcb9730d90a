//! The shipped alerting rules (`docs/alerts/`) checked and unit-tested with the real promtool,
//! and the Alertmanager example checked with amtool.

use std::path::PathBuf;
use std::process::Command;

fn alerts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts")
}

/// Runs `tool args…` in docs/alerts; `None` when the tool is not installed (and that is allowed).
fn run(tool: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(tool)
        .args(args)
        .current_dir(alerts_dir())
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
                "{tool} is not installed ({e}); scripts/test.sh installs it"
            );
            eprintln!("skipped: {tool} not installed");
            None
        }
    }
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alerting_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(check) = run("promtool", &["check", "rules", "strata.rules.yml"]) else {
        return;
    };
    assert_ok(&check, "promtool check rules");
    assert!(String::from_utf8_lossy(&check.stdout).contains("7 rules found"));
    let Some(test) = run("promtool", &["test", "rules", "tests.yml"]) else {
        return;
    };
    assert_ok(&test, "promtool test rules");
}

#[test]
fn the_alertmanager_example_passes_amtool() {
    let Some(out) = run("amtool", &["check-config", "alertmanager.yml"]) else {
        return;
    };
    assert_ok(&out, "amtool check-config");
}
