//! The shop: three services in one axum app — orders, inventory, payments — calling each other
//! over HTTP with the request ID and trace context propagated, a fulfilment worker fed by a
//! queue, and the domain errors of each, classified.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strata::request_id::{JobContext, PropagateLayer, RequestIdLayer};
use strata::{Classify, ErrorClass, log_error};
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};
use tracing::{Instrument, debug, info, info_span, warn};

/// The shop's domain errors, each declaring its class: the class decides the level, whether
/// it is captured, and whether it alerts.
#[derive(Debug)]
pub(crate) enum ShopError {
    /// The order is not valid (a business error: WARN, shown to the customer, never alerts).
    Invalid(String),
    /// No such product (business).
    UnknownSku(String),
    /// The payment gateway did not answer in time, even after retries (external: ERROR,
    /// alerts when it keeps happening).
    GatewayTimeout {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        source: std::io::Error,
    },
    /// A call to another service failed (external).
    Upstream(String),
    /// We are broken (system: CRITICAL, captured, alerts at once).
    PoolExhausted(std::io::Error),
}

impl fmt::Display for ShopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShopError::Invalid(why) => write!(f, "invalid order: {why}"),
            ShopError::UnknownSku(sku) => write!(f, "unknown sku {sku}"),
            ShopError::GatewayTimeout { attempts, .. } => {
                write!(f, "payment gateway timed out after {attempts} attempts")
            }
            ShopError::Upstream(what) => write!(f, "upstream call failed: {what}"),
            ShopError::PoolExhausted(_) => f.write_str("database connection pool exhausted"),
        }
    }
}

impl std::error::Error for ShopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShopError::GatewayTimeout { source, .. } | ShopError::PoolExhausted(source) => {
                Some(source)
            }
            _ => None,
        }
    }
}

impl Classify for ShopError {
    fn class(&self) -> ErrorClass {
        match self {
            ShopError::Invalid(_) | ShopError::UnknownSku(_) => ErrorClass::Business,
            ShopError::GatewayTimeout { .. } | ShopError::Upstream(_) => ErrorClass::External,
            ShopError::PoolExhausted(_) => ErrorClass::System,
        }
    }
}

impl ShopError {
    fn status(&self) -> StatusCode {
        match self {
            ShopError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ShopError::UnknownSku(_) => StatusCode::NOT_FOUND,
            ShopError::GatewayTimeout { .. } | ShopError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ShopError::PoolExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Logs the error at its class's level with its chain (the boundary of the request), and
    /// answers with its status.
    fn respond(self) -> (StatusCode, Json<Value>) {
        let status = self.status();
        let message = self.to_string();
        log_error!(self, status_code = status.as_u16(), "{message}");
        (status, Json(json!({ "error": message })))
    }
}

/// An order as posted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrderRequest {
    /// The product.
    pub(crate) sku: String,
    /// How many.
    pub(crate) qty: u32,
    /// The card, sent to the payment service (never logged: redaction masks it).
    pub(crate) card_number: String,
    /// The payment gateway's behaviour, for the demo: "ok", "slow" or "down".
    #[serde(default)]
    pub(crate) gateway: String,
}

/// A fulfilment job: what the worker gets from the queue.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    /// The order.
    pub(crate) order_id: u64,
    /// The product.
    pub(crate) sku: String,
    /// The request's context, carried through the queue.
    pub(crate) context: JobContext,
}

/// Alerts the router's webhook route delivered to `/internal/alerts`.
pub(crate) type Alerts = Arc<Mutex<Vec<Value>>>;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Shop {
    /// Where the services reach each other.
    pub(crate) base: String,
    /// The HTTP client.
    pub(crate) client: reqwest::Client,
    /// The fulfilment queue.
    pub(crate) jobs: mpsc::Sender<Job>,
    /// Order numbers.
    pub(crate) next_order: Arc<AtomicU64>,
    /// Payment attempts, to make every seventh attempt of a "slow" gateway time out.
    pub(crate) attempts: Arc<AtomicU64>,
    /// The queue's metrics.
    pub(crate) queue: strata::metrics::WorkerMetrics,
    /// The shop's own business metrics, exposed with strata's.
    pub(crate) business: Business,
}

/// `shop_orders_total{outcome}` and `shop_payments_total{outcome}`: what the business
/// dashboard (docs/dashboards/business.json) reads.
#[derive(Clone, Default)]
pub(crate) struct Business {
    orders: Family<Vec<(String, String)>, Counter>,
    payments: Family<Vec<(String, String)>, Counter>,
}

impl Business {
    /// Registers the counters with strata's metrics.
    pub(crate) fn register(&self, metrics: &strata::metrics::Metrics) {
        metrics.register("shop_orders", "Orders, by outcome", self.orders.clone());
        metrics.register(
            "shop_payments",
            "Payments, by outcome",
            self.payments.clone(),
        );
    }

