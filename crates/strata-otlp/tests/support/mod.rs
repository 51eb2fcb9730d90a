//! Shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own part

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::prelude::*;

/// An in-memory writer for strata-json lines.
#[derive(Clone, Default)]
pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    /// The JSON lines written so far, parsed.
    pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A subscriber with strata's span store, `otlp`'s layer and strata-json lines written to the
/// returned buffer.
pub(crate) fn with_json_lines(
    otlp: &strata_otlp::OtlpGuard,
) -> (impl tracing::Subscriber + Send + Sync + 'static, Buf) {
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer())
        .with(strata_json::layer().with_writer(move || out.clone()));
    (subscriber, buf)
}

/// A gRPC collector that accepts every export and says it rejected one span of each (an OTLP
/// partial success), on a runtime of its own: the runtime (shut it down in the end) and its
/// address.
pub(crate) fn picky_collector() -> (tokio::runtime::Runtime, std::net::SocketAddr) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };

    struct Picky;

    #[tonic::async_trait]
    impl TraceService for Picky {
        async fn export(
            &self,
            _request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: 1,
                    error_message: "span name too long".to_owned(),
                }),
            }))
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Picky))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (rt, addr)
}

/// Runs `f` with a subscriber of strata's span store and `otlp`'s layers as this thread's
/// default.
pub(crate) fn traced<R>(otlp: &strata_otlp::OtlpGuard, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer());
    tracing::subscriber::with_default(subscriber, f)
}

/// The spans and the log records in OTLP/JSON lines (the local file's format), in file order.
pub(crate) fn spans_and_records(text: &str) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let docs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let all = |outer: &str, scoped: &str, items: &str| -> Vec<serde_json::Value> {
        docs.iter()
            .filter_map(|d| d[outer].as_array())
            .flatten()
            .flat_map(|r| r[scoped].as_array().cloned().unwrap_or_default())
            .flat_map(|s| s[items].as_array().cloned().unwrap_or_default())
            .collect()
    };
    (
        all("resourceSpans", "scopeSpans", "spans"),
        all("resourceLogs", "scopeLogs", "logRecords"),
    )
}
