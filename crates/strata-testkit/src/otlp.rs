//! The in-process OTLP receiver and the black-hole collector.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;

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
    /// The span kind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
}

/// One log record as received, with its IDs in lower-case hex.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReceivedLog {
    /// The body as text (a structured body in its debug form), empty when there is none.
    pub body: String,
    /// The severity number: 1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–20 error, 21–24
    /// fatal, 0 unspecified.
    pub severity_number: i32,
    /// The severity text, as the exporter wrote it.
    pub severity_text: String,
    /// The hex of the trace ID as it arrived: 32 hex digits, or empty outside a trace.
    pub trace_id: String,
    /// The hex of the span ID as it arrived: 16 hex digits, or empty outside a span.
    pub span_id: String,
    /// The record's attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// All resource attributes, values as text.
    pub resource: BTreeMap<String, String>,
    /// The name of the instrumentation scope that emitted the record.
    pub scope_name: String,
    /// The event name, empty for a record that is not an event.
    pub event_name: String,
    /// When the event occurred, in nanoseconds since the Unix epoch; 0 when the exporter left it
    /// out.
    pub time_unix_nano: u64,
}

/// What kind of metric a [`ReceivedMetric`] is a data point of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// A gauge: the last value seen.
    Gauge,
    /// A sum: a counter when `monotonic`, an up-down counter otherwise.
    Sum {
        /// Whether the sum only ever goes up.
        monotonic: bool,
    },
    /// A histogram with explicit bucket bounds.
    Histogram,
    /// A histogram with exponential buckets; its buckets are not recorded.
    ExponentialHistogram,
    /// A summary; its quantiles are not recorded.
    Summary,
}

/// One metric data point as received, with the metric it belongs to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReceivedMetric {
    /// The metric's name.
    pub name: String,
    /// The metric's description.
    pub description: String,
    /// The metric's unit.
    pub unit: String,
    /// What kind of metric it is.
    pub kind: MetricKind,
    /// The data point's attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// A gauge's or sum's value; a histogram's or summary's sum (0 when it has none).
    pub value: f64,
    /// A histogram's or summary's count; 0 for a gauge or a sum.
    pub count: u64,
    /// A histogram's bucket counts; empty for other kinds.
    pub bucket_counts: Vec<u64>,
    /// A histogram's bucket bounds; empty for other kinds.
    pub explicit_bounds: Vec<f64>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// All resource attributes, values as text.
    pub resource: BTreeMap<String, String>,
    /// When the data point was taken, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
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

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|a| (a.key.clone(), text(a.value.as_ref())))
        .collect()
}

/// A resource's attributes, and its `service.name`.
fn resource_of(r: Option<&Resource>) -> (BTreeMap<String, String>, String) {
    let resource = r.map(|r| attributes(&r.attributes)).unwrap_or_default();
    let service_name = resource.get("service.name").cloned().unwrap_or_default();
    (resource, service_name)
}

#[allow(clippy::cast_precision_loss)]
fn number(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(n)) => n as f64,
        None => 0.0,
    }
}

/// Everything received so far.
#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    logs: Vec<ReceivedLog>,
    metrics: Vec<ReceivedMetric>,
    requests: u64,
    /// The headers (gRPC metadata) of each accepted request.
    headers: Vec<BTreeMap<String, String>>,
}

/// One OTLP export request type: how it arrives as JSON, what it is recorded as, and where.
trait Signal: prost::Message + Default + Send + 'static {
    /// What one item of the request is recorded as.
    type Item;
    /// The response to an accepted request.
    type Response: prost::Message + Default;
    /// Decodes an OTLP/JSON body.
    fn from_json(body: &[u8]) -> serde_json::Result<Self>;
    /// The request's items, flattened.
    fn items(self) -> Vec<Self::Item>;
    /// Where the items are recorded.
    fn list(received: &mut Received) -> &mut Vec<Self::Item>;
}

impl Signal for ExportTraceServiceRequest {
    type Item = ReceivedSpan;
    type Response = ExportTraceServiceResponse;

    fn from_json(body: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }

    fn items(self) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for rs in self.resource_spans {
            let (resource, service_name) = resource_of(rs.resource.as_ref());
            for ss in rs.scope_spans {
                out.extend(ss.spans.into_iter().map(|s| ReceivedSpan {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    attributes: attributes(&s.attributes),
                    service_name: service_name.clone(),
                    resource: resource.clone(),
                    status_code: s.status.as_ref().map_or(0, |st| st.code),
                    status_message: s.status.map(|st| st.message).unwrap_or_default(),
                    kind: s.kind,
                }));
            }
        }
        out
    }

    fn list(received: &mut Received) -> &mut Vec<ReceivedSpan> {
        &mut received.spans
    }
}

impl Signal for ExportLogsServiceRequest {
    type Item = ReceivedLog;
    type Response = ExportLogsServiceResponse;

