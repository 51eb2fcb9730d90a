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
fn the_alertmanager_example_passes_amtool_and_routes_pages_and_warnings() {
    let Some(out) = run("amtool", &["check-config", "alertmanager.yml"]) else {
        return;
    };
    assert_ok(&out, "amtool check-config");
    for (severity, receivers) in [("page", "on-call,team-chat"), ("warning", "team-chat")] {
        let label = format!("severity={severity}");
        let Some(out) = run(
            "amtool",
            &[
                "config",
                "routes",
                "test",
                "--config.file=alertmanager.yml",
                &label,
            ],
        ) else {
            return;
        };
        assert_ok(&out, "amtool config routes test");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            receivers,
            "{severity}"
        );
    }
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
    // Every metric a query names exists in strata-metrics' exposition (the demo's shop_*
    // metrics aside), so a misspelled name fails here rather than showing an empty panel.
    let exposed = exposed_names();
    for name in metric_names(&rules) {
        if !name.starts_with("shop_") {
            assert!(exposed.contains(&name), "{name} is not a strata metric");
        }
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

/// The metric families strata-metrics exposes, every one in use (families without series are
/// not printed), by base name (`# TYPE` lines).
fn exposed_names() -> std::collections::BTreeSet<String> {
    use tracing_subscriber::prelude::*;
    let metrics = strata_metrics::Metrics::new().with_span_histogram(&["db"]);
    metrics.register_dropped("test", || 0);
    let worker = metrics.worker("q");
    worker.set_depth(1);
    worker.waited(std::time::Duration::ZERO);
    for f in [
        strata_metrics::WorkerMetrics::processed,
        strata_metrics::WorkerMetrics::failed,
        strata_metrics::WorkerMetrics::retried,
        strata_metrics::WorkerMetrics::dead_lettered,
    ] {
        f(&worker);
    }
    metrics.cache("c").hit();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(metrics.layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!(
            target: "strata_request_id::server",
            "request",
            method = "GET",
            route = "/",
            status_code = 200_u64,
            duration_ms = 1.0
        )
        .in_scope(|| {
            tracing::info_span!("db", db.system = "sqlite").in_scope(|| {});
            tracing::error!(error.class = "external", "failed");
        });
        strata_request_id::JobContext::capture()
            .span("j")
            .in_scope(|| {});
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        let _probe = metrics.spawn_lag_probe(std::time::Duration::from_millis(5));
        metrics.encode()
    });
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The metric names in the selectors of PromQL text (`name{…}`), by base name: without the
/// `_total`, `_bucket`, `_sum` and `_count` suffixes the exposition's `# TYPE` lines omit.
fn metric_names(promql: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let bytes = promql.as_bytes();
    for (i, _) in promql.match_indices('{') {
        let start = bytes[..i]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b':'))
            .map_or(0, |p| p + 1);
        let name = &promql[start..i];
        if name.is_empty() || name.starts_with('$') || !name.contains('_') {
            continue;
        }
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_owned());
    }
    out
}
