//! End to end: a deliberately slow endpoint drives the shipped p99-latency rule (in a test copy
//! with short windows) to fire in a real Prometheus, which sends it to a real Alertmanager,
//! which delivers it to a local webhook receiver and as an email to a real SMTP server
//! (aiosmtpd).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_metrics::Metrics;
use tracing_subscriber::prelude::*;

mod support;
use support::backend::{self, free_port, spawn};

/// A Python with aiosmtpd (`STRATA_PYTHON`, set by scripts/test.sh), prometheus and
/// prometheus-alertmanager; `None` to skip when allowed.
fn tools() -> Option<PathBuf> {
    if !["prometheus", "prometheus-alertmanager"]
        .iter()
        .all(|tool| backend::installed(tool))
    {
        return None;
    }
    let py =
        std::env::var_os("STRATA_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let ok = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return backend::missing("aiosmtpd").map(|()| py);
    }
    Some(py)
}

/// The shipped rules with test-only windows: the same expressions over 10 s instead of 5 min,
/// firing after 2 s instead of 5 min.
fn test_rules(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts/strata.rules.yml"),
    )
    .unwrap();
    let window = "rate(http_server_request_duration_seconds_bucket[5m])";
    assert!(shipped.contains(window), "the latency rule changed");
    let rules = shipped
        .replace(
            window,
            "rate(http_server_request_duration_seconds_bucket[10s])",
        )
        .replacen("for: 5m", "for: 2s", 1);
    let path = dir.join("rules.yml");
    std::fs::write(&path, rules).unwrap();
    path
}

/// The `Subject` header of the first mail in a Maildir's `new` folder, once there is one.
fn mail_subject(maildir: &Path) -> Option<String> {
    let entry = std::fs::read_dir(maildir.join("new"))
        .ok()?
        .flatten()
        .next()?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let headers = text.split("\n\n").next()?;
    headers.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("subject")
            .then(|| value.trim().to_owned())
    })
}

#[test]
fn a_slow_endpoint_fires_the_latency_alert_through_prometheus_and_alertmanager() {
    let Some(py) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (smtp, am, prom) = (free_port(), free_port(), free_port());
    let maildir = dir.path().join("maildir");
    let _smtpd = spawn(
        Command::new(&py)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{smtp}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir),
    );

    let metrics = Metrics::new();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(metrics.layer());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let webhook: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let received = Arc::clone(&webhook);
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let app = axum::Router::new()
                .route(
                    "/slow",
                    axum::routing::get(|| async {
                        tokio::time::sleep(Duration::from_millis(450)).await;
                        "eventually"
                    }),
                )
                .layer(strata_request_id::RequestIdLayer::new())
                .route_service("/metrics", metrics.service());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let service = listener.local_addr().unwrap();
            let received = Arc::clone(&received);
            tokio::spawn(async move { axum::serve(listener, app).await });
            // The webhook receiver Alertmanager posts to.
            let hook = axum::Router::new().route(
                "/alert",
                axum::routing::post(
                    move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                        received.lock().unwrap().push(body);
                    },
                ),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let hook_addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, hook).await });

            std::fs::write(
                dir.path().join("am.yml"),
                format!(
                    "global: {{smtp_smarthost: \"127.0.0.1:{smtp}\", smtp_from: alertmanager@example.com, smtp_require_tls: false}}\n\
                     route: {{receiver: ci, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}}\n\
                     receivers:\n  - name: ci\n    webhook_configs: [{{url: \"http://{hook_addr}/alert\"}}]\n    email_configs: [{{to: oncall@example.com}}]\n"
                ),
            )
            .unwrap();
            let _alertmanager = spawn(
                Command::new("prometheus-alertmanager")
                    .arg(format!("--config.file={}", dir.path().join("am.yml").display()))
                    .arg(format!("--storage.path={}", dir.path().join("am").display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{am}"))
                    .arg("--cluster.listen-address="),
            );
            let rules = test_rules(dir.path());
            let config = format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs: [{{job_name: app, static_configs: [{{targets: [\"{service}\"]}}]}}]\n\
                 rule_files: [\"{}\"]\n\
                 alerting: {{alertmanagers: [{{static_configs: [{{targets: [\"127.0.0.1:{am}\"]}}]}}]}}\n",
                rules.display()
            );
            let _prometheus = backend::prometheus(
                dir.path(),
                prom,
                &config,
                &["--rules.alert.resend-delay=1s"],
            );

            // Slow traffic, four at a time, until the alert arrives (or 90 s).
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let calls: Vec<_> = (0..4)
                    .map(|_| tokio::spawn(client.get(format!("http://{service}/slow")).send()))
                    .collect();
                for c in calls {
                    let _ = c.await;
                }
                let firing = webhook.lock().unwrap().iter().any(|b| b["status"] == "firing");
                if firing && mail_subject(&maildir).is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no alert: webhook {:?}, mail {:?}",
                    webhook.lock().unwrap(),
                    mail_subject(&maildir)
                );
            }
        });
    });
    let bodies = webhook.lock().unwrap().clone();
    let alert = bodies
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .find(|a| a["labels"]["alertname"] == "HighRequestLatencyP99")
        .unwrap_or_else(|| panic!("{bodies:#?}"));
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["route"], "/slow");
    assert_eq!(alert["labels"]["severity"], "page");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("p99 latency of /slow is "),
        "{alert:#?}"
    );
    let subject = mail_subject(&maildir).unwrap();
    assert!(subject.contains("HighRequestLatencyP99"), "{subject}");
}
