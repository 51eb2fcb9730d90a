#!/usr/bin/env bash
# The fuzz targets (fuzz/, cargo-fuzz and libFuzzer): builds them with the nightly toolchain
# and runs each for a bounded time, starting from its committed corpus (fuzz/corpus/<target>).
# Fails when a target finds a crash, printing the input that caused it (fuzz/artifacts/…) and
# how to reproduce it.
#
#   STRATA_FUZZ_SECONDS   seconds per target (default 30)
#   STRATA_FUZZ_TARGETS   the targets to run, space-separated (default: all of them)
#   STRATA_FUZZ_MERGE=1   then merge the inputs that found new coverage into fuzz/corpus and
#                         minimise it (commit the result); by default new inputs are left in
#                         fuzz/target/new-corpus
#
# The corpus of a target is its named inputs — hand-written seeds (`seed-*`) and the
# reproducers of bugs found (`regress-*`), always kept — and the smallest set of the fuzzer's
# inputs (named by their SHA-1) that adds every other code edge they reach: libFuzzer's
# set-cover merge on edges (not hit counts), which keeps it to a few hundred small files.
#
# Installs cargo-fuzz (and the nightly toolchain, with rustup) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${STRATA_FUZZ_SECONDS:-30}"
targets="${STRATA_FUZZ_TARGETS:-json_event request_id config cli_reader}"
cargo_fuzz_version="0.13.2"
# libFuzzer reads 0 as "no limit".
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz: STRATA_FUZZ_SECONDS must be a whole number of seconds, at least 1" >&2
  exit 2
fi

if ! cargo +nightly --version > /dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (rustup, minimal profile)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

cd fuzz
# No sanitizer: the code fuzzed is safe Rust (no `unsafe` on these paths), and the build and
# the runs are faster without AddressSanitizer. Release mode with debug assertions and
# overflow checks (cargo-fuzz's default).
flags=(--sanitizer none)
start=$(date +%s)
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s"

bin="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

# Minimises corpus/$1, with the inputs of the directories after it, in place.
minimize() {
  local t=$1 out="target/cmin/$1"
  shift
  rm -rf "$out"
  mkdir -p "$out"
  # The named inputs go first: what they reach is covered already.
  find "corpus/$t" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regress-*' \) -exec cp {} "$out/" \;
  "$bin/$t" -merge=1 -set_cover_merge=1 -use_counters=0 "$out" "corpus/$t" "$@" \
    > "$logs/$t.merge.log" 2>&1
  rm -rf "corpus/$t"
  mv "$out" "corpus/$t"
}

logs="target/fuzz-logs"
mkdir -p "$logs"
failed=0
for t in $targets; do
  new="target/new-corpus/$t"
  mkdir -p "$new" "corpus/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  # New inputs are written to the first directory; the committed corpus is only read.
  if cargo +nightly fuzz run "${flags[@]}" "$t" "$new" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 > "$logs/$t.log" 2>&1; then
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -1 || true)
    execs=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<< "$done_line")
    runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<< "$done_line")
    echo "fuzz: $t: ok, ${runs:-?} runs in $seconds s (${execs:-?} exec/s), corpus $(ls "corpus/$t" | wc -l) committed + $(ls "$new" | wc -l) new"
    if [ "${STRATA_FUZZ_MERGE:-0}" = 1 ]; then
      minimize "$t" "$new"
      rm -rf "$new"
      echo "fuzz: $t: merged and minimised: corpus/$t has $(ls "corpus/$t" | wc -l) files"
    fi
  else
    failed=1
    echo "fuzz: $t: FAILED (full log: fuzz/$logs/$t.log)"
    grep -E -A12 "panicked at|ERROR: libFuzzer|SUMMARY" "$logs/$t.log" | head -40 || tail -40 "$logs/$t.log"
    if [ "$(find "artifacts/$t" -type f | wc -l)" -gt "$before" ]; then
      artifact=$(ls -t "artifacts/$t"/* | head -1 || true)
      echo "fuzz: the input: fuzz/$artifact"
      echo "fuzz: reproduce: (cd fuzz && cargo +nightly fuzz run ${flags[*]} $t $artifact)"
    fi
  fi
done
echo "fuzz: total $(($(date +%s) - start)) s"
exit "$failed"
