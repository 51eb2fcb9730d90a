//! Structured logs: the data of an event goes in fields, not in the sentence, so a log
//! backend can filter on `user_id`, count by `ip` and group by `event`. Fields of a span are
//! on every line inside it; secrets are masked in staging and production.
//!
//! Run with `cargo run -p example-guide --bin structured`; `STRATA_LOG_FORMAT=ecs` (or `gcp`,
//! `otel`) writes the same records in another schema.

use tracing::{info, info_span};

fn main() {
    example_guide::workdir("structured");
    let mut builder = strata::builder().with_service("auth").with_version("1.4.2");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let _guard = builder.init();

    let user_id = 314_159_u64;
    let ip: std::net::IpAddr = "203.0.113.9".parse().expect("an IP address");

    // Unstructured: the data is inside the sentence, where no backend can filter on it.
    info!("User {user_id} logged in from {ip}");
    // Structured: the same event, its data as fields (`%` records a value with Display).
    info!(event = "user_login", user_id, ip = %ip, source = "web", "User logged in");

    // Fields set once on the request's span are on every line inside it.
    let span = info_span!("request", request_id = "0193a5c2-7f3e", route = "/login");
    let _enter = span.enter();
    info!(
        event = "session_created",
        user_id,
        ttl_s = 3600,
        "Session created"
    );
    // `?` records a value with Debug; a field named like a secret is masked.
    let roles = ["admin", "billing"];
    info!(?roles, password = "hunter2", "Roles loaded");
    // A field named like a key of the schema itself is kept under `fields.`.
    info!(level = "gold", "Loyalty level checked");

    eprintln!(
        "[guide] look at: the first line has only a sentence; the second has user_id, ip and \
         source as fields; the request's lines carry request_id and route from its span; the \
         password is [REDACTED]; `level` became `fields.level`"
    );
}
