//! Runs the demo (shortened) in a scratch directory with no server around, and checks that
//! every output it promises is really produced: JSON lines on standard output and in the
//! rotating file, a trace crossing the shop's services in the local OTLP file, grouped errors
//! in the local store, metrics through the endpoint, alerts, a summary a person can read — and
//! no secret anywhere.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

struct Run {
    stdout: Vec<Value>,
    stderr: String,
    summary: Value,
    dir: tempfile::TempDir,
}

fn run(envs: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_example-demo"));
    cmd.current_dir(dir.path())
        .env("DEMO_SECONDS", "3")
        .env("DEMO_SUMMARY", &summary);
    strata_testkit::scrub_env(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the demo runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the demo failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let stdout = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    Run {
        stdout,
        stderr,
        summary,
        dir,
    }
}

fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with(prefix) {
            out.extend(
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    out
}

#[test]
fn the_demo_produces_every_output_with_no_server() {
    let r = run(&[]);
    let s = &r.summary;

    // Standard output: JSON lines of the staging profile, every level from INFO.
    let levels: BTreeSet<&str> = r
        .stdout
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    for level in ["INFO", "WARN", "ERROR", "CRITICAL"] {
        assert!(levels.contains(level), "no {level} line");
    }
    assert!(!levels.contains("DEBUG"), "staging logs from INFO");
    for l in &r.stdout {
        assert_eq!(l["service"], "shop");
        assert_eq!(l["env"], "staging");
    }
    let access: Vec<&Value> = r
        .stdout
        .iter()
        .filter(|l| l["route"] == "/orders" && l["status_code"].is_number())
        .collect();
    assert!(!access.is_empty());
    for l in &access {
        assert!(
            l["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{l}"
        );
        assert!(
            l["trace_id"].as_str().is_some_and(|id| id.len() == 32),
            "{l}"
        );
    }
    // Business errors at WARN, external at ERROR with the chain, the system failure and the
    // panic at CRITICAL.
    let class = |c: &str| r.stdout.iter().find(|l| l["error.class"] == c);
    assert_eq!(
        class("business").expect("a business error")["level"],
        "WARN"
    );
    let external = class("external").expect("an external error");
    assert_eq!(external["level"], "ERROR");
    assert!(
        external["error"]["chain"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no answer within 50ms"),
        "{external}"
    );
    let system = class("system").expect("the system failure");
    assert_eq!(system["level"], "CRITICAL");
    assert!(
        r.stdout.iter().any(
            |l| l["level"] == "CRITICAL" && l["message"].as_str().unwrap().contains("panicked")
        ),
        "the panic in a task"
    );
    // Jobs carry the request's ID through the queue.
    let job = r
        .stdout
        .iter()
        .find(|l| l["job"] == "fulfil_order")
        .expect("a fulfilment job line");
    assert!(job["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // No secret anywhere: the password, the bearer token, the card number, the DB password.
    let everything = format!(
        "{}\n{}\n{}",
        r.stdout
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        files(&r.dir.path().join(".strata/logs"), "shop").join("\n"),
        std::fs::read_to_string(r.dir.path().join(".strata/telemetry.jsonl")).unwrap()
    );
    for secret in ["hunter2", "c2lnbmF0dXJl", "4111 1111 1111 1111", "s3cret"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }

    // The rotating file has the same lines as standard output.
    let file = files(&r.dir.path().join(".strata/logs"), "shop");
    assert!(
        file.len() >= r.stdout.len() / 2,
        "{} file lines",
        file.len()
    );
    assert!(
        file.iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );

    // Traces: one trace crosses orders → inventory and payments, with client spans between.
    let telemetry = std::fs::read_to_string(r.dir.path().join(".strata/telemetry.jsonl")).unwrap();
    let mut by_trace: HashMap<String, BTreeSet<String>> = HashMap::new();
    for line in telemetry.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    by_trace
                        .entry(span["traceId"].as_str().unwrap_or_default().to_owned())
                        .or_default()
                        .insert(span["name"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
    assert!(
        by_trace.values().any(|names| names.contains("POST /orders")
            && names.contains("GET /inventory/{sku}")
            && names.contains("POST /payments")
            && names.contains("GET")
            && names.contains("POST")),
        "no trace crosses the services: {:?}",
        by_trace.values().take(3).collect::<Vec<_>>()
    );

    // Errors: grouped in the local store, the top groups in the summary.
    let groups = s["error_groups"].as_array().unwrap();
    assert!(groups.len() >= 2, "{s}");
    let titles: Vec<&str> = groups
        .iter()
        .map(|g| g["title"].as_str().unwrap())
        .collect();
    assert!(
        titles
            .iter()
            .any(|t| t.contains("payment gateway timed out")),
        "{titles:?}"
    );
    assert!(titles.iter().any(|t| t.contains("panicked")), "{titles:?}");
    assert!(Path::new(&r.dir.path().join(".strata/errors.db")).is_file());

    // The numbers add up: what the driver sent is what the metrics layer counted (the driver's
    // orders plus the inner calls to inventory and payments).
    let requests = s["requests"].as_f64().unwrap();
    assert!(requests >= 20.0, "{s}");
    let counted = s["metrics"]["http_server_requests_total"].as_f64().unwrap();
    assert!(counted >= requests, "{counted} < {requests}");
    assert!(s["metrics"]["jobs_total"].as_f64().unwrap() >= 1.0, "{s}");
    // The shop's own business counter, exposed with strata's: one per order sent.
    assert_eq!(
        s["metrics"]["shop_orders_total"].as_f64().unwrap(),
        requests,
        "{s}"
    );
    let (p50, p95, p99) = (
        s["latency_ms"]["p50"].as_f64().unwrap(),
        s["latency_ms"]["p95"].as_f64().unwrap(),
        s["latency_ms"]["p99"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{s}");
    let rate = s["error_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 0.5, "{s}");

    // Alerts: the CRITICAL paged at once; business errors never alert.
    let alerts = s["alerts"].as_array().unwrap();
    assert!(
        alerts.iter().any(|a| a["severity"] == "CRITICAL"),
        "{alerts:?}"
    );
    assert!(alerts.iter().all(|a| {
        !a["title"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid order")
    }));

    // The summary a person reads.
    for needle in [
        "requests:",
        "p99",
        "top error groups:",
        "alerts that fired:",
        "where everything went:",
        "how to look at it",
        "strata-cli -- errors show ",
        "strata-cli -- trace --trace-id ",
    ] {
        assert!(
            r.stderr.contains(needle),
            "{needle} missing from:\n{}",
            r.stderr
        );
    }
}

#[test]
fn production_logs_warn_and_up_and_a_bad_setting_is_a_clear_error() {
    let r = run(&[("STRATA_ENV", "prod")]);
    assert!(!r.stdout.is_empty());
    assert!(
        r.stdout
            .iter()
            .all(|l| ["WARN", "ERROR", "CRITICAL"].contains(&l["level"].as_str().unwrap())),
        "production logs from WARN"
    );
    // The metrics still counted every request.
    assert!(
        r.summary["metrics"]["http_server_requests_total"]
            .as_f64()
            .unwrap()
            >= r.summary["requests"].as_f64().unwrap()
    );

    let out = Command::new(env!("CARGO_BIN_EXE_example-demo"))
        .current_dir(r.dir.path())
        .env("RUST_LOG", "info,[bad")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RUST_LOG") && stderr.contains("info,[bad"),
        "{stderr}"
    );
}

#[test]
fn with_an_endpoint_and_a_dsn_it_sends_to_them_instead() {
    let receiver = strata_testkit::OtlpReceiver::start().unwrap();
    let bugsink = strata_testkit::Bugsink::start();
    let endpoint = receiver.grpc_endpoint();
    let mut envs = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    if let Some(b) = &bugsink {
        envs.push(("SENTRY_DSN", b.dsn()));
    }
    let r = run(&envs);

    // Traces went to the collector, not to the local file.
    let spans = receiver.wait_for_spans(10, std::time::Duration::from_secs(20));
    assert!(
        spans
            .iter()
            .any(|s| s.name == "POST /orders" && s.service_name == "shop")
    );
    assert!(!r.dir.path().join(".strata/telemetry.jsonl").exists());
    assert_eq!(r.summary["outputs"]["traces"], endpoint.as_str());

    // Errors went to the Sentry-protocol server, grouped.
    if let Some(b) = &bugsink {
        assert!(!r.dir.path().join(".strata/errors.db").exists());
        let titles: Vec<String> = b.issues().iter().map(|i| i.to_string()).collect();
        assert!(
            titles
                .iter()
                .any(|t| t.contains("payment gateway timed out")),
            "{titles:?}"
        );
        assert!(
            r.summary["outputs"]["errors"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1")
        );
    }
}