    fn count(family: &Family<Vec<(String, String)>, Counter>, outcome: &str) {
        family
            .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
            .inc();
    }
}

/// The shop's routes, behind strata's request-ID middleware.
pub(crate) fn app(shop: Shop, metrics: &strata::metrics::Metrics) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/inventory/{sku}", get(stock))
        .route("/payments", post(pay))
        .route("/health", get(|| async { "ok" }))
        .with_state(shop)
        .route_service("/metrics", metrics.service())
        .layer(RequestIdLayer::new())
}

/// Calls another service through strata-request-id's client layer: an `http_client` span, the
/// request ID and the W3C trace context in the headers.
pub(crate) async fn call(
    client: &reqwest::Client,
    method: http::Method,
    url: String,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let client = client.clone();
    let inner = tower::service_fn(move |req: http::Request<String>| {
        let client = client.clone();
        async move {
            let response = client.execute(reqwest::Request::try_from(req)?).await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(
                http::Response::builder()
                    .status(status)
                    .body(body)
                    .expect("a valid response"),
            )
        }
    });
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if body.is_none() {
        request = request.header("content-length", "0");
    }
    let request = request
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let response = ServiceBuilder::new()
        .layer(PropagateLayer::new())
        .service(inner)
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    Ok((status, body))
}

/// `POST /orders`, counted by outcome.
async fn place_order(
    State(shop): State<Shop>,
    Json(order): Json<OrderRequest>,
) -> (StatusCode, Json<Value>) {
    let orders = shop.business.orders.clone();
    let answer = order_flow(shop, order).await;
    let outcome = match answer.0 {
        StatusCode::CREATED => "placed",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::NOT_FOUND => "unknown_sku",
        _ => "failed",
    };
    Business::count(&orders, outcome);
    answer
}

/// Validates the order, checks the stock, charges, queues the fulfilment.
async fn order_flow(shop: Shop, order: OrderRequest) -> (StatusCode, Json<Value>) {
    let user = 1000 + order.qty as u64 * 7 + order.sku.len() as u64;
    strata::request_id::record_user(user);
    debug!(sku = %order.sku, qty = order.qty, "order received");
    if order.qty == 0 || order.qty > 10 {
        return ShopError::Invalid(format!("qty must be 1 to 10, got {}", order.qty)).respond();
    }
    let stock = call(
        &shop.client,
        http::Method::GET,
        format!("{}/inventory/{}", shop.base, order.sku),
        None,
    )
    .await;
    match stock {
        Ok((200, _)) => {}
        Ok((404, _)) => return ShopError::UnknownSku(order.sku).respond(),
        Ok((status, _)) => {
            return ShopError::Upstream(format!("inventory answered {status}")).respond();
        }
        Err(e) => return ShopError::Upstream(e).respond(),
    }
    let payment = call(
        &shop.client,
        http::Method::POST,
        format!("{}/payments", shop.base),
        Some(json!({
            "amount_cents": order.qty * 1999,
            "card_number": order.card_number,
            "gateway": order.gateway,
        })),
    )
    .await;
    match payment {
        Ok((200, _)) => {}
        Ok((status, body)) => {
            return ShopError::Upstream(format!("payments answered {status}: {}", body["error"]))
                .respond();
        }
        Err(e) => return ShopError::Upstream(e).respond(),
    }
    let order_id = shop.next_order.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        order_id,
        sku: order.sku.clone(),
        context: JobContext::capture(),
    };
    if shop.jobs.try_send(job).is_err() {
        warn!(
            order_id,
            "fulfilment queue full: the order will be fulfilled late"
        );
    } else {
        shop.queue
            .set_depth((shop.jobs.max_capacity() - shop.jobs.capacity()) as i64);
    }
    info!(
        event = "order_placed",
        order_id,
        sku = %order.sku,
        amount_cents = order.qty * 1999,
        "order placed"
    );
    (StatusCode::CREATED, Json(json!({ "order_id": order_id })))
}

/// `GET /inventory/{sku}`: the stock of a product; slow for some.
async fn stock(Path(sku): Path<String>) -> (StatusCode, Json<Value>) {
    let db = info_span!(
        "db.query",
        db.system = "postgresql",
        db.operation = "SELECT"
    );
    async {
        let slow = sku.ends_with('7');
        tokio::time::sleep(Duration::from_millis(if slow { 120 } else { 4 })).await;
        if slow {
            warn!(sku, duration_ms = 120, threshold_ms = 100, "Slow query");
        }
    }
    .instrument(db)
    .await;
    if !sku.starts_with("SKU-") {
        warn!(sku, "unknown sku");
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "unknown sku" })),
        );
    }
    (StatusCode::OK, Json(json!({ "sku": sku, "available": 42 })))
}

