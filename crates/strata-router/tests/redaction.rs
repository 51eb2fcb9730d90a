//! Redaction in every output of the router: text lines, JSON lines and the payloads of the alert
//! sinks (Slack, Discord, PagerDuty, webhooks) received over real HTTP — secrets masked by field
//! name and by shape, in messages, span fields and error chains; ordinary values untouched.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use strata_core::{Classify, ErrorClass, Redaction, critical, log_error};
use strata_json::JsonFormat;
use strata_router::{
    AlertPolicy, AlertSink, Destination, Format, Route, RouteFilter, RouterConfig, RouterLayer,
    Sink,
};
use strata_testkit::corpus::{self, SecretKind};
use support::{Hit, Receiver};
use tracing_subscriber::prelude::*;

fn rules() -> Option<Arc<Redaction>> {
    Some(Arc::new(Redaction::new()))
}

/// A system error (CRITICAL) whose message and source hold secrets.
#[derive(Debug)]
struct LedgerDown(std::io::Error);
impl std::fmt::Display for LedgerDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("login to postgres://app:hunter2@db/shop failed")
    }
}
impl std::error::Error for LedgerDown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl Classify for LedgerDown {
    fn class(&self) -> ErrorClass {
        ErrorClass::System
    }
}

/// An error with a source, logged as `error = &e as &dyn Error` at ERROR.
#[derive(Debug)]
struct GatewayError(std::io::Error);
impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("gateway call failed")
    }
}
impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The secrets of [`log_hand_picked`].
const HAND_PICKED: &[&str] = &[
    "hunter2",
    "737",
    "k-live-31337",
    "mF_9.B5f-4.1JqM",
    "sess_5f2b8c1d9e",
    "adm1n!",
    "4111111111111111",
    "9f8e7d6c5b4a",
    "8f14e45fceea167a5a36dedd4bea2543",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
];

/// Two ERRORs and two CRITICALs: secrets under sensitive names (text and numbers, the event's
/// and its span's), in messages and in error chains.
fn log_hand_picked() {
    let span = tracing::info_span!(
        "request",
        session_id = "sess_5f2b8c1d9e",
        user_id = 42_u64,
        route = "/login"
    );
    let _e = span.enter();
    tracing::error!(
        password = "hunter2",
        cvv = 737_u64,
        api_key = ?Some("k-live-31337"),
        user = "bob",
        "login for bob failed: upstream said Authorization: Bearer mF_9.B5f-4.1JqM"
    );
    let err = GatewayError(std::io::Error::other(
        "GET https://admin:adm1n!@intranet.example.com/reports refused",
    ));
    tracing::error!(
        error = &err as &dyn std::error::Error,
        order_id = "ord_8f14e45f",
        "charging the card 4111111111111111 failed"
    );
    log_error!(
        LedgerDown(std::io::Error::other(
            "Cookie: session=9f8e7d6c5b4a; theme=dark"
        )),
        "ledger unreachable"
    );
    critical!(
        client_secret = "8f14e45fceea167a5a36dedd4bea2543",
        "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc rejected"
    );
}

/// `text` with timestamps (`2026-12-05T15:44:26.123456Z`) and fingerprints (16 hex digits)
/// blanked: their digits could hold a short secret (`737`) by chance.
fn without_noise(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let digits = |from: usize, n: usize| {
        b.get(from..from + n)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    while i < b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if digits(i, 4) && b.get(i + 4) == Some(&b'-') && b.get(i + 10) == Some(&b'T') {
            let len = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || b"-:.T+Z".contains(c))
                .count();
            out.push(b' ');
            i += len;
            continue;
        }
        let hex = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            .count();
        if boundary && hex == 16 && !b.get(i + 16).is_some_and(u8::is_ascii_alphanumeric) {
            out.push(b' ');
            i += 16;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Every string of a payload (keys and values), unescaped as a chat service would show it
/// (Discord's backslashes, Slack's entities), noise blanked, on separate lines.
fn payload_text(v: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.push_str(k);
                out.push('\n');
                walk(v, out);
            }),
            other => {
                out.push_str(&other.to_string());
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    walk(v, &mut out);
    without_noise(
        &out.replace('\\', "")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    )
}

fn assert_no_secret<'s>(what: &str, text: &str, secrets: impl IntoIterator<Item = &'s str>) {
    for s in secrets {
        assert!(!text.contains(s), "{s:?} leaked into {what}:\n{text}");
    }
}

