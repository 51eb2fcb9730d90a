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

step "backends: syslog-ng"
if ! command -v syslog-ng > /dev/null 2>&1 && [ ! -x /usr/sbin/syslog-ng ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends syslog-ng-core > /dev/null 2>&1 \
    || { apt-get update > /dev/null && apt-get install -y --no-install-recommends syslog-ng-core > /dev/null; }
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

step "the panic = \"abort\" probe for the panic tests"
cargo build -q --locked --profile panic-abort -p strata-capture --example panic_probe
export STRATA_PANIC_ABORT_PROBE="$PWD/target/panic-abort/examples/panic_probe"

step "cargo test (workspace: unit, integration, doc tests, demo)"
cargo test --workspace --all-targets --locked 2>&1 | tee -a "$log"
cargo test --workspace --doc --locked 2>&1 | tee -a "$log"

step "cargo doc (broken intra-doc links denied)"
RUSTDOCFLAGS="-D warnings -D rustdoc::broken_intra_doc_links" cargo doc --workspace --no-deps --locked

step "the demo runs (the README's first command, shortened, in a scratch directory)"
demo_dir="$(mktemp -d)"
(cd "$demo_dir" && DEMO_SECONDS=3 cargo run -q --manifest-path "$OLDPWD/Cargo.toml" -p example-demo --locked > /dev/null)
rm -rf "$demo_dir"

if command -v cargo-deny > /dev/null 2>&1; then
  step "cargo deny (licenses, bans, sources)"
  cargo deny check licenses bans sources
else
  step "cargo deny not installed here: skipped (the GitHub workflow runs it)"
fi

# One closing line for the whole run, summed over every test binary and the doc tests.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
