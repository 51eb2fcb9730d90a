//! Settings from the `OTEL_*` environment, in a test binary of their own (the environment is
//! process-wide: every test here holds `ENV` while it sets variables).

use std::sync::Mutex;
use std::time::Duration;

use strata_otlp::{Otlp, OtlpError, Protocol};
use strata_testkit::OtlpReceiver;

mod support;

static ENV: Mutex<()> = Mutex::new(());

/// Sets `vars` for the duration of `f`, holding the lock.
fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    let _lock = ENV.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: every test of this binary that touches the environment holds ENV.
    for (k, v) in vars {
        unsafe { std::env::set_var(k, v) };
    }
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    for (k, _) in vars {
        unsafe { std::env::remove_var(k) };
    }
    out.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn invalid(err: OtlpError) -> (String, String) {
    match err {
        OtlpError::Invalid { setting, value, .. } => (setting, value),
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn bad_values_are_typed_errors_naming_the_variable() {
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_SDK_DISABLED", "perhaps"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_LOGS_EXPORTER", "syslog"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1m"),
    ] {
        let err = with_env(&[(var, value)], || {
            Otlp::new()
                .with_endpoint("http://127.0.0.1:4317")
                .start()
                .unwrap_err()
        });
        assert!(err.to_string().contains(var), "{var}: {err}");
        assert_eq!(invalid(err), (var.to_owned(), value.to_owned()));
    }
    // Per-signal variables are named as such.
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "brotli"),
    ] {
        let err = with_env(&[(var, value)], || {
            Otlp::new()
                .with_endpoint("http://127.0.0.1:4317")
                .start()
                .unwrap_err()
        });
        assert_eq!(invalid(err), (var.to_owned(), value.to_owned()));
    }
    let err = with_env(
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ],
        || {
            Otlp::new()
                .with_endpoint("http://127.0.0.1:4317")
                .start()
                .unwrap_err()
        },
    );
    assert_eq!(
        invalid(err),
        ("OTEL_TRACES_SAMPLER_ARG".to_owned(), "1.5".to_owned())
    );
    let err = with_env(&[], || {
        Otlp::new()
            .with_endpoint("localhost:4317")
            .start()
            .unwrap_err()
    });
    assert_eq!(invalid(err).0, "with_endpoint");
    // Named after the variable it came from, without the credentials in it.
    let err = with_env(
        &[(
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "ftp://user:pa55@collector:4317",
        )],
        || Otlp::new().start().unwrap_err(),
    );
    assert_eq!(
        invalid(err),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT".to_owned(),
            "ftp://collector:4317".to_owned()
        )
    );
}

#[test]
fn header_injection_is_refused_without_repeating_the_secret() {
    // A CR LF, URL-encoded in the variable, would smuggle a second header.
    let err = with_env(
        &[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=s3cr3t%0D%0AX-Admin%3A%20true",
        )],
        || {
            Otlp::new()
                .with_endpoint("http://127.0.0.1:4317")
                .start()
                .unwrap_err()
        },
    );
    let message = err.to_string();
    assert!(message.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{message}");
    assert!(message.contains("api-key"), "{message}");
    assert!(!message.contains("s3cr3t"), "the value leaked: {message}");
    let err = with_env(&[], || {
        Otlp::new()
            .with_endpoint("http://127.0.0.1:4317")
            .with_header("x-tenant", "acme\nx-admin: true")
            .start()
            .unwrap_err()
    });
    assert!(!err.to_string().contains("acme"), "{err}");
    assert_eq!(invalid(err).0, "with_header");
    let err = with_env(&[], || {
        Otlp::new()
            .with_endpoint("http://127.0.0.1:4317")
            .with_header("bad header", "v")
            .start()
            .unwrap_err()
    });
    // Debug output names headers, never their values.
    let settings = Otlp::new().with_header("authorization", "Bearer sk-live-123");
    assert!(!format!("{settings:?}").contains("sk-live"), "{settings:?}");
    assert_eq!(
        invalid(err),
        ("with_header".to_owned(), "bad header".to_owned())
    );
    let err = with_env(&[("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign")], || {
        Otlp::new()
            .with_endpoint("http://127.0.0.1:4317")
            .start()
            .unwrap_err()
    });
    assert_eq!(invalid(err).0, "OTEL_EXPORTER_OTLP_HEADERS");
}

fn export_one_span(otlp: &strata_otlp::OtlpGuard) -> Vec<serde_json::Value> {
    let (subscriber, buf) = support::with_json_lines(otlp);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("work").in_scope(|| tracing::info!("worked"));
    });
    let _ = otlp.flush(Duration::from_secs(10));
    buf.lines()
}

#[test]
fn otel_sdk_disabled_turns_everything_off_and_code_turns_it_back_on() {
    let receiver = OtlpReceiver::start().unwrap();
    let endpoint = receiver.grpc_endpoint();
    let otlp = with_env(&[("OTEL_SDK_DISABLED", "TRUE")], || {
        Otlp::new().with_endpoint(&endpoint).start().unwrap()
    });
    let lines = export_one_span(&otlp);
    assert!(lines[0].get("trace_id").is_none(), "{lines:?}");
    drop(otlp);
    assert!(receiver.spans().is_empty(), "nothing was sent");
    let otlp = with_env(&[("OTEL_SDK_DISABLED", "true")], || {
        Otlp::new()
            .with_endpoint(&endpoint)
            .with_enabled(true)
            .start()
            .unwrap()
    });
    let lines = export_one_span(&otlp);
    assert!(lines[0]["trace_id"].is_string(), "{lines:?}");
    assert_eq!(receiver.wait_for_spans(1, Duration::from_secs(10)).len(), 1);
}

