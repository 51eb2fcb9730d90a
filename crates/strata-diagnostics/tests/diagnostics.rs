//! Timeouts and slow calls, the in-flight registry with a stuck handler, the SIGUSR1 dump, and
//! the endpoint's token rules. Each test runs on one thread (a current-thread runtime) with
//! its own subscriber writing JSON lines into memory.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_core::{Classify, ErrorClass};
use strata_diagnostics::{Diagnostics, DiagnosticsError, Inflight, TimedOut};
use tracing_subscriber::prelude::*;

/// JSON lines written by the subscriber of one test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn with_event(&self, event: &str) -> Vec<Value> {
        self.parsed()
            .into_iter()
            .filter(|l| l["event"] == event)
            .collect()
    }
}

/// A subscriber for this thread: JSON lines into `Lines`, the in-flight registry.
fn install(inflight: &Inflight) -> (Lines, tracing::subscriber::DefaultGuard) {
    let lines = Lines::default();
    let w = lines.clone();
    let guard = tracing_subscriber::registry()
        .with(strata_json::JsonLayer::new().with_writer(move || w.clone()))
        .with(inflight.layer())
        .set_default();
    (lines, guard)
}

/// `GET url`, its body as JSON.
async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls `f` every 10 ms until it returns `Some`, for at most 10 s.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn timeout_returns_an_external_error_and_logs_it_in_the_span() {
    let (lines, _g) = install(&Inflight::new());
    let span = tracing::info_span!("checkout", order_id = 7);
    let fast = strata_diagnostics::timeout(Duration::from_secs(5), async { 42 }).await;
    assert_eq!(fast, Ok(42));
    let err: TimedOut = tracing::Instrument::instrument(
        strata_diagnostics::timeout_named(
            "payment gateway",
            Duration::from_millis(30),
            std::future::pending::<()>(),
        ),
        span,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::External);
    assert_eq!(err.operation, "payment gateway");
    assert_eq!(err.limit, Duration::from_millis(30));
    assert!(err.elapsed >= Duration::from_millis(30), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("payment gateway timed out after ")
    );
    let logged = lines.with_event("timeout");
    assert_eq!(logged.len(), 1, "{logged:?}");
    let l = &logged[0];
    assert_eq!(l["level"], "ERROR");
    assert_eq!(l["error.class"], "external");
    assert_eq!(l["operation"], "payment gateway");
    assert_eq!(l["limit_ms"], 30);
    assert!(l["duration_ms"].as_u64().unwrap() >= 30, "{l}");
    // In the caller's span: its fields are on the line.
    assert_eq!(l["order_id"], 7, "{l}");
}

#[tokio::test]
async fn warn_if_slow_logs_the_lessons_line_only_past_the_threshold() {
    let (lines, _g) = install(&Inflight::new());
    let quick =
        strata_diagnostics::warn_if_slow_named("query", Duration::from_secs(5), async { 1 }).await;
    assert_eq!(quick, 1);
    assert!(lines.with_event("slow_operation").is_empty());
    let slow = strata_diagnostics::warn_if_slow_named("query", Duration::from_millis(40), async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        2
    })
    .await;
    assert_eq!(slow, 2);
    let logged = lines.with_event("slow_operation");
    assert_eq!(logged.len(), 1, "{logged:?}");
    let l = &logged[0];
    assert_eq!(l["level"], "WARN");
    let ms = l["duration_ms"].as_u64().unwrap();
    assert!(ms >= 60, "{l}");
    assert_eq!(l["message"], format!("Slow query: {ms}ms"));
    assert_eq!(l["threshold_ms"], 40);
}

/// What [`stuck_service`] started: the service's address, the endpoint's, what releases
/// the stuck handler, and what keeps them running.
struct Started {
    addr: std::net::SocketAddr,
    diag: std::net::SocketAddr,
    release: Arc<tokio::sync::Notify>,
    _keep: (
        tokio::task::JoinHandle<()>,
        strata_diagnostics::DiagnosticsServer,
    ),
}

