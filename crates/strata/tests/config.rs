//! The facade's configuration: profile < file < environment < code, every bad value a typed
//! error naming its key and origin, unknown keys reported, the effective configuration shown
//! with its origins and without secrets; one global install.
//!
//! Environment variables are process-wide, so every check that touches them runs in this one
//! test, in order.

use std::path::Path;

use strata::config::{ConfigError, LogFormat, Source};
use strata::{InitError, Profile, builder};

/// What this test sets besides strata's own variables (`strata::config::ENV_VARS`).
const OTHER_VARS: &[&str] = &[
    "STRATA_SERIVCE",
    "RUST_LOG",
    "SENTRY_DSN",
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_LOGS_EXPORTER",
];

fn clear_env() {
    for k in strata::config::ENV_VARS.iter().chain(OTHER_VARS) {
        // SAFETY: this test binary has a single test; no other thread reads the environment.
        unsafe { std::env::remove_var(k) };
    }
}

fn set(k: &str, v: impl AsRef<std::ffi::OsStr>) {
    // SAFETY: as above.
    unsafe { std::env::set_var(k, v) };
}

fn config_error(r: Result<strata::Config, InitError>) -> ConfigError {
    match r {
        Err(InitError::Config(e)) => e,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn precedence_errors_effective_and_install() {
    clear_env();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "strata.toml",
        r#"
env = "stage"
service = "from-file"
version = "1.0.0"

[log]
level = "debug,hyper=warn"
format = "json"

[redaction]
fields = ["pin"]
exceptions = ["token_count"]
disable_patterns = ["card"]

[capture]
dsn = "https://pubkey123@sentry.example.com/7"
breadcrumbs = 20

[otlp]
sample_ratio = 0.5
span_events = "info"
headers = { "x-api-key" = "sekrit-header" }

[metrics]
listen = "127.0.0.1:0"
"#,
    );

    // The profile's defaults: development.
    let c = builder().without_config_file().resolve().unwrap();
    assert_eq!(c.profile, Profile::Development);
    assert!(
        c.log.level.starts_with("debug,") && c.log.level.contains("h2=info"),
        "DEBUG for the application, not the network stack: {}",
        c.log.level
    );
    assert_eq!(c.log.format, LogFormat::Console);
    assert!(!c.redaction.enabled && c.capture.enabled && c.otlp.enabled);
    assert_eq!(c.otlp.sample_ratio, None);
    assert_eq!(
        c.otlp.span_events, None,
        "strata-otlp's default: WARN with log records"
    );
    assert_eq!(
        c.source("log.level"),
        Some(&Source::Profile(Profile::Development))
    );
    assert_eq!(c.source("env"), Some(&Source::Default));
    assert!(
        c.service.starts_with("config"),
        "the executable: {}",
        c.service
    );

    // The file beats the profile (and chooses it).
    let c = builder().with_config_file(&file).resolve().unwrap();
    let from_file = Source::File(file.clone());
    assert_eq!(c.profile, Profile::Staging);
    assert_eq!(c.source("env"), Some(&from_file));
    assert_eq!(
        (c.service.as_str(), c.version.as_deref()),
        ("from-file", Some("1.0.0"))
    );
    assert_eq!(c.log.level, "debug,hyper=warn");
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(c.redaction.enabled, "staging masks secrets");
    assert_eq!(
        c.source("redaction.enabled"),
        Some(&Source::Profile(Profile::Staging))
    );
    let rules = c.redaction.rules().unwrap();
    assert!(rules.is_sensitive("user_pin") && !rules.is_sensitive("token_count"));
    assert_eq!(rules.redact("4111111111111111"), "4111111111111111");
    assert_eq!(c.capture.breadcrumbs, 20);
    assert_eq!(c.otlp.sample_ratio, Some(0.5));
    assert_eq!(
        c.otlp.span_events,
        Some(tracing::level_filters::LevelFilter::INFO)
    );
    assert_eq!(c.metrics.listen.map(|a| a.port()), Some(0));

    // STRATA_CONFIG names the file; the environment beats it.
    set("STRATA_CONFIG", &file);
    set("STRATA_ENV", "PROD");
    set("STRATA_SERVICE", "from-env");
    set("RUST_LOG", "warn,shop=debug");
    set("STRATA_LOG_FORMAT", "ecs");
    set("STRATA_REDACT", "off");
    set("SENTRY_DSN", "https://envkey456@errors.example.com/9");
    let c = builder().resolve().unwrap();
    assert_eq!(c.file.as_deref(), Some(file.as_path()));
    assert_eq!(c.profile, Profile::Production);
    assert_eq!(c.source("env"), Some(&Source::Env("STRATA_ENV")));
    assert_eq!(c.service, "from-env");
    assert_eq!(c.log.level, "warn,shop=debug");
    assert_eq!(c.source("log.level"), Some(&Source::Env("RUST_LOG")));
    assert_eq!(c.log.format, LogFormat::Ecs);
    assert!(!c.redaction.enabled);
    assert_eq!(
        c.otlp.sample_ratio,
        Some(0.5),
        "the file's ratio beats production's"
    );

    // Code beats everything.
    let c = builder()
        .with_env("dev")
        .with_service("from-code")
        .with_filter("error")
        .with_format(LogFormat::Json)
        .with_redaction(Some(strata::Redaction::new()))
        .resolve()
        .unwrap();
    assert_eq!(c.profile, Profile::Development);
    assert_eq!(c.source("env"), Some(&Source::Code("Builder::with_env")));
    assert_eq!(
        (c.service.as_str(), c.log.level.as_str()),
        ("from-code", "error")
    );
    assert_eq!(
        c.source("service"),
        Some(&Source::Code("Builder::with_service"))
    );
    assert!(c.redaction.enabled);

    // The effective configuration: every value with its origin, secrets masked.
    set("STRATA_SERIVCE", "typo");
    let shown = strata::config::effective().unwrap();
    let text = shown.to_string();
    assert!(
        text.contains("# strata configuration: production profile"),
        "{text}"
    );
    assert!(text.contains(&format!("file {}", file.display())), "{text}");
    for needle in [
        "env = \"production\"",
        "# STRATA_ENV",
        "service = \"from-env\"",
        "# STRATA_SERVICE",
        "dsn = \"https://[REDACTED]@errors.example.com/9\"",
        "# SENTRY_DSN",
        "\"x-api-key\" = \"[REDACTED]\"",
        "sample_ratio = 0.5",
        "[capture]",
        "STRATA_SERIVCE is not a setting (did you mean STRATA_SERVICE?)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    for secret in ["pubkey123", "envkey456", "sekrit-header"] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
        assert!(!format!("{shown:?}").contains(secret), "{secret} in Debug");
    }
    assert_eq!(
        shown.unknown_env,
        vec![("STRATA_SERIVCE".to_owned(), "STRATA_SERVICE")]
    );
    clear_env();

    // Bad values: typed errors naming the key, the origin and the value.
    let bad_file = write(dir.path(), "bad.toml", "[log]\nformat = \"xml\"\n");
    match config_error(builder().with_config_file(&bad_file).resolve()) {
        ConfigError::Invalid {
            key,
            origin,
            value,
            expected,
        } => {
            assert_eq!(key, "log.format");
            assert_eq!(origin, Source::File(bad_file.clone()));
            assert!(
                value.contains("xml") && expected.contains("console"),
                "{value} {expected}"
            );
        }
        other => panic!("{other:?}"),
    }
    let typo = write(dir.path(), "typo.toml", "[log]\ncolour = \"never\"\n");
    let loud = write(dir.path(), "loud.toml", "[otlp]\nspan_events = \"loud\"\n");
    match config_error(builder().with_config_file(&loud).resolve()) {
        ConfigError::Invalid {
            key,
            value,
            expected,
            ..
        } => {
            assert_eq!(key, "otlp.span_events");
            assert!(value.contains("loud"), "{value}");
            assert!(expected.contains("warn"), "{expected}");
        }
        other => panic!("{other:?}"),
    }
    let err = config_error(builder().with_config_file(&typo).resolve());
    assert!(
        matches!(&err, ConfigError::UnknownKey { key, suggestion: Some(s), .. } if key == "log.colour" && s == "color"),
        "{err:?}"
    );
    assert!(err.to_string().contains("did you mean `color`"), "{err}");
    let typo = write(dir.path(), "section.toml", "[capure]\nenabled = false\n");
    let err = config_error(builder().with_config_file(&typo).resolve());
    assert!(
        err.to_string().contains("`capure`") && err.to_string().contains("capture"),
        "{err}"
    );
    let broken = write(
        dir.path(),
        "broken.toml",
        "service = \"a\"\n[log\nlevel = 1\n",
    );
    assert!(matches!(
        config_error(builder().with_config_file(&broken).resolve()),
        ConfigError::Syntax { line: 2, .. }
    ));
    let router = write(
        dir.path(),
        "router.toml",
        "[[router.route]]\nsink = \"carrier-pigeon\"\n",
    );
    let err = config_error(builder().with_config_file(&router).resolve());
    assert!(err.to_string().contains("route[0].sink"), "{err}");
    let wrong_type = write(
        dir.path(),
        "type.toml",
        "[capture]\nbreadcrumbs = \"many\"\n",
    );
    let err = config_error(builder().with_config_file(&wrong_type).resolve());
    assert!(err.to_string().contains("capture.breadcrumbs"), "{err}");

    set("STRATA_REDACT", "maybe");
    match config_error(builder().without_config_file().resolve()) {
        ConfigError::Invalid { key, origin, .. } => {
            assert!(key.contains("STRATA_REDACT"), "{key}");
            assert_eq!(origin, Source::Env("STRATA_REDACT"));
        }
        other => panic!("{other:?}"),
    }
    clear_env();
    set("RUST_LOG", "info,[unclosed");
    let err = config_error(builder().without_config_file().resolve());
    assert!(
        err.to_string().contains("RUST_LOG") && err.to_string().contains("info,[unclosed"),
        "{err}"
    );
    clear_env();
    set("STRATA_SERVICE", "bad\u{1b}[31mname");
    let err = config_error(builder().without_config_file().resolve());
    assert!(err.to_string().contains("STRATA_SERVICE"), "{err}");
    clear_env();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        set("STRATA_ENV", std::ffi::OsStr::from_bytes(b"prod\xff"));
        let err = config_error(builder().without_config_file().resolve());
        assert!(err.to_string().contains("valid UTF-8"), "{err}");
        clear_env();
    }
    let err = config_error(builder().without_config_file().with_env("qa").resolve());
    assert!(
        matches!(&err, ConfigError::Invalid { key, origin: Source::Code("Builder::with_env"), .. } if key == "env"),
        "{err:?}"
    );
    let err = config_error(builder().without_config_file().with_filter("[x").resolve());
    assert!(
        matches!(
            &err,
            ConfigError::Invalid {
                origin: Source::Code("Builder::with_filter"),
                ..
            }
        ),
        "{err:?}"
    );
    let long = "x".repeat(300);
    let err = config_error(builder().without_config_file().with_version(long).resolve());
    assert!(err.to_string().len() < 300, "the value is clipped: {err}");
    set("STRATA_CONFIG", dir.path().join("missing.toml"));
    let err = config_error(builder().resolve());
    assert!(
        matches!(
            &err,
            ConfigError::Read {
                origin: Source::Env("STRATA_CONFIG"),
                ..
            }
        ),
        "{err:?}"
    );
    clear_env();

    // Installs once; the second attempt says why it failed.
    let logs = dir.path().join("out.log");
    let out = std::sync::Mutex::new(std::fs::File::create(&logs).unwrap());
    let guard = builder()
        .without_config_file()
        .with_service("config-test")
        .with_format(LogFormat::Json)
        .with_capture_enabled(false)
        .with_otlp_enabled(false)
        .with_metrics_enabled(false)
        .with_writer(out)
        .try_init()
        .expect("first install");
    assert_eq!(guard.config().service, "config-test");
    tracing::info!(password = "hunter2", "logged through the facade");
    let second = dir.path().join("second");
    set("STRATA_ERRORS_DB", second.join("errors.db"));
    let err = builder().without_config_file().try_init().unwrap_err();
    clear_env();
    assert!(matches!(err, InitError::AlreadyInitialized(_)), "{err:?}");
    assert!(!second.exists(), "a failed init opens nothing");
    guard.flush();
    drop(guard);
    let text = std::fs::read_to_string(&logs).unwrap();
    let line: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["message"] == "logged through the facade")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(line["service"], "config-test");
    assert_eq!(line["env"], "development");
    assert_eq!(line["password"], "hunter2", "development does not mask");
    assert!(!strata::shutdown(), "the guard's drop already shut down");
}
