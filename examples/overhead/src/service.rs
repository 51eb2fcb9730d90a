//! The hello-world service, set up in one of the four [`Mode`]s.
//!
//! `overhead server MODE [--port N] [--receiver-cpu N]` binds 127.0.0.1, prints the bound
//! address alone on the first line of standard output, and serves until its standard input
//! closes. Then it flushes everything the mode set up and prints one JSON [`Report`] line
//! saying what reached the outputs: JSON lines in the file, spans, log records and metric
//! points at the OTLP receiver, requests counted by strata's metrics.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use strata_testkit::OtlpReceiver;

use crate::Mode;
use crate::procfs;

/// What the service answers to `GET /`.
pub const BODY: &str = "Hello, World!";

/// The service name every instrumented mode reports.
pub const SERVICE: &str = "overhead";

/// Requests answered by the handler (one relaxed atomic add per request, in every mode alike).
static SERVED: AtomicU64 = AtomicU64::new(0);

async fn hello() -> &'static str {
    SERVED.fetch_add(1, Ordering::Relaxed);
    BODY
}

/// The bare application: one route, no middleware.
fn routes() -> Router {
    Router::new().route("/", get(hello))
}

/// How a server is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The mode.
    pub mode: Mode,
    /// The port on 127.0.0.1 (0: the system picks).
    pub port: u16,
    /// Moves the in-process OTLP receiver's threads to this CPU (the driver puts them beside
    /// the load generator, off the service's CPU, as a collector would be).
    pub receiver_cpu: Option<usize>,
}

/// What reached the outputs, printed as one JSON line when the server stops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The mode.
    pub mode: String,
    /// Requests the handler answered.
    pub served: u64,
    /// Lines in the JSON log file.
    pub json_lines: u64,
    /// Spans received by the OTLP receiver.
    pub spans: u64,
    /// Log records received by the OTLP receiver.
    pub logs: u64,
    /// Metric data points received by the OTLP receiver.
    pub metric_points: u64,
    /// Requests counted by strata's metrics (`http_server_requests_total`), strata modes only.
    pub metrics_requests: Option<u64>,
    /// What strata's queues dropped (`strata_telemetry_dropped_total`), strata modes only.
    pub telemetry_dropped: Option<u64>,
    /// The same by `source` label, as `source=count` pairs.
    pub dropped_by_source: Vec<(String, u64)>,
}

impl Report {
    /// As one line of JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "mode": self.mode,
            "served": self.served,
            "json_lines": self.json_lines,
            "spans": self.spans,
            "logs": self.logs,
            "metric_points": self.metric_points,
            "metrics_requests": self.metrics_requests,
            "telemetry_dropped": self.telemetry_dropped,
            "dropped_by_source": self
                .dropped_by_source
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>(),
        })
    }

    /// Reads the line [`Report::to_json`] wrote.
    pub fn from_json(v: &serde_json::Value) -> Report {
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Report {
            mode: v["mode"].as_str().unwrap_or_default().to_owned(),
            served: n("served"),
            json_lines: n("json_lines"),
            spans: n("spans"),
            logs: n("logs"),
            metric_points: n("metric_points"),
            metrics_requests: v["metrics_requests"].as_u64(),
            telemetry_dropped: v["telemetry_dropped"].as_u64(),
            dropped_by_source: v["dropped_by_source"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What a mode keeps alive while serving, and flushes at the end.
enum Stack {
    Bare,
    Strata {
        guard: strata::Guard,
        writer: strata::router::WorkerGuard,
        metrics: strata_metrics::Metrics,
    },
    Peers {
        provider: opentelemetry_sdk::trace::SdkTracerProvider,
        appender: tracing_appender::non_blocking::WorkerGuard,
        sentry: sentry::ClientInitGuard,
    },
}

/// The log file of a mode, in the run's scratch directory.
fn log_path(dir: &Path) -> PathBuf {
    dir.join("service.log")
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// strata through its facade: the profile's defaults, the OTLP endpoint and the capture store
/// from a `strata.toml` (so the profile still decides sampling and the log level), JSON lines
/// through strata's non-blocking writer into a file, metrics into `metrics`, and the
/// request-ID middleware.
fn strata_stack(
    profile: strata::Profile,
    dir: &Path,
    receiver: &OtlpReceiver,
) -> io::Result<(Stack, Router)> {
    let config = dir.join("strata.toml");
    std::fs::write(
        &config,
        format!(
            "[otlp]\nendpoint = {:?}\nprotocol = \"grpc\"\n\n[capture]\nstore = {:?}\n",
            receiver.grpc_endpoint(),
            dir.join("errors.db").display().to_string(),
        ),
    )?;
    let (writer, writer_guard) =
        strata::router::NonBlockingBuilder::default().spawn(File::create(log_path(dir))?)?;
    let metrics = strata_metrics::Metrics::new();
    let guard = strata::builder()
        .with_profile(profile)
        .with_service(SERVICE)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_config_file(config)
        .with_writer(move || writer.clone())
        .with_metrics(&metrics)
        .try_init()
        .map_err(other)?;
    let app = routes().layer(strata_request_id::RequestIdLayer::new());
    Ok((
        Stack::Strata {
            guard,
            writer: writer_guard,
            metrics,
        },
        app,
    ))
}

/// The peer stack, set up the way its documentation shows.
fn peer_stack(dir: &Path, receiver: &OtlpReceiver) -> io::Result<(Stack, Router)> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultOnResponse, TraceLayer};
    use tracing_subscriber::prelude::*;

    // JSON lines to a file through tracing-appender's non-blocking writer (its defaults).
    let (writer, appender) = tracing_appender::non_blocking(File::create(log_path(dir))?);
    // Traces: OTLP/gRPC (tonic) through the SDK's BatchSpanProcessor (its defaults).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .build()
        .map_err(other)?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(SERVICE)
                .build(),
        )
        .build();
    // Errors: Sentry. The DSN points at a local port nobody listens on: hello world logs no
    // error, so nothing is ever sent (breadcrumbs stay in the hub's scope).
    let mut options = sentry::ClientOptions::new();
    options.dsn = "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1"
        .parse()
        .ok();
    options.release = Some(env!("CARGO_PKG_VERSION").into());
    options.environment = Some("staging".into());
    options.attach_stacktrace = true;
    let sentry = sentry::init(options);
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE)))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(writer),
        )
        // The recommended pair: breadcrumbs from INFO and WARN, error events from ERROR.
        .with(sentry_tracing::BreadcrumbLayer::new().with_filter(
            tracing_subscriber::filter::filter_fn(|m| {
                matches!(*m.level(), tracing::Level::INFO | tracing::Level::WARN)
            }),
        ))
        .with(
            sentry_tracing::ErrorLayer::new().with_filter(tracing_subscriber::filter::filter_fn(
                |m| *m.level() == tracing::Level::ERROR,
            )),
        )
        .try_init()
        .map_err(other)?;
    // Request IDs the tower-http way: make one, put it in the request span, echo it.
    let app = routes().layer(
        tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &http::Request<axum::body::Body>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            uri = %req.uri(),
                            version = ?req.version(),
                            request_id = id,
                        )
                    })
                    // One access line per request, like strata's.
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::x_request_id()),
    );
    Ok((
        Stack::Peers {
            provider,
            appender,
            sentry,
        },
        app,
    ))
}

