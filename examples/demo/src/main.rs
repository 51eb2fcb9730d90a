//! The strata demo: a small shop — orders, inventory and payments services calling each other
//! over HTTP, a fulfilment worker fed by a queue, a periodic stock reconciliation — under a
//! built-in load for about 15 seconds, with every strata layer on and no server installed.
//!
//! Run with `cargo run -p example-demo`. It writes:
//!
//! - JSON log lines to standard output (the staging profile; `STRATA_ENV=development` for the
//!   coloured console, `production` for WARN and up), and to a rotating file in
//!   `.strata/logs/`;
//! - traces, log records and metrics as OTLP/JSON to `.strata/telemetry.jsonl` — or to a
//!   collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see `examples/jaeger`);
//! - captured errors, grouped, to `.strata/errors.db` — or to a Sentry-protocol server when
//!   `SENTRY_DSN` is set;
//! - metrics on `http://127.0.0.1:PORT/metrics`; alerts to a local webhook standing in for
//!   Slack and PagerDuty;
//!
//! and at the end prints a summary on standard error: requests, error rate, latency
//! percentiles, the top error groups, the alerts that fired, where everything went and how to
//! look at it. `DEMO_SECONDS` shortens or lengthens the run; `DEMO_SUMMARY=path` also writes
//! the summary as JSON.

mod load;
mod shop;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use strata::router::RouterConfig;
use tracing::{info, warn};

fn seconds() -> f64 {
    std::env::var("DEMO_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 3600.0)
        .unwrap_or(15.0)
}

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr: SocketAddr = listener.local_addr().expect("the local address");
    let base = format!("http://{addr}");
    let alerts: shop::Alerts = Arc::new(Mutex::new(Vec::new()));
    let hook = shop::alert_receiver(Arc::clone(&alerts)).expect("the alert webhook starts");

    // A rotating file of every line from INFO, and alerts (ERROR and CRITICAL, by the alert
    // policy: business errors never, system errors at once, external errors when repeated) to
    // a local webhook standing in for the chat and paging services.
    let routes = RouterConfig::from_toml(&format!(
        r#"
        [[route]]
        sink = "file"
        dir = ".strata/logs"
        prefix = "shop"
        max_size = "20MB"
        rotation = "daily"
        keep_files = 5

        [[route]]
        sink = "webhook"
        url = "http://{hook}/alerts"
        # the errors themselves, not the access lines saying a request failed
        exclude_targets = ["strata_request_id"]
        escalate_after = 3
        escalate_window = "1m"
        "#
    ))
    .expect("valid routes");
    let mut builder = strata::builder()
        .with_service("shop")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_router(routes);
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = match builder.try_init() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("strata: {e}");
            std::process::exit(2);
        }
    };
    let metrics = guard.metrics().expect("metrics are on");

    let (jobs, queue) = tokio::sync::mpsc::channel(256);
    let state = shop::Shop {
        base: base.clone(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client"),
        jobs,
        next_order: Arc::new(AtomicU64::new(1)),
        attempts: Arc::new(AtomicU64::new(0)),
        queue: metrics.worker("fulfilment"),
        business: shop::Business::default(),
    };
    state.business.register(&metrics);
    let app = shop::app(state, &metrics);
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the shop serves");
    });
    let worker = tokio::spawn(shop::worker(queue, metrics.worker("fulfilment")));
    let duration = Duration::from_secs_f64(seconds());
    let reconcile = tokio::spawn(shop::reconcile(duration / 8));
    info!(event = "service_started", %addr, "shop started");
    // A login with a password and a bearer token: staging and production mask both.
    warn!(
        user = "ada",
        password = "hunter2",
        "login retried with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"
    );

    let results = load::run(base.clone(), 8, duration).await;

    // What /metrics says, through the real endpoint.
    let exposition = match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    reconcile.abort();
    info!(
        event = "service_stopped",
        requests = results.requests(),
        "shop stopped"
    );
    // Everything flushed before the summary reads the outputs (alerts included).
    guard.flush();
    let alerts = alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let summary = summary(&guard, &results, &exposition, &alerts, addr, hook);
    drop(guard);
    server.abort();
    worker.abort();
    eprintln!("{}", render(&summary));
    if let Ok(path) = std::env::var("DEMO_SUMMARY") {
        let _ = std::fs::write(
            path,
            serde_json::to_string_pretty(&summary).unwrap_or_default(),
        );
    }
}

