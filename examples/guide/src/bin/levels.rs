//! Levels as a contract: DEBUG internal details, INFO "this happened", WARN unusual but
//! recoverable, ERROR an operation failed and the service goes on, CRITICAL the system is not
//! usable. One logger per module comes free: every event's `target` is its module path.
//!
//! Run with `cargo run -p example-guide --bin levels`, then with `STRATA_ENV=production` (WARN
//! and up) and with `RUST_LOG=warn,levels::payments=debug` (one module in detail).

mod users {
    /// Registers a user: DEBUG for the payload, INFO for what happened.
    pub(crate) fn register(payload: &str) -> u64 {
        tracing::debug!(payload, "User payload");
        let user_id = 314_159_u64;
        tracing::info!(event = "user_registered", user_id, "User registered");
        user_id
    }
}

mod payments {
    /// Charges a card: WARN for what is unusual but recovered, ERROR for the failed operation.
    pub(crate) fn charge(user_id: u64) {
        tracing::debug!(user_id, amount_cents = 1999, "calling the payment gateway");
        tracing::warn!(duration_ms = 832, "Slow query");
        tracing::warn!(attempt = 2, "Retry attempt 2");
        tracing::error!(user_id, "Payment failed");
    }
}

mod db {
    /// The database is gone: CRITICAL, a level `tracing` does not have and strata adds.
    pub(crate) fn check() {
        strata::critical!(db.host = "10.0.0.7", "Database unreachable");
    }
}

fn main() {
    example_guide::workdir("levels");
    let mut builder = strata::builder().with_service("levels-demo");
    if std::env::var_os("STRATA_ENV").is_none() {
        // JSON lines from INFO; `STRATA_ENV` picks another profile.
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();
    let cfg = guard.config();
    eprintln!(
        "[guide] profile {} → log level {:?} (from {})",
        cfg.profile,
        cfg.log.level,
        cfg.source("log.level")
            .map_or("?".to_owned(), ToString::to_string)
    );

    let user = users::register(r#"{"email":"ada@example.com","plan":"pro"}"#);
    payments::charge(user);
    db::check();

    // The log level filters log lines only: metrics count every event, DEBUG included.
    let exposition = guard.metrics().expect("metrics are on").encode();
    eprintln!("[guide] log_events_total by level (every event, whatever the log level):");
    for level in ["debug", "info", "warn", "error", "critical"] {
        let n = example_guide::sample(&exposition, "log_events_total", &[("level", level)]);
        eprintln!("[guide]   {level:<8} {}", n.unwrap_or(0.0));
    }
    eprintln!(
        "[guide] look at: the `level` and `target` of each line on standard output — DEBUG \
         lines only in development (or with RUST_LOG), CRITICAL for the database"
    );
}