    fn from_json(body: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }

    fn items(self) -> Vec<ReceivedLog> {
        let mut out = Vec::new();
        for rl in self.resource_logs {
            let (resource, service_name) = resource_of(rl.resource.as_ref());
            for sl in rl.scope_logs {
                let scope_name = sl.scope.map(|s| s.name).unwrap_or_default();
                out.extend(sl.log_records.into_iter().map(|l| ReceivedLog {
                    body: text(l.body.as_ref()),
                    severity_number: l.severity_number,
                    severity_text: l.severity_text,
                    trace_id: hex(&l.trace_id),
                    span_id: hex(&l.span_id),
                    attributes: attributes(&l.attributes),
                    service_name: service_name.clone(),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    event_name: l.event_name,
                    time_unix_nano: l.time_unix_nano,
                }));
            }
        }
        out
    }

    fn list(received: &mut Received) -> &mut Vec<ReceivedLog> {
        &mut received.logs
    }
}

impl Signal for ExportMetricsServiceRequest {
    type Item = ReceivedMetric;
    type Response = ExportMetricsServiceResponse;

    fn from_json(body: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }

    fn items(self) -> Vec<ReceivedMetric> {
        let mut out = Vec::new();
        for rm in self.resource_metrics {
            let (resource, service_name) = resource_of(rm.resource.as_ref());
            for m in rm.scope_metrics.into_iter().flat_map(|sm| sm.metrics) {
                let template = ReceivedMetric {
                    name: m.name,
                    description: m.description,
                    unit: m.unit,
                    kind: MetricKind::Gauge,
                    attributes: BTreeMap::new(),
                    value: 0.0,
                    count: 0,
                    bucket_counts: Vec::new(),
                    explicit_bounds: Vec::new(),
                    service_name: service_name.clone(),
                    resource: resource.clone(),
                    time_unix_nano: 0,
                };
                // The metric with one data point's kind, attributes and time.
                let point = |kind, kvs: &[KeyValue], time_unix_nano| ReceivedMetric {
                    kind,
                    attributes: attributes(kvs),
                    time_unix_nano,
                    ..template.clone()
                };
                match m.data {
                    Some(metric::Data::Gauge(g)) => {
                        out.extend(g.data_points.iter().map(|p| ReceivedMetric {
                            value: number(p),
                            ..point(MetricKind::Gauge, &p.attributes, p.time_unix_nano)
                        }));
                    }
                    Some(metric::Data::Sum(s)) => {
                        let kind = MetricKind::Sum {
                            monotonic: s.is_monotonic,
                        };
                        out.extend(s.data_points.iter().map(|p| ReceivedMetric {
                            value: number(p),
                            ..point(kind, &p.attributes, p.time_unix_nano)
                        }));
                    }
                    Some(metric::Data::Histogram(h)) => {
                        out.extend(h.data_points.into_iter().map(|p| ReceivedMetric {
                            value: p.sum.unwrap_or(0.0),
                            count: p.count,
                            bucket_counts: p.bucket_counts,
                            explicit_bounds: p.explicit_bounds,
                            ..point(MetricKind::Histogram, &p.attributes, p.time_unix_nano)
                        }));
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        out.extend(h.data_points.iter().map(|p| ReceivedMetric {
                            value: p.sum.unwrap_or(0.0),
                            count: p.count,
                            ..point(
                                MetricKind::ExponentialHistogram,
                                &p.attributes,
                                p.time_unix_nano,
                            )
                        }));
                    }
                    Some(metric::Data::Summary(s)) => {
                        out.extend(s.data_points.iter().map(|p| ReceivedMetric {
                            value: p.sum,
                            count: p.count,
                            ..point(MetricKind::Summary, &p.attributes, p.time_unix_nano)
                        }));
                    }
                    None => {}
                }
            }
        }
        out
    }

    fn list(received: &mut Received) -> &mut Vec<ReceivedMetric> {
        &mut received.metrics
    }
}

/// What was received, and a condition variable signalled whenever something is recorded.
#[derive(Default)]
struct Store {
    received: Mutex<Received>,
    changed: Condvar,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the items of one export request and its headers, and wakes the waiters.
    fn take<S: Signal>(&self, request: S, headers: &axum::http::HeaderMap) {
        let items = request.items();
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut received = self.lock();
        S::list(&mut received).extend(items);
        received.requests += 1;
        received.headers.push(headers);
        drop(received);
        self.changed.notify_all();
    }

    /// Waits until `done` holds for what was received, or `timeout` passed; then returns `then`
    /// of what was received.
    fn wait<T>(
        &self,
        timeout: Duration,
        done: impl Fn(&Received) -> bool,
        then: impl FnOnce(&Received) -> T,
    ) -> T {
        let (received, _) = self
            .changed
            .wait_timeout_while(self.lock(), timeout, |r: &mut Received| !done(r))
            .unwrap_or_else(|e| e.into_inner());
        then(&received)
    }
}

