//! Environments: development, staging and production want different logging — DEBUG and
//! colours on a laptop, INFO with error tracking in staging, WARN, JSON, no secrets and
//! sampled traces in production. One profile sets every default; a config file, the
//! environment and code override it, each value checked and shown with where it came from.
//!
//! Run with `cargo run -p example-guide --bin environments`, then with
//! `STRATA_ENV=production` (and try `STRATA_ENV=prodution`).

use strata::Profile;

fn main() {
    example_guide::workdir("environments");

    // 1. What each profile sets, resolved without installing anything.
    eprintln!("[guide] profile       format   redaction  capture  sampling  level");
    for p in Profile::ALL {
        let c = strata::builder()
            .with_profile(p)
            .without_config_file()
            .resolve()
            .expect("valid");
        eprintln!(
            "[guide] {:<12}  {:<7}  {:<9}  {:<7}  {:<8}  {}",
            p.name(),
            c.log.format.name(),
            c.redaction.enabled,
            c.capture.enabled,
            c.otlp
                .sample_ratio
                .map_or("all".to_owned(), |r| format!("{r}")),
            c.log.level,
        );
    }

    // 2. A mistake is an error naming the key, where it came from, the value, what is expected.
    if let Err(e) = strata::builder().with_env("prodution").resolve() {
        eprintln!("[guide] with_env(\"prodution\"): {e}");
    }
    std::fs::write("typo.toml", "[log]\ncolour = \"never\"\n").expect("writable");
    if let Err(e) = strata::builder().with_config_file("typo.toml").resolve() {
        eprintln!("[guide] typo.toml: {e}");
    }

    // 3. The service's own file; STRATA_ENV picks the profile (development by default).
    std::fs::write(
        "strata.toml",
        "service = \"shop\"\nversion = \"1.4.2\"\n\n[redaction]\nfields = [\"pin\"]\n\n[capture]\nbreadcrumbs = 50\n",
    )
    .expect("writable");
    let guard = match strata::try_init() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("[guide] strata: {e}");
            std::process::exit(2);
        }
    };
    // Every value and its origin (profile, strata.toml, an environment variable, code).
    eprintln!("{}", guard.config());

    tracing::debug!(cart = "[3 items]", "cart recomputed");
    tracing::info!(order_id = 42_u64, "Order created");
    tracing::warn!(
        pin = "4921",
        card = "4111 1111 1111 1111",
        "card check failed"
    );
    eprintln!(
        "[guide] look at: development writes the console format with the DEBUG line and the pin \
         in clear; production writes JSON from WARN with pin and card [REDACTED]"
    );
}
