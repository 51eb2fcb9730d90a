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

/// Every PromQL expression of the Grafana dashboards (`docs/dashboards/*.json`), with the
/// dashboards' variables filled in, must parse: they are written as recording rules and
/// checked by promtool.
#[test]
fn every_dashboard_query_is_valid_promql() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboards");
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            dashboard["uid"]
                .as_str()
                .is_some_and(|u| u.starts_with("strata-"))
        );
        let panels = dashboard["panels"].as_array().unwrap();
        assert!(panels.len() >= 4, "{stem}: {} panels", panels.len());
        for panel in panels {
            let targets = panel["targets"].as_array().unwrap();
            assert!(
                !targets.is_empty(),
                "{stem}: {} has no query",
                panel["title"]
            );
            for target in targets {
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "5m")
                    .replace("$job", "app");
                let name = format!(
                    "dashboard_{stem}_{}_{}",
                    panel["id"],
                    target["refId"].as_str().unwrap()
                );
                rules.push_str(&format!(
                    "      - record: {name}\n        expr: {}\n",
                    serde_json::to_string(&expr).unwrap()
                ));
                names.push(name);
            }
        }
        names.push(stem);
    }
    for dashboard in ["api", "worker", "system", "business"] {
        assert!(
            names.iter().any(|n| n == dashboard),
            "{dashboard}.json is missing"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("dashboards.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let Some(out) = run("promtool", &["check", "rules", file.to_str().unwrap()]) else {
        return;
    };
    assert_ok(
        &out,
        &format!("promtool check rules on the dashboards' queries:\n{rules}"),
    );
}
