//! strata's span and log record exporters: each batch encoded by [`crate::wire`] into one buffer
//! on the export thread, then sent as it is — over gRPC (tonic, with a pass-through codec) or
//! HTTP/protobuf (the shared blocking client) — with the retries the OTLP specification asks
//! for: up to 3 more attempts on a transient failure (gRPC `UNAVAILABLE`, `CANCELLED`,
//! `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `DATA_LOSS`; HTTP 429, 502, 503, 504; a
//! connection or timeout error), 100 ms apart and doubling (or what `Retry-After` says, at most
//! 1.6 s). The bytes are built once, so a retry costs no copy of the batch.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::HeaderMap;
use http::uri::PathAndQuery;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::bytes::{Buf as _, BufMut as _, Bytes};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;

use crate::OtlpError;
use crate::batch::Counters;
use crate::wire::{self, EncodedResource};

const RETRIES: u32 = 3;
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);

/// Sends already-encoded export requests of one signal.
#[derive(Debug)]
pub(crate) struct Sender {
    kind: Kind,
    timeout: Duration,
    /// The endpoint without credentials, for error messages.
    shown: String,
}

#[derive(Debug)]
enum Kind {
    Grpc {
        client: tonic::client::Grpc<Channel>,
        path: PathAndQuery,
        metadata: MetadataMap,
    },
    Http {
        client: reqwest::blocking::Client,
        url: String,
        headers: HeaderMap,
        gzip: bool,
    },
}

/// Why an attempt failed, and whether another may succeed.
struct Failure {
    message: String,
    retry: bool,
    /// The server's `Retry-After`.
    after: Option<Duration>,
}

