//! Alert rules: the lesson's alerts — p99 latency over 400 ms for 5 minutes, more than 2 % of
//! requests failing, a queue over 1000 for 10 minutes, memory growing for 30 minutes — ship as
//! Prometheus rules in `docs/alerts/strata.rules.yml`, with promtool unit tests beside them.
//! This program lists them and checks that every metric they read is one a strata service
//! really exposes; with `promtool` installed it runs the unit tests too.
//!
//! Run with `cargo run -p example-guide --bin alert_rules`.

use std::process::Command;

use axum::Router;
use axum::routing::get;
use strata::request_id::RequestIdLayer;
use tower::ServiceExt;

const RULES: &str = include_str!("../../../../docs/alerts/strata.rules.yml");
const TESTS: &str = include_str!("../../../../docs/alerts/tests.yml");

/// One rule of the file (read line by line: enough for this file, not a YAML parser).
#[derive(Default)]
struct Rule {
    name: String,
    expr: String,
    hold: String,
    severity: String,
}

fn rules() -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut block: Option<usize> = None; // the indent of `expr: |` while in its block
    for line in RULES.lines() {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        let Some(rule) = rules.last_mut().filter(|_| !text.starts_with("- alert: ")) else {
            if let Some(name) = text.strip_prefix("- alert: ") {
                rules.push(Rule {
                    name: name.to_owned(),
                    ..Rule::default()
                });
            }
            continue;
        };
        match block {
            Some(at) if indent > at && !text.is_empty() => {
                rule.expr.push_str(text);
                rule.expr.push(' ');
                continue;
            }
            _ => block = None,
        }
        if let Some(e) = text.strip_prefix("expr: ") {
            match e {
                "|" => block = Some(indent),
                e => rule.expr = e.to_owned(),
            }
        } else if let Some(f) = text.strip_prefix("for: ") {
            rule.hold = f.to_owned();
        } else if let Some((_, s)) = text.split_once("severity: ") {
            rule.severity = s.trim_end_matches('}').to_owned();
        }
    }
    rules
}

#[tokio::main]
async fn main() {
    let dir = example_guide::workdir("alert_rules");
    let guard = strata::builder()
        .with_service("shop")
        .with_profile(strata::Profile::Staging)
        .with_writer(std::io::stderr) // standard output is this program's report
        .init();
    let metrics = guard.metrics().expect("metrics are on");

    // A little of a real service's life, so every family has its series: one request through
    // the middleware, a queue.
    let app = Router::new()
        .route("/orders", get(|| async { "ok" }))
        .layer(RequestIdLayer::new());
    let request = http::Request::get("/orders").body(axum::body::Body::empty());
    let _ = app.oneshot(request.expect("a request")).await;
    metrics.worker("emails").set_depth(3);
    let exposition = metrics.encode();
    std::fs::write(dir.join("metrics.txt"), &exposition).expect("writable");

    let mut missing = 0;
    for rule in rules() {
        println!(
            "{} (for {}, severity {})",
            rule.name, rule.hold, rule.severity
        );
        println!("    {}", rule.expr.trim());
        for name in example_guide::promql_metrics(&rule.expr) {
            let found = !example_guide::samples(&exposition, &name).is_empty();
            missing += usize::from(!found);
            println!("    {} {name}", if found { "ok     " } else { "MISSING" });
        }
    }

    // promtool's unit tests: synthetic series that must fire each alert, and healthy ones that
    // must not (run on a copy: nothing is written next to the rules).
    let alerts = dir.join("alerts");
    std::fs::create_dir_all(&alerts).expect("writable");
    std::fs::write(alerts.join("strata.rules.yml"), RULES).expect("writable");
    std::fs::write(alerts.join("tests.yml"), TESTS).expect("writable");
    match Command::new("promtool")
        .args(["test", "rules", "tests.yml"])
        .current_dir(&alerts)
        .output()
    {
        Ok(out) if out.status.success() => println!("promtool: passed"),
        Ok(out) => {
            println!("promtool: FAILED\n{}", String::from_utf8_lossy(&out.stdout));
            missing += 1;
        }
        Err(_) => println!("promtool: not installed (promtool test rules docs/alerts/tests.yml)"),
    }
    eprintln!(
        "[guide] look at: each alert, its PromQL and whether this service exposes every metric \
         it reads ({} missing); docs/alerts/alertmanager.yml routes `page` to PagerDuty and \
         `warning` to Slack and email",
        missing
    );
    drop(guard);
    std::process::exit(i32::from(missing > 0));
}
