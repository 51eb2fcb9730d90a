//! Routes from TOML: a working configuration end to end, and every kind of mistake reported as a
//! typed error naming the key, without opening anything.

use strata_router::{ConfigError, RouterConfig};
use tracing_subscriber::prelude::*;

#[test]
fn a_configuration_routes_to_files_in_each_format_and_to_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    // A minimal HTTP receiver: read one request, answer 200.
    let received = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        let (stream, _) = hook.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        (&stream)
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    });
    let toml = format!(
        r#"
        [[route]]
        sink = "file"
        dir = "{dir}"
        prefix = "all"
        format = "ecs"
        min_level = "debug"
        max_size = "1MB"
        rotation = "daily"
        utc_offset = "+02:00"
        keep_files = 3
        max_age = "7d"
        gzip = true

        [[route]]
        sink = "file"
        dir = "{dir}"
        prefix = "server-errors"
        format = "text"
        when = ["status >= 500"]
        on_full = "drop"
        queue = "64KiB"

        [[route]]
        sink = "file"
        dir = "{dir}"
        prefix = "payments"
        targets = ["config::payments"]
        classes = ["external"]

        [[route]]
        sink = "webhook"
        url = "http://{hook_addr}/alerts"
        headers = {{ Authorization = "Bearer t0ken" }}
        min_level = "critical"
        throttle = "1m"
        escalate_after = 2
        escalate_window = "30s"
        retry_attempts = 2
        "#,
        dir = dir.path().display()
    );
    let config = RouterConfig::from_toml(&toml).unwrap();
    assert_eq!(config.route.len(), 4);
    let (router, guard) = config.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(router), || {
        tracing::debug!("debug line");
        tracing::info!(status = 503, "upstream down");
        tracing::error!(target: "config::payments", { error.class = "external" }, "gateway timeout");
        strata_core::critical!("ledger gone");
    });
    guard.flush();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let all: Vec<serde_json::Value> = read("all.log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|l| l["@timestamp"].is_string()), "ECS");
    assert_eq!(all[0]["log.level"], "debug");
    let server_errors = read("server-errors.log");
    assert_eq!(server_errors.lines().count(), 1);
    assert!(server_errors.contains("upstream down") && server_errors.contains("status=503"));
    assert!(!server_errors.starts_with('{'), "text format");
    let payments = read("payments.log");
    assert_eq!(payments.lines().count(), 1);
    assert!(payments.contains("gateway timeout"));

    let alert = received.join().unwrap();
    assert_eq!(alert["message"], "ledger gone");
    assert_eq!(alert["severity"], "CRITICAL");
    drop(guard);
}

/// Parses and builds `toml`, expecting an error.
fn error_of(toml: &str) -> ConfigError {
    match RouterConfig::from_toml(toml) {
        Err(e) => e,
        Ok(config) => config
            .build()
            .map(drop)
            .expect_err("the configuration is invalid"),
    }
}

fn key_of(e: &ConfigError) -> &str {
    match e {
        ConfigError::Syntax { key, .. }
        | ConfigError::Invalid { key, .. }
        | ConfigError::Missing { key, .. }
        | ConfigError::Open { key, .. } => key,
        _ => panic!("unknown variant {e:?}"),
    }
}