fn hit_with<'h>(hits: &'h [Hit], severity: &str, message: &str) -> &'h Value {
    &hits
        .iter()
        .find(|h| h.body["severity"] == severity && h.body["message"] == message)
        .unwrap_or_else(|| panic!("no {severity} alert {message:?} in {hits:#?}"))
        .body
}

#[test]
fn configured_routes_mask_secrets_in_text_json_and_webhook_alerts() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
        [[route]]
        sink = "file"
        dir = "{dir}"
        prefix = "text"
        format = "text"

        [[route]]
        sink = "file"
        dir = "{dir}"
        prefix = "json"

        [[route]]
        sink = "webhook"
        url = "{url}"
        "#,
        dir = dir.path().display(),
        url = rx.url("/hook"),
    );
    let base = JsonFormat::new()
        .with_service("shop")
        .with_redaction(rules());
    let (router, guard) = RouterConfig::from_toml(&toml)
        .unwrap()
        .build_with(&base, "")
        .unwrap();
    assert!(router.redaction().is_some(), "the base format's rules");
    let secrets = corpus::secrets();
    let ordinary = corpus::ordinary();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        log_hand_picked();
        // The whole corpus at INFO: to the text and JSON files, not to the alert sink.
        for s in &secrets {
            corpus::emit(tracing::Level::INFO, &s.field, &s.value, "by field");
            if s.kind == SecretKind::Pattern {
                corpus::emit(tracing::Level::INFO, "detail", "x", &s.value);
                let span = tracing::info_span!("op", input = %s.value);
                span.in_scope(|| tracing::info!("in span"));
            }
        }
        for o in &ordinary {
            corpus::emit(tracing::Level::INFO, &o.field, &o.value, &o.value);
        }
    });
    guard.flush();
    let all_secrets = || {
        HAND_PICKED
            .iter()
            .copied()
            .chain(secrets.iter().map(|s| s.secret.as_str()))
    };

    // Text lines.
    let text = std::fs::read_to_string(dir.path().join("text.log")).unwrap();
    assert_no_secret("the text lines", &without_noise(&text), all_secrets());
    let login = text
        .lines()
        .find(|l| l.contains("login for bob failed"))
        .unwrap();
    assert!(
        login.ends_with(
            "ERROR redaction: login for bob failed: upstream said Authorization: [REDACTED] \
             password=[REDACTED] cvv=[REDACTED] api_key=[REDACTED] user=\"bob\" \
             session_id=[REDACTED] user_id=42 route=/login"
        ),
        "{login}"
    );
    let corpus_text: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("{}:", corpus::TARGET)))
        .collect();
    for (o, line) in ordinary
        .iter()
        .zip(&corpus_text[corpus_text.len() - ordinary.len()..])
    {
        let message = o.value.replace('\n', "\\n");
        assert!(
            line.contains(&format!(": {message} {}={:?}", o.field, o.value)),
            "{o:?} changed: {line}"
        );
    }

    // JSON lines.
    let json_text = std::fs::read_to_string(dir.path().join("json.log")).unwrap();
    assert_no_secret("the JSON lines", &without_noise(&json_text), all_secrets());
    let json: Vec<Value> = json_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let l = json
        .iter()
        .find(|l| l["message"] == "login for bob failed: upstream said Authorization: [REDACTED]")
        .unwrap();
    for key in ["password", "cvv", "api_key", "session_id"] {
        assert_eq!(l[key], "[REDACTED]", "{key}: {l}");
    }
    assert_eq!(l["user"], "bob");
    assert_eq!(l["user_id"], 42);
    let corpus_json: Vec<&Value> = json
        .iter()
        .filter(|l| l["target"] == corpus::TARGET)
        .collect();
    for (o, l) in ordinary
        .iter()
        .zip(&corpus_json[corpus_json.len() - ordinary.len()..])
    {
        assert_eq!(l[&o.field], Value::String(o.value.clone()), "{l}");
        assert_eq!(l["message"], o.value, "{l}");
    }

    // The webhook: the four ERROR/CRITICAL events, nothing secret in any payload.
    let hits = rx.wait_for_hits(4);
    assert_eq!(hits.len(), 4, "only ERROR and CRITICAL alert: {hits:#?}");
    for h in &hits {
        assert_no_secret(
            "a webhook payload",
            &payload_text(&h.body),
            HAND_PICKED.iter().copied(),
        );
    }
    let b = hit_with(
        &hits,
        "ERROR",
        "login for bob failed: upstream said Authorization: [REDACTED]",
    );
    for key in ["password", "cvv", "api_key", "session_id"] {
        assert_eq!(b["event"][key], "[REDACTED]", "{key}: {b}");
    }
    assert_eq!(b["event"]["user"], "bob");
    assert_eq!(b["event"]["user_id"], 42);
    assert_eq!(b["event"]["route"], "/login");
    let b = hit_with(&hits, "ERROR", "charging the card [REDACTED:card] failed");
    assert_eq!(
        b["error_chain"][1],
        "std::io::Error: GET https://admin:[REDACTED]@intranet.example.com/reports refused"
    );
    assert_eq!(b["event"]["order_id"], "ord_8f14e45f");
    let b = hit_with(&hits, "CRITICAL", "ledger unreachable");
    assert_eq!(b["class"], "system");
    let chain: Vec<&str> = b["error_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        [
            "redaction::LedgerDown: login to postgres://app:[REDACTED]@db/shop failed",
            "std::io::Error: Cookie: [REDACTED]",
        ]
    );
    let b = hit_with(&hits, "CRITICAL", "stripe key [REDACTED:token] rejected");
    assert_eq!(b["event"]["client_secret"], "[REDACTED]");
    drop(guard);
}

