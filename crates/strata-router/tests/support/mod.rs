//! Shared by the integration tests: a local HTTP receiver standing in for Slack, Discord,
//! PagerDuty and webhooks (it answers as each documents, or as a test scripts it).
#![allow(dead_code)] // each test binary uses its own part

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// What the receiver answers next.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Status(u16),
    RateLimited {
        header: &'static str,
    },
    DiscordRateLimited {
        seconds: f64,
    },
    /// Never answers (until the test ends).
    Hang,
}

#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) at: Instant,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) hits: Mutex<Vec<Hit>>,
    pub(crate) replies: Mutex<VecDeque<Reply>>,
    pub(crate) hang_all: std::sync::atomic::AtomicBool,
}

pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared::default());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        rt.spawn(async move { axum::serve(listener, app).await });
        Receiver {
            addr,
            shared,
            _rt: rt,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn then(&self, reply: Reply) -> &Self {
        self.shared.replies.lock().unwrap().push_back(reply);
        self
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    pub(crate) fn wait_for_hits(&self, n: usize) -> Vec<Hit> {
        wait_for(&format!("{n} requests at the receiver"), || {
            self.hits().len() >= n
        });
        self.hits()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let reply = if shared.hang_all.load(std::sync::atomic::Ordering::Relaxed) {
        Some(Reply::Hang)
    } else {
        shared.replies.lock().unwrap().pop_front()
    };
    match reply {
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Reply::RateLimited { header }) => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", header)], "rate_limited").into_response()
        }
        Some(Reply::DiscordRateLimited { seconds }) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(r#"{{"message":"You are being rate limited.","retry_after":{seconds},"global":false}}"#),
        )
            .into_response(),
        Some(Reply::Hang) => std::future::pending().await,
        // The documented success answers.
        None => match uri.path() {
            "/discord" => StatusCode::NO_CONTENT.into_response(),
            "/pagerduty" => (
                StatusCode::ACCEPTED,
                r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
            )
                .into_response(),
            _ => (StatusCode::OK, "ok").into_response(),
        },
    }
}

pub(crate) fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
