//! Client propagation: the tower layer and `inject`, with and without a current request, and
//! the injector extension point.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Request, Response};
use strata_request_id::{Injector, PropagateLayer, RequestId};
use tower::{Layer, ServiceExt};
use tracing_subscriber::prelude::*;

/// A client stand-in that records the headers it was asked to send.
fn recorder(
    seen: Arc<Mutex<Vec<HeaderMap>>>,
) -> impl tower::Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    tower::service_fn(move |req: Request<()>| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(req.headers().clone());
            Ok::<_, Infallible>(Response::new(()))
        }
    })
}

struct TraceParent;
impl Injector for TraceParent {
    fn inject(&self, headers: &mut HeaderMap) {
        headers
            .entry("traceparent")
            .or_insert(http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ));
    }
}

#[test]
fn the_layer_and_inject_add_the_current_id() {
    strata_request_id::add_injector(TraceParent);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = PropagateLayer::new().layer(recorder(seen.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sub = tracing_subscriber::registry().with(strata_core::StoreLayer::new());
    tracing::subscriber::with_default(sub, || {
        // outside a request: no ID is invented, the injector still runs
        rt.block_on(client.clone().oneshot(Request::new(())))
            .unwrap();

        let id: RequestId = "req-77".parse().unwrap();
        let span = strata_request_id::request_span(&id);
        let _e = span.enter();
        let child = tracing::info_span!("outgoing_call");
        let _c = child.enter();
        rt.block_on(client.clone().oneshot(Request::new(())))
            .unwrap();
        // an ID already set by the caller is kept
        let req = Request::builder()
            .header("x-request-id", "caller-set")
            .body(())
            .unwrap();
        rt.block_on(client.clone().oneshot(req)).unwrap();

        let mut headers = HeaderMap::new();
        assert!(strata_request_id::inject(&mut headers));
        assert_eq!(headers["x-request-id"], "req-77");
        assert_eq!(
            strata_request_id::current_request_id().unwrap().as_str(),
            "req-77"
        );
    });
    let seen = seen.lock().unwrap();
    assert!(seen[0].get("x-request-id").is_none());
    assert!(seen[0].get("traceparent").is_some());
    assert_eq!(seen[1]["x-request-id"], "req-77");
    assert_eq!(seen[2]["x-request-id"], "caller-set");
    assert!(
        seen.iter()
            .all(|h| h.get_all("traceparent").iter().count() == 1)
    );
}

#[test]
fn record_user_without_a_request_span_says_so() {
    let sub = tracing_subscriber::registry().with(strata_core::StoreLayer::new());
    tracing::subscriber::with_default(sub, || {
        assert!(!strata_request_id::record_user(1_u64));
        let other = tracing::info_span!("no_user_field");
        let _e = other.enter();
        assert!(!strata_request_id::record_user(1_u64));
        assert!(strata_request_id::current_request_id().is_none());
    });
}
