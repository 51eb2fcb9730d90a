//! One occurrence parsed from its JSON line, and the payloads built from it for each
//! destination, within each service's documented limits.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value, json};
use strata_core::fingerprint::Fingerprint;
use strata_core::{ErrorClass, Severity};

use super::policy::Kind;
use crate::router::EventInfo;

/// Keys shown in their own place (title, context) rather than among the fields.
const OWN_PLACE: &[&str] = &[
    "timestamp",
    "@timestamp",
    "level",
    "severity",
    "log.level",
    "target",
    "log.logger",
    "message",
    "body",
    "error",
    "error.class",
    "service",
    "service.name",
    "env",
    "version",
    "trace_id",
    "span_id",
    "file",
    "line",
    "thread",
];

/// Lines longer than this are not attached whole to webhook and email alerts.
const MAX_EVENT: usize = 16 * 1024;

/// At most this many fields are shown.
const MAX_FIELDS: usize = 10;

/// One occurrence of an error, as the alert sinks show it.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    pub(crate) severity: Severity,
    pub(crate) class: Option<ErrorClass>,
    pub(crate) message: String,
    pub(crate) target: String,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) timestamp: String,
    pub(crate) service: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) trace_id: Option<String>,
    /// `Type: message` for the error and each of its sources.
    pub(crate) chain: Vec<String>,
    /// Other fields, as text.
    pub(crate) fields: Vec<(String, String)>,
    /// The whole line, for the generic webhook.
    pub(crate) event: Value,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl Occurrence {
    /// Parses a rendered line; a line that is not a JSON object becomes the message.
    pub(crate) fn parse(info: &EventInfo, line: &[u8]) -> Occurrence {
        let obj: Map<String, Value> = match serde_json::from_slice(line) {
            Ok(Value::Object(m)) => m,
            _ => {
                let mut m = Map::new();
                let body = String::from_utf8_lossy(line);
                m.insert("message".into(), Value::String(body.trim_end().to_owned()));
                m
            }
        };
        let get = |keys: &[&str]| keys.iter().find_map(|k| obj.get(*k)).map(text);
        let message = get(&["message", "body"]).unwrap_or_default();
        let target =
            get(&["target", "log.logger"]).unwrap_or_else(|| info.metadata.target().to_owned());
        let mut chain = Vec::new();
        let mut types: Vec<String> = Vec::new();
        if let Some(err) = obj.get("error") {
            let mut push = |e: &Value| {
                let ty = e.get("type").map(text);
                let msg = e.get("message").map(text).unwrap_or_else(|| text(e));
                chain.push(match &ty {
                    Some(t) => format!("{t}: {msg}"),
                    None => msg,
                });
                types.extend(ty);
            };
            push(err);
            if let Some(Value::Array(links)) = err.get("chain") {
                links.iter().for_each(&mut push);
            }
        }
        // `log_error!(err)` without a message: the error's own message stands in.
        let message = if message.is_empty() {
            obj.get("error")
                .and_then(|e| e.get("message"))
                .map(text)
                .unwrap_or_default()
        } else {
            message
        };
        let type_refs: Vec<&str> = types.iter().map(String::as_str).collect();
        let site = info.metadata.module_path().unwrap_or(&target);
        let fingerprint = Fingerprint::new(&type_refs, &message, site);
        let class = obj
            .get("error.class")
            .and_then(Value::as_str)
            .and_then(ErrorClass::from_name);
        let fields = obj
            .iter()
            .filter(|(k, _)| !OWN_PLACE.contains(&k.as_str()) && *k != "request_id")
            .take(MAX_FIELDS)
            .map(|(k, v)| (clip(k, 60), clip(&text(v), 300)))
            .collect();
        Occurrence {
            severity: info.severity,
            class,
            message: clip(&message, 2000),
            target: clip(&target, 200),
            fingerprint,
            timestamp: get(&["timestamp", "@timestamp"])
                .filter(|t| looks_like_rfc3339(t))
                .unwrap_or_else(strata_core::encode::rfc3339_now),
            service: get(&["service", "service.name"]).map(|s| clip(&s, 100)),
            environment: get(&["env"]).map(|s| clip(&s, 100)),
            version: get(&["version"]).map(|s| clip(&s, 100)),
            request_id: get(&["request_id"]).map(|s| clip(&s, 100)),
            trace_id: get(&["trace_id"]).map(|s| clip(&s, 64)),
            chain: chain.into_iter().take(8).map(|c| clip(&c, 500)).collect(),
            fields,
            // The whole line rides along (webhook, email) only when small: samples are kept per
            // fingerprint, so memory stays bounded.
            event: if line.len() <= MAX_EVENT {
                Value::Object(obj)
            } else {
                Value::Null
            },
        }
    }

    /// `[CRITICAL] checkout: payment failed`.
    pub(crate) fn title(&self) -> String {
        match &self.service {
            Some(s) => format!("[{}] {s}: {}", self.severity, one_line(&self.message)),
            None => format!("[{}] {}", self.severity, one_line(&self.message)),
        }
    }
}

