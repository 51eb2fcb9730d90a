//! What tests need with strata: an in-process OTLP receiver, built on the official
//! `opentelemetry-proto` definitions with tonic, that records the spans a program exports so a
//! test can wait for them and assert on them.
//!
//! ```no_run
//! use std::time::Duration;
//! use strata_testkit::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start()?;
//! // point the exporter at receiver.grpc_endpoint() ("http://127.0.0.1:PORT"), run the code…
//! let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
//! assert!(spans.iter().any(|s| s.name == "request"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Traces arrive over OTLP/gRPC ([`OtlpReceiver::grpc_endpoint`]) or OTLP/HTTP with protobuf or
//! JSON bodies ([`OtlpReceiver::http_traces_endpoint`]). Logs and metrics come with the rest of
//! strata-otlp.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

/// One span as received, with its IDs in lower-case hex.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    /// The span's attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// All resource attributes, values as text.
    pub resource: BTreeMap<String, String>,
    /// The status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// The status message.
    pub status_message: String,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::DoubleValue(n)) => n.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[derive(Default)]
struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
    requests: Mutex<u64>,
}

struct Traces(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Store {
    /// Records the spans of one export request.
    fn take(&self, request: ExportTraceServiceRequest) {
        let mut out = Vec::new();
        for rs in request.resource_spans {
            let resource: BTreeMap<String, String> = rs
                .resource
                .as_ref()
                .map(|r| {
                    r.attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(a.value.as_ref())))
                        .collect()
                })
                .unwrap_or_default();
            let service_name = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(ReceivedSpan {
                        name: s.name,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        attributes: s
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(a.value.as_ref())))
                            .collect(),
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        status_code: s.status.as_ref().map_or(0, |st| st.code),
                        status_message: s.status.map(|st| st.message).unwrap_or_default(),
                    });
                }
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(out);
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
}

/// OTLP/HTTP `POST /v1/traces`: protobuf (`application/x-protobuf`) or JSON bodies.
async fn http_traces(
    axum::extract::State(store): axum::extract::State<Arc<Store>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    use prost::Message as _;
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(body.as_ref()).map_err(|e| e.to_string())
    };
    match request {
        Ok(r) => {
            store.take(r);
            let response = ExportTraceServiceResponse {
                partial_success: None,
            };
            (axum::http::StatusCode::OK, response.encode_to_vec())
        }
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.into_bytes()),
    }
}

/// An OTLP receiver on 127.0.0.1 (an ephemeral port), running on a runtime of its own until
/// dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    http_addr: SocketAddr,
    store: Arc<Store>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// Starts the receiver (gRPC traces).
    ///
    /// # Errors
    ///
    /// When the runtime or the listener cannot be set up.
    pub fn start() -> std::io::Result<OtlpReceiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strata-testkit-otlp")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let http = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let http_addr = http.local_addr()?;
        let store = Arc::new(Store::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(Traces(Arc::clone(&store)));
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .with_state(Arc::clone(&store));
        runtime.spawn(async move { axum::serve(http, app).await });
        runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(OtlpReceiver {
            addr,
            http_addr,
            store,
            shutdown: Some(tx),
            runtime: Some(runtime),
        })
    }

    /// Where the gRPC endpoint listens: `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OTLP/HTTP traces endpoint: `http://127.0.0.1:PORT/v1/traces`.
    pub fn http_traces_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.http_addr)
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store
            .spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many export requests arrived.
    pub fn requests(&self) -> u64 {
        *self
            .store
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until at least `n` spans arrived, or `timeout` passed; returns what arrived.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