/// `POST /payments`, counted by outcome.
async fn pay(State(shop): State<Shop>, Json(payment): Json<Value>) -> (StatusCode, Json<Value>) {
    let payments = shop.business.payments.clone();
    let answer = charge(shop, payment).await;
    let outcome = if answer.0 == StatusCode::OK {
        "paid"
    } else {
        "failed"
    };
    Business::count(&payments, outcome);
    answer
}

/// Charges through the payment gateway (simulated), retrying timeouts with exponential
/// backoff.
async fn charge(shop: Shop, payment: Value) -> (StatusCode, Json<Value>) {
    // The card number reaches the logs only masked (the profile's redaction).
    info!(card_number = %payment["card_number"].as_str().unwrap_or_default(), "charging");
    let gateway = payment["gateway"].as_str().unwrap_or("ok").to_owned();
    let mut backoff = Duration::from_millis(20);
    const ATTEMPTS: u32 = 3;
    for attempt in 1..=ATTEMPTS {
        let n = shop.attempts.fetch_add(1, Ordering::Relaxed);
        let answer = gateway_answer(&gateway, n).instrument(info_span!(
            "gateway.charge",
            attempt,
            peer.service = "payment-gateway"
        ));
        match tokio::time::timeout(Duration::from_millis(50), answer).await {
            Ok(()) => {
                info!(attempt, "payment accepted");
                return (StatusCode::OK, Json(json!({ "status": "paid" })));
            }
            Err(_) if attempt < ATTEMPTS => {
                warn!(
                    attempt,
                    backoff_ms = backoff.as_millis() as u64,
                    "Retry attempt {attempt}: the gateway timed out"
                );
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(_) => {}
        }
    }
    ShopError::GatewayTimeout {
        attempts: ATTEMPTS,
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "POST https://gateway.example/v1/charges: no answer within 50ms",
        ),
    }
    .respond()
}

/// The payment gateway: answers at once, sometimes late ("slow"), or never ("down").
async fn gateway_answer(gateway: &str, n: u64) {
    let delay = match gateway {
        "down" => Duration::from_secs(3600),
        "slow" if n.is_multiple_of(2) => Duration::from_millis(80),
        _ => Duration::from_millis(3),
    };
    tokio::time::sleep(delay).await;
}

/// Stands in for the chat and paging services: the router's webhook route delivers to
/// `POST /alerts` here. It runs on a thread and runtime of its own, as a real webhook is
/// another process: a delivery never waits for the shop's own workers.
pub(crate) fn alert_receiver(alerts: Alerts) -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("alert-webhook".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = Router::new().route(
                    "/alerts",
                    post(move |Json(alert): Json<Value>| async move {
                        alerts.lock().unwrap_or_else(|e| e.into_inner()).push(alert);
                        StatusCode::OK
                    }),
                );
                let _ = axum::serve(listener, app).await;
            });
        })?;
    Ok(addr)
}

/// The fulfilment worker: takes jobs from the queue and runs each in its request's context.
pub(crate) async fn worker(mut jobs: mpsc::Receiver<Job>, queue: strata::metrics::WorkerMetrics) {
    while let Some(job) = jobs.recv().await {
        queue.set_depth(jobs.len() as i64);
        let span = job.context.span("fulfil_order");
        let order_id = job.order_id;
        let result = async move {
            info!(order_id, sku = %job.sku, "fulfilling");
            tokio::time::sleep(Duration::from_millis(2)).await;
            if order_id == 13 {
                // One poisoned job: the task panics (the panic hook logs it as CRITICAL and
                // captures it; the worker goes on).
                let task = strata::request_id::spawn(async move {
                    let label =
                        shipping_label(order_id).expect("order 13's shipping label is missing");
                    info!(label, "label printed");
                });
                return task.await.is_ok();
            }
            info!(order_id, "order shipped");
            true
        }
        .instrument(span)
        .await;
        if result {
            queue.processed();
        } else {
            queue.failed();
        }
    }
}

/// The label of an order; order 13's went missing.
fn shipping_label(order_id: u64) -> Option<String> {
    (order_id != 13).then(|| format!("LBL-{order_id:06}"))
}

/// The periodic task: reconciles stock every `every`; its third run finds the database pool
/// exhausted (the one system failure: CRITICAL).
pub(crate) async fn reconcile(every: Duration) {
    let mut tick = tokio::time::interval(every);
    for run in 1u32.. {
        tick.tick().await;
        let span = JobContext::capture().span("reconcile_stock");
        async {
            if run == 3 {
                let err = ShopError::PoolExhausted(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connect to postgres://shop:s3cret@db.internal:5432/shop: too many clients",
                ));
                log_error!(err, run, "stock reconciliation failed");
            } else {
                info!(run, checked = 250, fixed = run % 3, "stock reconciled");
            }
        }
        .instrument(span)
        .await;
    }
}
