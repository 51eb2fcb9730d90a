//! The service the fault tests run: an axum app with every strata layer on, configured by the
//! `strata.toml` in its working directory.
//!
//! ```text
//! faults-service serve              # GET /work (200), GET /fail?kind=K (a captured ERROR, 500)
//! faults-service crash main|task|blocking
//! faults-service hostile            # logs example_faults::HOSTILE_EVENTS hostile events
//! ```
//!
//! `serve` writes `ready.json` (`{"addr", "metrics", "pid"}`) once it listens and shuts down
//! gracefully on SIGTERM, then drops strata's guard (which flushes every output). `crash`
//! logs [`example_faults::CRASH_LINES`] INFO lines and one captured ERROR, then panics on the
//! main thread, in a tokio task or in a blocking task.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use strata_request_id::RequestIdLayer;
use tracing::{Instrument, info, info_span};

/// The error `/fail` reports: an external dependency refusing, with a cause.
#[derive(Debug)]
struct PaymentError {
    kind: String,
    source: std::io::Error,
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the payment gateway refused the charge ({})", self.kind)
    }
}

impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

async fn work() -> &'static str {
    async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        info!(rows = 3_u64, "query done");
    }
    .instrument(info_span!("db.query", db.system = "postgresql"))
    .await;
    info!(items = 2_u64, "work done");
    "ok"
}

#[derive(serde::Deserialize)]
struct Fail {
    kind: Option<String>,
}

async fn fail(Query(q): Query<Fail>) -> StatusCode {
    let kind = q.kind.unwrap_or_else(|| "declined".to_owned());
    let err = PaymentError {
        source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "gateway refused"),
        kind: kind.clone(),
    };
    tracing::error!(
        error = &err as &dyn std::error::Error,
        "payment failed: {kind}"
    );
    StatusCode::INTERNAL_SERVER_ERROR
}

fn init() -> strata::Guard {
    match strata::builder().with_service("faults").try_init() {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("faults-service: {e}");
            std::process::exit(2);
        }
    }
}

async fn serve() {
    let guard = init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let ready = serde_json::json!({
        "addr": addr.to_string(),
        "metrics": guard.metrics_addr().map(|a| a.to_string()),
        "pid": std::process::id(),
    });
    // Written whole, then renamed: the harness never reads half a file.
    std::fs::write("ready.json.tmp", ready.to_string()).expect("write ready.json");
    std::fs::rename("ready.json.tmp", "ready.json").expect("rename ready.json");
    info!(%addr, "listening");
    let app = Router::new()
        .route("/work", get(work))
        .route("/fail", get(fail))
        .layer(RequestIdLayer::new());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
            info!("SIGTERM: finishing the requests in flight");
        })
        .await
        .expect("serve");
    info!("stopped serving");
    drop(guard);
}

async fn crash(kind: &str) {
    // Held, never dropped: only the panic hook's flush can save what was logged.
    let guard = init();
    for i in 0..example_faults::CRASH_LINES {
        info_span!("job", job_id = i).in_scope(|| info!(i, "line before the crash"));
    }
    let err = PaymentError {
        kind: "before the crash".to_owned(),
        source: std::io::Error::other("gateway refused"),
    };
    tracing::error!(error = &err as &dyn std::error::Error, "payment failed");
    match kind {
        "main" => panic!("boom on main"),
        "task" => {
            let joined = tokio::spawn(async { panic!("boom in a task") }).await;
            assert!(joined.is_err(), "the task panicked");
        }
        "blocking" => {
            let joined = tokio::task::spawn_blocking(|| panic!("boom in a blocking task")).await;
            assert!(joined.is_err(), "the blocking task panicked");
        }
        other => {
            eprintln!("faults-service: unknown crash {other:?} (main, task or blocking)");
            std::process::exit(2);
        }
    }
    // A task's panic does not end the process (unless panic = "abort"): the guard flushes.
    drop(guard);
}

/// A value whose `Debug` nests `depth` levels deep.
#[derive(Debug)]
enum Nest {
    Leaf,
    // Read only through `Debug` (which dead-code analysis does not count).
    Node(#[allow(dead_code)] Box<Nest>),
}

/// An error whose chain is `depth` long, every message hostile.
#[derive(Debug)]
struct Chain(usize);

impl std::fmt::Display for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link {}\r\n\x1b[31mforged ERROR\x1b[0m\u{202e}", self.0)
    }
}

impl std::error::Error for Chain {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Leaked: a test program, a bounded chain.
        (self.0 > 0).then(|| &*Box::leak(Box::new(Chain(self.0 - 1))) as _)
    }
}

/// Logs the hostile events, each once: forged lines, terminal escapes, bidi overrides, a 1 MB
/// value, invalid UTF-8, deep nesting, a long hostile error chain, a hostile field name.
fn hostile() {
    let guard = init();
    let forged = "ok\r\n{\"level\":\"CRITICAL\",\"message\":\"forged\"}\n2026-12-05T00:00:00Z CRITICAL forged";
    info!(user = forged, "login {forged}");
    info!(
        term = "a\0b\x07c\x1b[2J\x1b]8;;http://evil.example\x07link\x1b]8;;\x07\u{9b}31m",
        "escapes"
    );
    info!(
        filename = "invoice\u{202e}fdp.exe\u{2066}x\u{2069}\u{2028}next\u{2029}\u{200f}",
        "bidi"
    );
    let huge = "x".repeat(1 << 20);
    info!(huge = huge.as_str(), "a 1 MB value");
    info!(bytes = &b"ok\xff\xfe\xc3\x28end"[..], "invalid UTF-8");
    let mut nest = Nest::Leaf;
    for _ in 0..1000 {
        nest = Nest::Node(Box::new(nest));
    }
    info!(nest = ?nest, "deeply nested");
    let chain = Chain(100);
    tracing::error!(error = &chain as &dyn std::error::Error, "a hostile chain");
    strata_testkit::corpus::emit(
        tracing::Level::INFO,
        "evil\nname=\"x\" \x1b[2J",
        "value",
        "a hostile field name",
    );
    drop(guard);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("serve"), None) => runtime.block_on(serve()),
        (Some("crash"), Some(kind)) => runtime.block_on(crash(kind)),
        (Some("hostile"), None) => hostile(),
        _ => {
            eprintln!("usage: faults-service serve | crash main|task|blocking | hostile");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