#[test]
fn mistakes_name_the_key_the_value_and_what_was_expected() {
    let cases: &[(&str, &str, &str)] = &[
        // (configuration, key, a piece of the message)
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nmax_size = \"50XB\"",
            "route[0].max_size",
            "a size like",
        ),
        (
            "[[route]]\nsink = \"stdout\"\ncolour = \"red\"",
            "route[0].colour",
            "unknown field `colour`",
        ),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nkeep_files = \"ten\"",
            "route[0].keep_files",
            "invalid type",
        ),
        ("[[route]]\nformat = \"json\"", "route[0].sink", "missing"),
        (
            "[[route]]\nsink = \"kafka\"",
            "route[0].sink",
            "one of stdout",
        ),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nurl = \"http://a/b\"",
            "route[0].url",
            "another sink",
        ),
        (
            "[[route]]\nsink = \"stdout\"\nmin_level = \"loud\"",
            "route[0].min_level",
            "one of trace",
        ),
        (
            "[[route]]\nsink = \"stdout\"\nmin_level = \"error\"\nmax_level = \"info\"",
            "route[0].max_level",
            "at or above",
        ),
        (
            "[[route]]\nsink = \"stdout\"\nwhen = [\"status >> 5\"]",
            "route[0].when",
            "status >> 5",
        ),
        (
            "[[route]]\nsink = \"stdout\"\nclasses = [\"fatal\"]",
            "route[0].classes",
            "business, external or system",
        ),
        (
            "[[route]]\nsink = \"stdout\"\nformat = \"xml\"",
            "route[0].format",
            "one of json",
        ),
        ("[[route]]\nsink = \"file\"", "route[0].dir", "missing"),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nrotation = \"weekly\"",
            "route[0].rotation",
            "hourly, daily",
        ),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nutc_offset = \"CET\"",
            "route[0].utc_offset",
            "+02:00",
        ),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\non_full = \"wait\"",
            "route[0].on_full",
            "block or drop",
        ),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nprefix = \"../etc/passwd\"",
            "route[0].prefix",
            "path separators",
        ),
        (
            "[[route]]\nsink = \"syslog\"\naddress = \"http://x:1\"",
            "route[0].address",
            "udp://",
        ),
        (
            "[[route]]\nsink = \"syslog\"\naddress = \"udp://127.0.0.1:514\"\nfacility = \"mail2\"",
            "route[0].facility",
            "local0",
        ),
        ("[[route]]\nsink = \"slack\"", "route[0].url", "missing"),
        (
            "[[route]]\nsink = \"slack\"\nurl = \"ftp://hooks.example.com/SECRET\"",
            "route[0].url",
            "scheme",
        ),
        (
            "[[route]]\nsink = \"slack\"\nurl = \"http://x/y\"\nformat = \"text\"",
            "route[0].format",
            "alert sinks",
        ),
        (
            "[[route]]\nsink = \"slack\"\nurl = \"http://x/y\"\nthrottle = \"soon\"",
            "route[0].throttle",
            "a duration",
        ),
        (
            "[[route]]\nsink = \"pagerduty\"",
            "route[0].routing_key",
            "missing",
        ),
        (
            "[[route]]\nsink = \"pagerduty\"\nrouting_key = \"has spaces\"",
            "route[0].routing_key",
            "letters and digits",
        ),
        (
            "[[route]]\nsink = \"webhook\"\nurl = \"http://x/y\"\nheaders = { \"X-A\" = \"a\\r\\nInjected: 1\" }",
            "route[0].headers.X-A",
            "CR/LF",
        ),
        (
            "[[route]]\nsink = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"nobody\"\nto = [\"a@example.com\"]",
            "route[0].from",
            "nobody",
        ),
        (
            "[[route]]\nsink = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"a@example.com\"\nto = [\"b@\"]",
            "route[0].to",
            "b@",
        ),
        (
            "[[route]]\nsink = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"a@example.com\"",
            "route[0].to",
            "missing",
        ),
        (
            "[[route]]\nsink = \"webhook\"\nurl = \"http://x/y\"\nescalate_after = 0",
            "route[0].escalate_after",
            "1 to 10000",
        ),
        (
            "[[route]]\nsink = \"stdout\"\n[[route]]\nsink = \"stdout\"\nmax_level = \"nope\"",
            "route[1].max_level",
            "one of",
        ),
        (
            "[[route]]\nsink = \"syslog\"\naddress = \"udp://127.0.0.1:514\"\nqueue_lines = 0",
            "route[0].queue_lines",
            "1 to 1000000",
        ),
        (
            "[[route]]\nsink = \"syslog\"\naddress = \"udp://127.0.0.1:514\"\nqueue = \"1GiB\"",
            "route[0].queue",
            "another sink",
        ),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nqueue = 0",
            "route[0].queue",
            "above zero",
        ),
        (
            "[[route]]\nsink = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\nheaders = { A = \"b\" }",
            "route[0].headers",
            "another sink",
        ),
        (
            "[[route]]\nsink = \"slack\"\nurl = \"http://x/y\"\nto = [\"b@example.com\"]",
            "route[0].to",
            "another sink",
        ),
        (
            "[[route]]\nsink = \"discord\"\nurl = \"http://x/y\"\nrouting_key = \"abc\"",
            "route[0].routing_key",
            "another sink",
        ),
        (
            "[[route]]\nsink = \"webhook\"\nurl = \"http://x/y\"\nescalate_window = \"0s\"",
            "route[0].escalate_window",
            "at least 1s",
        ),
        (
            "[[route]]\nsink = \"webhook\"\nurl = \"http://x/y\"\nthrottle = \"1000d\"",
            "route[0].throttle",
            "at most 366d",
        ),
        (
            "[[route]]\nsink = \"email\"\nsmtp_url = \"smtp://u:SECRET@127.0.0.1:25\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]",
            "route[0].smtp_url",
            "TLS",
        ),
        (
            "[[route]]\nsink = \"file\"\ndir = \"x\"\nmax_age = \"0s\"",
            "route[0].max_age",
            "above zero",
        ),
        ("[[route]\nsink = \"stdout\"", "(line 1)", ""),
        ("[[route]]\nsink = \"stdout\"\nmin_level = ", "(line 3)", ""),
        ("[router]\nroute = []", "router", "unknown field `router`"),
    ];
    for (toml, key, piece) in cases {
        let err = error_of(toml);
        assert_eq!(key_of(&err), *key, "for {toml:?}: {err}");
        let message = err.to_string();
        assert!(
            message.contains(piece),
            "for {toml:?}: {message:?} lacks {piece:?}"
        );
        assert!(!message.contains("SECRET"), "a URL leaked: {message}");
    }
}

