//! Metrics derived from a real axum service's spans, read back by parsing the exposition.

use std::time::Duration;

use strata_metrics::Metrics;
use tracing_subscriber::prelude::*;

mod support;
use support::{Sample, parse};

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn subscriber(metrics: &Metrics) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(metrics.layer())
}

#[test]
fn requests_jobs_events_and_errors_become_metrics() {
    let metrics = Metrics::new().with_span_histogram(&["db_query"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scraped = tracing::subscriber::with_default(subscriber(&metrics), || {
        rt.block_on(async {
            let app = axum::Router::new()
                .route(
                    "/users/{id}",
                    axum::routing::get(|| async {
                        tracing::info_span!("db_query").in_scope(|| {});
                        for _ in 0..2 {
                            tracing::info_span!("select", db.system = "postgresql").in_scope(|| {});
                        }
                        "ok"
                    }),
                )
                .route(
                    "/pay",
                    axum::routing::post(|| async {
                        tracing::error!(error.class = "external", "payment provider timed out");
                        axum::http::StatusCode::BAD_GATEWAY
                    }),
                )
                .layer(strata_request_id::RequestIdLayer::new())
                .route_service("/metrics", metrics.service());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            let client = reqwest::Client::new();
            for id in 1..=3 {
                let r = client
                    .get(format!("http://{addr}/users/{id}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
            let r = client
                .post(format!("http://{addr}/pay"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 502);
            let r = client
                .get(format!("http://{addr}/no/such/page/42"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404);
            // A job carrying the request's context.
            let job = strata_request_id::JobContext::capture();
            job.span("send_receipt").in_scope(|| tracing::info!("sent"));
            let r = client
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap();
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/openmetrics-text")
            );
            r.text().await.unwrap()
        })
    });
    let samples = parse(&scraped);
    let req = "http_server_requests_total";
    let users = [
        ("method", "GET"),
        ("route", "/users/{id}"),
        ("status_class", "2xx"),
    ];
    assert_eq!(value(&samples, req, &users), Some(3.0), "{scraped}");
    let pay = [
        ("method", "POST"),
        ("route", "/pay"),
        ("status_class", "5xx"),
    ];
    assert_eq!(value(&samples, req, &pay), Some(1.0));
    // The raw path never becomes a label.
    assert!(!scraped.contains("/no/such/page"), "{scraped}");
    let unmatched = [("route", "unmatched"), ("status_class", "4xx")];
    assert_eq!(value(&samples, req, &unmatched), Some(1.0));
    let count = "http_server_request_duration_seconds_count";
    assert_eq!(value(&samples, count, &users), Some(3.0));
    let inf = [users[0], users[1], users[2], ("le", "+Inf")];
    assert_eq!(
        value(
            &samples,
            "http_server_request_duration_seconds_bucket",
            &inf
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&samples, "jobs_total", &[("job_name", "send_receipt")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "span_duration_seconds_count",
            &[("span", "db_query")]
        ),
        Some(3.0)
    );
    // Two queries in each of the 3 user requests, none in the 2 others.
    assert_eq!(
        value(&samples, "db_queries_per_request_sum", &[]),
        Some(6.0)
    );
    assert_eq!(
        value(&samples, "db_queries_per_request_count", &[]),
        Some(5.0)
    );
    assert_eq!(
        value(&samples, "db_queries_per_request_bucket", &[("le", "0.0")]),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "captured_errors_total", &[("class", "external")]),
        Some(1.0)
    );
    // The handler's error and the access line of the 502; the access lines of the three user
    // requests and the 404, and the job's line.
    let level = |l| value(&samples, "log_events_total", &[("level", l)]);
    assert_eq!(
        (level("error"), level("warn"), level("info")),
        (Some(2.0), Some(0.0), Some(5.0))
    );
    // The process collector.
    assert!(value(&samples, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(value(&samples, "process_threads", &[]).unwrap() >= 1.0);
    assert!(value(&samples, "process_open_fds", &[]).unwrap() >= 3.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = value(&samples, "process_start_time_seconds", &[]).unwrap();
    assert!(
        start <= now + 1.0 && start > now - 86_400.0,
        "{start} vs {now}"
    );
    assert!(value(&samples, "process_cpu_seconds_total", &[]).is_some());
}

#[test]
fn route_labels_are_bounded() {
    let metrics = Metrics::new();
    tracing::subscriber::with_default(subscriber(&metrics), || {
        for i in 0..strata_metrics::MAX_ROUTES + 50 {
            // As a buggy router would: a raw path as the route.
            let route = format!("/items/{i}");
            tracing::info_span!(
                target: "strata_request_id::server",
                "request",
                method = "GET",
                route = route.as_str(),
                status_code = 200_u64,
                duration_ms = 1.5
            )
            .in_scope(|| {});
        }
    });
    let samples = parse(&metrics.encode());
    let routes: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "http_server_requests_total")
        .map(|s| s.labels["route"].as_str())
        .collect();
    assert_eq!(
        routes.len(),
        strata_metrics::MAX_ROUTES + 1,
        "1000 routes and other"
    );
    assert_eq!(
        value(
            &samples,
            "http_server_requests_total",
            &[("route", "other")]
        ),
        Some(50.0)
    );
    let sum = value(
        &samples,
        "http_server_request_duration_seconds_sum",
        &[("route", "/items/7")],
    );
    assert_eq!(sum, Some(0.0015), "duration_ms of the span, in seconds");
}

#[test]
fn a_task_that_blocks_the_runtime_shows_up_as_event_loop_lag() {
    let metrics = Metrics::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lag_max = rt.block_on(async {
        let workers = || value(&parse(&metrics.encode()), "tokio_workers", &[]);
        let _probe = metrics.spawn_lag_probe(Duration::from_millis(10));
        // Let it measure a healthy loop first: three probes.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while value(
            &parse(&metrics.encode()),
            "event_loop_lag_seconds_count",
            &[],
        ) < Some(3.0)
        {
            assert!(std::time::Instant::now() < deadline, "the probe never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let samples = parse(&metrics.encode());
        let healthy = value(&samples, "event_loop_lag_max_seconds", &[]);
        assert!(healthy.unwrap() < 0.2, "healthy lag {healthy:?}");
        assert!(
            value(&samples, "tokio_alive_tasks", &[]).unwrap() >= 1.0,
            "the probe itself"
        );
        assert_eq!(workers(), Some(1.0), "a current-thread runtime");
        // A blocking call on the runtime's only thread.
        tokio::spawn(async { std::thread::sleep(Duration::from_millis(300)) })
            .await
            .unwrap();
        // The probe runs again after the blockage and reports it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let lag = value(&parse(&metrics.encode()), "event_loop_lag_max_seconds", &[]).unwrap();
            if lag >= 0.2 || std::time::Instant::now() > deadline {
                break lag;
            }
        }
    });
    assert!(lag_max >= 0.2, "lag after a 300 ms block: {lag_max}");
    let samples = parse(&metrics.encode());
    assert!(value(&samples, "event_loop_lag_seconds_count", &[]).unwrap() >= 2.0);
    assert_eq!(
        value(&samples, "tokio_workers", &[]),
        None,
        "gone with the probe"
    );
}

#[test]
fn worker_cache_and_dropped_telemetry_helpers() {
    let metrics = Metrics::new();
    let emails = metrics.worker("emails");
    emails.set_depth(12);
    emails.waited(Duration::from_millis(250));
    emails.processed();
    emails.processed();
    emails.failed();
    emails.retried();
    emails.dead_lettered();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&dropped);
    metrics.register_dropped("strata-otlp/spans", move || {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    });
    dropped.store(7, std::sync::atomic::Ordering::Relaxed);
    let users = metrics.cache("users");
    users.hit();
    users.hit();
    users.miss();
    let samples = parse(&metrics.encode());
    let q = [("queue", "emails")];
    assert_eq!(value(&samples, "queue_depth", &q), Some(12.0));
    assert_eq!(value(&samples, "job_wait_seconds_sum", &q), Some(0.25));
    assert_eq!(value(&samples, "jobs_processed_total", &q), Some(2.0));
    assert_eq!(value(&samples, "jobs_failed_total", &q), Some(1.0));
    assert_eq!(value(&samples, "jobs_retried_total", &q), Some(1.0));
    assert_eq!(value(&samples, "jobs_dead_lettered_total", &q), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "strata_telemetry_dropped_total",
            &[("source", "strata-otlp/spans")]
        ),
        Some(7.0),
        "read at scrape time"
    );
    let hits = [("cache", "users"), ("result", "hit")];
    assert_eq!(value(&samples, "cache_requests_total", &hits), Some(2.0));
}

#[test]
fn its_own_listener_serves_the_exposition() {
    let metrics = Metrics::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let body = reqwest::get(format!("http://{}/metrics", server.addr()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            body.ends_with("# EOF\n"),
            "OpenMetrics ends with # EOF: {body}"
        );
        assert!(parse(&body).iter().any(|s| s.name == "process_threads"));
        let addr = server.addr();
        drop(server);
        // Stopped: the port no longer answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while reqwest::get(format!("http://{addr}/metrics")).await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "still serving");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn only_http_request_spans_count_as_requests_and_error_classes_are_bounded() {
    let metrics = Metrics::new();
    tracing::subscriber::with_default(subscriber(&metrics), || {
        // A request of another kind (a message consumer's): not an HTTP request.
        let id = strata_request_id::RequestId::generate();
        strata_request_id::request_span(&id).in_scope(|| tracing::info!("consumed"));
        for i in 0..strata_metrics::MAX_ERROR_CLASSES + 5 {
            let class = format!("class-{i}");
            tracing::error!(error.class = class.as_str(), "failed");
        }
        tracing::error!(error.class = ?"quoted", "failed");
    });
    let text = metrics.encode();
    let samples = parse(&text);
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "http_server_requests_total"),
        "{text}"
    );
    let classes: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == "captured_errors_total")
        .map(|s| s.labels["class"].as_str())
        .collect();
    assert_eq!(
        classes.len(),
        strata_metrics::MAX_ERROR_CLASSES + 1,
        "{classes:?}"
    );
    assert_eq!(
        value(&samples, "captured_errors_total", &[("class", "other")]),
        Some(6.0),
        "5 over the cap, and the Debug-recorded one"
    );
}

#[test]
fn span_histograms_added_later_reach_layers_made_before() {
    let metrics = Metrics::new();
    let layer = metrics.layer();
    let metrics = metrics.with_span_histogram(&["db_query"]);
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("db_query").in_scope(|| {});
        tracing::info_span!("other").in_scope(|| {});
    });
    let samples = parse(&metrics.encode());
    assert_eq!(
        value(
            &samples,
            "span_duration_seconds_count",
            &[("span", "db_query")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &samples,
            "span_duration_seconds_count",
            &[("span", "other")]
        )
        .is_none()
    );
}
