#!/usr/bin/env bash
# Builds benches/kernels_exhaustive.cc with Emily's kernels (the flags build.rs uses) and
# runs it: every float32 through each unary kernel, per ISA, against the C library in
# double. Arguments name ops (default: all). About 20 s per op and ISA on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/emily-kernels-exhaustive"
mkdir -p "$out"
g++ -std=c++20 -O3 -Isrc/cpp -mavx512f -mfma -mavx2 -c src/cpp/kernels/avx512.cc -o "$out/avx512.o"
g++ -std=c++20 -O3 -Isrc/cpp -mavx2 -mfma -c src/cpp/kernels/avx2.cc -o "$out/avx2.o"
g++ -std=c++20 -O2 -Isrc/cpp benches/kernels_exhaustive.cc "$out/avx512.o" "$out/avx2.o" -lsleef -lm -pthread \
  -o "$out/check"
"$out/check" "$@"