/// `2026-11-25T10:40:39.935190Z` or with an offset: what Discord and PagerDuty accept.
fn looks_like_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 20
        && b.len() <= 40
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
        && in_range(&b[5..7], 1, 12)
        && in_range(&b[8..10], 1, 31)
        && in_range(&b[11..13], 0, 23)
        && in_range(&b[14..16], 0, 59)
        && in_range(&b[17..19], 0, 60)
        && (t.ends_with('Z') || b[b.len() - 6] == b'+' || b[b.len() - 6] == b'-')
        && t.bytes().all(|c| c.is_ascii_graphic())
}

fn in_range(digits: &[u8], lo: u32, hi: u32) -> bool {
    digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u32>().ok())
            .is_some_and(|n| (lo..=hi).contains(&n))
}

/// The message on one line: control characters (newlines, escapes) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// "5 min", "30 s", "2 h 5 min".
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        return format!("{} s", s.max(1));
    }
    let (h, m) = (s / 3600, (s % 3600) / 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// What the alert says about repetition, if anything.
pub(crate) fn repetition(kind: Kind) -> Option<String> {
    match kind {
        Kind::First => None,
        Kind::Escalated { count, window } => Some(format!(
            "occurred {count} times in the last {}",
            human(window)
        )),
        Kind::Digest { count, window } => Some(format!(
            "occurred {count} more {} in the last {}",
            if count == 1 { "time" } else { "times" },
            human(window)
        )),
        Kind::Overflow {
            count,
            window,
            limit,
        } => Some(format!(
            "{count} more {} held back in the last {} (at most {limit} new alerts per window); this is the latest",
            if count == 1 {
                "error was"
            } else {
                "errors were"
            },
            human(window)
        )),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::First => "first",
        Kind::Escalated { .. } => "repeated",
        Kind::Digest { .. } => "digest",
        Kind::Overflow { .. } => "overflow",
    }
}

fn occurrences(kind: Kind) -> u64 {
    match kind {
        Kind::First => 1,
        Kind::Escalated { count, .. } => u64::from(count),
        Kind::Digest { count, .. } | Kind::Overflow { count, .. } => count,
    }
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` (so log content cannot mention `<!channel>`, a
/// user, or forge a link).
fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Context line items shared by the chat formats.
fn context(o: &Occurrence) -> Vec<(&'static str, String)> {
    let mut v = vec![("target", o.target.clone())];
    if let Some(c) = o.class {
        v.push(("class", c.as_str().to_owned()));
    }
    for (k, val) in [
        ("service", &o.service),
        ("env", &o.environment),
        ("version", &o.version),
        ("request_id", &o.request_id),
        ("trace_id", &o.trace_id),
    ] {
        if let Some(val) = val {
            v.push((k, val.clone()));
        }
    }
    v
}

/// A Slack incoming-webhook message (Block Kit, with `text` as the notification fallback).
///
/// Limits: header text 150 characters, section text 3000, at most 10 section fields of 2000,
/// at most 10 context elements.
pub(crate) fn slack(o: &Occurrence, kind: Kind) -> Value {
    let mut title = o.title();
    if let Some(r) = repetition(kind) {
        let _ = write!(title, " ({r})");
    }
    let mut body = format!("*{}*", slack_escape(&clip(&one_line(&o.message), 1000)));
    if let Some(r) = repetition(kind) {
        let _ = write!(body, "\n:repeat: {r}");
    }
    if !o.chain.is_empty() {
        let chain = o.chain.join("\n  caused by: ");
        let _ = write!(body, "\n```{}```", slack_escape(&clip(&chain, 1500)));
    }
    let mut fields: Vec<Value> = context(o)
        .into_iter()
        .chain(o.fields.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .take(10)
        .map(|(k, v)| {
            json!({"type": "mrkdwn", "verbatim": true, "text": clip(&format!("*{}*\n{}", slack_escape(k), slack_escape(&v)), 2000)})
        })
        .collect();
    fields.truncate(10);
    let mut blocks = vec![
        // plain_text is not parsed for mentions, but keep `<…>` out of it all the same.
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&one_line(&o.title()).replace('<', "‹").replace('>', "›"), 150), "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "verbatim": true, "text": clip(&body, 3000)}}),
    ];
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "verbatim": true, "text": format!("fingerprint `{}` · {}", o.fingerprint, slack_escape(&o.timestamp))}
    ]}));
    json!({"text": clip(&slack_escape(&one_line(&title)), 3000), "blocks": blocks})
}

/// The embed colour per severity.
fn colour(sev: Severity) -> u32 {
    match sev {
        Severity::Critical => 0x00B0_0020,
        Severity::Error => 0x00E0_1E5A,
        Severity::Warn => 0x00EC_B22E,
        _ => 0x0036_C5F0,
    }
}

/// Discord markdown escaping: log content cannot format, mask a link (`[text](url)`), quote or
/// open a code block.
fn discord_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*'
                | '_'
                | '~'
                | '`'
                | '|'
                | '>'
                | '#'
                | '['
                | ']'
                | '('
                | ')'
                | '-'
                | '<'
                | '@'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Discord webhook message: one embed, mentions disabled (`allowed_mentions.parse = []`, so
/// `@everyone` in a log message pings no one) and log content markdown-escaped.
///
/// Limits: title 256, description 4096, at most 25 fields (name 256, value 1024), footer 2048,
/// and 6000 characters in the whole embed (fields are dropped to stay within it).
pub(crate) fn discord(o: &Occurrence, kind: Kind) -> Value {
    let title = clip(&one_line(&o.title()), 256);
    let footer = format!("fingerprint {}", o.fingerprint);
    let mut description = discord_escape(&clip(&o.message, 1500));
    if let Some(r) = repetition(kind) {
        let _ = write!(description, "\n\n**{r}**");
    }
    if !o.chain.is_empty() {
        // Inside a code block only a closing fence is special.
        let chain = o.chain.join("\n  caused by: ").replace("```", "'''");
        let _ = write!(description, "\n```\n{}\n```", clip(&chain, 1500));
    }
    let description = clip(&description, 4096);
    let mut budget = 6000usize.saturating_sub(
        title.chars().count() + footer.chars().count() + description.chars().count(),
    );
    let mut fields = Vec::new();
    for (k, v) in context(o)
        .into_iter()
        .chain(o.fields.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .take(20)
    {
        let name = clip(k, 256);
        let value = clip(&discord_escape(&v), 200);
        // Discord rejects empty and blank values.
        let value = if value.trim().is_empty() {
            "-".to_owned()
        } else {
            value
        };
        let cost = name.chars().count() + value.chars().count();
        if cost > budget {
            break;
        }
        budget -= cost;
        fields.push(json!({"name": name, "value": value, "inline": true}));
    }
    json!({
        "username": "strata",
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": title,
            "description": description,
            "color": colour(o.severity),
            "timestamp": o.timestamp,
            "fields": fields,
            "footer": {"text": footer},
        }],
    })
}

/// A PagerDuty Events API v2 `trigger`: `dedup_key` from the fingerprint, so repeats and
/// digests update the same incident; severity `critical`/`error`/`warning`/`info`.
///
/// Limits: summary 1024 characters, dedup_key 255.
pub(crate) fn pagerduty(o: &Occurrence, kind: Kind, routing_key: &str, source: &str) -> Value {
    let severity = match o.severity {
        Severity::Critical => "critical",
        Severity::Error => "error",
        Severity::Warn => "warning",
        _ => "info",
    };
    let mut summary = o.title();
    if let Some(r) = repetition(kind) {
        let _ = write!(summary, " ({r})");
    }
    let mut details = Map::new();
    details.insert("message".into(), Value::String(o.message.clone()));
    details.insert("occurrences".into(), json!(occurrences(kind)));
    if !o.chain.is_empty() {
        details.insert("error_chain".into(), json!(o.chain));
    }
    for (k, v) in context(o).into_iter().chain(
        o.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect::<Vec<_>>(),
    ) {
        details.entry(k.to_owned()).or_insert(Value::String(v));
    }
    let mut payload = json!({
        "summary": clip(&summary, 1024),
        "source": clip(
            o.service
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .or(Some(source).filter(|s| !s.trim().is_empty()))
                .unwrap_or("strata"),
            255,
        ),
        "severity": severity,
        "timestamp": o.timestamp,
        "component": o.target,
        "custom_details": details,
    });
    if let Some(s) = &o.service {
        payload["group"] = Value::String(s.clone());
    }
    if let Some(c) = o.class {
        payload["class"] = Value::String(c.as_str().to_owned());
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": format!("strata-{}", o.fingerprint),
        "client": "strata",
        "payload": payload,
    })
}

/// The generic webhook's JSON: everything, including the whole log line as `event`.
pub(crate) fn webhook(o: &Occurrence, kind: Kind) -> Value {
    let window = match kind {
        Kind::First => None,
        Kind::Escalated { window, .. }
        | Kind::Digest { window, .. }
        | Kind::Overflow { window, .. } => Some(window),
    };
    let count = occurrences(kind);
    json!({
        "version": 1,
        "kind": kind_name(kind),
        "title": o.title(),
        "text": repetition(kind),
        "severity": o.severity.as_str(),
        "class": o.class.map(ErrorClass::as_str),
        "fingerprint": o.fingerprint.to_string(),
        "message": o.message,
        "target": o.target,
        "service": o.service,
        "environment": o.environment,
        "version_deployed": o.version,
        "request_id": o.request_id,
        "trace_id": o.trace_id,
        "timestamp": o.timestamp,
        "occurrences": count,
        "window_seconds": window.map(|w| w.as_secs()),
        "error_chain": o.chain,
        "event": o.event,
    })
}

/// An email: subject (one line, at most 200 characters) and plain-text body.
pub(crate) fn email(o: &Occurrence, kind: Kind) -> (String, String) {
    let mut subject = o.title();
    if let Some(r) = repetition(kind) {
        let _ = write!(subject, " ({r})");
    }
    let mut body = String::new();
    let _ = writeln!(body, "{}\n", o.message);
    if let Some(r) = repetition(kind) {
        let _ = writeln!(body, "This error {r}.\n");
    }
    for (i, link) in o.chain.iter().enumerate() {
        let _ = writeln!(
            body,
            "{}{link}",
            if i == 0 { "error: " } else { "  caused by: " }
        );
    }
    if !o.chain.is_empty() {
        body.push('\n');
    }
    for (k, v) in context(o)
        .into_iter()
        .chain(o.fields.iter().map(|(k, v)| (k.as_str(), v.clone())))
    {
        let _ = writeln!(body, "{k}: {v}");
    }
    let _ = writeln!(
        body,
        "time: {}\nfingerprint: {}",
        o.timestamp, o.fingerprint
    );
    let _ = writeln!(
        body,
        "\nlog line:\n{}",
        serde_json::to_string_pretty(&o.event).unwrap_or_default()
    );
    (clip(&one_line(&subject), 200), body)
}