#[test]
fn every_alert_payload_masks_the_whole_corpus_even_on_routes_made_with_route_alert() {
    let rx = Receiver::start();
    let policy = AlertPolicy::default()
        .with_throttle(Duration::ZERO)
        .with_budget(0, Duration::from_secs(60));
    let sink = |dest: Destination| {
        AlertSink::new(dest)
            .with_policy(policy)
            .with_queue_capacity(10_000)
            .spawn()
            .unwrap()
    };
    let (slack, g1) = sink(Destination::slack(&rx.url("/slack")).unwrap());
    let (discord, g2) = sink(Destination::discord(&rx.url("/discord")).unwrap());
    let (pagerduty, g3) = sink(
        Destination::pagerduty_at("R0UT1NGKEY0123456789abcdef", &rx.url("/pagerduty")).unwrap(),
    );
    let (webhook, g4) = sink(Destination::webhook(&rx.url("/hook")).unwrap());
    // `Route::alert` renders with a format of its own (no rules): the router's apply to it.
    let errors = RouteFilter::default();
    let router = RouterLayer::new()
        .with_redaction(rules())
        .with_route(Route::alert(errors.clone(), slack))
        .with_route(Route::alert(errors.clone(), discord))
        .with_route(Route::alert(errors.clone(), pagerduty))
        .with_route(Route::alert(errors, webhook));
    let secrets = corpus::secrets();
    let ordinary = corpus::ordinary();
    let mut events = 0;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        for s in &secrets {
            corpus::emit(tracing::Level::ERROR, &s.field, &s.value, "by field");
            events += 1;
            if s.kind == SecretKind::Pattern {
                corpus::emit(tracing::Level::ERROR, "detail", "x", &s.value);
                let err = GatewayError(std::io::Error::other(s.value.clone()));
                tracing::error!(error = &err as &dyn std::error::Error, "upstream failed");
                events += 2;
            }
        }
        for o in &ordinary {
            corpus::emit(tracing::Level::ERROR, &o.field, &o.value, &o.value);
            events += 1;
        }
    });
    for g in [&g1, &g2, &g3, &g4] {
        assert!(g.flush(Duration::from_secs(30)), "flush timed out");
    }
    let hits = rx.wait_for_hits(4 * events);
    assert_eq!(hits.len(), 4 * events);
    for path in ["/slack", "/discord", "/pagerduty", "/hook"] {
        let bodies: Vec<&Value> = hits
            .iter()
            .filter(|h| h.path == path)
            .map(|h| &h.body)
            .collect();
        assert_eq!(bodies.len(), events, "{path}");
        for b in bodies {
            assert_no_secret(
                &format!("a {path} payload"),
                &payload_text(b),
                secrets.iter().map(|s| s.secret.as_str()),
            );
        }
    }
    // Ordinary values arrive as they were logged (the webhook carries the whole line).
    let webhook: Vec<&Value> = hits
        .iter()
        .filter(|h| h.path == "/hook")
        .map(|h| &h.body)
        .collect();
    for o in &ordinary {
        assert!(
            webhook
                .iter()
                .any(|b| b["message"] == o.value.as_str()
                    && b["event"][&o.field] == o.value.as_str()),
            "{o:?} changed"
        );
    }
    // And the masks are there: by name, and by shape in the message and in the chain.
    assert!(
        webhook
            .iter()
            .any(|b| b["event"]["password"] == "[REDACTED]")
    );
    assert!(
        webhook
            .iter()
            .any(|b| b["message"] == "charge card [REDACTED:card] for 19.99 EUR")
    );
    assert!(webhook.iter().any(|b| {
        b["error_chain"][1] == "std::io::Error: using [REDACTED:aws_key] in eu-west-1"
    }));
}

