//! An axum service where every log line of a request carries its `request_id`: in the handler,
//! in nested spans, in spawned and blocking tasks, and in the access line.
//!
//! Run with `cargo run -p example-axum-service`, then
//! `curl -i -H 'x-request-id: my-id-1' localhost:3000/users/42`: every line logged for that
//! request shows `[my-id-1]` on the development console (`"request_id":"my-id-1"` in the JSON
//! lines of `STRATA_ENV=staging`), and the response echoes the header.
//! Set `PORT` to listen elsewhere; `SMOKE_TEST=1` serves one request to itself and exits.

use std::net::SocketAddr;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use strata_request_id::RequestIdLayer;
use tracing::{Instrument, info, info_span};

async fn get_user(Path(id): Path<u64>) -> Json<Value> {
    info!(user = id, "looking the user up");
    // Authentication would do this: every later line of the request carries `user_id`.
    strata_request_id::record_user(id);

    let profile = async {
        info!(table = "users", "query");
        json!({"id": id, "name": "Ada"})
    }
    .instrument(info_span!("db.query", db.system = "postgresql"))
    .await;

    // Work handed to another task keeps the request's context.
    let warm = strata_request_id::spawn(async move { info!(user = id, "warming the cache") });
    let score = strata_request_id::spawn_blocking(move || {
        info!("scoring on a blocking thread");
        id % 7
    })
    .await
    .unwrap_or_default();
    let _ = warm.await;

    Json(json!({"profile": profile, "score": score}))
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(get_user))
        // Outside everything that should log with the request's ID; after routing, so the
        // route template (`/users/{id}`) is known.
        .layer(RequestIdLayer::new())
}

#[tokio::main]
async fn main() {
    let _guard = strata::builder()
        .with_service("users_api")
        .with_version(env!("CARGO_PKG_VERSION"))
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let smoke = std::env::var_os("SMOKE_TEST").is_some();
    let addr = SocketAddr::from(([127, 0, 0, 1], if smoke { 0 } else { port }));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let local = listener.local_addr().expect("local address");
    info!(%local, "listening");
    let server = axum::serve(listener, app());
    if smoke {
        tokio::spawn(async move { server.await.expect("server") });
        let mut s = tokio::net::TcpStream::connect(local)
            .await
            .expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /users/42 HTTP/1.1\r\nhost: x\r\nx-request-id: smoke-1\r\nconnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut response = String::new();
        s.read_to_string(&mut response).await.expect("read");
        assert!(response.contains("x-request-id: smoke-1"), "{response}");
        return;
    }
    server
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .expect("server");
}