/// Lines in a file (0 when it cannot be read).
fn count_lines(path: &Path) -> u64 {
    let Ok(f) = File::open(path) else { return 0 };
    let mut reader = io::BufReader::with_capacity(1 << 20, f);
    let mut n = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        n += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let len = buf.len();
        reader.consume(len);
    }
    n
}

/// The sum of a metric family's samples in an OpenMetrics exposition.
fn metric_sum(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Each sample of a metric family by the value of its `source` label.
fn by_source(exposition: &str, name: &str) -> Vec<(String, u64)> {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| {
            let source = l.split("source=\"").nth(1)?.split('"').next()?;
            let v = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((source.to_owned(), v as u64))
        })
        .collect()
}

/// Runs the server until standard input closes; prints the address first and the report last.
///
/// # Errors
///
/// When the receiver, the runtime, the listener or the mode's stack cannot be set up.
pub fn run(opts: &Options) -> io::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("strata-overhead-")
        .tempdir()?;
    let receiver = match opts.mode {
        Mode::Bare => None,
        _ => {
            let r = OtlpReceiver::start()?;
            if let Some(cpu) = opts.receiver_cpu {
                procfs::pin_threads(procfs::RECEIVER_THREADS, cpu)?;
            }
            Some(r)
        }
    };
    // The service's runtime: tokio's default multi-threaded runtime (one worker per CPU it
    // may run on: one under `taskset -c 0`).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (stack, app, listener) = {
        let _context = rt.enter();
        let (stack, app) = match (opts.mode, &receiver) {
            (Mode::Strata, Some(r)) => strata_stack(strata::Profile::Staging, dir.path(), r)?,
            (Mode::StrataProduction, Some(r)) => {
                strata_stack(strata::Profile::Production, dir.path(), r)?
            }
            (Mode::Peers, Some(r)) => peer_stack(dir.path(), r)?,
            _ => (Stack::Bare, routes()),
        };
        let listener = rt.block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            [127, 0, 0, 1],
            opts.port,
        ))))?;
        (stack, app, listener)
    };
    let addr = listener.local_addr()?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "{addr}")?;
        out.flush()?;
    }
    let server = rt.spawn(async move { axum::serve(listener, app).await });

    // Serve until the driver closes our standard input.
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    server.abort();

    let mut report = Report {
        mode: opts.mode.name().to_owned(),
        served: SERVED.load(Ordering::Relaxed),
        ..Report::default()
    };
    match stack {
        Stack::Bare => {}
        Stack::Strata {
            guard,
            writer,
            metrics,
        } => {
            let exposition = metrics.encode();
            report.metrics_requests = Some(metric_sum(&exposition, "http_server_requests_total"));
            report.telemetry_dropped =
                Some(metric_sum(&exposition, "strata_telemetry_dropped_total"));
            report.dropped_by_source = by_source(&exposition, "strata_telemetry_dropped_total");
            drop(guard); // flushes OTLP, capture, and the JSON layer's writer
            drop(writer); // writes out the file's queue and stops its thread
        }
        Stack::Peers {
            provider,
            appender,
            sentry,
        } => {
            let _ = provider.shutdown_with_timeout(Duration::from_secs(10));
            drop(appender);
            drop(sentry);
        }
    }
    if let Some(r) = &receiver {
        report.json_lines = count_lines(&log_path(dir.path()));
        report.spans = r.spans().len() as u64;
        report.logs = r.logs().len() as u64;
        report.metric_points = r.metrics().len() as u64;
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{}", report.to_json())?;
    out.flush()?;
    drop(out);
    rt.shutdown_background();
    Ok(())
}