/// The sum of a counter family's samples in an OpenMetrics exposition.
fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn summary(
    guard: &strata::Guard,
    r: &load::Results,
    exposition: &str,
    alerts: &[Value],
    addr: SocketAddr,
    hook: SocketAddr,
) -> Value {
    let cfg = guard.config();
    let requests = r.requests();
    // The local store's groups (with a DSN, the groups are the server's to show), and the
    // request and trace of the top group's latest event: where a person starts looking.
    let mut example = json!({});
    let groups: Vec<Value> = if cfg.capture.enabled && cfg.capture.dsn.is_none() {
        let store = strata::capture::LocalStore::open_read_only(&cfg.capture.store).ok();
        let mut gs = store
            .as_ref()
            .and_then(|s| s.groups().ok())
            .unwrap_or_default();
        gs.sort_by_key(|g| std::cmp::Reverse(g.count));
        if let (Some(store), Some(top)) = (&store, gs.first())
            && let Ok(Some((_, events))) = store.group(&top.id)
            && let Some(latest) = events.iter().max_by_key(|e| e.unix_ms)
        {
            example = json!({
                "group": top.id,
                "request_id": latest.request.request_id,
                "trace_id": latest.request.trace_id,
            });
        }
        gs.iter()
            .take(5)
            .map(|g| json!({ "id": g.id, "title": g.title, "level": g.level, "count": g.count }))
            .collect()
    } else {
        Vec::new()
    };
    let otlp = if cfg.otlp.enabled {
        cfg.otlp
            .endpoint
            .clone()
            .unwrap_or_else(|| ".strata/telemetry.jsonl".to_owned())
    } else {
        "off".to_owned()
    };
    let errors = match (&cfg.capture.dsn, cfg.capture.enabled) {
        (_, false) => "off".to_owned(),
        (Some(dsn), true) => format!(
            "the Sentry-protocol server {}",
            dsn.rsplit('@').next().unwrap_or("(DSN)")
        ),
        (None, true) => cfg.capture.store.display().to_string(),
    };
    json!({
        "profile": cfg.profile.name(),
        "requests": requests,
        "errors": r.errors(),
        "error_rate": if requests == 0 { 0.0 } else { r.errors() as f64 / requests as f64 },
        "statuses": r.statuses,
        "latency_ms": { "p50": r.quantile(0.5), "p95": r.quantile(0.95), "p99": r.quantile(0.99) },
        "metrics": {
            "endpoint": format!("http://{addr}/metrics"),
            "http_server_requests_total": metric_sum(exposition, "http_server_requests_total"),
            "jobs_total": metric_sum(exposition, "jobs_total"),
            "shop_orders_total": metric_sum(exposition, "shop_orders_total"),
            "telemetry_dropped_total": metric_sum(exposition, "strata_telemetry_dropped_total"),
        },
        "error_groups": groups,
        "example": example,
        "alerts": alerts.iter().map(|a| json!({
            "kind": a["kind"], "severity": a["severity"], "title": a["title"],
            "occurrences": a["occurrences"],
        })).collect::<Vec<_>>(),
        "outputs": {
            "logs": "standard output (JSON lines) and .strata/logs/shop.*.log",
            "traces": otlp,
            "errors": errors,
            "alerts": format!("http://{hook}/alerts (a local stand-in for Slack and PagerDuty)"),
        },
    })
}

/// The summary for a person.
fn render(s: &Value) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    line(String::new());
    line(format!(
        "== shop demo summary ({} profile) ==",
        s["profile"].as_str().unwrap_or("?")
    ));
    line(format!(
        "requests: {}   errors (5xx or no answer): {} = {:.1} %",
        s["requests"],
        s["errors"],
        f(&s["error_rate"]) * 100.0
    ));
    line(format!(
        "latency:  p50 {:.1} ms   p95 {:.1} ms   p99 {:.1} ms",
        f(&s["latency_ms"]["p50"]),
        f(&s["latency_ms"]["p95"]),
        f(&s["latency_ms"]["p99"])
    ));
    let statuses = s["statuses"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("   ")
        })
        .unwrap_or_default();
    line(format!("statuses: {statuses}"));
    line(format!(
        "metrics:  {} — {} requests counted by the metrics layer, {} jobs, {} telemetry items dropped",
        s["metrics"]["endpoint"].as_str().unwrap_or(""),
        f(&s["metrics"]["http_server_requests_total"]),
        f(&s["metrics"]["jobs_total"]),
        f(&s["metrics"]["telemetry_dropped_total"])
    ));
    line("top error groups:".to_owned());
    for g in s["error_groups"].as_array().into_iter().flatten() {
        line(format!(
            "  {:>5} × {:<8} {}  [{}]",
            g["count"],
            g["level"].as_str().unwrap_or(""),
            g["title"].as_str().unwrap_or(""),
            g["id"].as_str().unwrap_or("")
        ));
    }
    line("alerts that fired:".to_owned());
    let alerts = s["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        line("  none".to_owned());
    }
    for a in &alerts {
        line(format!(
            "  {:<9} {}",
            a["kind"].as_str().unwrap_or(""),
            a["title"].as_str().unwrap_or("")
        ));
    }
    line("where everything went:".to_owned());
    for (k, v) in s["outputs"].as_object().into_iter().flatten() {
        line(format!("  {k:<7} {}", v.as_str().unwrap_or("")));
    }
    line(
        "how to look at it (`cargo install --path crates/strata-cli` puts `strata` on the PATH):"
            .to_owned(),
    );
    let strata = "cargo run -q -p strata-cli --";
    line(format!(
        "  {strata} pretty .strata/logs/shop.log --level warn     # the log, for people"
    ));
    line(format!(
        "  {strata} errors                                        # the error groups"
    ));
    let ex = &s["example"];
    if let Some(group) = ex["group"].as_str() {
        line(format!(
            "  {strata} errors show {group}                  # the top group's latest event"
        ));
    }
    if let Some(id) = ex["request_id"].as_str() {
        line(format!(
            "  {strata} pretty .strata/logs/shop.log --request-id {id}   # that request, every service"
        ));
    }
    match ex["trace_id"].as_str() {
        Some(id) => line(format!(
            "  {strata} trace --trace-id {id}   # its trace as a waterfall"
        )),
        None => line(format!(
            "  {strata} trace --last                    # the latest trace as a waterfall"
        )),
    }
    line("  Jaeger: see examples/jaeger, then OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 cargo run -p example-demo".to_owned());
    out
}
