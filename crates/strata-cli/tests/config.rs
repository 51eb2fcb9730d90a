//! `strata config check`: the effective configuration of a directory with its origins and no
//! secret, and a clear error (exit status 1) naming the bad key.

use std::path::Path;
use std::process::{Command, Output};

mod golden;

fn check(dir: &Path, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["config", "check"]).current_dir(dir);
    strata_testkit::scrub_env(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("strata runs")
}

#[test]
fn prints_every_value_with_its_origin_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        "service = \"shop\"\n[log]\nlevel = \"info,sqlx=warn\"\n[capture]\ndsn = \"https://s3cretkey@errors.example.com/4\"\n",
    )
    .unwrap();
    let out = check(dir.path(), &[("STRATA_ENV", "prod")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "# strata configuration: production profile, file strata.toml",
        "env = \"production\"",
        "# STRATA_ENV",
        "service = \"shop\"",
        "level = \"info,sqlx=warn\"",
        "dsn = \"https://[REDACTED]@errors.example.com/4\"",
        "format = \"json\"",
        "# profile production",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    assert!(!text.contains("s3cretkey"), "{text}");
}

#[test]
fn an_invalid_value_exits_1_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        "[log]\ncolour = \"never\"\n",
    )
    .unwrap();
    let out = check(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key `log.colour`") && err.contains("did you mean `color`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let empty = tempfile::tempdir().unwrap();
    let out = check(empty.path(), &[("STRATA_REDACT", "sometimes")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("STRATA_REDACT") && err.contains("sometimes"),
        "{err}"
    );
}

#[test]
fn the_effective_configuration_reads_like_this() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        "env = \"staging\"\nservice = \"shop\"\nversion = \"1.4.2\"\n\n[log]\nlevel = \"info,sqlx=warn\"\n\n[redaction]\nfields = [\"pin\"]\n\n[otlp]\nendpoint = \"http://collector:4317\"\nheaders = { \"x-api-key\" = \"hidden\" }\n\n[[router.route]]\nsink = \"file\"\ndir = \"logs\"\n",
    )
    .unwrap();
    let out = check(
        dir.path(),
        &[("SENTRY_DSN", "https://key123@errors.example.com/4")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    golden::snapshot("config_check.txt", &String::from_utf8(out.stdout).unwrap());
}