impl Sender {
    /// A gRPC sender to `endpoint`'s `method` (built inside the exporter runtime's context: the
    /// channel connects lazily, on that runtime).
    pub(crate) fn grpc(
        endpoint: &str,
        method: &'static str,
        timeout: Duration,
        gzip: bool,
        headers: &HeaderMap,
    ) -> Result<Sender, OtlpError> {
        let shown = crate::config::without_userinfo(endpoint);
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|_| OtlpError::Invalid {
                setting: "endpoint".to_owned(),
                value: shown.clone(),
                expected: "an http:// URL",
            })?
            .timeout(timeout)
            .connect_lazy();
        let mut client = tonic::client::Grpc::new(channel);
        if gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        let mut metadata = MetadataMap::new();
        for (k, v) in grpc_metadata(headers)? {
            metadata.insert(k, v);
        }
        Ok(Sender {
            kind: Kind::Grpc {
                client,
                path: PathAndQuery::from_static(method),
                metadata,
            },
            timeout,
            shown,
        })
    }

    /// An HTTP/protobuf sender posting to `url` with `client`.
    pub(crate) fn http(
        client: reqwest::blocking::Client,
        url: &str,
        timeout: Duration,
        gzip: bool,
        headers: HeaderMap,
    ) -> Sender {
        Sender {
            shown: crate::config::without_userinfo(url),
            kind: Kind::Http {
                client,
                url: url.to_owned(),
                headers,
                gzip,
            },
            timeout,
        }
    }

    /// Sends `body`, retrying transient failures; the collector's response body.
    async fn send(&self, body: Vec<u8>) -> Result<Bytes, OTelSdkError> {
        let body = Bytes::from(body);
        let mut delay = FIRST_DELAY;
        let mut attempt = 0;
        loop {
            let failure = match self.attempt(body.clone()).await {
                Ok(response) => return Ok(response),
                Err(f) => f,
            };
            if !failure.retry || attempt == RETRIES {
                return Err(OTelSdkError::InternalFailure(failure.message));
            }
            attempt += 1;
            let wait = failure.after.unwrap_or(delay).min(MAX_DELAY);
            match self.kind {
                Kind::Grpc { .. } => tokio::time::sleep(wait).await,
                // The HTTP client blocks its (export) thread anyway.
                Kind::Http { .. } => std::thread::sleep(wait),
            }
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    async fn attempt(&self, body: Bytes) -> Result<Bytes, Failure> {
        match &self.kind {
            Kind::Grpc {
                client,
                path,
                metadata,
            } => {
                let mut client = client.clone();
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                request.set_timeout(self.timeout);
                let call = async {
                    client
                        .ready()
                        .await
                        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    client
                        .unary::<_, Bytes, _>(request, path.clone(), Raw)
                        .await
                };
                match tokio::time::timeout(self.timeout, call).await {
                    Ok(Ok(response)) => Ok(response.into_inner()),
                    Ok(Err(status)) => Err(self.grpc_failure(&status)),
                    Err(_) => Err(Failure {
                        message: format!("{}: no answer within {:?}", self.shown, self.timeout),
                        retry: true,
                        after: None,
                    }),
                }
            }
            Kind::Http {
                client,
                url,
                headers,
                gzip,
            } => {
                let mut request = client
                    .post(url)
                    .timeout(self.timeout)
                    .headers(headers.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf");
                let body = if *gzip {
                    request = request.header(http::header::CONTENT_ENCODING, "gzip");
                    let mut z = flate2::write::GzEncoder::new(
                        Vec::with_capacity(body.len() / 4),
                        flate2::Compression::fast(),
                    );
                    z.write_all(&body)
                        .and_then(|()| z.finish())
                        .map_or(body, Bytes::from)
                } else {
                    body
                };
                let response = request.body(body).send().map_err(|e| Failure {
                    retry: e.is_connect() || e.is_timeout() || e.is_request(),
                    // Never the URL: it may carry a password.
                    message: format!("{}: {}", self.shown, e.without_url()),
                    after: None,
                })?;
                let status = response.status();
                if status.is_success() {
                    // The response (a partial success, if any), at most 4 MiB of it.
                    let mut out = Vec::new();
                    let _ = std::io::Read::read_to_end(
                        &mut std::io::Read::take(response, 4 << 20),
                        &mut out,
                    );
                    return Ok(Bytes::from(out));
                }
                let after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Err(Failure {
                    message: format!("{}: HTTP {status}", self.shown),
                    retry: matches!(status.as_u16(), 429 | 502 | 503 | 504),
                    after,
                })
            }
        }
    }

    fn grpc_failure(&self, status: &tonic::Status) -> Failure {
        use tonic::Code;
        Failure {
            message: format!("{}: {:?}: {}", self.shown, status.code(), status.message()),
            retry: matches!(
                status.code(),
                Code::Unavailable
                    | Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::DataLoss
            ) || transport_error(status),
            after: None,
        }
    }
}

/// `headers` as gRPC metadata: ASCII names (not `-bin`) and printable ASCII values, or an
/// error naming the header (never its value: headers carry credentials).
pub(crate) fn grpc_metadata(
    headers: &HeaderMap,
) -> Result<Vec<(AsciiMetadataKey, AsciiMetadataValue)>, OtlpError> {
    let invalid = |value: String, expected| OtlpError::Invalid {
        setting: "headers".to_owned(),
        value,
        expected,
    };
    headers
        .iter()
        .map(|(name, value)| {
            let key = AsciiMetadataKey::from_bytes(name.as_str().as_bytes()).map_err(|_| {
                invalid(
                    name.to_string(),
                    "an ASCII gRPC metadata name (not ending in -bin)",
                )
            })?;
            let value = AsciiMetadataValue::try_from(value.as_bytes()).map_err(|_| {
                invalid(
                    format!("{name}=<value hidden>"),
                    "a printable ASCII gRPC metadata value",
                )
            })?;
            Ok((key, value))
        })
        .collect()
}

/// Whether the call failed in the connection, not at the collector: tonic says `UNKNOWN:
/// transport error` when a connection closes before answering (a collector restarting).
fn transport_error(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Sends the encoded request as the message, and gives the response's as it is.
#[derive(Debug, Clone, Copy)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Counts what a collector's response says it rejected: field 1 of both
/// `ExportTraceServiceResponse` and `ExportLogsServiceResponse` is a partial success whose
/// field 1 is the number rejected and field 2 the reason. A response that does not parse
/// counts nothing (the request itself was accepted).
fn partial_success(response: &[u8], counters: &Counters) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let Ok(parsed) = <ExportTraceServiceResponse as prost::Message>::decode(response) else {
        return;
    };
    let Some(partial) = parsed.partial_success else {
        return;
    };
    if partial.rejected_spans > 0 {
        counters
            .rejected
            .fetch_add(partial.rejected_spans.unsigned_abs(), Ordering::Relaxed);
        if !partial.error_message.is_empty() {
            *counters
                .rejected_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(partial.error_message);
        }
    }
}

/// The gRPC method of each signal.
pub(crate) const TRACES_METHOD: &str =
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
pub(crate) const LOGS_METHOD: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// One signal's exporter over OTLP: spans encoded by [`wire::traces`], log records by
/// [`wire::logs`], sent by its [`Sender`], what the collector rejects counted in `counters`.
#[derive(Debug)]
pub(crate) struct Exporter {
    sender: Sender,
    resource: EncodedResource,
    counters: Arc<Counters>,
}

impl Exporter {
    pub(crate) fn new(sender: Sender, counters: Arc<Counters>) -> Exporter {
        Exporter {
            sender,
            resource: EncodedResource::default(),
            counters,
        }
    }

    async fn send(&self, body: Vec<u8>) -> OTelSdkResult {
        let response = self.sender.send(body).await?;
        partial_success(&response, &self.counters);
        Ok(())
    }
}

impl SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut body = Vec::with_capacity(batch.len() * 512 + 256);
        wire::traces(&mut body, &self.resource, &batch);
        drop(batch);
        self.send(body).await
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

impl LogExporter for Exporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let mut body = Vec::with_capacity(64 * 1024);
        wire::logs(&mut body, &self.resource, &batch);
        self.send(body).await
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}
