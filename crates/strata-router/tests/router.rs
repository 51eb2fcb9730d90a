//! Routing by level, target and error class; one rendering per format; no feedback loops into
//! network sinks; the text format; sink failures counted.

use std::sync::{Arc, Mutex};

use strata_core::{ErrorClass, Severity};
use strata_router::{Format, Route, RouteFilter, RouterLayer, Sink};
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Mem {
    lines: Arc<Mutex<Vec<String>>>,
    network: bool,
}

impl Sink for Mem {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        self.lines
            .lock()
            .unwrap()
            .push(String::from_utf8(line.to_vec()).unwrap());
        Ok(())
    }
    fn is_network(&self) -> bool {
        self.network
    }
}

impl Mem {
    fn taken(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
    fn json(&self) -> Vec<serde_json::Value> {
        self.taken()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[derive(Debug)]
struct Declined;
impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}
impl std::error::Error for Declined {}
impl strata_core::Classify for Declined {
    fn class(&self) -> ErrorClass {
        ErrorClass::Business
    }
}

#[test]
fn events_go_to_every_matching_route() {
    let json = Format::Json(strata_json::JsonFormat::new().with_service("r"));
    let (all, errors, business, app_only, alerts) = (
        Mem::default(),
        Mem::default(),
        Mem::default(),
        Mem::default(),
        Mem {
            network: true,
            ..Mem::default()
        },
    );
    let router = RouterLayer::new()
        .with_route(Route::new(
            RouteFilter::default().with_levels(Severity::Debug, Severity::Critical),
            json.clone(),
            all.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default().with_levels(Severity::Error, Severity::Critical),
            Format::Text,
            errors.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default()
                .with_levels(Severity::Trace, Severity::Critical)
                .with_classes([ErrorClass::Business]),
            json.clone(),
            business.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default()
                .with_target("app")
                .without_target("app::noisy"),
            json.clone(),
            app_only.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default().with_levels(Severity::Warn, Severity::Critical),
            json.clone(),
            alerts.clone(),
        ));
    let sub = tracing_subscriber::registry().with(router);
    tracing::subscriber::with_default(sub, || {
        tracing::debug!(target: "app", "debug");
        tracing::info!(target: "app::orders", "order placed");
        tracing::info!(target: "app::noisy", "chatter");
        tracing::info!(target: "appendix", "not app");
        strata_core::log_error!(Declined, "payment declined");
        tracing::error!(target: "hyper::proto", "connection reset");
        strata_core::critical!(target: "app", "database unreachable");
        tracing::error!(target: "opentelemetry_sdk", "telemetry trouble");
        tracing::error!(target: "hyper_util::client", "telemetry trouble");
        tracing::error!(target: "hyper_util::client::legacy", "telemetry trouble");
        tracing::error!(target: "h2", "telemetry trouble");
        tracing::error!(target: "opentelemetry-otlp", "telemetry trouble");
    });
    let msgs = |m: &Mem| {
        m.json()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        msgs(&all),
        [
            "debug",
            "order placed",
            "chatter",
            "not app",
            "payment declined",
            "connection reset",
            "database unreachable",
            "telemetry trouble",
            "telemetry trouble",
            "telemetry trouble",
            "telemetry trouble",
            "telemetry trouble"
        ]
    );
    let err_lines = errors.taken();
    assert_eq!(err_lines.len(), 7, "{err_lines:?}");
    assert!(
        err_lines[0].contains("   ERROR hyper::proto: connection reset"),
        "{}",
        err_lines[0]
    );
    assert!(
        err_lines[1].contains("CRITICAL app: database unreachable"),
        "{}",
        err_lines[1]
    );
    assert_eq!(msgs(&business), ["payment declined"]);
    assert_eq!(msgs(&app_only), ["order placed", "database unreachable"]);
    // the network sink takes WARN+ but never the network stack's own events
    assert_eq!(msgs(&alerts), ["payment declined", "database unreachable"]);
}

#[test]
fn one_rendering_per_format_however_many_sinks() {
    let json = Format::Json(strata_json::JsonFormat::new());
    let sinks: Vec<Mem> = (0..3).map(|_| Mem::default()).collect();
    let mut router = RouterLayer::new();
    for s in &sinks {
        router = router.with_route(Route::new(RouteFilter::default(), json.clone(), s.clone()));
    }
    let sub = tracing_subscriber::registry().with(router);
    tracing::subscriber::with_default(sub, || {
        let span = tracing::info_span!("request", request_id = "r-1");
        let _e = span.enter();
        for i in 0..50 {
            tracing::info!(i, "event");
        }
    });
    let first = sinks[0].taken();
    assert_eq!(first.len(), 50);
    assert!(first.iter().all(|l| l.contains("\"request_id\":\"r-1\"")));
    // identical bytes, microsecond timestamps included: rendered once, shared
    assert_eq!(sinks[1].taken(), first);
    assert_eq!(sinks[2].taken(), first);
}

#[test]
fn text_lines_are_single_lines_with_span_fields() {
    let text = Mem::default();
    let sub = tracing_subscriber::registry().with(RouterLayer::new().with_route(Route::new(
        RouteFilter::default(),
        Format::Text,
        text.clone(),
    )));
    tracing::subscriber::with_default(sub, || {
        let span = tracing::info_span!("request", request_id = "r-9");
        let _e = span.enter();
        tracing::info!(user = "a\nb", "hello\r\nforged line");
    });
    let lines = text.taken();
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l.matches('\n').count(), 1, "one line: {l:?}");
    assert!(l.contains("INFO router: hello\\r\\nforged line"), "{l}");
    assert!(l.contains("request_id=r-9"), "{l}");
}

#[test]
fn failing_sinks_are_counted() {
    struct Broken;
    impl Sink for Broken {
        fn write_line(&self, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("gone"))
        }
    }
    let router =
        RouterLayer::new().with_route(Route::new(RouteFilter::default(), Format::Text, Broken));
    let errors = router.write_errors();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        tracing::info!("a");
        tracing::warn!("b");
    });
    assert_eq!(errors.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn field_predicates_look_at_event_fields_then_enclosing_spans() {
    let json = Format::Json(strata_json::JsonFormat::new());
    let (server_errors, acme, untraced) = (Mem::default(), Mem::default(), Mem::default());
    let pred = |s: &str| s.parse::<strata_router::FieldPredicate>().unwrap();
    let router = RouterLayer::new()
        .with_route(Route::new(
            RouteFilter::default().with_field(pred("status >= 500")),
            json.clone(),
            server_errors.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default()
                .with_field(pred("tenant == \"acme\""))
                .with_field(pred("retry")),
            json.clone(),
            acme.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default().with_field(pred("!trace")),
            json,
            untraced.clone(),
        ));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        tracing::info!(status = 503u64, "unavailable");
        tracing::info!(status = 404, "not found");
        tracing::info!(status = "502", "status as text");
        tracing::info!(status = 500.5, "a float");
        let outer = tracing::info_span!("request", tenant = "acme", status = 500);
        let _o = outer.enter();
        // From the span: status 500, tenant acme; the event's own field wins over the span's.
        tracing::info!(retry = true, trace = 1, "retried in span");
        tracing::info!(status = 200, retry = false, "event field beats span field");
        let inner = tracing::info_span!("db", tenant = "other");
        let _i = inner.enter();
        tracing::info!(retry = 1, "nearest span's tenant wins");
    });
    let messages = |m: &Mem| -> Vec<String> {
        m.json()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        messages(&server_errors),
        [
            "unavailable",
            "status as text",
            "a float",
            "retried in span",
            "nearest span's tenant wins"
        ]
    );
    assert_eq!(
        messages(&acme),
        ["retried in span", "event field beats span field"]
    );
    assert_eq!(messages(&untraced).len(), 6, "{:?}", messages(&untraced));
}

#[test]
fn bad_predicates_are_rejected_with_the_input_named() {
    for bad in [
        "",
        "status >> 5",
        "status >= ",
        "status > abc",
        "= 5",
        "na me == 1",
        "x == \"open",
        "!",
    ] {
        let err = bad.parse::<strata_router::FieldPredicate>().expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    for good in [
        "a",
        "!a",
        "a.b-c_d != x",
        "n < -1.5",
        "flag == true",
        "s == \"a b\"",
    ] {
        let p: strata_router::FieldPredicate = good.parse().expect(good);
        let again: strata_router::FieldPredicate = p.to_string().parse().unwrap();
        assert_eq!(p, again, "round trip of {good}");
    }
}