#[test]
fn code_beats_the_environment_which_beats_the_defaults() {
    let receiver = OtlpReceiver::start().unwrap();
    let dead = "http://127.0.0.1:1";
    // The environment's endpoint and sampler, overridden in code.
    let otlp = with_env(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", dead),
            ("OTEL_TRACES_SAMPLER", "always_off"),
            ("OTEL_SERVICE_NAME", "from-env"),
        ],
        || {
            Otlp::new()
                .with_endpoint(receiver.grpc_endpoint())
                .with_sampler(strata_otlp::Sampler::AlwaysOn)
                .start()
                .unwrap()
        },
    );
    export_one_span(&otlp);
    let spans = receiver.wait_for_spans(1, Duration::from_secs(10));
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].service_name, "from-env",
        "the environment beats the default"
    );
    drop(otlp);
    // The environment's sampler when code says nothing: nothing is exported.
    let otlp = with_env(&[("OTEL_TRACES_SAMPLER", "always_off")], || {
        Otlp::new()
            .with_endpoint(receiver.grpc_endpoint())
            .start()
            .unwrap()
    });
    export_one_span(&otlp);
    assert_eq!(otlp.exported_spans(), 0);
    drop(otlp);
    // Per-signal endpoint from the environment, over HTTP.
    let otlp = with_env(
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                &receiver.http_traces_endpoint(),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
        || Otlp::new().with_logs(false).start().unwrap(),
    );
    export_one_span(&otlp);
    assert_eq!(otlp.exported_spans(), 1, "gzip over HTTP");
    assert_eq!(receiver.wait_for_spans(2, Duration::from_secs(10)).len(), 2);
    let headers = receiver.request_headers();
    assert_eq!(
        headers
            .last()
            .unwrap()
            .get("content-encoding")
            .map(String::as_str),
        Some("gzip"),
        "{headers:?}"
    );
}

#[test]
fn per_signal_variables_and_the_resource_from_the_environment() {
    let receiver = OtlpReceiver::start().unwrap();
    // The generic endpoint over HTTP gets each signal's path; the resource's service name
    // comes from OTEL_RESOURCE_ATTRIBUTES when nothing else names it.
    let http_base = format!("http://{}", receiver.http_addr());
    let otlp = with_env(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", http_base.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,team=payments",
            ),
        ],
        || Otlp::new().start().unwrap(),
    );
    export_one_span(&otlp);
    drop(otlp);
    let spans = receiver.wait_for_spans(1, Duration::from_secs(10));
    let logs = receiver.wait_for_logs(1, Duration::from_secs(10));
    assert_eq!((spans.len(), logs.len()), (1, 1), "/v1/traces and /v1/logs");
    assert_eq!(spans[0].service_name, "from-attrs");
    assert_eq!(spans[0].resource["team"], "payments");
    // Per-signal protocol and endpoint: traces over gRPC, logs over HTTP; metrics off.
    let otlp = with_env(
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                receiver.grpc_endpoint().as_str(),
            ),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                receiver.http_logs_endpoint().as_str(),
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
        || Otlp::new().start().unwrap(),
    );
    assert!(format!("{otlp:?}").contains("metrics: false"), "{otlp:?}");
    export_one_span(&otlp);
    drop(otlp);
    assert_eq!(receiver.wait_for_spans(2, Duration::from_secs(10)).len(), 2);
    assert_eq!(receiver.wait_for_logs(2, Duration::from_secs(10)).len(), 2);
    // OTEL_TRACES_EXPORTER=none: logs only.
    let otlp = with_env(
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                receiver.grpc_endpoint().as_str(),
            ),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
        || Otlp::new().start().unwrap(),
    );
    export_one_span(&otlp);
    drop(otlp);
    assert_eq!(receiver.wait_for_logs(3, Duration::from_secs(10)).len(), 3);
    assert_eq!(receiver.spans().len(), 2, "no span sent");
}

#[test]
fn headers_reach_the_collector_and_code_beats_the_environment() {
    let receiver = OtlpReceiver::start().unwrap();
    for (protocol, endpoint) in [
        (Protocol::Grpc, receiver.grpc_endpoint()),
        (Protocol::HttpProtobuf, receiver.http_traces_endpoint()),
    ] {
        let otlp = with_env(
            &[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-tenant=from-env,x-region=eu%2Dwest",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=payments"),
            ],
            || {
                Otlp::new()
                    .with_endpoint(&endpoint)
                    .with_protocol(protocol)
                    .with_logs(false)
                    .with_header("x-tenant", "from-code")
                    .start()
                    .unwrap()
            },
        );
        let before = receiver.request_headers().len();
        export_one_span(&otlp);
        let all = receiver.request_headers();
        let headers = all
            .get(before)
            .unwrap_or_else(|| panic!("{protocol:?}: no request"));
        assert_eq!(
            headers["x-tenant"], "from-code",
            "{protocol:?}: {headers:?}"
        );
        assert_eq!(headers["x-region"], "eu-west", "URL-decoded");
        assert_eq!(headers["x-team"], "payments", "per-signal variable");
    }
}

#[test]
fn with_no_endpoint_anywhere_telemetry_goes_to_the_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.jsonl");
    let otlp = with_env(&[("STRATA_TELEMETRY_FILE", path.to_str().unwrap())], || {
        Otlp::new().start().unwrap()
    });
    export_one_span(&otlp);
    drop(otlp);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "work"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.get("resourceLogs").is_some()),
        "{text}"
    );
}