#[test]
fn nothing_is_opened_when_a_later_route_is_invalid_and_keys_carry_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    // Later routes' mistakes found only by setting up their sinks (the URL, the key, the
    // address) still stop everything before the first route's directory is made.
    for (later, bad_key) in [
        ("sink = \"stdout\"\nformat = \"yaml\"", "format"),
        ("sink = \"slack\"\nurl = \"gopher://x\"", "url"),
        (
            "sink = \"pagerduty\"\nrouting_key = \"no spaces allowed\"",
            "routing_key",
        ),
        ("sink = \"syslog\"\naddress = \"tcp://nowhere\"", "address"),
        (
            "sink = \"file\"\ndir = \"y\"\nutc_offset = \"+99:00\"",
            "utc_offset",
        ),
    ] {
        let toml = format!(
            "[[route]]\nsink = \"file\"\ndir = \"{}\"\n[[route]]\n{later}",
            logs.display()
        );
        let config = RouterConfig::from_toml(&toml).unwrap();
        let err = config
            .build_with(&strata_json::JsonFormat::new(), "router.")
            .map(drop)
            .unwrap_err();
        assert_eq!(key_of(&err), format!("router.route[1].{bad_key}"), "{err}");
        assert!(!logs.exists(), "the first route's directory was created");
    }
}

#[test]
fn a_sink_that_cannot_open_is_reported_with_its_route() {
    let file = tempfile::NamedTempFile::new().unwrap();
    // A regular file where the directory should be.
    let toml = format!(
        "[[route]]\nsink = \"file\"\ndir = \"{}\"",
        file.path().join("sub").display()
    );
    let err = error_of(&toml);
    assert!(matches!(err, ConfigError::Open { .. }), "{err:?}");
    assert_eq!(key_of(&err), "route[0]");
}
