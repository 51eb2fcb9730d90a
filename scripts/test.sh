#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, tests (unit, integration, doc,
# property, schema validation, the demo), docs with broken-link denial, benches compiled.
#
# Real backends the tests need are installed here, idempotently; the tests start and stop
# their own instances (on 127.0.0.1, in temporary directories).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUSTFLAGS="${RUSTFLAGS:-}"
# Incremental caches double the size of a fresh target directory and buy nothing in CI.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "backends: syslog-ng"
if ! command -v syslog-ng > /dev/null 2>&1 && [ ! -x /usr/sbin/syslog-ng ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends syslog-ng-core > /dev/null 2>&1 \
    || { apt-get update > /dev/null && apt-get install -y --no-install-recommends syslog-ng-core > /dev/null; }
fi
step "load generator: wrk"
if ! command -v wrk > /dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends wrk > /dev/null 2>&1 \
    || { apt-get update > /dev/null && apt-get install -y --no-install-recommends wrk > /dev/null; }
fi
step "backends: Prometheus, promtool, Alertmanager, amtool"
if ! command -v prometheus > /dev/null 2>&1 || ! command -v promtool > /dev/null 2>&1 \
  || ! command -v amtool > /dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends prometheus prometheus-alertmanager > /dev/null 2>&1 \
    || { apt-get update > /dev/null \
      && apt-get install -y --no-install-recommends prometheus prometheus-alertmanager > /dev/null; }
fi
# The Debian packages may start system services; the tests run their own instances.
systemctl disable --now prometheus prometheus-alertmanager > /dev/null 2>&1 || true
step "backends: aiosmtpd (cached venv)"
cache="${STRATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
venv="$cache/venv-aiosmtpd"
if ! "$venv/bin/python" -c "import aiosmtpd" > /dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check aiosmtpd==1.4.6
fi
export STRATA_PYTHON="$venv/bin/python"

step "backends: Bugsink (cached venv and migrated template database)"
./scripts/bugsink.sh install

# Tests that need a backend fail (instead of skipping) when it is missing.
export STRATA_REQUIRE_BACKENDS=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the panic = \"abort\" builds for the panic tests (a capture probe, the fault-test service)"
cargo build -q --locked --profile panic-abort -p strata-capture --example panic_probe
cargo build -q --locked --profile panic-abort -p example-faults --bin faults-service
export STRATA_PANIC_ABORT_PROBE="$PWD/target/panic-abort/examples/panic_probe"
export STRATA_FAULTS_ABORT_SERVICE="$PWD/target/panic-abort/faults-service"

step "cargo test (workspace: unit, integration, doc tests, demo)"
cargo test --workspace --all-targets --locked 2>&1 | tee -a "$log"
cargo test --workspace --doc --locked 2>&1 | tee -a "$log"

# cargo-fuzz needs nightly; skipped only where there is none and rustup cannot install it.
# STRATA_SKIP_FUZZ=1 skips it (for a CI that runs scripts/fuzz.sh in a job of its own).
if [ "${STRATA_SKIP_FUZZ:-0}" = 1 ]; then
  step "fuzz targets: skipped (STRATA_SKIP_FUZZ=1)"
elif cargo +nightly --version > /dev/null 2>&1 \
  || rustup toolchain install nightly --profile minimal > /dev/null 2>&1; then
  step "fuzz targets (scripts/fuzz.sh: nightly, cargo-fuzz; ${STRATA_FUZZ_SECONDS:-30} s per target, a crash fails)"
  ./scripts/fuzz.sh
else
  step "fuzz targets: SKIPPED: no nightly toolchain, and rustup could not install one"
fi

step "cargo doc (broken intra-doc links denied)"
RUSTDOCFLAGS="-D warnings -D rustdoc::broken_intra_doc_links" cargo doc --workspace --no-deps --locked

step "the demo runs (the README's first command, shortened, in a scratch directory)"
demo_dir="$(mktemp -d)"
(cd "$demo_dir" && DEMO_SECONDS=3 cargo run -q --manifest-path "$OLDPWD/Cargo.toml" -p example-demo --locked > /dev/null)
rm -rf "$demo_dir"

step "cargo deny (licenses, bans, sources; the advisory database lives on GitHub, out of reach here)"
if ! command -v cargo-deny > /dev/null 2>&1; then
  cargo install -q cargo-deny --locked --version 0.20.2
fi
cargo deny --log-level error check licenses bans sources

# One closing line for the whole run, summed over every test binary and the doc tests.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
