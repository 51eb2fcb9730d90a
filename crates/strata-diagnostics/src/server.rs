//! The diagnostics endpoint: a small admin listener serving what is in flight, a health
//! summary and (feature `profiling`) on-demand CPU profiles. Loopback by default; any other address needs a bearer token, and with a token set
//! every request must carry it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::Inflight;

/// Shortest token accepted: 16 bytes, so it cannot be guessed over the network.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the diagnostics endpoint would not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiagnosticsError {
    /// A non-loopback address without a token: anyone who can reach it could read every
    /// request in flight.
    #[error(
        "refusing to serve diagnostics on {addr} without a token: bind 127.0.0.1 or ::1, or set one with with_token"
    )]
    PublicWithoutToken {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The token is too short, or holds characters a header cannot carry.
    #[error(
        "the diagnostics token must be at least {MIN_TOKEN_LEN} visible ASCII characters (got {len} bytes)"
    )]
    WeakToken {
        /// Its length in bytes.
        len: usize,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// Settings of the diagnostics endpoint.
///
/// ```no_run
/// # async fn run() -> Result<(), strata_diagnostics::DiagnosticsError> {
/// let inflight = strata_diagnostics::Inflight::new();
/// let server = strata_diagnostics::Diagnostics::new(inflight)
///     .serve("127.0.0.1:6060".parse().unwrap())
///     .await?;
/// println!("curl http://{}/debug/inflight", server.addr());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Diagnostics {
    inflight: Inflight,
    token: Option<Arc<str>>,
    started: Instant,
}

impl std::fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diagnostics")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

impl Diagnostics {
    /// The endpoint over `inflight`, with no token (loopback only).
    pub fn new(inflight: Inflight) -> Self {
        Diagnostics {
            inflight,
            token: None,
            started: Instant::now(),
        }
    }

    /// Requires `Authorization: Bearer <token>` on every request, and allows binding an
    /// address other than loopback.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Arc::from(token.into()));
        self
    }

    /// The routes, to mount on an admin router of the application's own:
    /// `GET /debug/inflight`, `GET /debug/health` and, with the `profiling` feature,
    /// `GET /debug/pprof/profile?seconds=N[&format=pprof][&frequency=F]` — all guarded by the
    /// token when one is set.
    ///
    /// # Errors
    ///
    /// [`DiagnosticsError::WeakToken`] for a token that is too short.
    pub fn router(&self) -> Result<axum::Router, DiagnosticsError> {
        if let Some(t) = &self.token
            && (t.len() < MIN_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(DiagnosticsError::WeakToken { len: t.len() });
        }
        let state = Arc::new(self.clone());
        let router = axum::Router::new()
            .route("/debug/inflight", get(inflight))
            .route("/debug/health", get(health));
        #[cfg(feature = "profiling")]
        let router = router.route("/debug/pprof/profile", get(crate::profile::profile));
        Ok(router
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state),
                authorize,
            ))
            .with_state(state))
    }

    /// Serves the routes on `addr` from a task on the current tokio runtime until the returned
    /// server is dropped.
    ///
    /// # Errors
    ///
    /// [`DiagnosticsError::PublicWithoutToken`] for an address other than loopback with no
    /// token; [`DiagnosticsError::WeakToken`]; [`DiagnosticsError::Bind`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn serve(&self, addr: SocketAddr) -> Result<DiagnosticsServer, DiagnosticsError> {
        if self.token.is_none() && !addr.ip().is_loopback() {
            return Err(DiagnosticsError::PublicWithoutToken { addr });
        }
        let app = self.router()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DiagnosticsError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| DiagnosticsError::Bind { addr, source })?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(DiagnosticsServer { addr: bound, task })
    }
}

/// Rejects a request without the token (when one is set): 401 and a `WWW-Authenticate`
/// header. The comparison takes the same time wherever the tokens differ.
async fn authorize(State(d): State<Arc<Diagnostics>>, req: Request, next: Next) -> Response {
    if let Some(token) = &d.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g, token.as_bytes())) {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer <token>)\n",
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"strata-diagnostics\""),
            );
            return r;
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn inflight(State(d): State<Arc<Diagnostics>>) -> Response {
    axum_json(&d.inflight.to_json())
}

async fn health(State(d): State<Arc<Diagnostics>>) -> Response {
    let work = d.inflight.snapshot();
    let limit = d.inflight.stuck_after();
    let stuck = work.iter().filter(|w| w.age >= limit).count();
    axum_json(&json!({
        "status": if stuck == 0 { "ok" } else { "degraded" },
        "pid": std::process::id(),
        "uptime_s": d.started.elapsed().as_secs(),
        "in_flight": work.len(),
        "stuck": stuck,
        "oldest_ms": work.first().map(|w| u64::try_from(w.age.as_millis()).unwrap_or(u64::MAX)),
    }))
}

fn axum_json(v: &serde_json::Value) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The listener of [`Diagnostics::serve`]; dropping it stops serving.
#[derive(Debug)]
#[must_use = "dropping the server stops it"]
pub struct DiagnosticsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DiagnosticsServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DiagnosticsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
