#!/usr/bin/env bash
# Runs every test tier Emily has, and says which ran:
#   1. cargo tests (core crate, NIF crate)   2. loom model checks
#   3. ExUnit core (no Nx needed)            4. ExUnit Nx (needs Nx: EMILY_NX_PATH or Hex)
# Exits non-zero when any tier fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/setup.sh --env)"

echo "== tier 1: cargo test (core crate; the NIF crate is tested through ExUnit)"
cargo test --release -p emily

echo "== tier 2: loom model checks"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" cargo test --release -p emily-loom-tests

echo "== tiers 3 and 4: ExUnit (core; Nx when Nx is available)"
mix test "$@"
