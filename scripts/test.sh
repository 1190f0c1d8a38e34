#!/usr/bin/env bash
# Runs every test tier Emily has, then prints what ran, what was skipped and why:
#   1. cargo test (core crate)        2. loom model checks
#   3. ExUnit core (no Nx needed)     4. ExUnit Nx (needs Nx: EMILY_NX_PATH or Hex)
# Exits non-zero when any tier fails. Extra arguments go to `mix test`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/setup.sh --env)"
logs="$(mktemp -d)"
status=0

run_tier() { # name, log, command...
  local name="$1" log="$2"
  shift 2
  echo "== $name"
  "$@" 2>&1 | tee "$logs/$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "!! $name failed (exit $rc)"; status=1; }
}

cargo_counts() { # sums "test result: ok. N passed; M failed; K ignored" lines
  awk '/^test result:/ {p+=$4; f+=$6; i+=$8} END {printf "%d passed, %d failed, %d ignored", p, f, i}' "$1"
}

run_tier "tier 1: cargo test (core crate; the NIF crate is tested through ExUnit)" cargo.log \
  cargo test --release -p emily
run_tier "tier 2: loom model checks" loom.log \
  env RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
  cargo test --release -p emily-loom-tests
run_tier "tiers 3 and 4: ExUnit (core; Nx when Nx is available)" exunit.log mix test "$@"

echo
echo "== summary"
echo "tier 1 cargo test: $(cargo_counts "$logs/cargo.log")"
echo "tier 2 loom:       $(cargo_counts "$logs/loom.log")"
ex_line="$(grep -E '^[0-9]+ (doctests?|tests?)' "$logs/exunit.log" | tail -1)"
echo "tiers 3+4 ExUnit:  ${ex_line:-no result line}"
grep -q "ExUnit Nx: skipped" "$logs/exunit.log" &&
  echo "tier 4 ExUnit Nx:  skipped ($(grep -o 'skipped (.*)' "$logs/exunit.log" | head -1 | sed 's/^skipped (//; s/)$//'))"

passed=0 failed=0
for l in cargo loom; do
  read -r p f < <(awk '/^test result:/ {p+=$4; f+=$6} END {print p+0, f+0}' "$logs/$l.log")
  passed=$((passed + p)) failed=$((failed + f))
done
if [ -n "$ex_line" ]; then
  total=$(echo "$ex_line" | grep -oE '[0-9]+ (doctests?|tests?)' | awk '{s+=$1} END {print s+0}')
  fails=$(echo "$ex_line" | grep -oE '[0-9]+ failures?' | awk '{print $1+0}')
  excl=$(echo "$ex_line" | grep -oE '[0-9]+ excluded' | awk '{print $1+0}')
  skip=$(echo "$ex_line" | grep -oE '[0-9]+ skipped' | awk '{print $1+0}')
  passed=$((passed + total - ${fails:-0} - ${excl:-0} - ${skip:-0})) failed=$((failed + ${fails:-0}))
fi
rm -rf "$logs"
echo "$passed passed, $failed failed"
exit $status
