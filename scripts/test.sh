#!/usr/bin/env bash
# Runs every test tier Emily has, then prints what ran, what was skipped and why:
#   1. cargo test (core crate)        2. loom model checks
#   3. ExUnit core (no Nx needed)     4. ExUnit Nx (needs Nx: Hex, ../shared/deps or
#   5. ExUnit models (Bumblebee and      EMILY_DEPS_PATH)
#      the models of scripts/models.sh)
# Exits non-zero when any tier fails, and, with EMILY_REQUIRE_ALL_TIERS=1 (CI), when a tier
# was skipped. Extra arguments run `mix test` once with them instead of the ExUnit tiers.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/setup.sh --env)"
logs="$(mktemp -d)"
status=0

run_tier() { # name, log, command...
  local name="$1" log="$2"
  shift 2
  echo "== $name"
  local t0=$SECONDS
  "$@" 2>&1 | tee "$logs/$log"
  local rc=${PIPESTATUS[0]}
  echo "$((SECONDS - t0))" >"$logs/$log.time"
  [ "$rc" = 0 ] || { echo "!! $name failed (exit $rc)"; status=1; }
}

cargo_counts() { # sums "test result: ok. N passed; M failed; K ignored" lines
  awk '/^test result:/ {p+=$4; f+=$6; i+=$8} END {printf "%d passed, %d failed, %d ignored", p, f, i}' "$1"
}

# "N doctests, M tests, K failures, E excluded" -> "passed failed excluded"
exunit_numbers() {
  local line
  line="$(grep -E '^[0-9]+ (doctests?|tests?)' "$1" | tail -1)"
  [ -n "$line" ] || { echo "0 0 0 none"; return; }
  local total fails excl skip
  total=$(echo "$line" | grep -oE '[0-9]+ (doctests?|tests?)' | awk '{s+=$1} END {print s+0}')
  fails=$(echo "$line" | grep -oE '[0-9]+ failures?' | awk '{print $1+0}')
  excl=$(echo "$line" | grep -oE '[0-9]+ excluded' | awk '{print $1+0}')
  skip=$(echo "$line" | grep -oE '[0-9]+ skipped' | awk '{print $1+0}')
  echo "$((total - ${fails:-0} - ${excl:-0} - ${skip:-0})) ${fails:-0} $((${excl:-0} + ${skip:-0})) ok"
}

run_tier "tier 1: cargo test (core crate; the NIF crate is tested through ExUnit)" cargo.log \
  cargo test --release -p emily
run_tier "tier 2: loom model checks" loom.log \
  env RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
  cargo test --release -p emily-loom-tests

if [ $# -gt 0 ]; then
  run_tier "ExUnit: mix test $*" exunit.log mix test "$@"
  tiers=(exunit)
else
  run_tier "tier 3: ExUnit core" core.log mix test tests/elixir/core
  run_tier "tier 4: ExUnit Nx" nx.log mix test tests/elixir/nx
  run_tier "tier 5: ExUnit models" models.log mix test tests/elixir/models
  tiers=(core nx models)
fi

echo
echo "== summary"
passed=0 failed=0
for l in cargo loom; do
  read -r p f < <(awk '/^test result:/ {p+=$4; f+=$6} END {print p+0, f+0}' "$logs/$l.log")
  passed=$((passed + p)) failed=$((failed + f))
  echo "$l: $(cargo_counts "$logs/$l.log") ($(cat "$logs/$l.log.time") s)"
done
for t in "${tiers[@]}"; do
  read -r p f e found < <(exunit_numbers "$logs/$t.log")
  passed=$((passed + p)) failed=$((failed + f))
  skipped="$(grep -oE "ExUnit Nx: skipped \([^)]*\)|models: skipped \([^)]*\)" "$logs/$t.log" | head -2 | tr '\n' ' ')"
  if [ "$found" = none ]; then
    echo "ExUnit $t: no result line ($(cat "$logs/$t.log.time") s)"
  else
    echo "ExUnit $t: $p passed, $f failed, $e excluded ($(cat "$logs/$t.log.time") s)"
  fi
  if [ "$t" != core ] && [ "$p" = 0 ] && [ -n "$skipped" ]; then
    echo "  tier $t did not run: $skipped"
    if [ "${EMILY_REQUIRE_ALL_TIERS:-0}" = 1 ]; then
      echo "!! EMILY_REQUIRE_ALL_TIERS=1 and tier $t was skipped"
      status=1
    fi
  fi
done
rm -rf "$logs"
echo "$passed passed, $failed failed"
exit $status
