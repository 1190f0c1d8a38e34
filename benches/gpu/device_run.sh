#!/usr/bin/env bash
# Runs on the offline NVIDIA machine, from the directory that holds .device/p1, .device/p2
# and .device/p3 (made by benches/gpu/package.sh): unpacks MLX (CUDA), Erlang, Elixir and the
# compiled project, then runs `mix emily.doctor`, the ExUnit tiers with the default device
# switched to the GPU, and the benchmarks (Emily and PyTorch on the same GPU, in this run).
# Writes logs and results to $OUT.
#
#   bash .device/p2/device_run.sh full    # doctor, CPU/GPU probes, benchmark table, fuzz trace
#   bash .device/p2/device_run.sh tests   # the ExUnit tiers on the GPU, file by file
#   bash .device/p2/device_run.sh smoke   # both (may not fit in one 600 s call)
set -uo pipefail
mode="${1:-full}"
B="$(pwd)/.device"
OUT="${OUT:-/tmp/emily-out}"
mkdir -p "$OUT"
# shellcheck disable=SC1091
source "$B/p2/env.sh" # root, cache, cuda_mlx, elixir_dir, EMILY_DEPS_PATH
log() { echo "[device $(date +%T)] $*"; }
step() { log "== $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1

E=/tmp/emily-sys
erlroot="$E/usr/lib/erlang"
if [ -f "$E/.ready" ] && [ -f "$cuda_mlx/mlx/lib/libmlx.so" ]; then
  log "already unpacked on this machine (an earlier call while it was warm)"
else
  step "unpack MLX (CUDA) at $cuda_mlx"
  tar -C / -xJf "$B/p3/mlx-rest.tar.xz"
  mkdir -p "$cuda_mlx/mlx/lib"
  sum="$(cat "$B/p1"/libmlx.so.xz.* "$B/p2"/libmlx.so.xz.[0-9]* | sha256sum | awk '{print $1}')"
  if [ "$sum" != "$(cat "$B/p2/libmlx.so.xz.sha256")" ]; then
    log "libmlx parts do not add up (sha256 $sum): were .device/p1 and .device/p3 carried in the calls before?"
    exit 2
  fi
  cat "$B/p1"/libmlx.so.xz.* "$B/p2"/libmlx.so.xz.[0-9]* | xz -d >"$cuda_mlx/mlx/lib/libmlx.so"


  step "unpack Erlang/OTP and OpenBLAS (.debs, dpkg -x into /tmp/emily-sys), Elixir, the app"
  rm -rf "$E" && mkdir -p "$E"
  for f in "$B"/p3/debs/*.deb; do dpkg -x "$f" "$E"; done
  sed -i "s|ROOTDIR=/usr/lib/erlang|ROOTDIR=$erlroot|" "$erlroot/bin/erl" "$erlroot"/erts-*/bin/erl
  tar -C / -xJf "$B/p3/elixir.tar.xz"
  tar -C / -xJf "$B/p2/app.tar.xz"
  touch "$root/priv/emily_nif.so"
  touch "$E/.ready"
fi
# The model tier's models (benches/gpu/package_models.sh), once all of their parts are here.
export EMILY_CACHE="$cache"
if [ -f "$B/m1/models.tar.sha256" ] && [ ! -f "$cache/models/.from-package" ]; then
  sum="$(cat "$B"/m[0-9]/models.tar.[0-9]* | sha256sum | awk '{print $1}')"
  if [ "$sum" = "$(cat "$B/m1/models.tar.sha256")" ]; then
    mkdir -p "$cache" && cat "$B"/m[0-9]/models.tar.[0-9]* | tar -C "$cache" -xf - && touch "$cache/models/.from-package"
    log "models unpacked at $cache/models: $(ls "$cache/models" | tr '\n' ' ')"
  else
    log "model parts do not add up (were all of .device/m1, m2, ... carried while warm?): the model tier will be skipped"
  fi
fi
# NVIDIA's libraries: PyTorch's site-packages/nvidia has the ones the mlx-cuda-13 wheel
# depends on. Putting that folder beside mlx/ reproduces the pip layout libmlx's RPATH
# expects ($ORIGIN/../../nvidia/*/lib); LD_LIBRARY_PATH lists them as well.
nv="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia"))')"
ln -sfn "$nv" "$cuda_mlx/nvidia"
ldp=""
for d in "$nv"/*/lib /usr/local/nvidia/lib64 /usr/local/cuda/lib64; do
  [ -d "$d" ] && ldp="$ldp:$d"
done
ldp="$ldp:$E/usr/lib/x86_64-linux-gnu/openblas-pthread:$E/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="${ldp#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$erlroot/bin:$elixir_dir/bin:$PATH"
export LANG=C.UTF-8 ELIXIR_ERL_OPTIONS=+fnu MIX_ENV=test HEX_OFFLINE=1 MIX_HOME=/tmp/emily-mix EMILY_MLX_DIR="$cuda_mlx/mlx"
# MLX's NVRTC kernels include CUDA's headers: CUDA_HOME, else /usr/local/cuda.
[ -d /usr/local/cuda/include ] && export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
# MLX's compiled CUDA kernels: kept in one folder, seeded from an earlier run's cache when
# the package has one, and returned in $OUT at the end.
export MLX_PTX_CACHE_DIR=/tmp/emily-ptx
mkdir -p "$MLX_PTX_CACHE_DIR"
if [ -f "$B/p2/ptx-cache.tar.xz" ] && [ ! -f "$MLX_PTX_CACHE_DIR/.seeded" ]; then
  tar -C "$MLX_PTX_CACHE_DIR" -xJf "$B/p2/ptx-cache.tar.xz" && touch "$MLX_PTX_CACHE_DIR/.seeded"
  log "MLX kernel cache: $(find "$MLX_PTX_CACHE_DIR" -name '*.ptx' | wc -l) kernels from the package"
fi
save_ptx() { tar -C "$MLX_PTX_CACHE_DIR" --exclude=.seeded -cJf "$OUT/ptx-cache.tar.xz" . 2>/dev/null; }
cd "$root" || exit 2
log "ldd: $(ldd priv/emily_nif.so | grep -c 'not found') libraries not found"
ldd priv/emily_nif.so | grep -E "not found|mlx|cublas|cudnn|nccl|libcuda|openblas"

status=0
if [ "$mode" != tests ]; then
  diag="$OUT/diag.log"
  step "mix emily.doctor"
  mix emily.doctor 2>&1 | tee "$diag"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1

  step "probe: the same ops on the CPU and on the GPU"
  timeout 120 mix run benches/gpu/probe.exs 2>&1 | tee -a "$diag" | grep -v "^    "
  step "probe: a GPU worker after an evaluation error (CPU fallback off)"
  EMILY_GPU_CPU_FALLBACK=0 timeout 60 mix run benches/gpu/probe.exs poison 2>&1 | tee -a "$diag" | tail -3

  step "benchmarks: Emily, then PyTorch, on this GPU; then f32 matmuls with TF32 allowed"
  timeout 200 mix run benches/gpu/bench.exs "$OUT/emily.json" /tmp/emily_block 2>&1 | tee "$OUT/bench_emily.log"
  PYTHONUNBUFFERED=1 timeout 200 python3 benches/gpu/bench_torch.py "$OUT/torch.json" /tmp/emily_block 2>&1 |
    tee "$OUT/bench_torch.log"
  MLX_ENABLE_TF32=1 EMILY_BENCH_ONLY=tf32 timeout 60 mix run benches/gpu/bench.exs "$OUT/emily.json" 2>&1 |
    tee -a "$OUT/bench_emily.log"
  EMILY_BENCH_ONLY=tf32 timeout 60 python3 benches/gpu/bench_torch.py "$OUT/torch.json" 2>&1 |
    tee -a "$OUT/bench_torch.log"
  python3 benches/gpu/table.py "$OUT/emily.json" "$OUT/torch.json" >"$OUT/table.md"

  step "fuzz trace: every op with odd arguments on the GPU, one call at a time (last lines)"
  EMILY_FUZZ_DEVICE=gpu CUDA_LAUNCH_BLOCKING=1 timeout 90 mix run benches/gpu/fuzz_trace.exs >"$OUT/fuzz.log" 2>&1
  echo "fuzz trace exit status: $?"
  grep -m 3 "CUDA error" -B 2 "$OUT/fuzz.log"
  tail -n 3 "$OUT/fuzz.log"
  cat "$OUT/table.md"
fi

if [ "$mode" = tests ] || [ "$mode" = smoke ]; then
  # Each test file in a VM of its own (4 at a time), so that a hang or a crash stays in its
  # file; ExUnit's per-test timeout is 40 s.
  # EMILY_TEST_DEVICE=cpu runs the files on the CPU workers of this CUDA build instead.
  dev="${EMILY_TEST_DEVICE:-gpu}"
  mix emily.doctor 2>&1 | grep -E "^(MLX|Devices|Kernels):"
  step "ExUnit with EMILY_DEFAULT_DEVICE=$dev, file by file"
  mkdir -p /tmp/emily-tests && rm -f /tmp/emily-tests/*
  ls ${EMILY_TEST_FILES:-tests/elixir/core/*_test.exs tests/elixir/nx/*_test.exs tests/elixir/models/*_test.exs} |
    EMILY_DEFAULT_DEVICE=$dev xargs -P 4 -I{} sh -c \
      'f={}; n=$(basename $f .exs); timeout ${EMILY_FILE_TIMEOUT_S:-150} mix test --timeout ${EMILY_TEST_TIMEOUT_MS:-40000} $f >/tmp/emily-tests/$n.log 2>&1; echo "rc=$?" >>/tmp/emily-tests/$n.log'
  for f in /tmp/emily-tests/*.log; do
    n=$(basename "$f" .log)
    summary=$(grep -E "tests?, [0-9]+ failures?" "$f" | tail -1)
    echo "$n: ${summary:-no summary} ($(tail -1 "$f"))"
    { echo "=== $n"; cat "$f"; } >>"$OUT/test_gpu.log"
  done | tee "$OUT/test_summary.txt"
  grep -h -E "^\s+[0-9]+\) test" /tmp/emily-tests/*.log | head -60
fi
save_ptx
log "done (status $status); MLX kernel cache: $(find "$MLX_PTX_CACHE_DIR" -name '*.ptx' | wc -l) kernels"
exit $status
