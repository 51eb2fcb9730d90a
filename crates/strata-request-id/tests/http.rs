//! Real TCP, real HTTP: an axum service on 127.0.0.1 called by a real client; every JSON line of
//! a request carries its ID, across nested spans, spawned and blocking tasks, a second service
//! and a job queue; hostile headers get a fresh ID and break nothing.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde_json::Value;
use strata_request_id::{JobContext, RequestIdLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::info;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Every line written by the global subscriber of this test binary.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

fn lines() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Lines::default();
        tracing_subscriber::registry()
            .with(
                strata_json::layer()
                    .with_service("http-test")
                    .with_writer(lines.clone()),
            )
            .init();
        lines
    })
}

/// All lines so far, each parsed (a line that is not one JSON object fails the test).
fn parsed() -> Vec<Value> {
    let raw = lines().0.lock().unwrap().clone();
    let text = String::from_utf8(raw).expect("output is UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("broken line ({e}): {l:?}")))
        .collect()
}

fn with_id<'a>(all: &'a [Value], id: &str) -> Vec<&'a Value> {
    all.iter().filter(|l| l["request_id"] == id).collect()
}

async fn user(Path(n): Path<u64>) -> String {
    info!(n, "handler start");
    strata_request_id::record_user(n);
    {
        let db = tracing::info_span!("db.query", db.system = "postgresql");
        let _e = db.enter();
        info!(n, "query");
    }
    strata_request_id::spawn(async move {
        tokio::task::yield_now().await;
        info!(n, "spawned task");
    })
    .await
    .unwrap();
    strata_request_id::spawn_blocking(move || info!(n, "blocking task"))
        .await
        .unwrap();
    info!(n, "handler end");
    n.to_string()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_concurrent_requests_carries_its_own_id() {
    lines();
    let addr = serve(
        Router::new()
            .route("/users/{n}", get(user))
            .layer(RequestIdLayer::new()),
    )
    .await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for n in 0..300_u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = client.get(format!("http://{addr}/users/{n}"));
            if n % 2 == 0 {
                req = req.header("x-request-id", format!("client-{n}"));
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(res.text().await.unwrap(), n.to_string());
            (n, id)
        }));
    }
    let mut ids = HashMap::new();
    for t in tasks {
        let (n, id) = t.await.unwrap();
        if n % 2 == 0 {
            assert_eq!(id, format!("client-{n}"), "a valid incoming ID is kept");
        } else {
            assert_eq!(id.len(), 36, "a fresh UUIDv7: {id}");
        }
        assert!(ids.insert(id, n).is_none(), "IDs are unique");
    }
    let all = parsed();
    for (id, n) in &ids {
        let mine = with_id(&all, id);
        let messages: Vec<&str> = mine
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        for m in [
            "handler start",
            "query",
            "spawned task",
            "blocking task",
            "handler end",
            "request completed",
        ] {
            assert_eq!(
                messages.iter().filter(|x| **x == m).count(),
                1,
                "{m:?} for {id}: {messages:?}"
            );
        }
        for l in &mine {
            if let Some(v) = l.get("n") {
                assert_eq!(v, n, "lines never mix requests: {l}");
            }
        }
        let access = mine.iter().find(|l| l["event"] == "http_request").unwrap();
        assert_eq!(
            access["route"], "/users/{n}",
            "the template, not the raw path"
        );
        assert_eq!(access["path"], format!("/users/{n}"));
        assert_eq!(access["method"], "GET");
        assert_eq!(access["status_code"], 200);
        assert_eq!(access["user_id"], *n, "record_user reaches the access line");
        assert!(access["duration_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(access["level"], "INFO");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_called_service_logs_the_callers_id() {
    lines();
    let b = serve(
        Router::new()
            .route(
                "/b",
                get(|| async {
                    info!("in service b");
                    "b"
                }),
            )
            .layer(RequestIdLayer::new()),
    )
    .await;
    let a = serve(
        Router::new()
            .route(
                "/a",
                get(move || async move {
                    let mut headers = http::HeaderMap::new();
                    assert!(strata_request_id::inject(&mut headers));
                    let body = reqwest::Client::new()
                        .get(format!("http://{b}/b"))
                        .headers(headers)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    info!(body, "b answered");
                    "a"
                }),
            )
            .layer(RequestIdLayer::new()),
    )
    .await;
    let res = reqwest::get(format!("http://{a}/a")).await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let all = parsed();
    let mine = with_id(&all, &id);
    assert!(
        mine.iter().any(|l| l["message"] == "in service b"),
        "{mine:?}"
    );
    assert!(mine.iter().any(|l| l["message"] == "b answered"));
    assert_eq!(
        mine.iter().filter(|l| l["event"] == "http_request").count(),
        2,
        "both access lines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_by_a_request_carries_its_id() {
    lines();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    // the worker: outside any request span
    let worker = tokio::spawn(async move {
        while let Some(payload) = rx.recv().await {
            let ctx: JobContext = serde_json::from_str(&payload).unwrap();
            ctx.span("send_receipt").in_scope(|| info!("job ran"));
        }
    });
    let app = Router::new()
        .route(
            "/pay",
            get(move || {
                let tx = tx.clone();
                async move {
                    let payload = serde_json::to_string(&JobContext::capture()).unwrap();
                    tx.send(payload).await.unwrap();
                    "queued"
                }
            }),
        )
        .layer(RequestIdLayer::new());
    let addr = serve(app).await;
    // only x-request-id is accepted by default
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/pay"))
        .header("x-correlation-id", "ignored-by-default")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "ignored-by-default");
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/pay"))
        .header("x-request-id", "pay-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "pay-123");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let all = parsed();
        if let Some(job) = all
            .iter()
            .find(|l| l["message"] == "job ran" && l["request_id"] == "pay-123")
        {
            assert_eq!(job["job"], "send_receipt");
            assert_eq!(job["span"], "job");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job line never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    worker.abort();
}

/// Sends raw bytes as an HTTP/1.1 request and returns the raw response head.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_request_ids_get_a_fresh_id_and_break_nothing() {
    lines();
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                info!("served");
                "ok"
            }),
        )
        .layer(
            RequestIdLayer::new().with_header(http::HeaderName::from_static("x-correlation-id")),
        );
    let addr = serve(app).await;
    let big = "A".repeat(10 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"x-request-id: \r\n".to_vec()),
        ("space", b"x-request-id: a b\r\n".to_vec()),
        (
            "json",
            b"x-request-id: {\"level\":\"CRITICAL\",\"message\":\"forged\"}\r\n".to_vec(),
        ),
        ("newline escape", b"x-request-id: a\\nb\r\n".to_vec()),
        ("non-ascii", "x-request-id: é漢字\r\n".as_bytes().to_vec()),
        ("high bytes", b"x-request-id: \xff\xfe\r\n".to_vec()),
        ("tab", b"x-request-id: a\tb\r\n".to_vec()),
        ("bare CR", b"x-request-id: a\rx-forged: 1\r\n".to_vec()),
        (
            "CRLF continuation",
            b"x-request-id: abc\r\n forged-fold\r\n".to_vec(),
        ),
        ("ansi", b"x-request-id: \x1b[31mred\r\n".to_vec()),
        ("10 KB", format!("x-request-id: {big}\r\n").into_bytes()),
        (
            "repeated, first bad",
            b"x-request-id: bad value\r\nx-request-id: good-2\r\n".to_vec(),
        ),
        (
            "correlation fallback",
            b"x-request-id: bad value\r\nx-correlation-id: corr-9\r\n".to_vec(),
        ),
    ];
    let mut reached = Vec::new();
    for (name, header) in &cases {
        let mut req = b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n".to_vec();
        req.extend_from_slice(header);
        req.extend_from_slice(b"\r\n");
        let head = raw(addr, &req).await;
        let status_ok = head.starts_with("HTTP/1.1 200");
        let status_rejected_by_http =
            head.starts_with("HTTP/1.1 400") || head.starts_with("HTTP/1.1 431");
        assert!(status_ok || status_rejected_by_http, "{name}: {head}");
        if status_ok {
            let id = head
                .lines()
                .find_map(|l| l.strip_prefix("x-request-id: "))
                .unwrap_or_else(|| panic!("{name}: no id in {head}"));
            match *name {
                "repeated, first bad" => assert_eq!(id, "good-2"),
                "correlation fallback" => assert_eq!(id, "corr-9"),
                // hyper may refuse the obsolete line folding (400) or unfold it; either way
                // the valid first part is all that can be taken
                "CRLF continuation" => assert!(id == "abc" || id.len() == 36, "{id}"),
                _ => assert_eq!(id.len(), 36, "{name}: fresh UUIDv7 expected, got {id}"),
            }
            reached.push((*name, id.to_owned()));
        }
    }
    // hyper itself refuses some (bytes it will not parse); the rest reach the middleware
    assert!(reached.len() >= 8, "only {reached:?} reached the service");
    // the server keeps serving
    let res = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(res.status(), 200);
    // every line is one valid JSON object (parsed() panics otherwise); nothing was forged
    let all = parsed();
    assert!(!all.iter().any(|l| l["message"] == "forged"));
    // each request that got a fresh ID says what it refused, on its own access line
    for (name, id) in &reached {
        let access = with_id(&all, id)
            .into_iter()
            .find(|l| l["event"] == "http_request")
            .cloned();
        let access = access.unwrap_or_else(|| panic!("{name}: no access line for {id}"));
        if id.len() == 36 {
            assert!(
                access.get("request_id.rejected").is_some(),
                "{name}: {access}"
            );
        }
    }
    let rejected: Vec<&str> = all
        .iter()
        .filter_map(|l| l.get("request_id.rejected").and_then(Value::as_str))
        .collect();
    assert!(!rejected.is_empty());
    for r in &rejected {
        assert!(
            r.len() <= 64 + '…'.len_utf8(),
            "rejected values are cut: {r}"
        );
        assert!(
            !r.chars().any(|c| c.is_control() || c == '"'),
            "sanitised: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_slowness_choose_the_access_level() {
    lines();
    let app = Router::new()
        .route(
            "/boom",
            get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(60)).await;
                "slow"
            }),
        )
        .layer(RequestIdLayer::new().with_slow_threshold(std::time::Duration::from_millis(50)));
    let addr = serve(app).await;
    let boom = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
    let boom_id = boom.headers()["x-request-id"].to_str().unwrap().to_owned();
    let slow = reqwest::get(format!("http://{addr}/slow")).await.unwrap();
    let slow_id = slow.headers()["x-request-id"].to_str().unwrap().to_owned();
    let all = parsed();
    let access = |id: &str| {
        with_id(&all, id)
            .into_iter()
            .find(|l| l["event"] == "http_request")
            .cloned()
            .unwrap()
    };
    let b = access(&boom_id);
    assert_eq!(
        (b["level"].as_str(), b["status_code"].as_u64()),
        (Some("ERROR"), Some(500))
    );
    let s = access(&slow_id);
    assert_eq!(s["level"], "WARN");
    assert_eq!(s["message"], "slow request");
    assert!(s["duration_ms"].as_f64().unwrap() >= 50.0);
    assert_eq!(s["threshold_ms"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_still_get_an_access_line() {
    use tower::{Layer, ServiceExt};
    lines();
    let never = tower::service_fn(|_req: http::Request<()>| async {
        std::future::pending::<Result<http::Response<()>, std::convert::Infallible>>().await
    });
    let svc = RequestIdLayer::new().layer(never);
    let req = http::Request::get("/stuck")
        .header("x-request-id", "cancel-1")
        .body(())
        .unwrap();
    let timed_out =
        tokio::time::timeout(std::time::Duration::from_millis(20), svc.oneshot(req)).await;
    assert!(timed_out.is_err());
    let all = parsed();
    let line = with_id(&all, "cancel-1")
        .into_iter()
        .find(|l| l["event"] == "http_request")
        .cloned()
        .expect("an access line for the cancelled request");
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["message"], "request cancelled");
    assert!(line["duration_ms"].as_f64().unwrap() >= 20.0);
    assert!(line.get("status_code").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_extensions_paths_and_methods() {
    use tower::{Layer, ServiceExt};
    lines();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = {
        let seen = seen.clone();
        tower::service_fn(move |req: http::Request<()>| {
            let seen = seen.clone();
            async move {
                let ext = req
                    .extensions()
                    .get::<strata_request_id::RequestId>()
                    .cloned();
                seen.lock().unwrap().push((req.headers().clone(), ext));
                let mut res = http::Response::new(());
                if req.uri().path() == "/own-header" {
                    res.headers_mut()
                        .insert("x-corr", http::HeaderValue::from_static("handler-set"));
                }
                Ok::<_, std::convert::Infallible>(res)
            }
        })
    };
    let corr = http::HeaderName::from_static("x-corr");
    let svc = RequestIdLayer::new()
        .with_headers([corr.clone()])
        .with_response_header(corr.clone())
        .layer(svc);

    // the ID comes from x-corr only; the request's x-corr is set to the ID in force
    let req = http::Request::get("/a")
        .header("x-corr", "bad value")
        .header("x-request-id", "not-read")
        .body(())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    let id = res.headers()["x-corr"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[0].0["x-corr"],
            id.as_str(),
            "handlers never see the refused value"
        );
        assert_eq!(seen[0].1.as_ref().unwrap().as_str(), id);
    }
    // a header the handler set is kept
    let req = http::Request::get("/own-header")
        .header("x-corr", "mine-1")
        .body(())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-corr"], "handler-set");
    // long paths are cut, odd methods are _OTHER, a request with no route has no route field
    let long = format!("/{}", "p".repeat(1000));
    let req = http::Request::builder()
        .method(http::Method::from_bytes(&b"X".repeat(200)).unwrap())
        .uri(long.as_str())
        .header("x-corr", "odd-1")
        .body(())
        .unwrap();
    svc.clone().oneshot(req).await.unwrap();
    let all = parsed();
    let line = with_id(&all, "odd-1")
        .into_iter()
        .find(|l| l["event"] == "http_request")
        .cloned()
        .unwrap();
    assert_eq!(line["method"], "_OTHER");
    let path = line["path"].as_str().unwrap();
    assert!(
        path.len() <= 256 + '…'.len_utf8() && path.ends_with('…'),
        "{path}"
    );
    assert!(line.get("route").is_none());
    let rejected = with_id(&all, &id)
        .into_iter()
        .find(|l| l["event"] == "http_request")
        .cloned()
        .unwrap();
    assert_eq!(rejected["request_id.rejected"], "bad value");
}
