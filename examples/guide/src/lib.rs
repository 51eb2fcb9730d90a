//! What the guide's programs share that is not strata: a scratch directory for their outputs,
//! a local stand-in for a chat or paging webhook, and reading a Prometheus exposition or a
//! PromQL expression. The strata code is in each program (`src/bin/`), where a reader looks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Moves the program into the directory named by its first argument (else a fresh one under
/// the system's temp dir), so its local outputs — `.strata/`, log files, a config file —
/// never land in the source tree. Call it first, before strata reads `./strata.toml`.
pub fn workdir(practice: &str) -> PathBuf {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => {
            std::env::temp_dir().join(format!("strata-guide-{practice}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).expect("the output directory can be created");
    std::env::set_current_dir(&dir).expect("the output directory can be entered");
    let dir = std::env::current_dir().unwrap_or(dir);
    eprintln!("[guide] {practice}: outputs go to {}", dir.display());
    dir
}

/// The JSON objects of a file of JSON lines (lines that are not JSON are skipped).
pub fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// What the stand-in webhook received: one JSON object per alert.
pub type Received = Arc<Mutex<Vec<Value>>>;

/// A local HTTP server standing in for Slack, Discord or PagerDuty: `POST /alerts` keeps the
/// JSON body. It runs on a thread and runtime of its own, as a real webhook is another process.
///
/// # Errors
///
/// When no local port can be bound.
pub fn webhook() -> std::io::Result<(SocketAddr, Received)> {
    let received: Received = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = Arc::clone(&received);
    std::thread::Builder::new()
        .name("webhook".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new().route(
                    "/alerts",
                    axum::routing::post(move |axum::Json(alert): axum::Json<Value>| async move {
                        store.lock().unwrap_or_else(|e| e.into_inner()).push(alert);
                        http::StatusCode::OK
                    }),
                );
                let _ = axum::serve(listener, app).await;
            });
        })?;
    Ok((addr, received))
}

/// The sample lines of the metric `name` in an OpenMetrics exposition (`name{…} value` or
/// `name value`), as (labels, value).
pub fn samples<'a>(exposition: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    exposition
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, v) = r.split_once("} ")?;
                    (labels, v)
                }
                None => ("", rest.strip_prefix(' ')?),
            };
            Some((labels, value.split(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The value of the sample of `name` whose labels include every `key="value"` of `labels`.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(exposition, name)
        .into_iter()
        .find(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.split(',').any(|p| p == format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v)
}

/// The metric names a PromQL expression reads: identifiers that are not functions, keywords,
/// label names (in `{…}` or `by (…)`), durations or strings.
pub fn promql_metrics(expr: &str) -> Vec<String> {
    // Operators, and aggregations (written `sum by (…) (…)`, so not always before a `(`).
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "bool",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let b = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'{' | b'[' | b'"' => {
                let close = match c {
                    b'{' => b'}',
                    b'[' => b']',
                    _ => b'"',
                };
                i += 1;
                while i < b.len() && b[i] != close {
                    i += 1;
                }
                i += 1;
            }
            b'(' if skip_group => {
                skip_group = false;
                while i < b.len() && b[i] != b')' {
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let next = expr[i..].trim_start().bytes().next();
                if word == "by" || word == "without" {
                    skip_group = true;
                } else if next != Some(b'(') && !KEYWORDS.contains(&word) {
                    names.push(word.to_owned());
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // A number, with its exponent (1e-9, 50e6).
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && b[i] == b'-' && b[i - 1] == b'e' {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_names_leave_out_functions_labels_and_numbers() {
        let e = "histogram_quantile(0.99, sum by (job, route, le) (rate(http_server_request_duration_seconds_bucket{job=\"$job\"}[5m]))) > 0.4 and sum by (job) (rate(x_total[5m])) / clamp_min(y, 1e-9)";
        assert_eq!(
            promql_metrics(e),
            [
                "http_server_request_duration_seconds_bucket",
                "x_total",
                "y"
            ]
        );
        assert_eq!(
            promql_metrics("time() - process_start_time_seconds{job=\"$job\"}"),
            ["process_start_time_seconds"]
        );
    }

    #[test]
    fn samples_match_labels() {
        let x = "a_total{route=\"/x\",status_class=\"2xx\"} 3\na_total{route=\"/y\",status_class=\"5xx\"} 1\nb 2.5\n";
        assert_eq!(sample(x, "a_total", &[("route", "/y")]), Some(1.0));
        assert_eq!(sample(x, "b", &[]), Some(2.5));
        assert_eq!(sample(x, "a", &[]), None);
    }
}