#[derive(Clone, Default)]
struct Mem(Arc<Mutex<Vec<String>>>);

impl Sink for Mem {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8(line.to_vec()).unwrap());
        Ok(())
    }
}

impl Mem {
    fn line(&self) -> String {
        self.0.lock().unwrap()[0].clone()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.line()).unwrap()
    }
}

/// Logs one WARN with secrets inside a span through `router`.
fn log_one(router: RouterLayer) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        tracing::info_span!("request", session_id = "s-1", user_id = 7_u64).in_scope(|| {
            tracing::warn!(
                password = "hunter2",
                cvv = 737_u64,
                note = "postgres://app:pw1@db/x",
                user = "bob",
                "card 4111 1111 1111 1111 declined"
            );
        });
    });
}

#[test]
fn the_routers_rules_mask_text_lines_and_json_formats_without_rules_of_their_own() {
    let (text, json, own) = (Mem::default(), Mem::default(), Mem::default());
    let keeps_passwords = Redaction::new().with_exception("password");
    // Rules set after the routes apply to them too.
    let router = RouterLayer::new()
        .with_route(Route::new(
            RouteFilter::default(),
            Format::Text,
            text.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default(),
            Format::Json(JsonFormat::new()),
            json.clone(),
        ))
        .with_route(Route::new(
            RouteFilter::default(),
            Format::Json(JsonFormat::new().with_redaction(Some(Arc::new(keeps_passwords)))),
            own.clone(),
        ))
        .with_redaction(rules());
    log_one(router);
    let line = text.line();
    assert!(
        line.ends_with(
            "WARN redaction: card [REDACTED:card] declined password=[REDACTED] cvv=[REDACTED] \
             note=\"postgres://app:[REDACTED]@db/x\" user=\"bob\" session_id=[REDACTED] user_id=7\n"
        ),
        "{line}"
    );
    let j = json.json();
    assert_eq!(j["message"], "card [REDACTED:card] declined");
    assert_eq!(j["password"], "[REDACTED]");
    assert_eq!(j["cvv"], "[REDACTED]");
    assert_eq!(j["session_id"], "[REDACTED]");
    assert_eq!(j["note"], "postgres://app:[REDACTED]@db/x");
    assert_eq!(j["user_id"], 7);
    // A format with rules of its own keeps them.
    let j = own.json();
    assert_eq!(j["password"], "hunter2");
    assert_eq!(j["cvv"], "[REDACTED]");

    // Without rules, nothing is masked.
    let text = Mem::default();
    log_one(RouterLayer::new().with_route(Route::new(
        RouteFilter::default(),
        Format::Text,
        text.clone(),
    )));
    let line = text.line();
    assert!(
        line.contains("card 4111 1111 1111 1111 declined password=\"hunter2\" cvv=737"),
        "{line}"
    );
    assert!(line.contains("session_id=s-1"), "{line}");
}