/// A service whose `/orders/{id}` handler waits until released, the endpoint beside it.
async fn stuck_service(inflight: &Inflight, token: Option<&str>) -> Started {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = Arc::clone(&release);
    let app = axum::Router::new()
        .route(
            "/orders/{id}",
            axum::routing::get(move || {
                let r = Arc::clone(&r);
                tracing::Instrument::instrument(
                    async move {
                        r.notified().await;
                        "done"
                    },
                    tracing::info_span!("wait_for_payment"),
                )
            }),
        )
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .layer(strata_request_id::RequestIdLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut d = Diagnostics::new(inflight.clone());
    if let Some(t) = token {
        d = d.with_token(t);
    }
    let diag = d.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Started {
        addr,
        diag: diag.addr(),
        release,
        _keep: (server, diag),
    }
}

#[tokio::test]
async fn a_stuck_handler_is_in_flight_by_its_request_id_and_reported_once() {
    let inflight = Inflight::new().with_stuck_after(Duration::from_millis(300));
    let (lines, _g) = install(&inflight);
    let started = stuck_service(&inflight, None).await;
    let (addr, diag) = (started.addr, started.diag);
    let client = reqwest::Client::new();
    // A request that finishes leaves nothing behind.
    let ok = client
        .get(format!("http://{addr}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(inflight.len(), 0);

    let stuck = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}/orders/42"))
                .header("x-request-id", "stuck-order-42")
                .send()
                .await
        }
    });
    wait_for("the stuck request to be registered", || {
        (inflight.len() == 1).then_some(())
    })
    .await;

    let body: Value = get_json(&client, format!("http://{diag}/debug/inflight")).await;
    assert_eq!(body["count"], 1, "{body}");
    let work = &body["work"][0];
    assert_eq!(work["kind"], "request");
    assert_eq!(work["fields"]["request_id"], "stuck-order-42", "{body}");
    assert_eq!(work["fields"]["path"], "/orders/42", "{body}");
    assert_eq!(work["fields"]["method"], "GET", "{body}");
    // Where it waits: the span it last entered, under the request.
    assert_eq!(
        work["stack"],
        serde_json::json!(["request", "wait_for_payment"]),
        "{body}"
    );
    assert!(work["age_ms"].is_u64());

    // Reported once when older than the threshold, never again.
    assert_eq!(inflight.check_stuck(), 0, "not stuck yet");
    wait_for("the stuck report", || {
        (inflight.check_stuck() == 1).then_some(())
    })
    .await;
    assert_eq!(inflight.check_stuck(), 0, "reported once");
    let warned = lines.with_event("stuck");
    assert_eq!(warned.len(), 1, "{warned:?}");
    let w = &warned[0];
    assert_eq!(w["level"], "WARN");
    assert_eq!(w["request_id"], "stuck-order-42", "{w}");
    assert_eq!(w["message"], "request still running after 0.3 s");
    assert_eq!(w["stack"], "request > wait_for_payment", "{w}");
    assert!(w["age_ms"].as_u64().unwrap() >= 300);

    let health: Value = get_json(&client, format!("http://{diag}/debug/health")).await;
    assert_eq!(health["in_flight"], 1, "{health}");
    assert_eq!(health["stuck"], 1, "{health}");
    assert_eq!(health["status"], "degraded");

    // Released, it answers: the span closes, the registry empties.
    started.release.notify_one();
    let answered = stuck.await.unwrap().unwrap();
    assert_eq!(answered.status(), 200);
    wait_for("the request to leave", || inflight.is_empty().then_some(())).await;
}

#[cfg(unix)]
#[tokio::test]
async fn sigusr1_dumps_what_is_in_flight_to_the_log() {
    let inflight = Inflight::new();
    let (lines, _g) = install(&inflight);
    let _dump = inflight.dump_on_sigusr1().unwrap();
    let job = strata_request_id::JobContext::default().span("send_invoice");
    let _entered = job.enter();
    assert_eq!(inflight.len(), 1);
    let status = std::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let dumped = wait_for("the dump", || {
        let l = lines.with_event("in_flight_work");
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(dumped.len(), 1, "{dumped:?}");
    assert_eq!(dumped[0]["kind"], "job");
    assert_eq!(dumped[0]["job"], "send_invoice", "{}", dumped[0]);
    assert_eq!(lines.with_event("in_flight")[0]["count"], 1);
}

#[tokio::test]
async fn the_endpoint_refuses_public_addresses_without_a_token_and_requests_without_it() {
    let inflight = Inflight::new();
    let d = Diagnostics::new(inflight.clone());
    // Refused before anything is bound.
    match d.serve("0.0.0.0:0".parse().unwrap()).await {
        Err(DiagnosticsError::PublicWithoutToken { addr }) => {
            assert_eq!(addr.to_string(), "0.0.0.0:0");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Diagnostics::new(inflight.clone())
            .with_token("short")
            .serve("127.0.0.1:0".parse().unwrap())
            .await,
        Err(DiagnosticsError::WeakToken { len: 5 })
    ));
    let token = "s3cret-diagnostics-token-0123";
    let started = stuck_service(&inflight, Some(token)).await;
    let diag = started.diag;
    let client = reqwest::Client::new();
    let url = format!("http://{diag}/debug/inflight");
    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(&url)
        .bearer_auth("s3cret-diagnostics-token-0124")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let health = client
        .get(format!("http://{diag}/debug/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 401, "every route is guarded");
    let right = client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status(), 200);
    let body: Value = right.json().await.unwrap();
    assert_eq!(body["count"], 0);
    // The token never shows in Debug output.
    let shown = format!("{:?}", Diagnostics::new(inflight).with_token(token));
    assert!(!shown.contains(token), "{shown}");
}

/// The hot function the profile must find.
#[inline(never)]
fn strata_hot_loop_for_profile(stop: &std::sync::atomic::AtomicBool) -> u64 {
    let mut x = 0_u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for i in 0..10_000_u64 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
    }
    x
}

#[tokio::test]
async fn a_profile_taken_during_a_cpu_bound_loop_names_the_hot_function() {
    let inflight = Inflight::new();
    let started = stuck_service(&inflight, None).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hot = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || strata_hot_loop_for_profile(&stop)
    });
    let client = reqwest::Client::new();
    let base = format!("http://{}/debug/pprof/profile", started.diag);
    let svg = client
        .get(format!("{base}?seconds=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let svg = svg.text().await.unwrap();
    assert!(svg.starts_with("<?xml"), "{}", &svg[..svg.len().min(200)]);
    assert!(
        svg.contains("strata_hot_loop_for_profile"),
        "the hot function is not in the flame graph"
    );
    let proto = client
        .get(format!("{base}?seconds=1&format=pprof"))
        .send()
        .await
        .unwrap();
    assert_eq!(proto.status(), 200);
    let bytes = proto.bytes().await.unwrap();
    let name = b"strata_hot_loop_for_profile";
    assert!(
        bytes.windows(name.len()).any(|w| w == name),
        "the hot function is not in the pprof string table"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hot.join().unwrap();
    // Bad input is named, and nothing is profiled.
    let bad = client
        .get(format!("{base}?seconds=600"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.text().await.unwrap(),
        "seconds must be a whole number from 1 to 120, not \"600\"\n"
    );
}
