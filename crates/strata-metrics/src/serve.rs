//! Exposition: a tower service answering with the OpenMetrics text (mount it on an axum
//! router), and a listener of its own.

use std::convert::Infallible;
use std::future::Ready;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode, header};

use crate::Metrics;

/// The content type of the exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A tower service answering every request with the exposition (`GET /metrics` when mounted
/// with `axum::Router::route_service("/metrics", metrics.service())`).
#[derive(Debug, Clone)]
pub struct MetricsService {
    metrics: Metrics,
}

impl Metrics {
    /// The exposition as a tower service, to mount on the application's router.
    pub fn service(&self) -> MetricsService {
        MetricsService {
            metrics: self.clone(),
        }
    }

    /// Serves `GET /metrics` on `addr` (a listener of its own, on the current tokio runtime)
    /// until the returned server is dropped, which stops it at once.
    ///
    /// # Errors
    ///
    /// When `addr` cannot be bound.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route_service("/metrics", self.service());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MetricsServer { addr, task })
    }
}

impl<B> tower_service::Service<Request<B>> for MetricsService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut response = Response::new(self.metrics.encode());
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(OPENMETRICS),
        );
        std::future::ready(Ok(response))
    }
}

/// The listener of [`Metrics::serve`]; dropping it stops serving (at once: a scrape in flight
/// is cut; Prometheus retries at the next interval).
#[derive(Debug)]
#[must_use = "dropping the server stops it"]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
