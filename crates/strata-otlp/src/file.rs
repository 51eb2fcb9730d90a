//! The embedded default when no endpoint is configured: spans, log records and metrics appended
//! to one local file as OTLP/JSON lines (the OpenTelemetry collector's file-exporter format: one
//! `ExportTraceServiceRequest`, `ExportLogsServiceRequest` or `ExportMetricsServiceRequest` per
//! line, IDs in hex), bounded in size by keeping one previous file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Appends OTLP/JSON lines to a file; past `max_bytes` the file becomes `<name>.1` (replacing
/// the previous one) and a new one starts, so at most about twice `max_bytes` are kept. Clones
/// share the file: one per signal.
#[derive(Debug, Clone)]
pub(crate) struct FileExporter {
    writer: Arc<Writer>,
    resource: Arc<ResourceAttributesWithSchema>,
}

#[derive(Debug)]
struct Writer {
    path: PathBuf,
    max_bytes: u64,
    file: Mutex<Option<(File, u64)>>,
}

impl FileExporter {
    pub(crate) fn new(path: PathBuf, max_bytes: u64, resource: &Resource) -> FileExporter {
        FileExporter {
            writer: Arc::new(Writer {
                path,
                max_bytes: max_bytes.max(1024),
                file: Mutex::new(None),
            }),
            resource: Arc::new(ResourceAttributesWithSchema::from(resource)),
        }
    }

    /// Appends one request as a JSON line.
    fn write<T: serde::Serialize>(&self, request: &T) -> OTelSdkResult {
        let mut line = serde_json::to_vec(request)
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        line.push(b'\n');
        self.writer.append(&line).map_err(|e| {
            OTelSdkError::InternalFailure(format!("{}: {e}", self.writer.path.display()))
        })
    }
}

impl Writer {
    fn append(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, size)) = &*guard
            && *size > 0
            && *size + line.len() as u64 > self.max_bytes
        {
            *guard = None;
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, old)?;
        }
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let size = file.metadata()?.len();
            *guard = Some((file, size));
        }
        let (file, size) = guard.as_mut().expect("opened above");
        file.write_all(line)?;
        *size += line.len() as u64;
        Ok(())
    }
}

impl SpanExporter for FileExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.write(&ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        })
    }
}

impl LogExporter for FileExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.write(&ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(&batch, &self.resource),
        })
    }
}

impl PushMetricExporter for FileExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.write(&ExportMetricsServiceRequest::from(metrics))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