/// The gRPC services: traces, logs and metrics into one store.
struct Collector(Arc<Store>);

impl Collector {
    #[allow(clippy::unnecessary_wraps)]
    fn record<S: Signal>(
        &self,
        request: tonic::Request<S>,
    ) -> Result<tonic::Response<S::Response>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.0.take(request.into_inner(), &headers);
        Ok(tonic::Response::new(S::Response::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record(request)
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.record(request)
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.record(request)
    }
}

/// OTLP/HTTP `POST /v1/traces`, `/v1/logs` and `/v1/metrics`: JSON bodies when the content
/// type says `application/json`, protobuf otherwise, gzip-compressed when the content encoding
/// says so; 400 with the reason for a body that does not decode.
async fn http_export<S: Signal>(
    axum::extract::State(store): axum::extract::State<Arc<Store>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::{StatusCode, header::CONTENT_TYPE};
    use axum::response::IntoResponse as _;
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let gzip = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = if gzip {
        let mut out = Vec::new();
        match std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body.as_ref()), &mut out)
        {
            Ok(_) => axum::body::Bytes::from(out),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("gzip: {e}")).into_response(),
        }
    } else {
        body
    };
    let request = if json {
        S::from_json(&body).map_err(|e| e.to_string())
    } else {
        <S as prost::Message>::decode(body.as_ref()).map_err(|e| e.to_string())
    };
    match request {
        Ok(request) => {
            store.take(request, &headers);
            if json {
                (StatusCode::OK, [(CONTENT_TYPE, "application/json")], "{}").into_response()
            } else {
                let response = prost::Message::encode_to_vec(&S::Response::default());
                (
                    StatusCode::OK,
                    [(CONTENT_TYPE, "application/x-protobuf")],
                    response,
                )
                    .into_response()
            }
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

/// Stops a receiver's or black hole's runtime: waiting (so its ports are free when this
/// returns) unless dropped inside an async runtime, where waiting would panic.
fn shut_down(rt: tokio::runtime::Runtime) {
    if tokio::runtime::Handle::try_current().is_ok() {
        rt.shutdown_background();
    } else {
        rt.shutdown_timeout(Duration::from_secs(2));
    }
}

/// A runtime with one worker thread, for a receiver or a black hole.
fn runtime(name: &str) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
}

/// A listener on `addr` with `SO_REUSEADDR`, so that an address just given up can be bound again
/// at once. To be called within a runtime's context.
fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// 127.0.0.1, on a port the system picks.
fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// An OTLP receiver: traces, logs and metrics over gRPC on one port and over HTTP on another,
/// running on a runtime of its own until dropped. Dropping it closes both listeners.
pub struct OtlpReceiver {
    addr: SocketAddr,
    http_addr: SocketAddr,
    store: Arc<Store>,
    shutdown: tokio::sync::watch::Sender<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.addr)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// Starts the receiver on 127.0.0.1, on ports the system picks.
    ///
    /// # Errors
    ///
    /// When the runtime or the listeners cannot be set up.
    pub fn start() -> io::Result<OtlpReceiver> {
        OtlpReceiver::start_at(localhost(), localhost())
    }

    /// Starts the receiver with gRPC on `grpc` and HTTP on `http` — a port 0 lets the system
    /// pick — for instance the addresses of a receiver just dropped, to restart it after an
    /// outage.
    ///
    /// # Errors
    ///
    /// When the runtime or the listeners cannot be set up, for instance when an address is in use.
    pub fn start_at(grpc: SocketAddr, http: SocketAddr) -> io::Result<OtlpReceiver> {
        let runtime = runtime("strata-testkit-otlp")?;
        let (grpc_listener, http_listener) = {
            let _context = runtime.enter();
            (listen(grpc)?, listen(http)?)
        };
        let addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let store = Arc::new(Store::default());
        let (shutdown, stop) = tokio::sync::watch::channel(());
        let stopped = |mut stop: tokio::sync::watch::Receiver<()>| async move {
            let _ = stop.changed().await;
        };
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                axum::routing::post(http_export::<ExportTraceServiceRequest>),
            )
            .route(
                "/v1/logs",
                axum::routing::post(http_export::<ExportLogsServiceRequest>),
            )
            .route(
                "/v1/metrics",
                axum::routing::post(http_export::<ExportMetricsServiceRequest>),
            )
            .with_state(Arc::clone(&store));
        let http_stopped = stopped(stop.clone());
        runtime.spawn(async move {
            axum::serve(http_listener, app)
                .with_graceful_shutdown(http_stopped)
                .await
        });
        let gzip = tonic::codec::CompressionEncoding::Gzip;
        let traces = TraceServiceServer::new(Collector(Arc::clone(&store))).accept_compressed(gzip);
        let logs = LogsServiceServer::new(Collector(Arc::clone(&store))).accept_compressed(gzip);
        let metrics =
            MetricsServiceServer::new(Collector(Arc::clone(&store))).accept_compressed(gzip);
        runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(grpc_listener);
            tonic::transport::Server::builder()
                .add_service(traces)
                .add_service(logs)
                .add_service(metrics)
                .serve_with_incoming_shutdown(incoming, stopped(stop))
                .await
        });
        Ok(OtlpReceiver {
            addr,
            http_addr,
            store,
            shutdown,
            runtime: Some(runtime),
        })
    }

    /// Where the gRPC endpoint listens: `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address of the gRPC listener.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the HTTP listener.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The OTLP/HTTP traces endpoint: `http://127.0.0.1:PORT/v1/traces`.
    pub fn http_traces_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.http_addr)
    }

    /// The OTLP/HTTP logs endpoint: `http://127.0.0.1:PORT/v1/logs`.
    pub fn http_logs_endpoint(&self) -> String {
        format!("http://{}/v1/logs", self.http_addr)
    }

    /// The OTLP/HTTP metrics endpoint: `http://127.0.0.1:PORT/v1/metrics`.
    pub fn http_metrics_endpoint(&self) -> String {
        format!("http://{}/v1/metrics", self.http_addr)
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.lock().spans.clone()
    }

    /// The log records received so far.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.store.lock().logs.clone()
    }

    /// The metric data points received so far, in the order they arrived.
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.store.lock().metrics.clone()
    }

    /// How many export requests arrived and were accepted: traces, logs and metrics, over gRPC
    /// and HTTP.
    pub fn requests(&self) -> u64 {
        self.store.lock().requests
    }

    /// The headers (gRPC metadata) of each accepted export request, in arrival order, names
    /// in lower case: to check the headers an exporter was configured with.
    pub fn request_headers(&self) -> Vec<BTreeMap<String, String>> {
        self.store.lock().headers.clone()
    }

    /// Waits until at least `n` spans arrived, or `timeout` passed; returns what arrived.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        self.store
            .wait(timeout, |r| r.spans.len() >= n, |r| r.spans.clone())
    }

    /// Waits until at least `n` log records arrived, or `timeout` passed; returns what arrived.
    pub fn wait_for_logs(&self, n: usize, timeout: Duration) -> Vec<ReceivedLog> {
        self.store
            .wait(timeout, |r| r.logs.len() >= n, |r| r.logs.clone())
    }

    /// Waits until a data point of the metric `name` arrived, or `timeout` passed; returns the
    /// latest one received (the last of the latest request), or `None`.
    pub fn wait_for_metric(&self, name: &str, timeout: Duration) -> Option<ReceivedMetric> {
        self.store.wait(
            timeout,
            |r| r.metrics.iter().any(|m| m.name == name),
            |r| r.metrics.iter().rev().find(|m| m.name == name).cloned(),
        )
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.shutdown.send(());
        if let Some(rt) = self.runtime.take() {
            // Drops the servers' tasks, and with them the listeners and connections.
            shut_down(rt);
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// A collector that hangs: it accepts TCP connections on 127.0.0.1 and reads what arrives, but
/// never writes a byte back, so every request to it waits until the client gives up. Dropping
/// it closes the listener and the connections.
pub struct BlackHole {
    addr: SocketAddr,
    counters: Arc<Counters>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for BlackHole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlackHole")
            .field("addr", &self.addr)
            .field("connections", &self.connections())
            .field("bytes_received", &self.bytes_received())
            .finish_non_exhaustive()
    }
}

impl BlackHole {
    /// Starts listening on 127.0.0.1, on a port the system picks.
    ///
    /// # Errors
    ///
    /// When the runtime or the listener cannot be set up.
    pub fn start() -> io::Result<BlackHole> {
        let runtime = runtime("strata-testkit-blackhole")?;
        let listener = {
            let _context = runtime.enter();
            listen(localhost())?
        };
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let accepted = Arc::clone(&counters);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, say: try again a little later.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                accepted.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(swallow(stream, Arc::clone(&accepted)));
            }
        });
        Ok(BlackHole {
            addr,
            counters,
            runtime: Some(runtime),
        })
    }

    /// Where it listens: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// How many bytes it read so far, over all connections.
    pub fn bytes_received(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }
}

/// Reads and discards what arrives on `stream` until the peer closes it.
async fn swallow(stream: tokio::net::TcpStream, counters: Arc<Counters>) {
    let mut buf = vec![0_u8; 16 * 1024];
    while stream.readable().await.is_ok() {
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Drops the tasks, and with them the listener and the connections.
            shut_down(rt);
        }
    }
}
