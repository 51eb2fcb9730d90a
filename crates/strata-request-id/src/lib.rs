//! Request and correlation IDs everywhere: every line of a request — in child spans, spawned
//! tasks, blocking tasks, background jobs and the services it calls — carries the same
//! `request_id`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use strata_request_id::RequestIdLayer;
//!
//! # async fn run() {
//! let _guard = strata::init();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async {
//!         strata_request_id::record_user(42_u64);
//!         strata_request_id::spawn(async { tracing::info!("still in the request") });
//!         "ok"
//!     }))
//!     .layer(RequestIdLayer::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! - [`RequestIdLayer`]: tower middleware for servers (axum, hyper): takes or makes the ID,
//!   opens the `request` span, writes one access line, echoes the ID.
//! - [`inject`] and [`PropagateLayer`]: the ID (and trace context, via [`Injector`]) into
//!   outgoing calls. The layer also opens one quiet `http_client` span per call — `method`,
//!   `url` (userinfo removed, cut to 512 bytes), `server.address`, `server.port`, then
//!   `status_code` and `duration_ms`, or `error` — and injects inside it, so the `traceparent`
//!   sent names the client span as the remote server span's parent.
//! - [`JobContext`]: carry the context through a queue to a worker.
//! - [`spawn`], [`spawn_blocking`]: tokio's, keeping the current span.
//! - [`record_user`], [`current_request_id`], [`request_span`].
//!
//! The ID reaches every line through span-field inheritance in strata's store: any strata
//! output (JSON lines, error capture, OTLP attributes) shows the `request_id` of the enclosing
//! request span.
//!
//! # Feature flags
//!
//! - `axum`: read the route template from axum's `MatchedPath`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod context;
mod id;
mod server;

pub use client::{
    Extractor, Injector, Propagate, PropagateFuture, PropagateLayer, add_extractor, add_injector,
    inject, inject_as,
};
pub use context::{
    JobContext, REQUEST_ID_FIELD, USER_ID_FIELD, current_request_id, record_user, request_span,
    spawn, spawn_blocking,
};
pub use id::{InvalidRequestId, MAX_LEN, RequestId};
pub use server::{RequestIdLayer, RequestIdService, ResponseFuture, X_REQUEST_ID};
